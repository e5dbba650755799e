"""The output stage of a convolution in float32, proven exact element by element.

The exact output stage is ``clip(zp + floor(((v + b) * M + r) / 2^S), lo, hi)`` per channel: ``v``
the accumulator, ``b`` the bias, ``M``/``S`` the scale, ``r`` the rounding term. Every rounding
mode the NPU has fits that form (see ``round_terms``), with ``r`` one of two values depending on
the sign of the value being rounded (TFL's double rounding, U85's symmetric modes). In int64 that
is about nine passes over the map, most of the simulator's time after the matmul.

Here the same value is computed in float32 as ``q = v * A + B`` (``A = M / 2^S``; ``B`` folds bias,
rounding term and zero point) in four passes, with a bound ``eps`` on the float error that follows
from the operation's static accumulator bound. ``floor(q)`` is the exact answer unless ``q`` lies
within ``eps`` of an integer, or within the gap between the two rounding terms above one: those
elements (typically a fraction of a percent) are flagged in the same pass and recomputed in int64
(``exact``: the rounding term of the product's sign, then the shift; for U55's TFL mode the sign
test of its first rounding, at -2^30, picks the same results, as both terms give 0 between). Nothing is approximated: an element either is proven right or is
recomputed exactly. Operations whose bound makes ``eps`` large (or the rounding gap wide, as
truncation's is) keep the integer path.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

U = 2.0 ** -24  # float32 unit roundoff
MAX_FLAGGED_WIDTH = 1.0 / 8  # rounding gap + 2 eps: about this fraction of elements is recomputed
# (the int64 recomputation of a flagged element costs about what the whole integer path costs for
# five elements)
MAX_MAGNITUDE = float(1 << 22)
CHUNK_ELEMENTS = 1 << 16  # rows per block: three float32 blocks of this size stay in L2  # |q| below this: float32 floor and q - floor(q) are exact


class VerifiedScale:
    """One operation's output stage in float32 (see the module docstring). Build with ``build``,
    which returns None when the float path cannot be proven for this operation."""

    def __init__(self, a, b, threshold: float, lo: int, hi: int, exact: tuple):
        self.a, self.b, self.threshold, self.lo, self.hi = a, b, np.float32(threshold), lo, hi
        # the clamp as float32 scalars: np.clip with Python ints looks up the type's limits per call
        self._lo, self._hi = np.float32(lo), np.float32(hi)
        self._exact = exact  # per channel: multiplier, shift, bias, both rounding terms; zero point

    @classmethod
    def build(cls, multiplier, shift, bias, round_hi, round_lo, zero_point: int, lo: int, hi: int,
              bound: int) -> VerifiedScale | None:
        """Per-channel ``multiplier``, ``shift``, ``bias``, the rounding terms of a non-negative and
        of a negative product (numerators over ``2^shift``), the OFM zero point, the clamp
        ``[lo, hi]`` and ``bound`` >= ``|v|``."""
        channels = np.shape(bias)
        m, s, rh, rl = (np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.int64), channels))
                        for x in (multiplier, shift, round_hi, round_lo))
        b = np.asarray(bias, dtype=np.int64)
        if lo > hi or bound >= (1 << 24) or np.any(m < 0) or np.any(s < 0) or np.any(s > 63) or np.any(rh < rl):
            return None
        bmax = int(np.abs(b).max(initial=0))
        if (bound + bmax) * int(m.max(initial=0)) + int(np.abs(rh).max(initial=0)) >= (1 << 62):
            return None  # the exact path works in int64
        a_exact = [Fraction(int(mi), 1 << int(si)) for mi, si in zip(m, s)]
        gap = max((Fraction(int(h - lw), 1 << int(si)) for h, lw, si in zip(rh, rl, s)), default=Fraction(0))
        b_exact = [Fraction(int(bi) * int(mi) + int(h), 1 << int(si)) + zero_point
                   for bi, mi, h, si in zip(b, m, rh, s)]
        va = max((bound * ai for ai in a_exact), default=Fraction(0))
        bq = max((abs(bi) for bi in b_exact), default=Fraction(0))
        # |q - exact| <= u (3 |v| A + 2 |B|) (+ u^2 terms): rounding of A and B to float32, of the
        # product and of the sum; a margin covers the higher-order terms and the shift by lo_thr
        eps = U * (3.01 * float(va) + 2.01 * float(bq) + 2.0) + 2.0 ** -40
        lo_thr = eps + float(gap)
        if 2 * eps + float(gap) > MAX_FLAGGED_WIDTH or float(va + bq) + 2 > MAX_MAGNITUDE:
            return None
        # q' = q - lo_thr: floor(q') is the answer unless frac(q') >= 1 - eps - lo_thr
        a = np.array([float(x) for x in a_exact], dtype=np.float32)
        bf = np.array([float(x) - lo_thr for x in b_exact], dtype=np.float32)
        return cls(a, bf, 1.0 - eps - lo_thr, lo, hi, (m, s, b, rh, rl, zero_point))

    def exact(self, v: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """The integer output stage of accumulators ``v`` (int64) in ``channel``: the rounding term
        of the product's sign, the shift, the zero point and the clamp."""
        m, s, b, rh, rl, zp = self._exact
        y = (v + b[channel]) * m[channel]
        y += np.where(y < 0, rl[channel], rh[channel])
        y >>= s[channel]
        y += zp
        return np.clip(y, self.lo, self.hi, out=y)

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """``acc``: float32 accumulators (..., channels), exact integers, not modified. Returns the
        clamped outputs as float32 whole numbers. Large maps go in blocks of rows that stay in
        the cache through the passes."""
        channels = acc.shape[-1]
        out = np.empty(acc.shape, dtype=np.float32)
        rows_v, rows_o = acc.reshape(-1, channels), out.reshape(-1, channels)
        step = max(1, CHUNK_ELEMENTS // channels)
        q = np.empty((min(step, rows_v.shape[0]), channels), dtype=np.float32)
        found = []
        for first in range(0, rows_v.shape[0], step):
            v, o = rows_v[first : first + step], rows_o[first : first + step]
            f = q[: v.shape[0]]
            np.multiply(v, self.a, out=f)
            f += self.b
            np.floor(f, out=o)
            f -= o  # the fraction, in [0, 1)
            np.clip(o, self._lo, self._hi, out=o)
            flagged = f >= self.threshold
            if flagged.any():
                found.append(np.flatnonzero(flagged) + first * channels)
        if found:  # recomputed exactly, in one call
            idx = np.concatenate(found) if len(found) > 1 else found[0]
            out.reshape(-1)[idx] = self.exact(rows_v.reshape(-1)[idx].astype(np.int64), idx % channels)
        return out
