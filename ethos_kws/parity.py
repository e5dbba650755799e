"""NPU-vs-CPU parity: the same inputs through the CPU oracle and an NPU backend, compared bit for bit.

The oracle is TFLite Micro's reference kernels on the ORIGINAL model (the CPU backend, run once;
``oracle="ref"`` uses LiteRT's ``BUILTIN_REF`` instead; see ``ORACLE_KERNELS`` for why);
the NPU side is ``npu-sim`` (or ``fvp``) for each accelerator configuration, which compiles the
model with Vela through the cache. Inputs: ``vectors`` uniform random tensors over each input's
quantized range (vector n seeded with ``SeedSequence([seed, n])``, as ``ethos-kws vectors`` does,
so both write the same inputs), then one vector per ``*.wav`` in ``audio_dir`` (sorted by name):
its MFCC features quantized like any model input.

Per configuration the report gives the fraction of bit-exact vectors, the largest difference in
output LSBs, the number of differing elements, top-1 agreement, per-inference times, and the
first differing elements. A configuration passes when no element differs by more than
``tolerance`` LSB and the backend ran; a backend that fails records its error and fails the run.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .accel import parse_accelerator_list
from .backends import NPU_BACKENDS, create_backend  # noqa: F401 - NPU_BACKENDS re-exported
from .errors import AcceleratorError, BackendUnavailable, EthosKwsError, NotModelledError, UserError
from .fsutil import atomic_write_json
from .records import check_schema, from_record, metric, to_record, versioned
from .vectors import DEFAULT_ORACLE, ORACLE_KERNELS

if TYPE_CHECKING:
    from .executors import DaskRunner

ORACLE_BACKEND = "cpu"
# the oracle's kernels and their default: one definition, shared with `vectors` (why: there)
MAX_VECTORS = 100_000
MAX_REPORTED_DIFFERENCES = 10
REPORT_FILE = "parity.json"

Progress = Callable[[str, int, int], None]  # (stage label, done, total)


@dataclass(frozen=True)
class Difference:
    """One output element where the NPU disagrees with the oracle."""

    vector: int
    source: str  # "random #3" or "clip yes_tflm.wav"
    output: str  # output tensor name
    index: int  # flat element index in that output
    cpu: float | int
    npu: float | int
    diff_lsb: float

    def to_dict(self) -> dict[str, Any]:
        return to_record(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Difference":
        return from_record(cls, d)


# names a parity.json of layout 1 used (host times that were called inference times)
LEGACY_KEYS = {"npu_inference_ms": "npu_host_ms", "cpu_inference_ms": "cpu_host_ms"}


@dataclass(frozen=True)
class ConfigParity:
    accel: str
    compiler: str  # "regor" (Vela's default) or "legacy" (--debug-force-legacy-core)
    vectors: int = metric("vectors", "count")
    # the figures are None when the backend failed (``error``): nothing was compared
    elements_compared: int | None = metric("elements compared", "count")
    # vectors whose every output element matches
    bit_exact_fraction: float | None = metric("bit-exact", "ratio", better="higher")
    max_abs_diff_lsb: float | None = metric("max |diff|", "lsb", better="lower", short="max diff LSB")
    mismatched_elements: int | None = metric("mismatched elements", "count", better="lower", short="mismatched")
    top1_agreement: float | None = metric("top-1 agreement", "ratio", better="higher", short="top-1 agree")
    # host wall clock per vector (batch time / vectors), not NPU time
    npu_host_ms: float | None = metric("NPU backend, host time", "ms", short="npu host ms")
    cpu_host_ms: float | None = metric("CPU oracle, host time", "ms", short="cpu host ms")
    within_tolerance: bool
    first_differences: tuple[Difference, ...] = ()
    error: str | None = None  # why the NPU backend failed on this configuration
    # a named cause for the differences that is not the simulator's (``scale_rounding``)
    diagnosis: str | None = None
    # the Vela ini of the configuration's compile (npu-sim: the client's compile seam's)
    vela_ini_sha256: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.within_tolerance

    @property
    def label(self) -> str:
        return self.accel if self.compiler == "regor" else f"{self.accel} ({self.compiler})"

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "first_differences"}
        d["passed"] = self.passed
        d["first_differences"] = [x.to_dict() for x in self.first_differences]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConfigParity":
        d = {LEGACY_KEYS.get(k, k): v for k, v in d.items()}
        return from_record(cls, d)  # "passed" is derived: not a field, not read


@dataclass(frozen=True)
class ParityReport:
    model: dict[str, Any]  # path, name, sha256, provenance, description
    npu: str
    tolerance_lsb: float
    seed: int
    random_vectors: int
    clips: tuple[str, ...]
    results: tuple[ConfigParity, ...]
    oracle: str = f"cpu ({DEFAULT_ORACLE})"
    cpu_total_ms: float | None = None
    # the vectors ran as consecutive steps of one stream, state carried on both sides
    sequence: bool = False

    @property
    def vectors(self) -> int:
        return self.random_vectors + len(self.clips)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return versioned({
            "model": dict(self.model),
            "npu": self.npu,
            "oracle": self.oracle,
            "tolerance_lsb": self.tolerance_lsb,
            "seed": self.seed,
            "vectors": self.vectors,
            "random_vectors": self.random_vectors,
            "clips": list(self.clips),
            "passed": self.passed,
            "cpu_total_ms": self.cpu_total_ms,
            "sequence": self.sequence,
            "results": [r.to_dict() for r in self.results],
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<parity>") -> "ParityReport":
        check_schema(d, source)
        return from_record(cls, d)  # "vectors" and "passed" are derived


# ---- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorSet:
    inputs: list[list[np.ndarray]] = field(repr=False)
    sources: tuple[str, ...]
    clips: tuple[str, ...]


def make_vectors(model_path: Path, specs: Sequence, vectors: int, seed: int,
                 audio_dir: str | os.PathLike | None) -> VectorSet:
    from .vectors import clip_vectors, random_vectors, wav_clips

    clips = wav_clips(audio_dir) if audio_dir is not None else []
    sets = random_vectors(model_path, specs, vectors, seed) + clip_vectors(clips, specs)
    if not sets:
        raise UserError("nothing to compare: --count is 0 and no --audio clips")
    sources = [f"random #{n}" for n in range(vectors)] + [f"clip {c.name}" for c in clips]
    return VectorSet(sets, tuple(sources), tuple(c.name for c in clips))


# ---- comparison -----------------------------------------------------------------------------------


def _lsb(spec) -> float:
    """Size of one output step: 1 for integer outputs, the quantization scale for float outputs
    that carry one, else 1 (raw difference)."""
    if np.dtype(spec.dtype).kind in "iu" or not spec.scale:
        return 1.0
    return float(spec.scale)


def output_steps(model_path: Path, specs: Sequence) -> list[float]:
    """One LSB of each output: a float output made by DEQUANTIZE counts in steps of that op's
    int8 input scale, so ``max_abs_diff_lsb`` means the same for float- and int8-I/O models."""
    from .tflite import load_tflite

    _, twins = load_tflite(model_path).int8_boundary()
    steps = []
    for spec, q in zip(specs, twins):
        if np.dtype(spec.dtype).kind == "f" and q is not None:
            steps.append(float(q.scale or 1.0))
        else:
            steps.append(_lsb(spec))
    return steps


def _top1(outs: list[np.ndarray]) -> int:
    return int(np.argmax(np.asarray(outs[0]).reshape(-1)))


def compare_outputs(cpu: Sequence[Sequence[np.ndarray]], npu: Sequence[Sequence[np.ndarray]],
                    output_specs: Sequence, sources: Sequence[str], tolerance: float,
                    lsb: Sequence[float] | None = None) -> dict[str, Any]:
    """Element-wise comparison of two backends' raw outputs (vector-major); the figures of
    ``ConfigParity`` except identity and timing."""
    if len(cpu) != len(npu):
        raise ValueError(f"{len(cpu)} oracle results but {len(npu)} NPU results")
    steps = list(lsb) if lsb is not None else [_lsb(s) for s in output_specs]
    exact_vectors = agree = mismatched = elements = 0
    max_diff = 0.0
    firsts: list[Difference] = []
    for v, (c_outs, n_outs) in enumerate(zip(cpu, npu)):
        vector_exact = True
        for spec, step, c, n in zip(output_specs, steps, c_outs, n_outs):
            c = np.asarray(c).reshape(-1)
            n = np.asarray(n).reshape(-1)
            if c.shape != n.shape:
                raise ValueError(f"output {spec.name!r}: oracle has {c.size} elements, NPU {n.size}")
            elements += c.size
            diff = np.abs(c.astype(np.float64) - n.astype(np.float64)) / step
            bad = np.flatnonzero(c != n)
            if bad.size:
                vector_exact = False
                mismatched += int(bad.size)
                max_diff = max(max_diff, float(diff.max()))
                for i in bad[: MAX_REPORTED_DIFFERENCES - len(firsts)]:
                    firsts.append(Difference(v, sources[v], spec.name, int(i), c[i].item(), n[i].item(),
                                             round(float(diff[i]), 6)))
        exact_vectors += vector_exact
        agree += _top1(c_outs) == _top1(n_outs)
    count = len(cpu)
    return {
        "vectors": count,
        "elements_compared": elements,
        "bit_exact_fraction": exact_vectors / count if count else 1.0,
        "max_abs_diff_lsb": max_diff,
        "mismatched_elements": mismatched,
        "top1_agreement": agree / count if count else 1.0,
        "within_tolerance": max_diff <= tolerance,
        "first_differences": tuple(firsts),
    }


def _timed_batch(backend, sets: list[list[np.ndarray]],
                 sequence: bool = False) -> tuple[list[list[np.ndarray]], float]:
    """Outputs and wall time; ``sequence``: one invocation per step, in order, on one backend
    instance (never a resized batch), so state carries from step to step."""
    t0 = time.perf_counter()
    run_batch = getattr(backend, "run_batch", None)
    if run_batch is not None and not sequence:
        outs = [list(o) for o in run_batch(sets)]
    else:
        outs = [[o.data for o in backend.run(s).outputs] for s in sets]
    return outs, (time.perf_counter() - t0) * 1e3


# ---- the run --------------------------------------------------------------------------------------


def _describe_model(model) -> dict[str, Any]:
    from .model import ResolvedModel, resolve_model

    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, allow_fetch=False)
    return {
        "path": str(resolved.path),
        "name": Path(resolved.path).name,
        "sha256": resolved.sha256,
        "provenance": resolved.provenance,
        "description": resolved.description,
    }


def check_arguments(*, npu: str, vectors: int, oracle: str, tolerance: float) -> None:
    """Refuse bad arguments up front (the CLI calls this before it looks for a model)."""
    if npu not in NPU_BACKENDS:
        raise UserError(f"unknown --npu {npu!r}; choose one of: {', '.join(NPU_BACKENDS)}")
    if not isinstance(vectors, int) or not 0 <= vectors <= MAX_VECTORS:
        raise UserError(f"--count (vectors) must be between 0 and {MAX_VECTORS}, got {vectors}")
    if oracle not in ORACLE_KERNELS:
        raise UserError(f"unknown --oracle {oracle!r}; choose one of: {', '.join(ORACLE_KERNELS)}")
    if not tolerance >= 0:  # also refuses NaN
        raise UserError(f"--tolerance must be a non-negative number of LSBs, got {tolerance}")


def run_parity(model, accels: str | Sequence[str] = "all", *, npu: str = "npu-sim",
               vectors: int = 50, seed: int = 0, audio_dir: str | os.PathLike | None = None,
               tolerance: float = 0, legacy_core: bool = False,
               npu_options: dict[str, Any] | None = None, oracle: str = DEFAULT_ORACLE,
               progress: Progress | None = None, sequence: bool = False,
               reference: str | os.PathLike | None = None, jobs: int | None = 1,
               dask: "DaskRunner | None" = None) -> ParityReport:
    """Compare ``npu`` with the CPU oracle on every accelerator in ``accels``.

    ``model``: a path or a ``ResolvedModel``. ``accels``: "all", "u55-128,u65-512" or a list.
    ``npu_options`` go to the NPU backend factory (e.g. ``behaviours=`` for npu-sim, ``fvp=``).
    ``oracle``: the CPU kernels of the oracle, one of ``ORACLE_KERNELS``.
    Raises ``UserError`` for bad arguments and ``BackendUnavailable`` when a backend cannot run
    here; a backend failing on one configuration is recorded in that configuration's result.
    ``sequence``: the vectors are consecutive steps of one stream (stateful models: streaming KWS,
    SVDF, LSTM); each side starts from a fresh backend and every step is compared.
    ``reference``: for a model already compiled by Vela (here or elsewhere), the original model
    the oracle runs; the compiled model runs on the configuration of its COP1 header.
    ``jobs``/``dask``: where the configurations' NPU batches run (``executors.WorkPool``): this
    process (``jobs=1``, the default), ``jobs`` local processes, or a Dask cluster.
    """
    check_arguments(npu=npu, vectors=vectors, oracle=oracle, tolerance=tolerance)
    if dask is not None:
        dask.warm_up()  # the workers import Vela while the CPU oracle runs here
    model_info = _describe_model(model)
    model_path = Path(model_info["path"])
    oracle_path, accel_names = _compiled_or_original(model_path, accels, reference, legacy_core)
    if npu == "npu-sim":  # refuse a family the simulator cannot run before any work is done
        from .backends.npusim.families import require_simulated

        for acc in parse_accelerator_list(accel_names):
            require_simulated(acc)
    if oracle_path != model_path:
        model_info["reference"] = str(oracle_path)
    tick = progress or (lambda label, done, total: None)

    cpu = create_backend(ORACLE_BACKEND, oracle_path, kernels=oracle)
    vset = make_vectors(oracle_path, list(cpu.input_specs), vectors, seed, audio_dir)
    n = len(vset.inputs)
    tick("cpu oracle", 0, n)
    cpu_outs, cpu_ms = _timed_batch(cpu, vset.inputs, sequence)
    tick("cpu oracle", n, n)
    specs = list(cpu.output_specs)

    compiler = "legacy" if legacy_core else "regor"
    options = dict(npu_options or {})
    if options.get("vela_ini") is not None:  # the ini travels as text: a worker may not have the file
        from .vela_ini import UserIni, load_user_ini

        if not isinstance(options["vela_ini"], UserIni):
            options["vela_ini"] = load_user_ini(options["vela_ini"])
    data = model_path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    inis: list[str | None] = [None] * len(accel_names)
    runs: list = [None] * len(accel_names)  # per configuration: (outputs, host ms, why)
    if npu == "npu-sim" and oracle_path == model_path:
        # compiled once, through the compile seam (in parallel, on the local pool or the cluster,
        # into this machine's cache). A local batch finds its compile in that cache; a Dask worker
        # has no access to it and gets Vela's output itself, so it compiles nothing again
        sim = {k: v for k, v in options.items() if k in _SIMULATOR_OPTIONS}
        units, todo = [], []
        for k, c in enumerate(_compile_first(model_path, accel_names, legacy_core, options, jobs, dask)):
            if isinstance(c, EthosKwsError):  # the configuration's result says why, as its batch would
                runs[k] = (None, 0.0, f"{type(c).__name__}: {c}")
                continue
            if dask is not None:
                blob = Path(c.compiled_model).read_bytes()
                units.append((npu, accel_names[k], legacy_core, sim, blob, hashlib.sha256(blob).hexdigest(),
                              Path(c.compiled_model).name, vset.inputs, sequence, True))
            else:
                units.append((npu, accel_names[k], legacy_core, options, data, sha, model_path.name, vset.inputs,
                              sequence))
            todo.append(k)
            inis[k] = c.vela_ini_sha256
    else:
        units = [(npu, accel, legacy_core, options, data, sha, model_path.name, vset.inputs, sequence)
                 for accel in accel_names]
        todo = list(range(len(accel_names)))
    labels = [accel if not legacy_core else f"{accel} (legacy)" for accel in accel_names]
    finished = []
    tick(labels[0] if labels else "npu", 0, len(accel_names))

    def done(i, _result):
        finished.append(i)
        tick(labels[todo[i]], len(finished) + len(accel_names) - len(todo), len(accel_names))

    from .executors import work_pool

    with work_pool(jobs, dask) as pool:
        for k, run in zip(todo, pool.run(npu_batch, units, on_done=done)):
            runs[k] = run
    results = [_config_parity(accel, compiler, run, vset, cpu_outs, cpu_ms / n, specs, tolerance,
                              oracle_path or model_path, ini)
               for accel, run, ini in zip(accel_names, runs, inis)]
    return ParityReport(model_info, npu, float(tolerance), seed, vectors, vset.clips, tuple(results),
                        oracle=f"{ORACLE_BACKEND} ({oracle})", cpu_total_ms=round(cpu_ms, 3),
                        sequence=sequence)


def _compiled_or_original(model_path: Path, accels, reference, legacy_core: bool) -> tuple[Path, list[str]]:
    """(model the oracle runs, configurations to compare). A Vela-compiled model needs its
    original as ``reference`` and runs only on the configuration of its COP1 header."""
    from .backends.npusim.container import check_accel_matches, is_vela_model
    from .tflite import load_tflite

    model = load_tflite(model_path)
    if not is_vela_model(model):
        if reference is not None:
            raise UserError(f"--reference is for a model already compiled by Vela; {model_path.name} is not")
        return model_path, _accel_names(accels)
    if reference is None:
        raise UserError(f"{model_path.name} is already compiled by Vela: the CPU cannot run it; give the "
                        f"model it was compiled from with --reference ORIGINAL.tflite")
    if legacy_core:
        raise UserError("--legacy-core selects a Vela compiler; this model is already compiled")
    asked = None if accels in (None, "all") else _accel_names(accels)
    header = check_accel_matches(model, asked[0] if asked and len(asked) == 1 else None)
    if asked and asked != [header]:
        raise AcceleratorError(f"{model_path.name} was compiled for {header} (its COP1 header); "
                               f"--accel {','.join(asked)} disagrees")
    ref = Path(reference)
    if is_vela_model(load_tflite(ref)):
        raise UserError(f"--reference {ref.name} is itself a Vela-compiled model; give the original")
    return ref, [header]


def _accel_names(accels: str | Sequence[str]) -> list[str]:
    return [a.name for a in parse_accelerator_list(accels)]


# npu-sim's options that act on the simulation, not on the compile (the rest: system config, memory
# mode, ini, are the compile's, applied once by the client's compile seam)
_SIMULATOR_OPTIONS = ("behaviours", "litert_fc_rounding")


def _compile_first(model_path, accels, legacy_core, options, jobs, dask) -> list:
    """Every configuration compiled through the compile seam (in parallel, into this machine's
    cache) before the NPU batches start: per configuration its ``CompileResult`` or the error."""
    from .sweeps import compile_all
    from .vela import make_spec

    ini = options.get("vela_ini")
    specs = [make_spec(model_path, a, system_config=options.get("system_config"),
                       memory_mode=options.get("memory_mode"), legacy_core=legacy_core, user_ini=ini)
             for a in accels]
    errors: dict[int, EthosKwsError] = {}
    done = iter(compile_all(specs, jobs=jobs, dask=dask, errors=errors, detail=False))
    return [errors[k] if k in errors else next(done) for k in range(len(specs))]


def npu_batch(npu: str, accel: str, legacy_core: bool, options: dict, model_bytes: bytes, model_sha256: str,
              model_name: str, inputs: list, sequence: bool,
              compiled: bool = False) -> tuple[list | None, float, str | None]:
    """One configuration's NPU batch: a unit of work (this process, a local worker or a Dask
    worker; the model comes as bytes, and ``compiled``: it is Vela's output, run as it is).
    (outputs, host ms, None), or (None, 0, why) when the backend fails on this configuration; a
    backend this machine cannot run at all is raised."""
    from .backends import model_file_from_bytes

    try:
        path = model_file_from_bytes(model_bytes, model_sha256, model_name)
        if compiled:
            from .backends.npusim.backend import backend_for_compile

            backend = backend_for_compile(path, accel, legacy_core=legacy_core, **options)
        else:
            if options.get("vela_ini") is not None:  # sent as text: a path on this machine
                from .vela_ini import user_ini_here

                options = {**options, "vela_ini": user_ini_here(options["vela_ini"])}
            backend = create_backend(npu, path, accel=accel, legacy_core=legacy_core, **options)
        outs, ms = _timed_batch(backend, inputs, sequence)
    except BackendUnavailable:
        raise  # this machine cannot run the backend at all: a usage problem, not a parity result
    except EthosKwsError as e:
        # a valid model the simulator cannot run names the one feature that stops it
        return None, 0.0, f"unsupported: {e}" if isinstance(e, NotModelledError) else f"{type(e).__name__}: {e}"
    return outs, ms, None


def _config_parity(accel, compiler, run, vset, cpu_outs, cpu_ms_per_vector, specs, tolerance,
                   oracle_path, vela_ini_sha256=None) -> ConfigParity:
    npu_outs, npu_ms, why = run
    if why is not None:
        return ConfigParity(accel, compiler, len(vset.inputs), None, None, None, None, None, None,
                            round(cpu_ms_per_vector, 4), False, (), why, vela_ini_sha256=vela_ini_sha256)
    figures = compare_outputs(cpu_outs, npu_outs, specs, vset.sources, tolerance, output_steps(oracle_path, specs))
    if figures.get("mismatched_elements"):
        from .scale_rounding import diagnose

        figures["diagnosis"] = diagnose(oracle_path, figures.get("max_abs_diff_lsb"))
    return ConfigParity(accel=accel, compiler=compiler, vela_ini_sha256=vela_ini_sha256,
                        npu_host_ms=round(npu_ms / len(vset.inputs), 4),
                        cpu_host_ms=round(cpu_ms_per_vector, 4), **figures)


def write_report(report: ParityReport, out_dir: str | os.PathLike) -> Path:
    """``OUT/parity.json``, written atomically (the report generator reads it)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    return atomic_write_json(out / REPORT_FILE, report.to_dict())
