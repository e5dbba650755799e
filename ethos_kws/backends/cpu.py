"""CPU backend: the model on LiteRT, or on TFLite Micro (the default parity oracle).

Kernels (``kernels=``):
  ``ref``      LiteRT ``BUILTIN_REF``: the portable reference kernels (default for `run`; `parity --oracle ref`)
  ``builtin``  LiteRT ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``: optimized kernels, no delegate
  ``xnnpack``  LiteRT ``AUTO``: what LiteRT runs by default (XNNPACK delegate)
  ``tflm``     TFLite Micro's reference kernels (PyPI ``tflite-micro``): what runs on a Cortex-M,
               and the default parity oracle (it rounds like the NPU; see ``ethos_kws.parity``)

Native crash safety: LiteRT and TFLM are C++ and can abort the whole process on some models.
Before a model is loaded in-process it is loaded and invoked once in a child process
(``python -m ethos_kws.backends.cpu probe``); a child killed by a signal becomes a
``BackendError`` naming the signal and the stage, and the verdict is cached per model sha256,
kernels and runtime version in ``cache_dir()/cpu-probe``, so later runs start in milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import BackendError, BackendUnavailable, ModelError, UserError
from ..fsutil import atomic_write_json
from ..paths import cache_dir
from .base import OutputTensor, RunResult, TensorSpec, check_inputs

PROBE_TIMEOUT_S = 120.0
BATCH_CHUNK = 256  # inputs per resized invoke


@dataclass(frozen=True)
class KernelChoice:
    runtime: str  # "litert" or "tflm"
    resolver: str | None  # LiteRT OpResolverType member name
    summary: str


DEFAULT_KERNELS = "ref"
KERNELS: dict[str, KernelChoice] = {
    "ref": KernelChoice("litert", "BUILTIN_REF", "LiteRT reference kernels"),
    "builtin": KernelChoice("litert", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "LiteRT optimized kernels"),
    "xnnpack": KernelChoice("litert", "AUTO", "LiteRT default (XNNPACK delegate)"),
    "tflm": KernelChoice("tflm", None, "TFLite Micro reference kernels (parity oracle)"),
}
# The CPU oracle of every command that writes or compares reference outputs (vectors, parity; defined here, beside
# the kernels, so the command line reads it without importing either):
# TFLite Micro's reference kernels, what runs on the Cortex-M next to the NPU. LiteRT 2.x's int8
# FULLY_CONNECTED rounds once, TFLM and the NPU's TFL rounding mode round twice; on DS-CNN-L, seed
# 0, vector 32 a logit sits on that tie, so a LiteRT reference would hold an output the NPU never
# produces. ``ref`` (LiteRT BUILTIN_REF) stays available.
ORACLE_KERNELS = ("tflm", "ref")
DEFAULT_ORACLE = "tflm"
_DISTRIBUTIONS = {"litert": "ai-edge-litert", "tflm": "tflite-micro"}
_INSTALL = {"litert": "pip install ai-edge-litert", "tflm": "pip install tflite-micro (an ethos-kws dependency)"}


def runtime_version(runtime: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_DISTRIBUTIONS[runtime])
    except PackageNotFoundError:
        raise BackendUnavailable(
            f"the CPU backend's {runtime} runtime is not installed ({_INSTALL[runtime]})"
        ) from None


def check_kernels(kernels: str) -> KernelChoice:
    choice = KERNELS.get(kernels)
    if choice is None:
        raise UserError(f"unknown --kernels {kernels!r}; choose one of: {', '.join(KERNELS)}")
    return choice


# ---------------------------------------------------------------------------------------------
# In-process runtimes: one small adapter per runtime, same four methods.


class _LiteRT:
    def __init__(self, model_path: Path, resolver: str, threads: int | None):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self._interp = Interpreter(
            model_path=str(model_path),
            experimental_op_resolver_type=getattr(OpResolverType, resolver),
            num_threads=threads,
        )
        self._interp.allocate_tensors()
        self._in = [d["index"] for d in self._interp.get_input_details()]
        self._out = [d["index"] for d in self._interp.get_output_details()]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for idx, x in zip(self._in, inputs):
            self._interp.set_tensor(idx, x)
        self._interp.invoke()
        return [self._interp.get_tensor(i).copy() for i in self._out]

    def resize_batch(self, shapes: Sequence[tuple[int, ...]]) -> None:
        for idx, shape in zip(self._in, shapes):
            self._interp.resize_tensor_input(idx, list(shape), strict=False)
        self._interp.allocate_tensors()


# TFLite Micro has one static arena. Its Python default (10x the model file) is too small for a
# model with small weights and large activations, so the arena is sized from the model and grown
# until allocation succeeds, up to a limit.
TFLM_ARENA_MIN_BYTES = 64 << 10
TFLM_ARENA_MAX_BYTES = 256 << 20


def tflm_arena_bytes(model) -> int:
    """First arena to try: every non-constant tensor once (no reuse: an upper bound of TFLM's
    plan) twice over for its bookkeeping, and never below TFLM's own default."""
    activations = 0
    for sg in range(model.model.SubgraphsLength()):
        for i in range(model.model.Subgraphs(sg).TensorsLength()):
            t = model.tensor(i, sg)
            if model.model.Buffers(t.Buffer()).DataLength() == 0:
                n = int(np.prod(t.ShapeAsNumpy(), dtype=np.int64)) if t.ShapeLength() else 1
                activations += n * 8  # widest element type; cheap to over-estimate
    return max(TFLM_ARENA_MIN_BYTES, 10 * model.size_bytes, 2 * activations)


