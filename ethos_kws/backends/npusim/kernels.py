"""Compiled inner loops (numba): a convolution's integer output stage in one pass, and depthwise
accumulation fused with it.

The output stage of a convolution is, per element and channel,
``clip(zp + (((v + b) * M + r) >> S), lo, hi)`` with ``r`` the rounding term of the product's sign
(every rounding mode of U55, U65 and U85 but truncation toward zero fits that form: see
``round_terms`` in ``rescale`` and ``u85.rescale``). In numpy that is about nine passes over the map
and an int64 temporary the size of it; compiled it is one pass in the same int64 arithmetic,
written straight into the OFM's element type, so nothing is approximated and nothing needs a proof
beyond the int64 range, which ``IntegerStage.build`` checks from the operation's static
accumulator bound. Depthwise accumulation (a few taps per output) reads the padded IFM once per
tap with the sum in registers, instead of one numpy pass per tap.

The kernels are compiled on first use and cached on disk by numba. Without numba (not installed,
or a platform it does not support) ``IntegerStage.build`` returns None and the numpy paths run.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency; a platform without it keeps the numpy paths
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

INT64_SAFE = 1 << 62  # |(v + b) * M| + |r| below this: no int64 overflow in any step


def _jit(fn):
    if numba is None:
        return None
    try:
        return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)
    except RuntimeError:  # no writable cache location (read-only install and home): compile per process
        return numba.njit(nogil=True, boundscheck=False)(fn)


def kernel_or_python(fn):
    """``fn`` compiled (numba), or ``fn`` itself where numba is missing: for integer logic that is
    exact either way and only slower in Python (the MLW structure walk)."""
    return _jit(fn) or fn


def inline_kernel(fn):
    """A helper inlined into compiled callers (``fn`` itself without numba)."""
    return numba.njit(inline="always", nogil=True)(fn) if numba is not None else fn


def _one(v, bias, m, s, r_hi, r_lo, zp, lo, hi):
    """clip(zp + (((v + bias) * m + r) >> s), lo, hi) of one exact-integer accumulator, r = r_lo
    for a negative product, else r_hi (inlined into the loops below)."""
    y = (np.int64(v) + bias) * m
    y += r_lo if y < 0 else r_hi
    y = (y >> s) + zp
    return min(max(y, lo), hi)


_ONE = inline_kernel(_one) if numba is not None else None


def _stage(acc, bias, m, s, r_hi, r_lo, zp, lo, hi, out):
    """out[i, c] = ``_one`` of acc[i, c] with channel c's parameters (acc: int or float)."""
    rows, channels = acc.shape
    for i in range(rows):
        for c in range(channels):
            out[i, c] = _ONE(acc[i, c], bias[c], m[c], s[c], r_hi[c], r_lo[c], zp, lo, hi)


def _depthwise(xp, w, sy, sx, dy, dx, bias, m, s, r_hi, r_lo, zp, lo, hi, out):
    """Depthwise accumulation over the padded IFM ``xp`` (batch, H, W, C) with per-tap weights
    ``w`` (kh, kw, C), exact in xp's float type, then ``_one`` per output element."""
    batch, height, width, channels = out.shape
    kh, kw = w.shape[0], w.shape[1]
    acc = np.empty(channels, dtype=xp.dtype)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                acc[:] = 0
                for i in range(kh):
                    for j in range(kw):
                        row = xp[b, y * sy + i * dy, x * sx + j * dx]
                        tap = w[i, j]
                        for c in range(channels):
                            acc[c] += row[c] * tap[c]
                for c in range(channels):
                    out[b, y, x, c] = _ONE(acc[c], bias[c], m[c], s[c], r_hi[c], r_lo[c], zp, lo, hi)


def _checked(v, m, s, r_hi, r_lo, zp, lo, hi, limit, out):
    """out[i] = ``_one`` of v[i] with one scale for the whole map while ``|v[i]| <= limit`` (the
    product and its rounding term then stay in int64); False, out incomplete, at the first value
    beyond it."""
    for i in range(v.shape[0]):
        x = v[i]
        if x < -limit or x > limit:
            return False
        out[i] = _ONE(x, 0, m, s, r_hi, r_lo, zp, lo, hi)
    return True


_STAGE = _jit(_stage)
_DEPTHWISE = _jit(_depthwise)
_CHECKED = _jit(_checked)


