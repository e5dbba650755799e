"""The compiled output stage and depthwise kernel (npusim.kernels) against the numpy integer
reference, for every U55 and U85 rounding mode it takes, on random accumulators and on rounding
ties, and for accumulator bounds the float32 stage cannot prove (float64 accumulators)."""

from __future__ import annotations

import numpy as np
import pytest

from ethos_kws.backends.npusim import kernels
from ethos_kws.backends.npusim import rescale as u55
from ethos_kws.backends.npusim.ops.common import Kernel
from ethos_kws.backends.npusim.ops.conv import accumulate
from ethos_kws.backends.npusim.u85 import rescale as u85

from rescale_cases import accumulators, params

pytestmark = pytest.mark.skipif(kernels.numba is None, reason="numba is not installed")


def _u55_reference(m, s, b, mode, zp, lo, hi):
    def reference(v):
        y = u55.rescale(v.astype(np.int64) + b, m, s, mode)
        return np.clip(y + zp, lo, hi)
    return reference


def _check(stage, v, reference, dtype=np.int8):
    got = stage.apply(v)
    assert got.dtype == dtype and got.shape == v.shape
    np.testing.assert_array_equal(got.astype(np.int64), reference(v))


@pytest.mark.parametrize("mode", [u55.TFL, u55.NATURAL])
@pytest.mark.parametrize("multiplier_bits", [15, 31])  # shifts below and above 31 (TFL's two roundings)
def test_u55_modes_match_the_integer_rescale(mode, multiplier_bits):
    rng = np.random.default_rng(mode * 100 + multiplier_bits)
    m, s, b = params(rng, multiplier_bits, (7, 14))
    zp, lo, hi, bound = int(rng.integers(-20, 20)), -128, 127, 1 << 18
    stage = kernels.IntegerStage.build(m, s, b, *u55.round_terms(s, mode), zp, lo, hi, bound, np.int8)
    _check(stage, accumulators(rng, m, s, b, bound), _u55_reference(m, s, b, mode, zp, lo, hi))


@pytest.mark.parametrize("mode", [u85.DOUBLE_SYMMETRIC, u85.NATURAL, u85.DOUBLE_ASYMMETRIC, u85.SYMMETRIC,
                                  u85.TRUNCATE_TO_LOWER])
@pytest.mark.parametrize("dbl_rnd", [0, 3])
def test_u85_modes_match_the_integer_rescale(mode, dbl_rnd):
    rng = np.random.default_rng(mode * 10 + dbl_rnd)
    m, s, b = params(rng, 31, (7, 14))
    zp, lo, hi, bound = int(rng.integers(-20, 20)), -128, 127, 1 << 18
    stage = kernels.IntegerStage.build(m, s, b, *u85.round_terms(s, mode, dbl_rnd), zp, lo, hi, bound, np.int8)

    def reference(v):
        return np.clip(u85.rescale(v.astype(np.int64) + b, m, s, mode, dbl_rnd) + zp, lo, hi)

    _check(stage, accumulators(rng, m, s, b, bound), reference)


def test_bounds_float32_cannot_prove_are_exact_in_float64():
    """int16 IFMs: accumulators up to 2^28 (float32 is exact below 2^24), where the float32 stage
    declines; (v + b) * M still fits int64."""
    rng = np.random.default_rng(3)
    m, s, b = params(rng, 31, (20, 30))
    bound = 1 << 28
    v = rng.integers(-bound, bound + 1, (500, len(b))).astype(np.float64)
    for zp, lo, hi, dtype in ((0, -32768, 32767, np.int16), (3, -128, 127, np.int8)):
        stage = kernels.IntegerStage.build(m, s, b, *u55.round_terms(s, u55.TFL), zp, lo, hi, bound, dtype)
        _check(stage, v, _u55_reference(m, s, b, u55.TFL, zp, lo, hi), dtype)


def test_clamp_outside_the_type_and_crossed_bounds():
    rng = np.random.default_rng(4)
    m, s, b = params(rng, 31, (7, 14))
    v = accumulators(rng, m, s, b, 1 << 18)
    terms = u55.round_terms(s, u55.TFL)
    wide = kernels.IntegerStage.build(m, s, b, *terms, 0, 0, 255, 1 << 18, np.int8)  # a LUT's uint8 input
    _check(wide, v, _u55_reference(m, s, b, u55.TFL, 0, 0, 255), np.int64)
    crossed = kernels.IntegerStage.build(m, s, b, *terms, 0, 9, 4, 1 << 18, np.int8)
    assert (crossed.apply(v) == 4).all()  # np.clip's order: the maximum wins


def test_int64_overflow_is_refused():
    m, s, b = np.full(4, (1 << 32) - 1), np.full(4, 40), np.zeros(4, dtype=np.int64)
    terms = u55.round_terms(s, u55.TFL)
    assert kernels.IntegerStage.build(m, s, b, *terms, 0, -128, 127, 1 << 29, np.int8) is not None
    assert kernels.IntegerStage.build(m, s, b, *terms, 0, -128, 127, 1 << 30, np.int8) is None
    assert kernels.IntegerStage.build(m, np.full(4, 64), b, *terms, 0, -128, 127, 1, np.int8) is None


