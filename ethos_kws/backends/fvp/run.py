"""Running and checking one FVP process: the exact command line, the console log, the PMU counters.

One inference: write the input blob, run the FVP with ``command.build_argv``, check everything the
log and the dump say (``check_run``), decode the output tensors. Nothing here ever makes up a
number: a missing FVP is ``BackendUnavailable``, a missing counter or a doubtful run is
``BackendError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import BackendError, BackendUnavailable
from ...fsutil import atomic_write_text
from ...paths import cache_dir
from ..base import OutputTensor, TensorSpec, check_inputs
from . import pmu
from .command import FvpCommand, build_argv
from .discovery import DOCTOR_HINT
from .process import ProcessOutcome, run_process

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
    if first.kind == "npu-config-mismatch" and (axi := pmu.axi_ports_mismatch(text)):
        memory, fvp_ports, model_ports = axi
        return (
            f"NPU config mismatch: the FVP's Ethos-U85 has {fvp_ports} {memory.upper()} AXI "
            f"port(s) but the model was compiled for {model_ports} (the system config's "
            f"{'Sram' if memory == 'sram' else 'Dram'}_ports_used); pick a system config that "
            "matches the FVP"
        )
    msg = f"{first.line}"
    if first.hint:
        msg += f" ({first.hint})"
    if len(log.errors) > 1:
        msg += f" [+{len(log.errors) - 1} more error line(s)]"
    return msg


def _counters(report: pmu.PmuReport | None, timelimit_s: int, npu: str = "U55") -> NpuCounters:
    """The counters a run must have printed. ``axi0_*`` hold the SRAM port and ``axi1_*`` the
    external one on every family (Vela's axi0_port=Sram / axi1_port); on U85 they are read from
    its SRAM_*/EXT_* counters (``pmu.PORT_COUNTERS``), as MLIA does."""
    if report is None:
        raise BackendError(
            "the runner printed no PMU counters (the inference did not finish; the FVP's "
            f"--timelimit of {timelimit_s} s may have stopped it)"
        )
    ports = pmu.port_counters(npu)
    required = pmu.required_counters(npu)
    missing = report.missing(required)
    if missing:
        raise BackendError(f"the runner's PMU report lacks {', '.join(missing)} ({report.format})")
    c = report.counters
    negative = [n for n in required if c[n] < 0]
    if negative:
        raise BackendError(f"negative PMU counter(s) {', '.join(negative)} in the runner output")
    counters = NpuCounters(
        active_cycles=c[pmu.NPU_ACTIVE],
        idle_cycles=c[pmu.NPU_IDLE],
        total_cycles=c[pmu.NPU_TOTAL],
        axi0_read_beats=c[ports.sram_read],
        axi0_write_beats=c[ports.sram_write],
        axi1_read_beats=c[ports.ext_read],
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
    counters = _counters(log.pmu, cmd.timelimit_s, cmd.target.npu)
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
