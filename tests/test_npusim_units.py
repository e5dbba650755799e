"""Small parts of npu-sim checked against first principles."""

from __future__ import annotations

import numpy as np
import pytest

from ethos_kws.backends.npusim.commands import (
    decode_fields,
    decode_stream,
    param_fields,
)
from ethos_kws.backends.npusim.featuremap import NHCWB16, NHWC, FeatureMap, FmAccess, read_fm, write_fm
from ethos_kws.backends.npusim.memory import Memory
from ethos_kws.backends.npusim.rescale import NATURAL, TFL, TRUNCATE, Rescale, rescale, round_one
from ethos_kws.backends.npusim.scales import decode_scales
from ethos_kws.errors import CommandStreamError


def _tflite_mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier (SaturatingRoundingDoublingHighMul + RoundingDivideByPOT)."""
    left, right = max(shift, 0), max(-shift, 0)
    ab = x * (1 << left) * m
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = ab + nudge
    high = q // (1 << 31) if q >= 0 else -((-q) // (1 << 31))
    mask = (1 << right) - 1
    rem, threshold = high & mask, (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if rem > threshold else 0)


def test_tfl_rounding_is_tflite_double_rounding():
    rng = np.random.default_rng(0)
    x = rng.integers(-(1 << 24), 1 << 24, 3000)
    m = rng.integers(1 << 30, (1 << 31) - 1, 3000)
    s = rng.integers(20, 50, 3000)
    got = rescale(x[:, None], m[:, None], s[:, None], TFL)[:, 0]
    assert got.tolist() == [_tflite_mbqm(int(a), int(b), 31 - int(c)) for a, b, c in zip(x, m, s)]
    # the per-channel fast path (shift on the last axis) agrees too
    got2 = rescale(x.reshape(-1, 3), m[:3], s[:3] + 12, TFL)
    assert got2.ravel().tolist() == [round_one(int(a) * int(m[i % 3]), int(s[i % 3] + 12), TFL)
                                     for i, a in enumerate(x)]


@pytest.mark.parametrize("mode, expected", [
    (NATURAL, [-2, -1, -1, 0, 1, 2, 3]),  # half up: -2.5 -> -2, 2.5 -> 3
    (TRUNCATE, [-2, -1, -1, 0, 0, 1, 2]),  # toward zero
    (TFL, [-2, -1, -1, 0, 1, 2, 3]),  # shift <= 31: same as NATURAL
])
def test_rounding_modes_on_halves(mode, expected):
    v = np.array([-5, -3, -2, 0, 1, 3, 5])
    assert rescale(v, 1, 1, mode).tolist() == [round_one(int(a), 1, mode) for a in v]
    assert rescale(v * 2, 1, 2, mode).tolist() == expected


@pytest.mark.parametrize("mode", [NATURAL, TRUNCATE, TFL])
@pytest.mark.parametrize("shifts", ["low", "high", "mixed", "zero"])
@pytest.mark.parametrize("bound", ["static", "measured", "too_small_for_int64"])
@pytest.mark.parametrize("chunk", [1 << 15, 16])  # 16: in blocks of 2 rows
def test_prepared_rescale_matches_the_scalar_reference(mode, shifts, bound, chunk, monkeypatch):
    """The prepared per-plan rescale (bias folded into the offset, in-place kernels, blocks of
    rows) gives round_one((v + bias) * M, s) for every mode and shift range, from float or int input."""
    monkeypatch.setattr("ethos_kws.backends.npusim.rescale.CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng([mode, ["low", "high", "mixed", "zero"].index(shifts), len(bound)])
    c = 7
    s = {"low": rng.integers(1, 32, c), "high": rng.integers(32, 64, c),
         "mixed": rng.integers(0, 64, c), "zero": np.zeros(c, dtype=np.int64)}[shifts]
    m = rng.integers(1 << 30, (1 << 31) - 1, c)
    bias = rng.integers(-(1 << 20), 1 << 20, c)
    v = rng.integers(-(1 << 23), 1 << 23, (3, 4, 5, c))
    if bound == "too_small_for_int64":  # values whose product needs Python integers
        v = v << 20
    r = Rescale(m, s, mode, int(np.abs(v).max()) if bound == "static" else None, bias)
    for x in (v, v.astype(np.float64)):
        got = r.apply(x)
        want = [round_one((int(a) + int(bias[i % c])) * int(m[i % c]), int(s[i % c]), mode)
                for i, a in enumerate(v.ravel())]
        assert np.asarray(got).ravel().tolist() == want


def test_big_values_fall_back_to_exact_integers():
    v = np.array([(1 << 40) + 12345, -(1 << 40) - 777])
    got = rescale(v, (1 << 32) - 1, 45, TFL)
    assert got.tolist() == [round_one(int(a) * ((1 << 32) - 1), 45, TFL) for a in v]


def test_scale_stream_layout():
    bias, scale, shift = -(1 << 39) + 5, 0xDEADBEEF, 37
    raw = (bias & ((1 << 40) - 1)).to_bytes(5, "little") + scale.to_bytes(4, "little") + bytes([shift])
    ss = decode_scales(raw * 3 + bytes(2), 3)
    assert ss.bias.tolist() == [bias] * 3 and ss.scale.tolist() == [scale] * 3 and ss.shift.tolist() == [37] * 3
    with pytest.raises(CommandStreamError, match="fewer than the 4 channels"):
        decode_scales(raw * 3, 4)


def _fm(layout, **kw):
    base = {"name": "IFM", "region": 1, "bases": (0, 1000, 2000, 3000), "height0": 100, "height1": 100, "width0": 100,
                "stride_x": 3, "stride_y": 30, "stride_c": 1, "layout": layout, "bits": 8, "signed": True, "zero_point": 0}
    base.update(kw)
    return FeatureMap(**base)


def test_nhwc_and_tiles():
    fm = _fm(NHWC, height0=2, height1=3, width0=4)
    off = fm.element_offsets(5, 6, 3)
    assert off[1, 3, 2] == 0 + 1 * 30 + 3 * 3 + 2  # tile 0
    assert off[2, 3, 0] == 2000 + 0 * 30 + 3 * 3  # below height0, left of width0: tile 2
    assert off[1, 5, 1] == 1000 + 1 * 30 + 1 * 3 + 1  # right of width0: tile 1
    assert off[4, 4, 0] == 3000 + 1 * 30  # right and below height1: tile 3


def test_nhwc_channels_are_contiguous_whatever_stride_c():
    """NHWC channels step by the element size: STRIDE_C counts only between NHCWB16 bricks (Vela's
    own address model). Regor's U55 int32 TRANSPOSE reads its tensor as int8 with STRIDE_C 4
    (op matrix ``transpose_int32``, bit exact); stepping by 4 would read past its region."""
    assert _fm(NHWC, stride_c=4).element_offsets(1, 2, 5).tolist() == [[[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]]]


def test_nhcwb16_bricks():
    fm = _fm(NHCWB16, stride_x=16, stride_y=400, stride_c=80, bits=16)
    off = fm.element_offsets(2, 5, 40)
    assert off[1, 2, 35] == 400 + 2 * 16 * 2 + 2 * 80 + 3 * 2


def test_feature_map_bounds_are_checked():
    mem = Memory.create(1, b"\0" * 16, 40, 40, True, 2048)
    with pytest.raises(CommandStreamError, match="region 1 at offset 0 length 52 is outside the region"):
        _fm(NHWC, stride_x=1, stride_y=10).byte_index(mem, 5, 10, 3)


@pytest.mark.parametrize("layout, kw, strided", [
    (NHWC, {"stride_x": 20, "stride_y": 100, "stride_c": 1}, True),
    (NHCWB16, {"stride_x": 16, "stride_y": 16 * 5 * 2, "stride_c": 16 * 5}, True),  # 2 bricks: 20 channels
    (NHWC, {"stride_x": 20, "stride_y": 100, "stride_c": 1, "height0": 2, "width0": 3}, False),  # tiles
    (NHWC, {"stride_x": 1, "stride_y": 1, "stride_c": 1}, False),  # overlapping: reads only
])
def test_strided_feature_map_access_matches_the_gather(layout, kw, strided):
    """FmAccess (strided views of the region) reads and writes the bytes read_fm/write_fm do."""
    fm = _fm(layout, bases=(0, 700, 1400, 2100), **kw)
    b, size = 3, 4000
    mem = Memory.create(b, b"\0" * 16, size, size, True, 2048)
    rng = np.random.default_rng(7)
    mem.region(1)[:] = rng.integers(0, 256, (b, size), dtype=np.uint8)
    index = fm.byte_index(mem, 4, 5, 20)
    acc = FmAccess(1, index, fm.dtype)
    assert (acc.pieces is not None) == strided or not strided and acc.pieces is not None and not acc.injective
    assert np.array_equal(acc.read(mem), read_fm(mem, 1, index, fm.dtype))
    out = np.zeros((b, 6, 7, 20), dtype=np.float32)
    acc.read_into(mem, out[:, 1:5, 1:6])
    assert np.array_equal(out[:, 1:5, 1:6], read_fm(mem, 1, index, fm.dtype)) and not out[:, 0].any()
    values = rng.integers(-128, 128, (b, 4, 5, 20))
    want = mem.region(1).copy()
    write_fm(mem, 1, index, values, fm.dtype)
    want, mem.region(1)[:] = mem.region(1).copy(), want
    acc.write(mem, values)
    assert np.array_equal(mem.region(1), want)


def test_injectivity_without_unique_matches_unique():
    """FmAccess decides injectivity from the strides where it can (one affine map, NHCWB16 bricks
    with a partial last brick): always the answer np.unique gives."""
    rng = np.random.default_rng(3)
    mem = Memory.create(1, b"\0" * 16, 1 << 16, 1 << 16, True, 2048)
    for _ in range(300):
        layout = NHWC if rng.random() < 0.5 else NHCWB16
        h, w, c = (int(v) for v in rng.integers(1, 6, 3)) if layout == NHWC else (
            int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 40)))
        kw = {"stride_x": int(rng.integers(1, 40)), "stride_y": int(rng.integers(1, 400)), "stride_c": int(rng.integers(1, 40))}
        if layout == NHCWB16:
            kw["stride_x"], kw["stride_c"] = 16, int(rng.integers(1, 3 * 16 * w))
        index = _fm(layout, **kw).byte_index(mem, h, w, c)
        acc = FmAccess(1, index, np.dtype("i1"))
        if acc.pieces is not None:
            assert acc.injective == (np.unique(index).size == index.size), (layout, h, w, c, kw)


def test_fields_come_from_vela_tables():
    assert [f for f, _, _ in param_fields("NPU_SET_IFM_PRECISION")] == ["precision", "format", "scale_mode", "round_mode"]
    assert decode_fields("NPU_SET_OFM_PRECISION", 0x8145) == {"precision": 5, "format": 1, "scaling": 1, "rounding": 2}
    cmds = decode_stream(np.array([0x0001_0005, 0x0026_4024, 0xFC0FC0FE, 0xFFFF_0000], dtype=np.uint32), 10)
    assert [c.name for c in cmds] == ["NPU_OP_POOL", "NPU_SET_OFM_SCALE", "NPU_OP_STOP"]
    assert cmds[1].payload == 0xFC0FC0FE and cmds[1].param & 0x3F == 38


def test_count_leading_zeros_of_every_bit_length():
    """ELEMENTWISE CLZ (U55, U65 and U85 share it): every power of two and its neighbours, random
    32-bit patterns, negative int32 values, against Python's bit_length."""
    from ethos_kws.backends.npusim.ops.common import count_leading_zeros

    powers = [1 << k for k in range(33)]
    values = sorted({p + d for p in powers for d in (-1, 0, 1)} - {1 << 32, (1 << 32) + 1})
    rng = np.random.default_rng(7)
    v = np.concatenate([np.array(values, dtype=np.int64), rng.integers(-(1 << 31), 1 << 32, 20000)])
    expected = [32 - (x & 0xFFFFFFFF).bit_length() for x in v.tolist()]
    assert count_leading_zeros(v).tolist() == expected


def test_const_reads_keep_read_only_streams_and_reread_writable_ones():
    """``ConstReads``: a stream in region 0 is read once per read-only buffer; one in a writable
    region is read on every run (a DMA may have rewritten it); other read-only bytes are read again."""
    from ethos_kws.backends.npusim.memory import ConstReads

    flash = bytes(range(64))
    mem = Memory.create(1, flash, 64, 64, True, 0)
    reads = ConstReads()
    assert reads.read(mem, 0, 8, 4, "w") == flash[8:12]
    mem.regions[1][0, :4] = [9, 9, 9, 9]
    assert reads.read(mem, 1, 0, 4, "w") == bytes([9] * 4)
    mem.regions[1][0, :4] = [7, 7, 7, 7]
    assert reads.read(mem, 1, 0, 4, "w") == bytes([7] * 4)
    other = bytes(reversed(range(64)))
    assert reads.read(Memory.create(1, other, 64, 64, True, 0), 0, 8, 4, "w") == other[8:12]
    with pytest.raises(CommandStreamError):
        reads.read(mem, 0, 62, 4, "w")