@pytest.mark.parametrize("stride,dilation", [((1, 1), (1, 1)), ((2, 1), (1, 1)), ((1, 2), (2, 1))])
def test_depthwise_matches_accumulate_then_rescale(stride, dilation):
    rng = np.random.default_rng(stride[0] * 7 + dilation[1])
    c, h, w = 37, 6, 5
    k = Kernel(3, 2, stride[0], stride[1], dilation[0], dilation[1], 1, 1, 1, 0, False)
    ih, iw = k.ifm_size(h, w)
    xp = rng.integers(-128, 128, (3, ih + 2, iw + 1, c)).astype(np.float32)
    wt = rng.integers(-127, 128, (3, 2, c)).astype(np.float32)
    m, s, b = (np.resize(a, c) for a in params(rng, 31, (7, 14)))
    stage = kernels.IntegerStage.build(m, s, b, *u55.round_terms(s, u55.TFL), -5, -128, 127, 6 * 128 * 128,
                                       np.int8)
    got = stage.depthwise(xp, wt, k, h, w)
    acc = accumulate(xp, wt, k, h, w, c, c, True, exact=True)
    np.testing.assert_array_equal(got, _u55_reference(m, s, b, u55.TFL, -5, -128, 127)(acc))


def _scalar_values(rng, m: int, s: int, n: int = 3000) -> np.ndarray:
    """int64 values of an elementwise result: random over int32 products, and on and next to the
    rounding ties of ``v * m / 2^s``."""
    top = min(1 << 40, (1 << 61) // m)  # products within int64: beyond, the stage declines (below)
    v = rng.integers(-top, top, n)
    k = rng.integers(-(1 << 20), 1 << 20, n) + 0.5
    ties = np.round(k * np.ldexp(1.0, s) / m).astype(np.int64) + rng.integers(-2, 3, n)
    return np.concatenate([v, ties, [0, 1, -1]]).astype(np.int64)


@pytest.mark.parametrize("family, mode, dbl_rnd", [
    ("u55", u55.TFL, 0), ("u55", u55.NATURAL, 0),
    ("u85", u85.DOUBLE_SYMMETRIC, 0), ("u85", u85.DOUBLE_SYMMETRIC, 4), ("u85", u85.NATURAL, 0),
    ("u85", u85.DOUBLE_ASYMMETRIC, 2), ("u85", u85.SYMMETRIC, 0), ("u85", u85.TRUNCATE_TO_LOWER, 0)])
@pytest.mark.parametrize("m, s", [(1, 0), (1, 5), (1 << 30, 31), (1518500250, 38), (23456, 20)])
def test_scalar_stage_matches_rescale_then_clamp(family, mode, dbl_rnd, m, s):
    """The elementwise output stage: one scale, int64 values, 32-bit and 8-bit clamps."""
    rng = np.random.default_rng(m % 997 + s + mode)
    v = _scalar_values(rng, m, s)
    terms = u55.round_terms(s, mode) if family == "u55" else u85.round_terms(s, mode, dbl_rnd)
    for zp, lo, hi in ((0, -(1 << 31), (1 << 31) - 1), (-5, -128, 127), (3, 10, -10)):
        stage = kernels.ScalarStage.build(m, s, int(terms[0]), int(terms[1]), zp, lo, hi)
        got = stage.apply(v.reshape(1, 1, -1, 3))
        y = u55.rescale(v, m, s, mode) if family == "u55" else u85.rescale(v, m, s, mode, dbl_rnd)
        assert got.dtype == np.int64 and got.shape == (1, 1, v.size // 3, 3)
        np.testing.assert_array_equal(got.reshape(-1), np.clip(y.astype(np.int64) + zp, lo, hi))


def test_scalar_stage_declines_what_int64_cannot_hold():
    """A product beyond int64 (an int32 MUL rescaled by a 31-bit multiplier) and non-int64 input
    go back to the exact path (None); a bad shift builds no stage."""
    stage = kernels.ScalarStage.build(1 << 30, 40, *(int(t) for t in u55.round_terms(40, u55.TFL)), 0, -128, 127)
    assert stage.apply(np.array([1 << 32], dtype=np.int64)) is not None
    assert stage.apply(np.array([3, 1 << 33, 5], dtype=np.int64)) is None
    assert stage.apply(np.array([-(1 << 33)], dtype=np.int64)) is None
    assert stage.apply(np.array([7], dtype=object)) is None
    unit = kernels.ScalarStage.build(1, 62, 1 << 61, 1 << 61, 0, -128, 127)
    assert unit.apply(np.array([-(1 << 62), 1 << 62], dtype=np.int64)) is not None
    assert unit.apply(np.array([np.iinfo(np.int64).min], dtype=np.int64)) is None
    assert kernels.ScalarStage.build(1, 64, 0, 0, 0, -128, 127) is None
    assert kernels.ScalarStage.build(-1, 3, 4, 4, 0, -128, 127) is None
