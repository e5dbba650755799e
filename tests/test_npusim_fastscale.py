"""The float32 output stage (npusim.fastscale) against the exact integer rescale, for every U55 and
U85 rounding mode, on random accumulators and on accumulators placed on and next to rounding ties
(where a float error would show)."""

from __future__ import annotations

import numpy as np
import pytest

from ethos_kws.backends.npusim import rescale as u55
from ethos_kws.backends.npusim.fastscale import VerifiedScale
from ethos_kws.backends.npusim.u85 import rescale as u85

from rescale_cases import accumulators as _accumulators, params as _params


def _check(fast: VerifiedScale, v: np.ndarray, reference) -> None:
    """The float path, its exact fallback on every element, and the reference agree."""
    calls = []
    exact = fast.exact

    def counted(values, channel):
        calls.append(values.size)
        return exact(values, channel)

    fast.exact = counted
    got = fast.apply(v)
    want = reference(v.astype(np.int64), None)
    np.testing.assert_array_equal(got.astype(np.int64), want)
    assert 0 < sum(calls) < v.size // 4, "the float path recomputed none or most elements"
    channel = np.broadcast_to(np.arange(v.shape[-1]), v.shape).reshape(-1)
    np.testing.assert_array_equal(exact(v.reshape(-1).astype(np.int64), channel), want.reshape(-1))


@pytest.mark.parametrize("mode", [u55.TFL, u55.NATURAL])
@pytest.mark.parametrize("multiplier_bits", [15, 31])  # shifts below and above 31 (TFL's two roundings)
def test_u55_modes_match_the_integer_rescale(mode, multiplier_bits):
    rng = np.random.default_rng(mode * 100 + multiplier_bits)
    m, s, b = _params(rng, multiplier_bits, (7, 14))
    zp, lo, hi, bound = int(rng.integers(-20, 20)), -128, 127, 1 << 18
    fast = VerifiedScale.build(m, s, b, *u55.round_terms(s, mode), zp, lo, hi, bound)
    assert fast is not None

    def reference(v, channel):
        sel = slice(None) if channel is None else channel
        y = u55.shift_round((v + b[sel]) * m[sel], np.broadcast_to(s[sel], v.shape), mode)
        return np.clip(y + zp, lo, hi)

    _check(fast, _accumulators(rng, m, s, b, bound), reference)


@pytest.mark.parametrize("mode", [u85.DOUBLE_SYMMETRIC, u85.NATURAL, u85.DOUBLE_ASYMMETRIC, u85.SYMMETRIC,
                                  u85.TRUNCATE_TO_LOWER])
@pytest.mark.parametrize("dbl_rnd", [0, 3])
def test_u85_modes_match_the_integer_rescale(mode, dbl_rnd):
    rng = np.random.default_rng(mode * 10 + dbl_rnd)
    m, s, b = _params(rng, 31, (7, 14))
    zp, lo, hi, bound = int(rng.integers(-20, 20)), -128, 127, 1 << 18
    fast = VerifiedScale.build(m, s, b, *u85.round_terms(s, mode, dbl_rnd), zp, lo, hi, bound)
    assert fast is not None

    def reference(v, channel):
        sel = slice(None) if channel is None else channel
        y = u85.rescale(v + b[sel], m[sel], s[sel], mode, dbl_rnd)
        return np.clip(y + zp, lo, hi)

    _check(fast, _accumulators(rng, m, s, b, bound), reference)


def test_int16_output_and_a_narrow_clamp():
    rng = np.random.default_rng(7)
    m, s, b = _params(rng, 31, (7, 14))
    for zp, lo, hi in ((0, -32768, 32767), (5, 0, 6)):
        fast = VerifiedScale.build(m, s, b, *u55.round_terms(s, u55.TFL), zp, lo, hi, 1 << 18)
        assert fast is not None

        def reference(v, channel, zp=zp, lo=lo, hi=hi):
            sel = slice(None) if channel is None else channel
            y = u55.shift_round((v + b[sel]) * m[sel], np.broadcast_to(s[sel], v.shape), u55.TFL)
            return np.clip(y + zp, lo, hi)

        _check(fast, _accumulators(rng, m, s, b, 1 << 18), reference)


def test_cases_it_cannot_prove_keep_the_integer_path():
    m, s, b = np.full(4, 1 << 30), np.full(4, 40), np.zeros(4, dtype=np.int64)
    assert u55.round_terms(s, u55.TRUNCATE) is None  # the two rounding terms are a unit apart
    assert u85.round_terms(s, u85.TRUNCATE_TO_ZERO) is None
    terms = u55.round_terms(s, u55.TFL)
    assert VerifiedScale.build(m, s, b, *terms, 0, -128, 127, 1 << 24) is None  # not exact in float32
    assert VerifiedScale.build(m, s, b, *terms, 0, 5, 4, 100) is None  # crossed clamp bounds
    assert VerifiedScale.build(m, np.full(4, 2), b, *u55.round_terms(np.full(4, 2), u55.TFL), 0, -128, 127,
                               1 << 22) is None  # outputs far beyond float32's exact fractions
    near31 = np.full(4, 33)  # TFL's two rounding terms 2^-2 apart: a quarter would be recomputed
    assert VerifiedScale.build(m >> 6, near31, b, *u55.round_terms(near31, u55.TFL), 0, -128, 127, 1 << 10) is None
    assert VerifiedScale.build(m, s, b, *terms, 0, -128, 127, 1 << 20) is not None
