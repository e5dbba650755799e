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


def rescale(values, scale, shift, mode: int, dbl_rnd: int = 0, bound: int | None = None) -> np.ndarray:
    """``(values * scale + round) >> shift``; scale/shift broadcast (per channel = last axis).

    ``bound``: an upper bound of ``|values|`` known to the caller, instead of measuring it.
    The rounding term depends on the sign of the product, which is the sign of ``values`` for
    the non-negative multipliers the hardware has."""
    v = np.asarray(values)
    m = np.asarray(scale, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if np.any(s < 0) or np.any(s > 63) or np.any(m < 0):
        raise CommandStreamError("rescale with a shift outside 0..63 or a negative scale")
    if not 0 <= dbl_rnd <= 30:
        raise CommandStreamError(f"dbl_rnd {dbl_rnd} outside 0..30")
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
            neg = y < 0
            y += half + d
            np.subtract(y, 2 * d, out=y, where=neg)
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
