"""Output rescaling: ``value * multiplier >> shift`` with the hardware's three rounding modes.

- TFL (0): TFLite's ``MultiplyByQuantizedMultiplier``: a rounding-doubling high multiply (round
  half up at bit 31) followed, when ``shift > 31``, by a rounding divide by ``2^(shift-31)``
  (round half away from zero). For ``shift <= 31`` it equals NATURAL.
- TRUNCATE (1): toward zero.
- NATURAL (2): ``(v*M + 2^(s-1)) >> s``, round half up.

All arithmetic is exact: int64 when ``|v| * M`` fits, Python integers otherwise.
"""

from __future__ import annotations

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import rounding as Rounding

from ...errors import CommandStreamError

# plain ints: they are compared in the hot path
TFL, TRUNCATE, NATURAL = Rounding.TFL.value, Rounding.TRUNCATE.value, Rounding.NATURAL.value
ROUNDING_NAMES = {r.value: r.name for r in Rounding}
_INT64_SAFE = 1 << 62
CHUNK_ELEMENTS = 1 << 15  # Rescale.apply works through larger maps in blocks of about this size


def _fits_int64(v: np.ndarray, m: np.ndarray) -> bool:
    vmax = int(np.abs(v).max(initial=0))
    mmax = int(np.abs(m).max(initial=0))
    return vmax * mmax < _INT64_SAFE and vmax < _INT64_SAFE // 4


def shift_round(y: np.ndarray, s: np.ndarray, mode: int) -> np.ndarray:
    """Round int64 y / 2^s (elementwise 0 <= s <= 63) in the given mode."""
    one = np.int64(1)
    if mode == TRUNCATE:
        mag = np.abs(y) >> s
        return np.where(y < 0, -mag, mag)
    s31 = np.minimum(s, 31) if mode == TFL else s
    half = np.where(s31 > 0, one << np.maximum(s31 - 1, 0), 0)
    t = (y + half) >> s31
    if mode == NATURAL:
        return t
    if mode != TFL:
        raise CommandStreamError(f"unsupported rounding mode {mode}")
    e = s - s31  # TFL: the rest of the shift rounds half away from zero
    if not np.any(e > 0):
        return t
    mask = (one << e) - one
    threshold = (mask >> 1) + (t < 0)
    return (t >> e) + ((t & mask) > threshold)


def _fast_path(y: np.ndarray, s: np.ndarray, mode: int) -> np.ndarray | None:
    """In-place versions of the common cases (per-channel shift on the last axis). Same results
    as ``shift_round``; returns None when a case is not covered."""
    kernel = _kernel(s, mode)
    if kernel is None:
        return None
    kernel(y)
    return y


def _kernel(s: np.ndarray, mode: int, offset: np.ndarray | int = 0):
    """The in-place rounding of ``y + offset`` (int64, owned by the caller) for a per-channel
    shift ``s`` (scalar or last axis), or None for the cases ``shift_round`` handles. Same
    results as ``shift_round``; ``offset`` is added first (a folded bias term)."""
    if s.ndim > 1 or np.any(s < 0):
        return None
    one = np.int64(1)
    if not np.any(s):  # no shift: every mode leaves y as it is
        if np.isscalar(offset) and offset == 0:
            return lambda y: None
        add = np.asarray(offset, dtype=np.int64)

        def offset_only(y):
            y += add
        return offset_only
    if np.any(s < 1):
        return None
    if mode == TFL and np.all(s <= 31):  # TFL's divide by 2^(s-31) never happens
        mode = NATURAL
    if mode == NATURAL:
        add = np.asarray(offset + (one << (s - 1)), dtype=np.int64)

        def natural(y):
            y += add
            y >>= s
        return natural
    if mode == TFL and np.all(s > 31):
        # rounding doubling high multiply (half up at bit 31), then round half away from zero:
        # (t + 2^(e-1) - (t < 0)) >> e
        add = np.asarray(offset + np.int64(1 << 30), dtype=np.int64)
        e = s - 31
        half = one << (e - 1)

        def tfl(y):
            y += add
            y >>= 31
            neg = y < 0
            y += half
            y -= neg
            y >>= e
        return tfl
    return None


