"""Accuracy pipeline speed (issue 16): clips/s for the whole pipeline (WAV -> TensorFlow-exact MFCC
-> quantized input -> model) on cpu and on npu-sim for each configuration, measured side by side in
one run, and what a 5,000-clip test split x all configurations would take here and on an 8-worker
Dask cluster.

    python benchmarks/bench_accuracy.py [--model M] [--copies 8] [--accel all|LIST] [--dask-workers 2] [--no-dask]

The dataset is a Speech Commands layout built in a temporary folder from the labelled clips in
../shared/data/audio (each clip copied --copies times, plus _silence_ cuts of recorded background
noise), so every figure is on real audio. Every run starts from an empty score cache (a fresh
$ETHOS_KWS_CACHE; the Vela compiles are done once before timing). The cluster figures come from
a real distributed.LocalCluster with --dask-workers worker processes on this machine; the 8-worker
figure is extrapolated from its per-worker rate and is labelled as such.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPLIT_CLIPS = 5000


def build_dataset(audio_dir: Path, root: Path, copies: int) -> Path:
    import wave

    from ethos_kws.audio import read_wav
    from ethos_kws.dataset import BACKGROUND_NOISE_DIR

    listed = []
    for clip in sorted(audio_dir.glob("*.wav")):
        word = clip.stem.split("_")[0]
        if word not in WORDS:
            continue
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(copies):
            rel = f"{word}/{clip.stem.replace('_', '')}{i:02d}_nohash_0.wav"
            shutil.copy(clip, root / rel)
            listed.append(rel)
    noise = root / BACKGROUND_NOISE_DIR
    noise.mkdir(parents=True)
    x = read_wav(audio_dir / "silence_tflm.wav")
    with wave.open(str(noise / "room.wav"), "wb") as w:  # two seconds of the recorded silence
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(np.concatenate([x, x[::-1]]), -1, 1 - 2**-15) * 32768).astype("<i2").tobytes())
    (root / "testing_list.txt").write_text("\n".join(listed) + "\n")
    (root / "validation_list.txt").write_text("")
    return root


def timed_evaluate(dataset, runs, pool=None) -> tuple[float, dict]:
    from ethos_kws.accuracy import evaluate

    with tempfile.TemporaryDirectory(prefix="bench-acc-cache-") as cache:
        os.environ["ETHOS_KWS_CACHE"] = cache  # an empty score cache: every clip computed
        t0 = time.perf_counter()
        doc = evaluate(dataset, runs, pool=pool, progress=False)
        return time.perf_counter() - t0, doc


def main() -> int:
    from ethos_kws.accel import parse_accelerator_list
    from ethos_kws.accuracy import build_runs
    from ethos_kws.dataset import load_dataset
    from ethos_kws.paths import shared_data_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--accel", default="all")
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data not found")
    model = args.model or data / "models" / "ds_cnn_l_int8io.tflite"
    import hashlib

    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    accels = [a.name for a in parse_accelerator_list(args.accel)]
    with tempfile.TemporaryDirectory(prefix="bench-acc-") as tmp:
        ds_root = build_dataset(data / "audio", Path(tmp) / "sc", args.copies)
        dataset = load_dataset(ds_root, "test", None)
        n = len(dataset.clips)
        os.environ.setdefault("ETHOS_KWS_CACHE", str(Path(tmp) / "cache"))
        cpu = build_runs(model, sha, ["cpu"], [], {"kernels": "tflm"})
        npu = build_runs(model, sha, ["npu-sim"], accels, {})  # compiled once, before any timing
        print(f"{model.name}: {n} clips ({args.copies} copies of each labelled shared clip + _silence_), "
              f"WAV -> MFCC -> model, empty score cache per run, this process")
        print(f"  {'configuration':24} {'s':>8} {'clips/s':>9} {'top-1':>7}")
        rates = {}
        for run in [*cpu, *npu]:
            elapsed, doc = timed_evaluate(dataset, [run])
            rates[run.name] = n / elapsed
            print(f"  {run.name:24} {elapsed:8.2f} {n / elapsed:9.1f} {doc['runs'][0]['top1']:7.4f}")
        runs = [*cpu, *npu]
        elapsed, doc = timed_evaluate(dataset, runs)
        per_clip_all = elapsed / n
        print(f"  {'cpu + every npu-sim':24} {elapsed:8.2f} {n / elapsed:9.1f}   "
              f"({doc['clip_configs_per_s']} clip-configurations/s, {len(runs)} configurations)")
        here = per_clip_all * SPLIT_CLIPS
        print(f"\n{SPLIT_CLIPS} clips x {len(runs)} configurations in this process: "
              f"{here:.0f} s ({here / 60:.1f} min), extrapolated from the {n}-clip run")
        from ethos_kws.executors import DaskRunner, work_pool

        with work_pool(jobs=2) as pool:
            elapsed_l, doc_l = timed_evaluate(dataset, runs, pool)
        same = [r["confusion"] for r in doc_l["runs"]] == [r["confusion"] for r in doc["runs"]]
        print(f"local pool, 2 processes: {elapsed_l:.2f} s, {n / elapsed_l:.1f} clips/s "
              f"(x{len(runs)} configurations; results {'identical' if same else 'DIFFER'}); "
              f"{SPLIT_CLIPS} clips: {elapsed_l / n * SPLIT_CLIPS:.0f} s, extrapolated")
        if args.no_dask:
            return 0
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as client:
            # silence_logs: a worker's heartbeat racing the cluster's close logs a
            # CommClosedError traceback at shutdown; the timing is already taken by then.
            with work_pool(jobs=None, dask=DaskRunner(client, cluster.scheduler_address)) as pool:
                elapsed_d, doc_d = timed_evaluate(dataset, runs, pool)
        same = [r["confusion"] for r in doc_d["runs"]] == [r["confusion"] for r in doc["runs"]]
        per_worker = n / elapsed_d / args.dask_workers
        print(f"LocalCluster, {args.dask_workers} worker processes: {elapsed_d:.2f} s, {n / elapsed_d:.1f} clips/s "
              f"(x{len(runs)} configurations; results {'identical' if same else 'DIFFER'})")
        eight = SPLIT_CLIPS / (per_worker * 8)
        print(f"{SPLIT_CLIPS} clips x {len(runs)} configurations on an 8-worker cluster: {eight:.0f} s "
              f"({eight / 60:.1f} min), EXTRAPOLATED from the LocalCluster's {per_worker:.1f} clips/s per worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
