"""Run a Vela-compiled model on a Corstone FVP with the generic inference runner; measure it.

One inference: write the input blob, run the FVP with ``command.build_argv``, check everything the
log and the dump say (``check_run``), decode the output tensors. Nothing here ever makes up a
number: a missing FVP is ``BackendUnavailable``, a missing counter or a doubtful run is
``BackendError``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...accel import Accelerator, get_accelerator, get_system_config
from ...errors import BackendError, BackendUnavailable, InputDataError, UserError
from ...fsutil import atomic_write_bytes, atomic_write_text
from ...paths import cache_dir
from ...tflite import load_tflite
from ..base import OutputTensor, RunResult, TensorSpec, check_inputs
from . import pmu
from .command import FvpCommand, build_argv
from .discovery import (
    DOCTOR_HINT,
    FvpInstall,
    Runner,
    find_fvp,
    find_runner,
    fvp_version,
    vela_version,
)
from .process import ProcessOutcome, run_process
from .targets import FvpTarget, target_for

DEFAULT_TIMEOUT_S = 300.0
# the host timeout outlives --timelimit, so the FVP normally stops itself and prints --stat
HOST_TIMEOUT_GRACE_S = 30.0
LAST_LOG_NAME = "last-run.log"


# ---- one checked run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NpuCounters:
    active_cycles: int
    idle_cycles: int
    total_cycles: int
    axi0_read_beats: int
    axi0_write_beats: int
    axi1_read_beats: int
    format: str


@dataclass(frozen=True)
class FvpRun:
    """A finished, checked FVP run: its log, counters and the dumped output bytes."""

    outcome: ProcessOutcome
    log: pmu.ConsoleLog
    counters: NpuCounters
    ofm: bytes


_UNAVAILABLE_KINDS = {"missing-library", "executable-stack"}  # the FVP cannot start on this host


def _tail(text: str, n: int = 3) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return " | ".join(lines[-n:]) if lines else "no output"


def _error_message(log: pmu.ConsoleLog, text: str, num_macs: int) -> str:
    first = log.errors[0]
    if first.kind == "npu-config-mismatch" and (mm := pmu.macs_mismatch(text)):
        fvp_macs, model_macs = mm
        return (
            f"NPU config mismatch: the FVP emulates {fvp_macs} MACs/cycle but the model was "
            f"compiled for {model_macs} (ethosu.num_macs={num_macs} was passed)"
        )
    msg = f"{first.line}"
    if first.hint:
        msg += f" ({first.hint})"
    if len(log.errors) > 1:
        msg += f" [+{len(log.errors) - 1} more error line(s)]"
    return msg


def _counters(report: pmu.PmuReport | None, timelimit_s: int) -> NpuCounters:
    if report is None:
        raise BackendError(
            "the runner printed no PMU counters (the inference did not finish; the FVP's "
            f"--timelimit of {timelimit_s} s may have stopped it)"
        )
    missing = report.missing()
    if missing:
        raise BackendError(f"the runner's PMU report lacks {', '.join(missing)} ({report.format})")
    c = report.counters
    negative = [n for n in pmu.REQUIRED_COUNTERS if c[n] < 0]
    if negative:
        raise BackendError(f"negative PMU counter(s) {', '.join(negative)} in the runner output")
    counters = NpuCounters(
        active_cycles=c[pmu.NPU_ACTIVE],
        idle_cycles=c[pmu.NPU_IDLE],
        total_cycles=c[pmu.NPU_TOTAL],
        axi0_read_beats=c[pmu.AXI0_READ],
        axi0_write_beats=c[pmu.AXI0_WRITE],
        axi1_read_beats=c[pmu.AXI1_READ],
        format=report.format,
    )
    if counters.total_cycles < counters.active_cycles:
        raise BackendError(
            f"NPU TOTAL ({counters.total_cycles}) < NPU ACTIVE ({counters.active_cycles}) cycles: "
            "the PMU report is inconsistent"
        )
    if counters.active_cycles <= 0:
        raise BackendError("NPU ACTIVE is 0 cycles: the model did not run on the NPU")
    return counters


def check_run(
    outcome: ProcessOutcome,
    cmd: FvpCommand,
    *,
    ifm_bytes: int,
    timeout_s: float,
    macs_per_core: int | None = None,
) -> FvpRun:
    """Everything a finished run must satisfy before its numbers are believed.

    ``macs_per_core``: a 2-core configuration (u65-512) may report its MACs per core in the
    runner's banner; both that and ``cmd.num_macs`` are accepted there.
    """
    if outcome.timed_out:
        raise BackendError(
            f"the FVP did not finish within {timeout_s:g} s and was stopped (its whole process "
            "group was killed); raise the timeout or check the model and runner"
        )
    text = outcome.output
    log = pmu.parse_console(text)
    if log.errors:
        # the FVP exits 0 when the application failed: the log decides, not the exit code
        error = BackendUnavailable if log.errors[0].kind in _UNAVAILABLE_KINDS else BackendError
        msg = _error_message(log, text, cmd.num_macs)
        if error is BackendUnavailable:
            msg += f"; {DOCTOR_HINT}"
        raise error(msg)
    if outcome.returncode != 0:
        raise BackendError(f"the FVP exited with code {outcome.returncode}: {_tail(text)}")
    accepted_macs = {cmd.num_macs, macs_per_core or cmd.num_macs}
    if log.runner_macs is not None and log.runner_macs not in accepted_macs:
        raise BackendError(
            f"the runner reports {log.runner_macs} MACs/cc but ethosu.num_macs={cmd.num_macs} "
            "was asked for"
        )
    if log.fvp_npu is not None and log.fvp_npu[1] not in accepted_macs:
        raise BackendError(
            f"the FVP created an Ethos-{log.fvp_npu[0]} with {log.fvp_npu[1]} MACs, "
            f"not {cmd.num_macs}"
        )
    counters = _counters(log.pmu, cmd.timelimit_s)
    mm = cmd.target.memory_map
    if log.ifm is None:
        raise BackendError(
            "the runner did not report reading the input blob at "
            f"{mm.ifm_address:#010x}; it may have run on random data"
        )
    if log.ifm.address != mm.ifm_address or (log.ofm and log.ofm.address != mm.ofm_address):
        raise BackendError(
            "the runner moves tensors through other addresses than "
            f"{mm.ifm_address:#010x}/{mm.ofm_address:#010x}; it is not a generic inference runner "
            "with this memory map"
        )
    if log.ifm.bytes != ifm_bytes:
        raise BackendError(
            f"the runner read {log.ifm.bytes} input bytes but the model's inputs are {ifm_bytes}"
        )
    if log.ofm is None:
        raise BackendError("the runner did not report copying the output tensors")
    if log.ofm.bytes != cmd.ofm_bytes:
        raise BackendError(
            f"the runner copied {log.ofm.bytes} output bytes but the model's outputs are "
            f"{cmd.ofm_bytes}"
        )
    if not cmd.ofm.is_file():
        raise BackendError(f"the FVP wrote no output dump ({cmd.ofm.name})")
    ofm = cmd.ofm.read_bytes()
    if len(ofm) != cmd.ofm_bytes:
        raise BackendError(f"the output dump has {len(ofm)} bytes, expected {cmd.ofm_bytes}")
    return FvpRun(outcome, log, counters, ofm)


def _save_log(text: str) -> Path | None:
    """Keep the last console log for a look after a failure; never fatal."""
    path = cache_dir() / "fvp" / LAST_LOG_NAME
    try:
        atomic_write_text(path, text)
    except OSError:
        return None
    return path


def run_inference(
    cmd: FvpCommand,
    *,
    ifm_bytes: int,
    timeout_s: float,
    env: dict[str, str] | None = None,
    macs_per_core: int | None = None,
) -> FvpRun:
    argv = build_argv(cmd)
    try:
        outcome = run_process(argv, timeout_s=timeout_s + HOST_TIMEOUT_GRACE_S, env=env)
    except OSError as e:
        raise BackendUnavailable(f"cannot start {cmd.executable}: {e}; {DOCTOR_HINT}") from None
    saved = _save_log(outcome.output)
    try:
        return check_run(
            outcome, cmd, ifm_bytes=ifm_bytes, timeout_s=timeout_s, macs_per_core=macs_per_core
        )
    except (BackendError, BackendUnavailable) as e:
        if saved is None:
            raise
        raise type(e)(f"{e} (console log: {saved})") from None


# ---- tensors in and out ------------------------------------------------------------------------


def input_blob(inputs: Sequence[np.ndarray], specs: Sequence[TensorSpec]) -> bytes:
    """All input tensors, little-endian, concatenated in input-index order."""
    parts = []
    for a, spec in zip(check_inputs(inputs, specs), specs):
        little_endian = np.dtype(spec.dtype).newbyteorder("<")
        parts.append(np.ascontiguousarray(a, dtype=little_endian).tobytes())
    return b"".join(parts)


def nbytes(spec: TensorSpec) -> int:
    return int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize


def split_outputs(blob: bytes, specs: Sequence[TensorSpec]) -> tuple[OutputTensor, ...]:
    expected = sum(nbytes(s) for s in specs)
    if expected != len(blob):
        raise BackendError(f"output dump of {len(blob)} bytes, the outputs need {expected}")
    outputs, offset = [], 0
    for spec in specs:
        size = nbytes(spec)
        dtype = np.dtype(spec.dtype)
        count = size // dtype.itemsize
        data = np.frombuffer(blob, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
        outputs.append(OutputTensor(spec, data.astype(dtype).reshape(spec.shape)))
        offset += size
    return tuple(outputs)


# ---- the measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FvpMeasurement:
    """One inference on a Corstone FVP: NPU PMU counters, outputs and where they came from.

    Cycles are NPU cycles only (the FVP's Cortex-M model is not cycle-accurate). Time is
    ``npu_total_cycles`` at the system config's core clock. AXI figures are beats x bus width
    (8 bytes on U55, 16 on U65). ``vela_over_fvp_cycles`` = Vela's ``cycles_npu`` estimate /
    ``npu_active_cycles`` (> 1: Vela estimates more cycles than the FVP measured).
    """

    platform: str
    accel: str
    num_macs: int
    system_config: str
    memory_mode: str
    core_clock_hz: float
    npu_active_cycles: int
    npu_idle_cycles: int
    npu_total_cycles: int
    inference_time_ms: float
    axi0_read_beats: int
    axi0_write_beats: int
    axi1_read_beats: int
    axi0_read_bytes: int
    axi0_write_bytes: int
    axi1_read_bytes: int
    outputs: tuple[OutputTensor, ...]
    fvp_wall_s: float
    fvp_simulated_time_s: float | None
    fvp_executable: str
    fvp_source: str
    fvp_version: str | None
    runner: str
    runner_source: str
    runner_version: str | None
    vela_version: str
    pmu_format: str
    model_sha256: str
    compiled_model: str
    vela_cycles_npu: int | None = None
    vela_over_fvp_cycles: float | None = None
    argv: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self, *, outputs: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name == "outputs":
                if outputs:
                    d["outputs"] = [o.to_dict() for o in self.outputs]
            elif name == "argv":
                d["argv"] = list(self.argv)
            else:
                d[name] = getattr(self, name)
        return d


def vela_over_fvp_cycles(vela_cycles_npu: int | float, measurement: FvpMeasurement) -> float:
    """Vela's NPU cycle estimate over the FVP's measured NPU ACTIVE cycles."""
    return float(vela_cycles_npu) / measurement.npu_active_cycles


def _prepare(
    accel: Accelerator | str,
    platform: str | None,
    fvp: str | os.PathLike | None,
    runner: str | os.PathLike | None,
    memory_mode: str | None,
) -> tuple[Accelerator, FvpTarget, int, FvpInstall, Runner]:
    acc = accel if isinstance(accel, Accelerator) else get_accelerator(accel)
    target, num_macs = target_for(acc, platform)
    if memory_mode not in (None, target.memory_mode):
        raise UserError(
            f"the {target.key} inference runner needs Vela memory mode {target.memory_mode!r}, "
            f"not {memory_mode!r}; leave --memory-mode unset for the FVP"
        )
    install = find_fvp(target, fvp)  # BackendUnavailable first: before any compile
    found_runner = find_runner(target, runner)
    return acc, target, num_macs, install, found_runner


class FvpBackend:
    """The ``fvp`` backend: one FVP run per inference (slow: seconds to minutes each)."""

    name = "fvp"

    def __init__(
        self,
        model_path: str | os.PathLike,
        accel: Accelerator | str,
        *,
        platform: str | None = None,
        system_config: str | None = None,
        memory_mode: str | None = None,
        fvp: str | os.PathLike | None = None,
        runner: str | os.PathLike | None = None,
        timeout_s: float | None = None,
        legacy_core: bool = False,
    ) -> None:
        from ...vela import compile_model

        acc, target, num_macs, install, found_runner = _prepare(
            accel, platform, fvp, runner, memory_mode
        )
        self.accel, self.target, self.num_macs = acc, target, num_macs
        self.install, self.runner = install, found_runner
        self.timeout_s = float(timeout_s or DEFAULT_TIMEOUT_S)
        if self.timeout_s <= 0:
            raise UserError(f"--timeout must be positive, not {timeout_s}")
        self.system_config = system_config or acc.default_system_config
        self.core_clock_hz = get_system_config(self.system_config).core_clock_hz
        model = load_tflite(model_path)
        self.model_sha256 = model.sha256
        self._input_specs = tuple(model.input_specs)
        self._output_specs = tuple(model.output_specs)
        self.compiled = compile_model(
            model_path,
            acc,
            system_config=self.system_config,
            memory_mode=target.memory_mode,
            legacy_core=legacy_core,
        )
        compiled_model = load_tflite(self.compiled.compiled_model)
        if compiled_model.size_bytes > target.memory_map.model_max_bytes:
            raise UserError(
                f"the compiled model is {compiled_model.size_bytes} bytes; the runner takes at "
                f"most {target.memory_map.model_max_bytes}"
            )
        self._check_io(compiled_model.input_specs, compiled_model.output_specs)

    def _check_io(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
        def layout(specs):
            return [(tuple(s.shape), s.dtype) for s in specs]

        if layout(inputs) != layout(self._input_specs) or layout(outputs) != layout(
            self._output_specs
        ):
            raise BackendError("Vela changed the model's input/output tensors; cannot map them")

    @property
    def input_specs(self) -> Sequence[TensorSpec]:
        return self._input_specs

    @property
    def output_specs(self) -> Sequence[TensorSpec]:
        return self._output_specs

    def measure(self, inputs: Sequence[np.ndarray]) -> FvpMeasurement:
        blob = input_blob(inputs, self._input_specs)
        mm = self.target.memory_map
        if len(blob) > mm.ifm_max_bytes:
            raise InputDataError(f"inputs of {len(blob)} bytes exceed the runner's IFM area")
        ofm_bytes = sum(nbytes(s) for s in self._output_specs)
        with tempfile.TemporaryDirectory(prefix="ethos-kws-fvp-") as tmp:
            work = Path(tmp)
            ifm = atomic_write_bytes(work / "ifm.bin", blob)
            cmd = FvpCommand(
                target=self.target,
                executable=self.install.executable,
                runner=self.runner.path,
                model=Path(self.compiled.compiled_model).resolve(),
                ifm=ifm,
                ofm=work / "ofm.bin",
                ofm_bytes=ofm_bytes,
                num_macs=self.num_macs,
                timelimit_s=max(1, int(round(self.timeout_s))),
            )
            run = run_inference(
                cmd,
                ifm_bytes=len(blob),
                timeout_s=self.timeout_s,
                env=dict(self.install.env),
                macs_per_core=self.accel.macs_per_cycle // self.accel.cores,
            )
        outputs = split_outputs(run.ofm, self._output_specs)
        c, beat = run.counters, self.accel.axi_bytes_per_beat
        version, _problem = fvp_version(self.install)
        m = FvpMeasurement(
            platform=self.target.platform,
            accel=self.accel.name,
            num_macs=self.num_macs,
            system_config=self.system_config,
            memory_mode=self.target.memory_mode,
            core_clock_hz=self.core_clock_hz,
            npu_active_cycles=c.active_cycles,
            npu_idle_cycles=c.idle_cycles,
            npu_total_cycles=c.total_cycles,
            inference_time_ms=c.total_cycles / self.core_clock_hz * 1e3,
            axi0_read_beats=c.axi0_read_beats,
            axi0_write_beats=c.axi0_write_beats,
            axi1_read_beats=c.axi1_read_beats,
            axi0_read_bytes=c.axi0_read_beats * beat,
            axi0_write_bytes=c.axi0_write_beats * beat,
            axi1_read_bytes=c.axi1_read_beats * beat,
            outputs=outputs,
            fvp_wall_s=run.outcome.wall_s,
            fvp_simulated_time_s=run.log.stat.simulated_time_s if run.log.stat else None,
            fvp_executable=str(self.install.executable),
            fvp_source=self.install.source,
            fvp_version=version,
            runner=str(self.runner.path),
            runner_source=self.runner.source,
            runner_version=self.runner.version,
            vela_version=vela_version(),
            pmu_format=c.format,
            model_sha256=self.model_sha256,
            compiled_model=str(self.compiled.compiled_model),
            vela_cycles_npu=self.compiled.cycles_npu,
            vela_over_fvp_cycles=self.compiled.cycles_npu / c.active_cycles,
            argv=run.outcome.argv,
        )
        return m

    def run(self, inputs: Sequence[np.ndarray]) -> RunResult:
        m = self.measure(inputs)
        return RunResult(
            backend=self.name,
            model_sha256=self.model_sha256,
            outputs=m.outputs,
            inference_ms=m.inference_time_ms,
            extra={
                "platform": m.platform,
                "accel": m.accel,
                "npu_total_cycles": m.npu_total_cycles,
                "inference_time_ms": m.inference_time_ms,
                "fvp": m.to_dict(outputs=False),
            },
        )

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        return [[o.data for o in self.run(inputs).outputs] for inputs in batch]


def make_backend(
    model_path: str | os.PathLike,
    *,
    accel: str | None = None,
    platform: str | None = None,
    system_config: str | None = None,
    memory_mode: str | None = None,
    fvp: str | os.PathLike | None = None,
    runner: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    legacy_core: bool | None = False,
) -> FvpBackend:
    """Registry factory; these keyword parameters are the backend's options (accel: u55-128)."""
    return FvpBackend(model_path, accel or "u55-128", platform=platform, system_config=system_config,
                      memory_mode=memory_mode, fvp=fvp, runner=runner, timeout_s=timeout_s,
                      legacy_core=bool(legacy_core))


def measure(
    model_path: str | os.PathLike,
    accel: Accelerator | str,
    *,
    platform: str | None = None,
    system_config: str | None = None,
    inputs: Sequence[np.ndarray] | None = None,
    fvp: str | os.PathLike | None = None,
    runner: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    legacy_core: bool = False,
    seed: int = 0,
) -> FvpMeasurement:
    """Compile ``model_path`` for ``accel`` with the runner's memory mode and measure one inference.

    ``inputs`` default to seeded uniform random tensors of the model's input dtypes (the same
    input every call for a given seed), so repeated measurements are comparable.
    """
    backend = FvpBackend(
        model_path,
        accel,
        platform=platform,
        system_config=system_config,
        fvp=fvp,
        runner=runner,
        timeout_s=timeout_s,
        legacy_core=legacy_core,
    )
    if inputs is None:
        inputs = seeded_inputs(backend.input_specs, seed)
    return backend.measure(inputs)


def seeded_inputs(specs: Sequence[TensorSpec], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            values = rng.integers(info.min, info.max, size=spec.shape, endpoint=True, dtype=dtype)
            out.append(values)
        else:
            out.append(rng.standard_normal(spec.shape).astype(dtype))
    return out