class Rescale:
    """One operation's output scale, checked and specialised once: ``apply(v)`` =
    ``rescale(v + bias, multiplier, shift, mode)`` with the same rounding, in place on an int64
    array when the int64 fast path is exact, else through ``rescale``. ``bound``: ``|v| <= bound``
    known when the plan is built (None: measured on every call). The bias is folded into the
    per-channel offset (``(v + b) * M = v*M + b*M``)."""

    def __init__(self, multiplier, shift, mode: int, bound: int | None = None, bias=None):
        self.m = np.asarray(multiplier, dtype=np.int64)
        self.s = np.asarray(shift, dtype=np.int64)
        self.mode = mode
        self.bias = None if bias is None else np.asarray(bias, dtype=np.int64)
        _check_shift(self.s)
        self._bias_max = 0 if bias is None else int(np.abs(self.bias).max(initial=0))
        self._mmax = int(np.abs(self.m).max(initial=0))
        self._static = bound is not None and self._fits(int(bound))
        # every parameter is a scalar or per channel (last axis): the kernel works on blocks of rows
        self._per_channel = self.m.ndim <= 1 and self.s.ndim <= 1 and (self.bias is None or self.bias.ndim <= 1)
        offset = 0 if self.bias is None else self.bias * self.m if self._fits(0) else None
        self._kernel = None if offset is None else _kernel(self.s, mode, offset)

    def _fits(self, bound: int) -> bool:
        total = bound + self._bias_max
        return total * self._mmax < _INT64_SAFE and total < _INT64_SAFE // 4

    @property
    def always_int64(self) -> bool:
        """Every ``apply`` takes the int64 kernel (the bound is static and fits)."""
        return self._kernel is not None and self._static

    def apply(self, v: np.ndarray, then=None) -> np.ndarray:
        """``v``: integer values (any integer or exact-integer float dtype), not modified.
        ``then``: an in-place step on the int64 result (the output stage), run on each block
        while it is in the cache; only with ``always_int64``."""
        if then is not None and not self.always_int64:
            raise ValueError("Rescale.apply(then=...) needs the int64 kernel")
        if self._kernel is not None and (self._static or self._fits(int(np.abs(v).max(initial=0)))):
            if v.size <= CHUNK_ELEMENTS or v.ndim == 0 or not v.flags.c_contiguous or not self._per_channel:
                y = np.multiply(v, self.m, dtype=np.int64, casting="unsafe")
                self._kernel(y)
                if then is not None:
                    then(y)
                return y
            # large maps in blocks of rows that stay in the cache through the kernel's passes
            y = np.empty(v.shape, dtype=np.int64)
            rows_v, rows_y = v.reshape(-1, v.shape[-1]), y.reshape(-1, v.shape[-1])
            step = max(1, CHUNK_ELEMENTS // v.shape[-1])
            for i in range(0, rows_v.shape[0], step):
                block = rows_y[i : i + step]
                np.multiply(rows_v[i : i + step], self.m, out=block, dtype=np.int64, casting="unsafe")
                self._kernel(block)
                if then is not None:
                    then(block)
            return y
        x = v if self.bias is None else np.asarray(v).astype(np.int64) + self.bias
        return rescale(x, self.m, self.s, self.mode)


def round_terms(shift, mode: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The rescale as ``floor((v*M + r) >> shift)``: the rounding term ``r`` of non-negative and
    of negative values, per channel (``fastscale``'s form), or None for TRUNCATE, whose two terms
    are a whole unit apart. TFL with ``shift > 31`` rounds half up at bit 31 and then half away
    from zero, which is one rounding with ``2^(s-1) +- 2^30``; below that it is NATURAL's."""
    s = np.asarray(shift, dtype=np.int64)
    if mode == TRUNCATE:
        return None
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)
    d = np.where(s > 31, 1 << 30, 0) if mode == TFL else np.zeros_like(s)
    return half + d, half - d


def _check_shift(s: np.ndarray) -> None:
    if np.any(s < 0) or np.any(s > 63):
        raise CommandStreamError(f"rescale shift outside 0..63: {s}")


def rescale(values: np.ndarray, multiplier, shift, mode: int) -> np.ndarray:
    """``round(values * multiplier / 2^shift)``; multiplier/shift broadcast (per channel = last axis)."""
    v = np.asarray(values)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    _check_shift(s)
    if _fits_int64(v, m):
        y = v.astype(np.int64) * m
        fast = _fast_path(y, s, mode)
        if fast is not None:
            return fast
        s_b = np.broadcast_to(s, y.shape)
        return shift_round(y, s_b, mode)
    y = v.astype(object) * m.astype(object)
    s_b = np.broadcast_to(s, y.shape).astype(object)
    out = _shift_round_obj(y, s_b, mode)
    return out


def _shift_round_obj(y: np.ndarray, s: np.ndarray, mode: int) -> np.ndarray:
    flat_y, flat_s = y.reshape(-1), s.reshape(-1)
    out = np.empty(flat_y.shape, dtype=object)
    for i, (a, k) in enumerate(zip(flat_y.tolist(), flat_s.tolist())):
        out[i] = round_one(int(a), int(k), mode)
    return out.reshape(y.shape)


def round_one(y: int, s: int, mode: int) -> int:
    """Scalar reference of ``shift_round`` (Python integers, unbounded)."""
    if s == 0:
        return y
    if mode == NATURAL:
        return (y + (1 << (s - 1))) >> s
    if mode == TRUNCATE:
        return -((-y) >> s) if y < 0 else y >> s
    if mode == TFL:
        s31 = min(s, 31)
        t = (y + (1 << (s31 - 1))) >> s31
        e = s - s31
        if e == 0:
            return t
        mask = (1 << e) - 1
        rem = t & mask
        threshold = (mask >> 1) + (1 if t < 0 else 0)
        return (t >> e) + (1 if rem > threshold else 0)
    raise CommandStreamError(f"unsupported rounding mode {mode}")
