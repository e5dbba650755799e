"""LUT activations (``ACTIVATION`` function 16..23 = TABLE_0..7): tables in internal SHRAM.

Tables are DMA'd into the top 2 KiB of SHRAM; table n starts at slot n (256 bytes). An int8 OFM
uses 256 int8 entries, a 32-bit OFM 256 int32 entries (four slots). The index is the value after
rescale, zero point and clamp to the clip range.
"""

from __future__ import annotations

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import activation as Activation

from ...errors import CommandStreamError, NotModelledError
from .behaviours import Behaviours
from .memory import LUT_SLOT_BYTES, Memory

LUT_FIRST, LUT_LAST = Activation.LUT_START.value, Activation.LUT_END.value
ENTRIES = 256


def apply_lut(mem: Memory, function: int, values: np.ndarray, ofm_dtype: np.dtype,
              behaviours: Behaviours) -> np.ndarray:
    """values: clamped int8-range integers (batch, ...). Returns entries as int64."""
    slot = function - LUT_FIRST
    entry = {1: np.dtype("i1"), 4: np.dtype("<i4")}.get(ofm_dtype.itemsize)
    if entry is None:
        raise NotModelledError(f"LUT activation with a {ofm_dtype.itemsize * 8}-bit OFM is not modelled")
    start = mem.lut_base() + slot * LUT_SLOT_BYTES
    length = ENTRIES * entry.itemsize
    table = mem.read_bytes("SHRAM", start, length, f"LUT TABLE_{slot}")
    table = np.ascontiguousarray(table).view(entry).astype(np.int64)  # (batch, 256)
    if values.min(initial=0) < -128 or values.max(initial=0) > 127:
        raise CommandStreamError("LUT index outside the int8 range (clip range must force int8)")
    idx = values.astype(np.int64) + 128 if behaviours.lut_index_plus_128 else values.astype(np.int64) & 0xFF
    b = values.shape[0]
    flat = idx.reshape(b, -1)
    out = np.take_along_axis(np.broadcast_to(table, (b, ENTRIES)), flat, axis=1)
    return out.reshape(values.shape)
