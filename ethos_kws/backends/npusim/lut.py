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
# A 16-bit OFM uses 512 uint32 entries (all 2 KiB): base in [15:0], slope to the next entry in
# [31:16] (Vela's create_lut_int16_op); the int16 value v selects entry 256 + (v >> 7) and
# interpolates on its 7 low bits, rounding half up (TFLite's int16 lut_lookup).
ENTRIES_16 = 512
INTERP_BITS = 7


# OFM element size -> bytes of one table (256 entries of the OFM type; 512 uint32 for 16 bits)
TABLE_BYTES = {1: ENTRIES, 2: ENTRIES_16 * 4, 4: ENTRIES * 4}


def lut_span(mem: Memory, function: int, ofm_itemsize: int) -> tuple[int, int] | None:
    """[lo, hi) SHRAM bytes of the table an ACTIVATION function reads with this OFM size (None
    without a LUT or for a size that has none). The data-flow check refuses a LUT read before a
    DMA wrote it."""
    if not LUT_FIRST <= function <= LUT_LAST or ofm_itemsize not in TABLE_BYTES:
        return None
    start = mem.lut_base() + (0 if ofm_itemsize == 2 else (function - LUT_FIRST) * LUT_SLOT_BYTES)
    return start, start + TABLE_BYTES[ofm_itemsize]


def _apply_lut16(mem: Memory, slot: int, values: np.ndarray) -> np.ndarray:
    if slot != 0:
        raise CommandStreamError(f"a 16-bit LUT fills all of the LUT memory: TABLE_{slot} is not its start")
    raw = mem.read_bytes("SHRAM", mem.lut_base(), TABLE_BYTES[2], "16-bit LUT")
    return interpolate_lut16(raw, values)


def interpolate_lut16(raw: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The 16-bit LUT lookup (U55 and U85 alike): ``raw`` the table's 2 KiB, (batch or 1, 2048)
    bytes; ``values`` int16-range integers (batch, ...)."""
    table = np.ascontiguousarray(raw).view("<u4").astype(np.int64)  # (batch or 1, 512)
    if values.min(initial=0) < -32768 or values.max(initial=0) > 32767:
        raise CommandStreamError("16-bit LUT index outside the int16 range")
    b = values.shape[0]
    v = values.astype(np.int64).reshape(b, -1)
    entry = np.take_along_axis(np.broadcast_to(table, (b, ENTRIES_16)), 256 + (v >> INTERP_BITS), axis=1)
    base = ((entry & 0xFFFF) ^ 0x8000) - 0x8000
    slope = (((entry >> 16) & 0xFFFF) ^ 0x8000) - 0x8000
    out = base + ((slope * (v & ((1 << INTERP_BITS) - 1)) + (1 << (INTERP_BITS - 1))) >> INTERP_BITS)
    return out.reshape(values.shape)


def apply_lut(mem: Memory, function: int, values: np.ndarray, ofm_dtype: np.dtype,
              behaviours: Behaviours) -> np.ndarray:
    """values: clamped int8-range integers (batch, ...). Returns entries as int64."""
    slot = function - LUT_FIRST
    if ofm_dtype.itemsize == 2:
        return _apply_lut16(mem, slot, values)
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
