"""The exact FVP command line for one inference with the generic inference runner.

Headless flags (Arm Corstone-300 FVP reference guide, and the command lines of mlia-ethos-u 0.1.0's
corstone backend): no visualisation, no telnet terminal,
UART0 to stdout, shut down at end of transmission, ``--stat`` for host figures and ``--timelimit``
as the simulator's own stop. ``ethosu.extra_args=--fast`` is never passed: it turns the NPU model
functional-only and the cycle counters meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import UserError
from .targets import FvpTarget

# --data FILE@ADDR and --dump INST=FILE@SPACE:ADDR,SIZE split on these; a path holding one would be
# misread by the FVP, so refuse it instead of quoting (the FVP has no quoting).
_FORBIDDEN_IN_PATHS = ("@", ",", "=")


@dataclass(frozen=True)
class FvpCommand:
    target: FvpTarget
    executable: Path
    runner: Path
    model: Path  # the Vela-compiled .tflite
    ifm: Path  # all input tensors, concatenated in input-index order
    ofm: Path  # where the FVP dumps the output tensors at exit
    ofm_bytes: int
    num_macs: int
    timelimit_s: int


def _check_path(path: Path, what: str) -> str:
    text = str(path)
    bad = [c for c in _FORBIDDEN_IN_PATHS if c in text]
    if bad:
        raise UserError(
            f"the {what} path {text!r} contains {' '.join(bad)}, which the FVP's --data/--dump "
            "syntax cannot carry; move it or set ETHOS_KWS_CACHE to a plain path"
        )
    return text


def headless_params(target: FvpTarget, num_macs: int) -> list[str]:
    """``-C`` parameters, in the order of the notes, then the platform's own (``extra_params``)."""
    board, npu = target.board_prefix, target.npu_prefix
    return [
        f"{board}visualisation.disable-visualisation=1",
        f"{board}telnetterminal0.start_telnet=0",
        f"{board}uart0.out_file=-",
        f"{board}uart0.shutdown_on_eot=1",
        f"{npu}num_macs={target.check_macs(num_macs)}",
        *target.extra_params,
    ]


def build_argv(cmd: FvpCommand) -> list[str]:
    mm = cmd.target.memory_map
    if cmd.ofm_bytes <= 0 or cmd.ofm_bytes > mm.ofm_max_bytes:
        raise UserError(f"output tensors of {cmd.ofm_bytes} bytes do not fit the runner's OFM area")
    if cmd.timelimit_s <= 0:
        raise UserError(f"FVP time limit must be positive, not {cmd.timelimit_s}")
    argv = [_check_path(cmd.executable, "FVP"), "-a", _check_path(cmd.runner, "runner")]
    for param in headless_params(cmd.target, cmd.num_macs):
        argv += ["-C", param]
    argv += [
        "--data",
        f"{_check_path(cmd.model, 'model')}@{mm.model_address:#010x}",
        "--data",
        f"{_check_path(cmd.ifm, 'input')}@{mm.ifm_address:#010x}",
        "--dump",
        f"{mm.dump_instance}={_check_path(cmd.ofm, 'output')}"
        f"@{mm.dump_memory_space}:{mm.ofm_address:#010x},{cmd.ofm_bytes}",
        "--stat",
        "--timelimit",
        str(int(cmd.timelimit_s)),
    ]
    return argv
