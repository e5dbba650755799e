"""Accuracy of a KWS model on a Speech Commands split, on every backend/configuration at once.

The work is batches of clips (``BATCH_CLIPS``). One batch is one task, ``score_batch``: a
module-level function of plain arguments (the models' bytes, the clips' 16 kHz audio) returning
plain values, so it runs in this process, in a local process pool or on a Dask worker through the
executor seam (``ethos_kws.executor.WorkPool``) alike; the worker computes the MFCC features once
per clip and runs them through every configuration. The client reads the audio, owns the cache and
merges the results.

Cache: per configuration (model sha256 — for npu-sim the Vela-compiled model's — backend, options,
runtime and ethos-kws versions) a folder of batch files, each an atomic JSON write holding per clip
its fingerprint (``dataset.clip_fingerprint``: the file's bytes and the cut), the sha256 of the
int8 input and the raw outputs, with a sha256 over all of it. An entry is used only when its file
verifies and its clip fingerprint matches; anything else is recomputed. So an interrupted run
resumes where it stopped, and a changed clip, model or simulator is never answered from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .dataset import RECIPE, Clip, Dataset, clip_audio, clip_fingerprint
from .errors import EthosKwsError, UserError
from .labels import DS_CNN_LABELS
from .paths import cache_dir

CACHE_FORMAT = 1
BATCH_CLIPS = 64
FRONT_END = "tf-mfcc-49x10/v1"  # bump when the MFCC front end changes


@dataclass(frozen=True)
class ModelRun:
    """One backend/configuration as a worker builds it (picklable; carries the model's bytes)."""

    name: str  # "cpu", "npu-sim u55-128", "fvp u55-128"
    backend: str  # "cpu" | "npu-sim" | "fvp"
    options: tuple[tuple[str, Any], ...]
    model_sha256: str
    model_bytes: bytes = field(repr=False)
    accel: str | None = None
    versions: tuple[tuple[str, str], ...] = ()

    @property
    def cache_key(self) -> str:
        ident = [CACHE_FORMAT, FRONT_END, self.backend, list(map(list, self.options)),
                 self.model_sha256, list(map(list, self.versions))]
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class BatchScores:
    input_sha256: tuple[str, ...]
    outputs: dict[str, np.ndarray]  # run name -> (n, classes) raw integer outputs


# ---- the task: runs anywhere ---------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _worker_backend(backend: str, options: tuple, model_sha256: str, model_bytes: bytes):
    """A backend per configuration and process, built once (weights decoded, plans made once)."""
    from .backends import create_backend_from_bytes
    from .vela_ini import UserIni, user_ini_here

    opts = dict(options)
    if isinstance(opts.get("vela_ini"), UserIni):  # sent as text: a path on this machine
        opts["vela_ini"] = user_ini_here(opts["vela_ini"])
    return create_backend_from_bytes(backend, model_bytes, model_sha256, **opts)


def score_batch(runs: Sequence[ModelRun], audio: np.ndarray, names: Sequence[str]) -> BatchScores:
    """MFCC features of each 1 s clip in ``audio`` (n, 16000), quantized for the model, through
    every run. ``names`` only labels errors."""
    from .audio import features
    from .inputs import features_to_input

    backends = [_worker_backend(r.backend, r.options, r.model_sha256, r.model_bytes) for r in runs]
    spec = backends[0].input_specs[0]
    inputs = [features_to_input(features(a), spec, name) for a, name in zip(audio, names)]
    digests = tuple(hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() for x in inputs)
    outputs = {}
    for run, backend in zip(runs, backends):
        if backend.input_specs[0].dtype != spec.dtype:
            raise UserError(f"{run.name}: input type {backend.input_specs[0].dtype} differs from {spec.dtype}")
        outs = backend.run_batch([[x] for x in inputs])
        outputs[run.name] = np.stack([np.asarray(o[0]).reshape(-1) for o in outs])
    return BatchScores(digests, outputs)


# ---- the cache -----------------------------------------------------------------------------------


def _entries_check(entries: list) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


class ScoreCache:
    """Verified per-clip results of one configuration (see the module doc)."""

    def __init__(self, run: ModelRun, root: Path | None = None):
        self.run = run
        self.folder = (root or cache_dir() / "accuracy") / run.cache_key
        self.entries: dict[str, tuple[str, list[int]]] = {}
        self.rejected = 0
        self._load()

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        for f in sorted(self.folder.glob("*.json")):
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
                entries = doc["entries"]
                ok = (doc.get("format") == CACHE_FORMAT and doc.get("config") == self.run.cache_key
                      and doc.get("check") == _entries_check(entries))
            except (OSError, ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                self.rejected += 1
                continue
            for key, input_sha, out in entries:
                self.entries[key] = (input_sha, out)

    def get(self, key: str) -> tuple[str, list[int]] | None:
        return self.entries.get(key)

    def put(self, items: list[tuple[str, str, list[int]]]) -> None:
        from .fsutil import atomic_write_json

        entries = [list(i) for i in items]
        name = hashlib.sha256("".join(k for k, _i, _o in items).encode()).hexdigest()[:24]
        atomic_write_json(self.folder / f"{name}.json", {
            "format": CACHE_FORMAT, "config": self.run.cache_key, "name": self.run.name,
            "entries": entries, "check": _entries_check(entries)})
        for key, input_sha, out in items:
            self.entries[key] = (input_sha, out)


# ---- building the configurations -----------------------------------------------------------------


def _versions(backend: str, options: dict) -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    dists = {"cpu": ("ai-edge-litert", "tflite-micro"), "npu-sim": (), "fvp": ("ethos-u-vela",)}
    out = [("ethos-kws", __version__)]
    for d in dists.get(backend, ()):
        try:
            out.append((d, version(d)))
        except PackageNotFoundError:
            out.append((d, "missing"))
    return tuple(out)


def build_runs(model_path: Path, model_sha256: str, backends: Sequence[str], accels: Sequence[str],
               options: dict[str, Any]) -> list[ModelRun]:
    """One run for cpu, one per accelerator for npu-sim (compiled once here, through the Vela
    cache) and fvp. ``options``: the backend options given on the command line."""
    from .backends import backend_options
    from .vela_ini import UserIni, load_user_ini

    if options.get("vela_ini") is not None and not isinstance(options["vela_ini"], UserIni):
        # --config travels as text (a worker may not have the file); its content keys the cache
        options = {**options, "vela_ini": load_user_ini(options["vela_ini"])}
    runs = []
    model_bytes = model_path.read_bytes()
    for b in backends:
        accepted = set(backend_options(b))
        opts = {k: v for k, v in options.items() if k in accepted and k != "accel"}
        if b == "cpu":
            runs.append(ModelRun("cpu" + (f" ({opts['kernels']})" if "kernels" in opts else ""), "cpu",
                                 tuple(sorted(opts.items())), model_sha256, model_bytes,
                                 versions=_versions("cpu", opts)))
            continue
        for acc in accels:
            if b == "npu-sim":
                from .backends.npusim.backend import compile_with_vela

                ini = opts.get("vela_ini")
                compiled = compile_with_vela(model_path, acc, legacy_core=bool(opts.get("legacy_core")),
                                             system_config=opts.get("system_config"),
                                             memory_mode=opts.get("memory_mode"), vela_ini=ini.path if ini else None)
                data = Path(compiled).read_bytes()
                sim_opts = tuple(sorted((k, v) for k, v in opts.items() if k == "litert_fc_rounding"))
                runs.append(ModelRun(f"npu-sim {acc}", "npu-sim", sim_opts,
                                     hashlib.sha256(data).hexdigest(), data, acc, _versions(b, opts)))
            else:
                o = dict(opts, accel=acc)
                runs.append(ModelRun(f"{b} {acc}", b, tuple(sorted(o.items())), model_sha256,
                                     model_bytes, acc, _versions(b, o)))
    return runs


# ---- metrics -------------------------------------------------------------------------------------


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (labels, predicted), 1)
    return m


def per_class(m: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(names):
        tp, predicted, support = int(m[i, i]), int(m[:, i].sum()), int(m[i, :].sum())
        out.append({"label": name, "precision": tp / predicted if predicted else None,
                    "recall": tp / support if support else None, "support": support,
                    "predicted": predicted})
    return out


def top_labels(outputs: np.ndarray) -> np.ndarray:
    """Arg-max of the raw integer scores (first index on ties, as TFLite's ArgMax)."""
    return np.argmax(outputs, axis=1)


# ---- the run -------------------------------------------------------------------------------------


def evaluate(dataset: Dataset, runs: Sequence[ModelRun], *, pool=None, progress: bool | None = None,
             model_label: str = "", batch_clips: int = BATCH_CLIPS,
             on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Every clip of ``dataset`` through every run (cached ones read back); the accuracy document."""
    from tqdm import tqdm

    if not runs:
        raise UserError("no backend configurations to evaluate")
    if pool is None:
        from .executors import WorkPool

        pool = WorkPool(jobs=1)  # this process
    t0 = time.perf_counter()
    digests: dict[str, str] = {}
    keys = [clip_fingerprint(c, digests) for c in dataset.clips]
    caches = [ScoreCache(r) for r in runs]
    todo = [i for i, k in enumerate(keys) if any(c.get(k) is None for c in caches)]
    tasks, task_runs, task_clips = [], [], []
    noise_cache: dict[str, np.ndarray] = {}
    for start in range(0, len(todo), batch_clips):
        idx = todo[start : start + batch_clips]
        need = tuple(r for r, c in zip(runs, caches) if any(c.get(keys[i]) is None for i in idx))
        audio = np.stack([_fixed_len(clip_audio(dataset.clips[i], noise_cache)) for i in idx])
        tasks.append((need, audio, tuple(dataset.clips[i].clip_id for i in idx)))
        task_runs.append(need)
        task_clips.append(idx)
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), unit="clip", file=sys.stderr,
               disable=(not sys.stderr.isatty()) if progress is None else not progress,
               desc="accuracy", dynamic_ncols=True)

    def done(t: int, result) -> None:
        for run, cache in zip(runs, caches):
            if run.name not in result.outputs:
                continue
            outs = result.outputs[run.name]
            cache.put([(keys[i], result.input_sha256[j], [int(v) for v in outs[j]])
                       for j, i in enumerate(task_clips[t])])
        bar.update(len(task_clips[t]))
        if on_batch:
            on_batch(t)

    try:
        pool.run(score_batch, tasks, on_done=done)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    return _document(dataset, runs, caches, keys, elapsed, len(todo), model_label,
                     getattr(pool, "describe", lambda: "")())


def _fixed_len(a: np.ndarray) -> np.ndarray:
    from .audio import CLIP_SAMPLES

    a = a[:CLIP_SAMPLES]
    return a if a.size == CLIP_SAMPLES else np.concatenate([a, np.zeros(CLIP_SAMPLES - a.size, np.float32)])


def _document(dataset: Dataset, runs, caches, keys, elapsed: float, computed_clips: int,
              model_label: str, executor: str) -> dict[str, Any]:
    names = list(DS_CNN_LABELS)
    labels = np.array([c.label for c in dataset.clips])
    ids = [c.clip_id for c in dataset.clips]
    table = {}
    for run, cache in zip(runs, caches):
        got = [cache.get(k) for k in keys]
        table[run.name] = (np.array([g[1] for g in got]), [g[0] for g in got])
    cpu = next((r.name for r in runs if r.backend == "cpu"), None)
    out_runs = []
    for run, cache in zip(runs, caches):
        outs, input_shas = table[run.name]
        pred = top_labels(outs)
        m = confusion_matrix(labels, pred, len(names))
        entry = {"config": run.name, "backend": run.backend, "accel": run.accel,
                 "options": dict(run.options), "model_sha256": run.model_sha256,
                 "clips": int(len(labels)), "correct": int((pred == labels).sum()),
                 "top1": float((pred == labels).mean()), "per_class": per_class(m, names),
                 "confusion": m.tolist(), "cache_rejected_files": cache.rejected,
                 "misclassified": [{"clip": ids[i], "label": names[pred[i]], "true": names[labels[i]]}
                                   for i in np.nonzero(pred != labels)[0][:200]]}
        if cpu is not None and run.name != cpu:
            ref, ref_shas = table[cpu]
            same_input = [a == b for a, b in zip(input_shas, ref_shas)]
            if not all(same_input):  # the same features must have gone into both
                raise EthosKwsError(f"{run.name}: inputs differ from the cpu run's for "
                                    f"{same_input.count(False)} clips (cache or front end inconsistency)")
            differ = np.any(outs != ref, axis=1)
            ref_pred = top_labels(ref)
            lab_diff = np.nonzero(pred != ref_pred)[0]
            entry.update({
                "compared_with": cpu,
                "scores_differ_from_cpu": int(differ.sum()),
                "max_abs_diff_lsb": int(np.abs(outs.astype(np.int64) - ref.astype(np.int64)).max(initial=0)),
                "labels_differ_from_cpu": int(len(lab_diff)),
                "scores_differ": [ids[i] for i in np.nonzero(differ)[0][:200]],
                "label_differs": [{"clip": ids[i], "label": names[pred[i]], "cpu": names[ref_pred[i]]}
                                  for i in lab_diff[:200]],
            })
        out_runs.append(entry)
    n = len(keys)
    return {
        "dataset": str(dataset.root), "split": dataset.split, "split_source": dataset.split_source,
        "clips": n, "split_clips": dataset.total,
        "limited": n if n < dataset.total else None,
        "labels": names, "counts": dataset.counts(), "recipe": RECIPE, "model": model_label,
        "runs": out_runs,
        "computed_clips": computed_clips, "cached_clips": n - computed_clips,
        "elapsed_s": round(elapsed, 3),
        "clip_configs_per_s": round(computed_clips * len(runs) / elapsed, 1) if computed_clips and elapsed > 0 else None,
        "executor": executor,
    }
