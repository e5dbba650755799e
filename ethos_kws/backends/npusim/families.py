"""Which Ethos-U families npu-sim executes: the one gate in front of the simulator.

Each family has its own command-stream register map; the COP1 header's CONFIG word names the
family in its product field (``config_r[31:28]``: 0 U55, 1 U65, 2 U85). U55/U65 streams run on
``executor``, U85 streams on ``u85.executor`` (``backend.make_executor`` picks by the same field);
a family whose flag is False stops here with one line.
"""

from __future__ import annotations

import numpy as np

from ...accel import Accelerator
from ...errors import BackendUnavailable
from ...tflite import TfliteModel

SIMULATED: dict[str, bool] = {"U55": True, "U65": True, "U85": True}  # U85: npusim/u85 (issue 15)
PRODUCT_FAMILY = {0: "U55", 1: "U65", 2: "U85"}  # COP1 config_r product field
_FOURCC = int.from_bytes(b"COP1", "little")
_DA_CONFIG = 0x01


class NotSimulated(BackendUnavailable):
    """The accelerator's command stream is one npu-sim does not execute (exit code 2)."""


def _refuse(npu: str, what: str) -> NotSimulated:
    return NotSimulated(
        f"npu-sim does not simulate the Ethos-{npu} command stream yet ({what}); use "
        f"--backend fvp (Corstone-320) for Ethos-{npu}, or a U55/U65 accelerator"
    )


def require_simulated(acc: Accelerator) -> None:
    """Refuse, before compiling, an accelerator whose family npu-sim cannot run."""
    if not SIMULATED.get(acc.npu, False):
        raise _refuse(acc.npu, acc.name)


def stream_family(model: TfliteModel) -> str | None:
    """The family the first ``ethos-u`` op's COP1 CONFIG names, or None when the header is not
    readable (the container then reports what is wrong with it)."""
    for op in model.operators():
        if op.opcode != "CUSTOM" or op.custom_code != "ethos-u" or not op.inputs:
            continue
        data = model.tensor_data(op.inputs[0])
        if data is None:
            return None
        raw = data.tobytes()
        words = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<u4")
        if len(words) < 3 or int(words[0]) != _FOURCC or int(words[1]) & 0xFF != _DA_CONFIG:
            return None
        return PRODUCT_FAMILY.get((int(words[2]) >> 28) & 0xF)
    return None


def require_simulated_stream(model: TfliteModel, path: str) -> None:
    """Refuse a ``*_vela.tflite`` compiled for a family npu-sim cannot run."""
    npu = stream_family(model)
    if npu is not None and not SIMULATED.get(npu, False):
        raise _refuse(npu, f"{path} was compiled for Ethos-{npu}")