def tflm_interpreter(model_data: bytes, model=None):
    """A TFLite Micro interpreter for ``model_data`` whose arena fits the model: start at
    ``tflm_arena_bytes`` and double on "failed to allocate" up to ``TFLM_ARENA_MAX_BYTES``."""
    import tflite_micro

    from ..tflite import parse_tflite

    model = model or parse_tflite(model_data)

    def attempt(size: int):
        try:
            return tflite_micro.runtime.Interpreter.from_bytes(model_data, arena_size=size), None
        except RuntimeError as e:
            return None, e

    arena = tflm_arena_bytes(model)
    interp, err = attempt(arena)
    if interp is not None:
        return interp
    # TFLM says "failed to allocate tensors" for a kernel that refuses to prepare as well as for
    # a small arena: one try at the limit tells them apart before growing step by step
    limit = max(arena, TFLM_ARENA_MAX_BYTES)
    if arena >= limit or attempt(limit)[0] is None:
        raise RuntimeError(f"{_one_line(err)} (arena up to {limit} bytes)")
    while interp is None:
        arena = min(2 * arena, limit)
        interp, err = attempt(arena)
    return interp


class _Tflm:
    def __init__(self, model_path: Path, resolver: None, threads: int | None):
        from ..tflite import parse_tflite

        data = Path(model_path).read_bytes()
        model = parse_tflite(data, model_path)
        self._n_out = len(model.output_specs)
        self._interp = tflm_interpreter(data, model)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(inputs):
            self._interp.set_input(x, i)
        self._interp.invoke()
        return [np.array(self._interp.get_output(i), copy=True) for i in range(self._n_out)]

    def resize_batch(self, shapes) -> None:
        raise RuntimeError("TFLite Micro has a static arena: no batch resize")


_RUNTIMES = {"litert": _LiteRT, "tflm": _Tflm}
_RUNTIME_NAMES = {"litert": "LiteRT", "tflm": "TFLite Micro"}


def _open_runtime(choice: KernelChoice, model_path: Path, threads: int | None):
    try:
        return _RUNTIMES[choice.runtime](model_path, choice.resolver, threads)
    except ModuleNotFoundError as e:
        raise BackendUnavailable(
            f"the CPU backend's {choice.runtime} runtime is not installed ({_INSTALL[choice.runtime]}): {e}"
        ) from None
    except (RuntimeError, ValueError) as e:
        raise BackendError(f"{choice.runtime} cannot load {model_path.name}: {_one_line(e)}") from None


def _one_line(e: BaseException | str) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# The crash probe (child process) and its cached verdict.


@dataclass(frozen=True)
class ProbeVerdict:
    ok: bool
    batch_ok: bool
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "batch_ok": self.batch_ok, "message": self.message}


_STAGES = {  # last stage the child reported -> what it was doing when it died
    None: "loading",
    "loaded": "invoking",
    "invoked": "resizing to a batch",
}


def _probe_command(model_path: Path, kernels: str) -> list[str]:
    return [sys.executable, "-m", "ethos_kws.backends.cpu", "probe", str(model_path), kernels]


def _probe_cache_path(sha256: str, kernels: str, version: str) -> Path:
    return cache_dir() / "cpu-probe" / f"{sha256}-{kernels}-{version}.json"


