"""Front end and CPU backend timings (run on demand; prints figures, asserts nothing).

    python benchmarks/bench_cpu_audio.py [--model M] [--clip CLIP.wav] [--repeat N]

Targets (issue 3): features of a 1 s clip <= 5 ms; classify of one clip <= 50 ms after start-up
(backend built from a cached crash probe, WAV read, features, inference); CPU inference per kernel.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from ethos_kws.audio import CLIP_SAMPLES, features, read_wav, wav_features
from ethos_kws.backends import create_backend
from ethos_kws.backends.cpu import KERNELS
from ethos_kws.classify import classify_wav
from ethos_kws.inputs import random_inputs
from ethos_kws.paths import shared_data_dir


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median, min) milliseconds over ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


def main() -> int:
    data = shared_data_dir()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(data / "models" / "ds_cnn_l_int8io.tflite") if data else None)
    ap.add_argument("--clip", default=str(data / "audio" / "yes_tflm.wav") if data else None)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    if not args.model or not args.clip:
        ap.error("no shared data found: pass --model and --clip")
    n = args.repeat

    audio = read_wav(args.clip, max_samples=CLIP_SAMPLES)
    med, best = timed(lambda: features(audio), n * 4)
    print(f"features (1 s, decoded audio)        median {med:7.3f} ms   min {best:7.3f} ms   target <= 5 ms")
    med, best = timed(lambda: wav_features(args.clip), n * 4)
    print(f"features (1 s, WAV file -> (49, 10)) median {med:7.3f} ms   min {best:7.3f} ms")

    create_backend("cpu", args.model)  # runs (or reads) the crash probe once: start-up
    med, best = timed(lambda: classify_wav(args.clip, create_backend("cpu", args.model)), n)
    print("classify one clip (backend build + WAV + features + ref inference)")
    print(f"                                     median {med:7.3f} ms   min {best:7.3f} ms   target <= 50 ms")
    backend = create_backend("cpu", args.model)
    med, best = timed(lambda: classify_wav(args.clip, backend), n)
    print(f"classify one clip (backend reused)   median {med:7.3f} ms   min {best:7.3f} ms")

    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ethos_kws", "classify", args.clip, "--model", args.model],
                   check=True, capture_output=True)
    print(f"`ethos-kws classify` whole process   {(time.perf_counter() - t) * 1e3:7.1f} ms "
          "(interpreter start and imports included)")

    print("CPU inference per kernel type (one invoke, batch 1; and run_batch of 64):")
    for kernels, choice in KERNELS.items():
        try:
            b = create_backend("cpu", args.model, kernels=kernels)
        except Exception as e:  # e.g. the optional tflm runtime not installed
            print(f"  {kernels:8s} unavailable: {e}")
            continue
        x = random_inputs(b.input_specs, 0)
        med, best = timed(lambda: b.run(x), n)
        xs = [random_inputs(b.input_specs, s) for s in range(64)]
        bmed, _ = timed(lambda: b.run_batch(xs), max(3, n // 10))
        print(f"  {kernels:8s} median {med:7.3f} ms   min {best:7.3f} ms   "
              f"batch of 64: {bmed / 64:7.3f} ms/input   ({choice.summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
