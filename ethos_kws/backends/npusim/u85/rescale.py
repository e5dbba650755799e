"""U85 rounding: one formula for every mode, ``(v * scale + round) >> shift``.

``round`` starts at ``2^(shift-1)`` (NATURAL) and is adjusted per mode, as in regor's own
constant folder for U85 (``graphir_optimiser`` ``Scale``): DOUBLE_SYMMETRIC adds ``+-2^(30-d)``
when ``shift > 31 - d`` (``d`` = the scale register's ``dbl_rnd``; with ``d = 0`` this is TFLite's
``MultiplyByQuantizedMultiplier`` and the U55 TFL mode), DOUBLE_ASYMMETRIC adds ``+2^(30-d)``,
SYMMETRIC subtracts 1 for negative values (half away from zero), TRUNCATE_TO_ZERO rounds toward
zero and TRUNCATE_TO_LOWER toward minus infinity. Exact: int64 while the product fits, Python
integers otherwise.
"""

from __future__ import annotations

import numpy as np

from ....errors import CommandStreamError

DOUBLE_SYMMETRIC, NATURAL, DOUBLE_ASYMMETRIC, SYMMETRIC, TRUNCATE_TO_ZERO, TRUNCATE_TO_LOWER = range(6)
_SAFE = 1 << 62


def _round_term(v, s, mode: int, dbl: int):
    one = np.int64(1)
    half = np.where(s > 0, one << np.maximum(s - 1, 0), 0)
    if mode == NATURAL:
        return half
    if mode in (DOUBLE_SYMMETRIC, DOUBLE_ASYMMETRIC):
        d = np.where(s > 31 - dbl, one << max(30 - dbl, 0), 0)
        if mode == DOUBLE_ASYMMETRIC:
            return half + d
        return half + np.where(v >= 0, d, -d)
    if mode == SYMMETRIC:
        return half - ((v < 0) & (s > 0))
    if mode == TRUNCATE_TO_ZERO:
        return np.where(v >= 0, 0, (one << s) - 1)
    if mode == TRUNCATE_TO_LOWER:
        return np.zeros_like(s)
    raise CommandStreamError(f"rounding mode {mode} is not defined")


def _term_pair(s: np.ndarray, mode: int, dbl_rnd: int) -> tuple[np.ndarray, np.ndarray]:
    """``_round_term`` of a non-negative and of a negative product, per shift."""
    return _round_term(np.int64(0), s, mode, dbl_rnd), _round_term(np.int64(-1), s, mode, dbl_rnd)


def round_terms(shift, mode: int, dbl_rnd: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """``_round_term`` for non-negative and for negative values, per channel (``fastscale``'s
    form), or None for TRUNCATE_TO_ZERO, whose two terms are a whole unit apart."""
    if mode == TRUNCATE_TO_ZERO or mode not in range(6) or not 0 <= dbl_rnd <= 30:
        return None
    s = np.asarray(shift, dtype=np.int64)
    hi, lo = _term_pair(s, mode, dbl_rnd)
    return np.broadcast_to(hi, s.shape), np.broadcast_to(lo, s.shape)


def _check(m: np.ndarray, s: np.ndarray, dbl_rnd: int) -> None:
    if np.any(s < 0) or np.any(s > 63) or np.any(m < 0):
        raise CommandStreamError("rescale with a shift outside 0..63 or a negative scale")
    if not 0 <= dbl_rnd <= 30:
        raise CommandStreamError(f"dbl_rnd {dbl_rnd} outside 0..30")


class Scaler:
    """``rescale`` by one scale and shift (an operation's global OFM_SCALE or IFM scales), with
    the checks and rounding terms worked out once, when the plan is built: a small elementwise
    or pooling operation then costs a few numpy calls instead of twenty."""

    def __init__(self, scale, shift, mode: int, dbl_rnd: int = 0):
        self.m = np.asarray(scale, dtype=np.int64)
        self.s = np.asarray(shift, dtype=np.int64)
        _check(self.m, self.s, dbl_rnd)
        if mode not in range(6):
            raise CommandStreamError(f"rounding mode {mode} is not defined")
        self.mode, self.dbl_rnd = mode, dbl_rnd
        self.mmax = max(int(self.m.max(initial=0)) if self.m.size else 0, 1)
        hi, lo = _term_pair(self.s, mode, dbl_rnd)
        self.hi, self.gap = np.asarray(hi), np.asarray(hi - lo)
        self.signed = bool(np.any(self.gap))
        # TRUNCATE_TO_ZERO's 2^s - 1 leaves int64 at the top shifts: those keep rescale's path
        self.int64 = not (mode == TRUNCATE_TO_ZERO and np.any(self.s >= 62))

    def __call__(self, values, bound: int | None = None) -> np.ndarray:
        v = np.asarray(values)
        vmax = bound if bound is not None else int(np.abs(v).max(initial=0)) if v.size and v.dtype != object else None
        if vmax is None or vmax * self.mmax >= _SAFE or v.ndim < self.s.ndim or not self.int64:
            return rescale(values, self.m, self.s, self.mode, self.dbl_rnd, bound)
        y = np.multiply(v, self.m, dtype=np.int64, casting="unsafe")
        if self.signed:
            # the product's sign picks the rounding term (a masked ufunc is ten times slower)
            lower = np.multiply(y < 0, self.gap)
            y += self.hi
            y -= lower
        else:
            y += self.hi
        y >>= self.s
        return y


def rescale(values, scale, shift, mode: int, dbl_rnd: int = 0, bound: int | None = None) -> np.ndarray:
    """``(values * scale + round) >> shift``; scale/shift broadcast (per channel = last axis).

    ``bound``: an upper bound of ``|values|`` known to the caller, instead of measuring it.
    The rounding term depends on the sign of the product, which is the sign of ``values`` for
    the non-negative multipliers the hardware has."""
    v = np.asarray(values)
    m = np.asarray(scale, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    _check(m, s, dbl_rnd)
    # bound: max|values| when the caller knows it (a convolution's accumulator bound)
    vmax = bound if bound is not None else int(np.abs(v).max(initial=0)) if v.size else 0
    mmax = int(m.max(initial=0)) if m.size else 0
    if vmax * max(mmax, 1) < _SAFE:
        y = np.multiply(v, m, dtype=np.int64, casting="unsafe")
        if np.broadcast_shapes(y.shape, s.shape) != y.shape:
            return (y + _round_term(y, s, mode, dbl_rnd)) >> s
        if mode == DOUBLE_SYMMETRIC:  # _round_term's half +- d, without full-size temporaries
            one = np.int64(1)
            half = np.where(s > 0, one << np.maximum(s - 1, 0), 0)
            d = np.where(s > 31 - dbl_rnd, one << max(30 - dbl_rnd, 0), 0)
            lower = np.multiply(y < 0, 2 * d)  # a masked ufunc (where=) is ten times slower
            y += half + d
            y -= lower
        else:
            y += _round_term(y, s, mode, dbl_rnd)  # in place: y is ours
        y >>= s
        return y
    y = v.astype(object) * m.astype(object)
    rnd = _round_term(np.sign(y.astype(np.float64)).astype(np.int64), s, mode, dbl_rnd)
    if mode == TRUNCATE_TO_ZERO:  # (1 << s) - 1 may need more than int64 only for s = 63
        rnd = rnd.astype(object)
    out = (y + rnd.astype(object)) >> np.broadcast_to(s, y.shape).astype(object)
    return np.asarray(out, dtype=object)