class IntegerStage:
    """One operation's output stage, compiled (see the module docstring). Build with ``build``,
    which returns None when numba is missing or the int64 range cannot be proven."""

    def __init__(self, params: tuple, dtype: np.dtype):
        self._params = params  # bias, multiplier, shift, both rounding terms, zero point, lo, hi
        self.dtype = np.dtype(dtype)

    @classmethod
    def build(cls, multiplier, shift, bias, round_hi, round_lo, zero_point: int, lo: int, hi: int,
              bound: int, dtype) -> IntegerStage | None:
        """Per-channel ``multiplier``, ``shift``, ``bias``, the rounding terms of a non-negative and
        of a negative product, the OFM zero point, the clamp ``[lo, hi]``, ``bound`` >= ``|v|``
        and the OFM element type (the results' type when the clamp lies inside its range, else
        int64: a LUT's input range may differ; crossed bounds give ``hi``, as ``np.clip``)."""
        if _STAGE is None:
            return None
        channels = np.shape(bias)
        m, s, rh, rl, b = (np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.int64), channels))
                           for x in (multiplier, shift, round_hi, round_lo, bias))
        info = np.iinfo(dtype)
        if not (info.min <= lo <= info.max and info.min <= hi <= info.max):
            dtype = np.int64
        if np.any(s < 0) or np.any(s > 63) or np.any(m < 0):
            return None
        top = (int(bound) + int(np.abs(b).max(initial=0))) * int(m.max(initial=0))
        if top + max(int(np.abs(rh).max(initial=0)), int(np.abs(rl).max(initial=0))) >= INT64_SAFE:
            return None
        return cls((b, m, s, rh, rl, np.int64(zero_point), np.int64(lo), np.int64(hi)), dtype)

    @classmethod
    def concat(cls, stages: list) -> IntegerStage | None:
        """The stages of channel ranges side by side (a layer's stripes), or None when they are not
        all compiled stages with the same zero point, clamp and type."""
        first = stages[0]
        if not all(isinstance(s, IntegerStage) and s.dtype == first.dtype and s._params[5:] == first._params[5:]
                   for s in stages):
            return None
        per_channel = tuple(np.concatenate([s._params[k] for s in stages]) for k in range(5))
        return cls(per_channel + first._params[5:], first.dtype)

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """``acc``: accumulators (..., channels), exact integers. Returns the OFM values."""
        channels = acc.shape[-1]
        rows = np.ascontiguousarray(acc).reshape(-1, channels)
        out = np.empty(acc.shape, dtype=self.dtype)
        _STAGE(rows, *self._params, out.reshape(-1, channels))
        return out

    def depthwise(self, xp: np.ndarray, w: np.ndarray, k, h: int, width: int) -> np.ndarray:
        """Depthwise convolution of the padded IFM ``xp`` (batch, H, W, C; float, exact integers)
        by per-tap weights ``w`` (kh, kw, C, same type), then this output stage."""
        out = np.empty((xp.shape[0], h, width, w.shape[2]), dtype=self.dtype)
        _DEPTHWISE(xp, w, k.stride_y, k.stride_x, k.dilation_y, k.dilation_x, *self._params, out)
        return out


class ScalarStage:
    """The output stage of an elementwise operation, whose OFM_SCALE is one multiplier and shift:
    ``_one`` of each int64 value in one compiled call, where numpy takes about ten calls on maps
    of a few elements (Vela's softmax is two dozen of them). The int64 range is checked per value,
    as the values are not bounded when the plan is built: ``apply`` returns None when one could
    leave it, and the caller's exact path (Python integers) runs instead."""

    def __init__(self, params: tuple):
        self._params = params  # multiplier, shift, both rounding terms, zero point, lo, hi, limit

    @classmethod
    def build(cls, multiplier: int, shift: int, round_hi: int, round_lo: int, zero_point: int,
              lo: int, hi: int) -> ScalarStage | None:
        """None without numba or for a scale the exact path refuses (it names the error)."""
        m, s = int(multiplier), int(shift)
        if _CHECKED is None or not 0 <= s <= 63 or m < 0:
            return None
        # |v| * m + |r| <= 2^63 - 1: no step of ``_one`` overflows
        limit = ((1 << 63) - 1 - max(abs(int(round_hi)), abs(int(round_lo)))) // max(m, 1)
        if limit < 0:
            return None
        return cls(tuple(np.int64(x) for x in (m, s, round_hi, round_lo, zero_point, lo, hi, limit)))

    def apply(self, v: np.ndarray) -> np.ndarray | None:
        """The finished OFM values (int64, v's shape), or None (v is not int64 or leaves the range)."""
        if v.dtype != np.int64:
            return None
        flat = np.ascontiguousarray(v).reshape(-1)
        out = np.empty(flat.shape, dtype=np.int64)
        if not _CHECKED(flat, *self._params, out):
            return None
        return out.reshape(v.shape)