def probe_model(model_path: Path, sha256: str, kernels: str,
                timeout_s: float = PROBE_TIMEOUT_S) -> ProbeVerdict:
    """Load and invoke the model once in a child; raise BackendError if the runtime crashes."""
    choice = check_kernels(kernels)
    cached = _probe_cache_path(sha256, kernels, runtime_version(choice.runtime))
    if cached.is_file():
        try:
            d = json.loads(cached.read_text())
            verdict = ProbeVerdict(bool(d["ok"]), bool(d["batch_ok"]), str(d.get("message", "")))
        except (OSError, ValueError, KeyError):
            verdict = None  # a damaged cache entry: probe again
        if verdict is not None:
            if not verdict.ok:
                raise BackendError(verdict.message)
            return verdict
    verdict = _run_probe(model_path, kernels, timeout_s)
    try:
        atomic_write_json(cached, verdict.to_dict())
    except OSError:
        pass  # a read-only cache only costs the probe next time
    if not verdict.ok:
        raise BackendError(verdict.message)
    return verdict


def _run_probe(model_path: Path, kernels: str, timeout_s: float) -> ProbeVerdict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    try:
        proc = subprocess.run(
            _probe_command(model_path, kernels), capture_output=True, text=True,
            timeout=timeout_s, env=env, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise BackendError(
            f"the CPU runtime did not finish loading and running {model_path.name} within "
            f"{timeout_s:.0f} s (probe in a child process); the model may be too large or hang"
        ) from None
    stage = None
    error = None
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        if key == "stage":
            stage = value
        elif key == "error":
            error = value
    if proc.returncode < 0:
        sig = _signal_name(-proc.returncode)
        if stage == "invoked":  # the model runs; only batching crashed, so loop instead
            return ProbeVerdict(True, False, f"batch resize crashed ({sig})")
        return ProbeVerdict(False, False, (
            f"the CPU runtime ({KERNELS[kernels].summary}) crashed with {sig} while "
            f"{_STAGES.get(stage, stage)} {model_path.name}; this model cannot run on --backend cpu "
            f"--kernels {kernels} (try other --kernels)"))
    if proc.returncode != 0 or stage not in ("invoked", "batch-ok", "batch-failed"):
        why = error or _one_line(proc.stderr or f"exit code {proc.returncode}")
        runtime = KERNELS[kernels].runtime
        raise BackendError(f"{_RUNTIME_NAMES[runtime]} cannot run {model_path.name} with --kernels {kernels}: {why}")
    return ProbeVerdict(True, stage == "batch-ok")


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _probe_main(model_path: str, kernels: str) -> int:
    """Child side: report each stage on stdout so the parent knows where a crash happened."""
    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    from ..tflite import load_tflite

    try:
        model = load_tflite(model_path)
        specs = model.input_specs
        choice = check_kernels(kernels)
        rt = _RUNTIMES[choice.runtime](Path(model_path), choice.resolver, 1)
        say("stage:loaded")
        zeros = [np.zeros(s.shape, np.dtype(s.dtype)) for s in specs]
        rt.run(zeros)
        say("stage:invoked")
    except Exception as e:  # reported to the parent, which raises the user-facing error
        say(f"error:{_one_line(e)}")
        return 3
    try:
        rt.resize_batch([(2,) + tuple(s.shape[1:]) for s in specs])
        out = rt.run([np.zeros((2,) + tuple(s.shape[1:]), np.dtype(s.dtype)) for s in specs])
        ok = all(o.shape[:1] == (2,) for o in out)
        say("stage:batch-ok" if ok else "stage:batch-failed")
    except Exception:
        say("stage:batch-failed")
    return 0


# ---------------------------------------------------------------------------------------------
# The backend


class CpuBackend:
    """``Backend`` protocol on LiteRT/TFLM; inputs and outputs in the model's own dtypes."""

    name = "cpu"

    def __init__(self, model_path: str | os.PathLike, kernels: str = "ref", *,
                 threads: int | None = 1, labels: Sequence[str] | None = None,
                 probe: bool = True):
        from ..labels import labels_for
        from ..tflite import load_tflite

        self.kernels = kernels
        self._choice = check_kernels(kernels)
        model = load_tflite(model_path)
        self.model_path = model.path
        self.model_sha256 = model.sha256
        if any(op.opcode == "CUSTOM" and op.custom_code == "ethos-u" for op in model.operators()):
            raise ModelError(
                f"{model.path.name} is Vela-compiled (ethos-u custom operator); the CPU backend "
                "runs the original .tflite, not the *_vela.tflite")
        try:
            self._inputs = tuple(model.input_specs)
            self._outputs = tuple(model.output_specs)
        except ModelError:
            raise
        except Exception:  # flatbuffers reads past the buffer: an index points nowhere
            raise ModelError(f"corrupt TFLite file: {model.path} (model inputs or outputs refer "
                             "to missing tensors)") from None
        self._runtime_version = runtime_version(self._choice.runtime)
        verdict = probe_model(self.model_path, self.model_sha256, kernels) if probe else None
        self._batch_ok = bool(verdict and verdict.batch_ok)
        self._threads = threads
        self._rt = _open_runtime(self._choice, self.model_path, threads)
        self._batch_rt = None  # opened on first run_batch
        self.stateful = model.keeps_state  # run() carries state from call to call; reset() clears it
        n_classes = int(np.prod(self._outputs[0].shape)) if self._outputs else 0
        self.labels = tuple(labels) if labels is not None else labels_for(n_classes)

    def reset(self) -> None:
        """Back to the state after loading (a fresh interpreter: resource and variable tensors
        as the model initialises them)."""
        self._rt = _open_runtime(self._choice, self.model_path, self._threads)

    @property
    def input_specs(self) -> Sequence[TensorSpec]:
        return self._inputs

    @property
    def output_specs(self) -> Sequence[TensorSpec]:
        return self._outputs

    def _check(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return check_inputs(inputs, self._inputs)

    def _invoke(self, rt, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        try:
            return rt.run(inputs)
        except (RuntimeError, ValueError) as e:
            raise BackendError(f"{self._choice.runtime} failed to run {self.model_path.name}: "
                               f"{_one_line(e)}") from None

    def run(self, inputs: Sequence[np.ndarray]) -> RunResult:
        x = self._check(inputs)
        t0 = time.perf_counter()
        raw = self._invoke(self._rt, x)
        ms = (time.perf_counter() - t0) * 1e3
        outputs = tuple(OutputTensor(s, np.asarray(r).reshape(s.shape)) for s, r in zip(self._outputs, raw))
        return RunResult(
            backend=self.name, model_sha256=self.model_sha256, outputs=outputs,
            host_ms=round(ms, 3),
            extra={"kernels": self.kernels,
                   "runtime": f"{self._choice.runtime} {self._runtime_version}"},
            labels=self.labels,
        )

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """Raw outputs for many input sets: one resized invoke per chunk when the model allows a
        batch dimension (checked by the probe), else one invoke per set."""
        sets = [self._check(s) for s in batch]
        if not sets:
            return []
        if not (self._batch_ok and all(s.shape and s.shape[0] == 1 for s in self._inputs)):
            return [self._unbatched(self._invoke(self._rt, s)) for s in sets]
        results: list[list[np.ndarray]] = []
        for start in range(0, len(sets), BATCH_CHUNK):
            chunk = sets[start : start + BATCH_CHUNK]
            stacked = [np.concatenate([s[i] for s in chunk]) for i in range(len(self._inputs))]
            rt = self._batch_runtime([a.shape for a in stacked])
            raw = self._invoke(rt, stacked)
            for j in range(len(chunk)):
                results.append([np.asarray(r[j : j + 1]).reshape(spec.shape)
                                for r, spec in zip(raw, self._outputs)])
        return results

    def _unbatched(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(r).reshape(s.shape) for r, s in zip(raw, self._outputs)]

    def _batch_runtime(self, shapes: list[tuple[int, ...]]):
        if self._batch_rt is None:
            self._batch_rt = (_open_runtime(self._choice, self.model_path, self._threads), None)
        rt, current = self._batch_rt
        if current != shapes:
            try:
                rt.resize_batch(shapes)
            except (RuntimeError, ValueError) as e:
                raise BackendError(f"cannot resize {self.model_path.name} to a batch: {_one_line(e)}") from None
            self._batch_rt = (rt, shapes)
        return rt


def make_backend(model_path: str | os.PathLike, *, kernels: str | None = None, threads: int | None = 1,
                 labels: Sequence[str] | None = None) -> CpuBackend:
    """Registry factory: ``kernels`` (DEFAULT_KERNELS when None), ``threads``, ``labels``; nothing else."""
    return CpuBackend(model_path, kernels or DEFAULT_KERNELS, threads=threads, labels=labels)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "probe":
        sys.exit(_probe_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m ethos_kws.backends.cpu probe MODEL KERNELS")
