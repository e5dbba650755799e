"""Feature maps in memory: NHWC and NHCWB16 layouts, up to four tiles, byte strides.

A feature map is described by the registers of one operand (IFM, IFM2 or OFM). For element
(y, x, c): if x >= W0 use tile 1 (x -= W0) and, if y >= H1, tile 3 (y -= H1); otherwise, if
y >= H0, tile 2 (y -= H0). NHWC: ``base + y*STRIDE_Y + x*STRIDE_X + c*STRIDE_C``; NHCWB16:
``base + y*STRIDE_Y + x*16*esz + (c//16)*STRIDE_C + (c%16)*esz``. Offsets are computed once per
operation as an index array and reused for every inference and batch item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import data_format as DataFormat

from ...errors import CommandStreamError
from .memory import Memory
from .registers import RegisterFile

NHWC, NHCWB16 = DataFormat.NHWC.value, DataFormat.NHCWB16.value
IFM_BITS = {0: 8, 1: 16, 2: 32}  # IFM_PRECISION [3:2] / OFM_PRECISION [2:1]
MAX_ELEMENTS = 1 << 26  # no single operand of a sane stream is this large


def element_dtype(bits: int, signed: bool) -> np.dtype:
    return np.dtype({8: "i1", 16: "<i2", 32: "<i4"}[bits] if signed else {8: "u1", 16: "<u2", 32: "<u4"}[bits])


@dataclass(frozen=True)
class FeatureMap:
    name: str  # "IFM", "IFM2", "OFM"
    region: int
    bases: tuple[int, int, int, int]
    height0: int
    height1: int
    width0: int
    stride_x: int
    stride_y: int
    stride_c: int
    layout: int
    bits: int
    signed: bool
    zero_point: int

    @property
    def esize(self) -> int:
        return self.bits // 8

    @property
    def dtype(self) -> np.dtype:
        return element_dtype(self.bits, self.signed)

    @classmethod
    def from_registers(cls, r: RegisterFile, name: str) -> FeatureMap:
        prec = r.param(f"{name}_PRECISION")
        # the precision field: [0] signed, then the element size code ([2:1] OFM, [3:2] IFM)
        precision, layout = r.field(f"{name}_PRECISION", "precision"), r.field(f"{name}_PRECISION", "format")
        bits_code = (precision >> 1) & 0x3 if name == "OFM" else (precision >> 2) & 0x3
        if bits_code not in IFM_BITS:
            raise CommandStreamError(f"{name}_PRECISION 0x{prec:04x}: unsupported element size code {bits_code}")
        if layout not in (NHWC, NHCWB16):
            raise CommandStreamError(f"{name}_PRECISION 0x{prec:04x}: unsupported layout {layout}")
        bits = IFM_BITS[bits_code]
        signed = bool(prec & 1)
        zp = r.param(f"{name}_ZERO_POINT")
        # the zero point register holds a value of the operand's type (16 bits, sign-extended when signed)
        if signed or bits > 8:
            zp = zp - 0x10000 if zp & 0x8000 else zp
        if name == "OFM":
            h0, h1, w0 = r.param("OFM_HEIGHT0_M1"), r.param("OFM_HEIGHT1_M1"), r.param("OFM_WIDTH0_M1")
        else:
            h0, h1, w0 = r.param(f"{name}_HEIGHT0_M1"), r.param(f"{name}_HEIGHT1_M1"), r.param(f"{name}_WIDTH0_M1")
        return cls(
            name=name,
            region=r.param(f"{name}_REGION") & 0x7,
            bases=tuple(r.address(f"{name}_BASE{i}") for i in range(4)),
            height0=h0 + 1, height1=h1 + 1, width0=w0 + 1,
            stride_x=r.address(f"{name}_STRIDE_X"), stride_y=r.address(f"{name}_STRIDE_Y"),
            stride_c=r.address(f"{name}_STRIDE_C"),
            layout=layout, bits=bits, signed=signed, zero_point=zp,
        )

    def tile_map(self, h: int, w: int) -> np.ndarray:
        """The tile (0..3) each element (y, x) of an h x w access lies in: [h, w]."""
        y = np.arange(h, dtype=np.int64)[:, None]
        x = np.arange(w, dtype=np.int64)[None, :]
        right = x >= self.width0
        return np.where(right, np.where(y >= self.height1, 3, 1), np.where(y >= self.height0, 2, 0))

    def element_offsets(self, h: int, w: int, c: int) -> np.ndarray:
        """Byte offset of every element (h, w, c) as int64 [h, w, c]."""
        if h <= 0 or w <= 0 or c <= 0 or h * w * c > MAX_ELEMENTS:
            raise CommandStreamError(f"{self.name}: unsupported shape {h}x{w}x{c}")
        y = np.arange(h, dtype=np.int64)[:, None]
        x = np.arange(w, dtype=np.int64)[None, :]
        tile = self.tile_map(h, w)
        yy = y - np.select([tile == 3, tile == 2], [self.height1, self.height0], 0)
        xx = x - np.where(tile % 2 == 1, self.width0, 0)
        base = np.asarray(self.bases, dtype=np.int64)[tile]
        cc = np.arange(c, dtype=np.int64)
        if self.layout == NHWC:
            xy = base + yy * self.stride_y + xx * self.stride_x
            # NHWC channels are contiguous: STRIDE_C counts only between NHCWB16 bricks. Vela's
            # own address model says so (register_command_stream_util.get_address), and Regor's
            # U55 int32 TRANSPOSE, which reads its int32 tensor as int8 with STRIDE_C 4, needs it
            coff = cc * self.esize
        else:
            xy = base + yy * self.stride_y + xx * (16 * self.esize)
            coff = (cc // 16) * self.stride_c + (cc % 16) * self.esize
        return xy[:, :, None] + coff[None, None, :]

    def byte_index(self, mem: Memory, h: int, w: int, c: int) -> np.ndarray:
        """Bounds-checked byte index array: [h, w, c] for 8-bit, [h, w, c, esize] otherwise."""
        off = self.element_offsets(h, w, c)
        lo, hi = int(off.min()), int(off.max()) + self.esize
        mem.check(self.region, lo, hi, f"{self.name} {h}x{w}x{c}")
        if self.esize == 1:
            return off
        return off[..., None] + np.arange(self.esize, dtype=np.int64)


def read_fm(mem: Memory, region: int, index: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Gather a feature map: (batch, h, w, c) of ``dtype``."""
    raw = mem.region(region)[:, index]
    if dtype.itemsize == 1:
        return raw.view(dtype)
    return np.ascontiguousarray(raw).view(dtype)[..., 0]


def write_fm(mem: Memory, region: int, index: np.ndarray, values: np.ndarray, dtype: np.dtype) -> None:
    """Scatter (batch, h, w, c) values (already in range) into a region."""
    mem.check_writable(region, "OFM")
    data = np.ascontiguousarray(values.astype(dtype, copy=False))
    if dtype.itemsize == 1:
        mem.region(region)[:, index] = data.view(np.uint8)
    else:
        mem.region(region)[:, index] = data.view(np.uint8).reshape((data.shape[0],) + index.shape)


def _affine(a: np.ndarray) -> tuple[int, ...] | None:
    """Per-axis strides when ``a`` (int64 offsets) is ``a[0] + sum(i_k * stride_k)``, else None."""
    strides = []
    for k, n in enumerate(a.shape):
        if n == 1:
            strides.append(0)
            continue
        step = [0] * a.ndim
        step[k] = 1
        strides.append(int(a[tuple(step)] - a[(0,) * a.ndim]))
    pred = int(a[(0,) * a.ndim]) + sum(np.arange(n, dtype=np.int64).reshape((-1,) + (1,) * (a.ndim - k - 1)) * s
                                       for k, (n, s) in enumerate(zip(a.shape, strides)))
    if any(s < 0 for s in strides) or not np.array_equal(np.broadcast_to(pred, a.shape), a):
        return None
    return tuple(strides)


def _spans_disjoint(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """An affine index is injective when, axes taken by increasing stride, each stride exceeds
    the span of the axes before it (sufficient, not necessary: ``np.unique`` decides the rest;
    this spares it on every dense map, a third of a DS-CNN-L load)."""
    span = 0
    for n, stride in sorted((sn for sn in zip(shape, strides) if sn[0] > 1), key=lambda sn: sn[1]):
        if stride <= span:
            return False
        span += (n - 1) * stride
    return True


def _one_piece(pieces) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(shape, strides) of one affine map holding every piece: the piece itself, or NHCWB16's
    whole bricks with the last partial brick as one more brick (it starts where that brick
    would and steps alike)."""
    if len(pieces) == 1:
        return pieces[0][2], pieces[0][3]
    if len(pieces) != 2:
        return None
    (_, off, shape, strides), (_, off2, shape2, strides2) = pieces
    if (len(shape) == 4 and len(shape2) == 3 and shape2[:2] == shape[:2] and shape2[2] <= shape[3]
            and strides2 == (strides[0], strides[1], strides[3]) and off2 == off + shape[2] * strides[2]):
        return shape[:2] + (shape[2] + 1, shape[3]), strides
    return None


class FmAccess:
    """Reads and writes of one 8-bit feature map through its byte index ``[h, w, c]``, as strided
    views of the region when the index is affine (one tile: NHWC as one view, NHCWB16 as its
    whole 16-channel bricks and the last partial brick) and, for writes, injective: a copy instead
    of a gather or scatter, with the same bytes. Any other index (more tiles, 16/32-bit elements)
    goes through ``read_fm``/``write_fm``. The index was bounds-checked when it was built."""

    def __init__(self, region: int, index: np.ndarray, dtype: np.dtype):
        self.region, self.index, self.dtype = region, index, np.dtype(dtype)
        self.pieces: list[tuple[slice, int, tuple[int, ...], tuple[int, ...]]] | None = None
        self.injective = False
        if self.dtype.itemsize != 1 or index.ndim != 3:
            return
        h, w, c = index.shape
        parts = [(slice(0, c), index)]
        if _affine(index) is None:
            full = c // 16 * 16
            parts = []
            if full:
                parts.append((slice(0, full), index[:, :, :full].reshape(h, w, full // 16, 16)))
            if full < c:
                parts.append((slice(full, c), index[:, :, full:]))
        pieces = []
        for cs, a in parts:
            strides = _affine(a)
            if strides is None:
                return
            pieces.append((cs, int(a.flat[0]), a.shape, strides))
        self.pieces = pieces
        whole = _one_piece(pieces)
        self.injective = ((whole is not None and _spans_disjoint(*whole))
                          or np.unique(index).size == index.size)

    def _views(self, mem: Memory):
        arr = mem.region(self.region)
        if not arr.flags.c_contiguous:
            return None
        row = arr.strides[0]
        return [(cs, np.ndarray((arr.shape[0],) + shape, self.dtype, arr, off, (row,) + strides))
                for cs, off, shape, strides in self.pieces]

    def read(self, mem: Memory) -> np.ndarray:
        """(batch, h, w, c) of the element type, as ``read_fm``."""
        views = None if self.pieces is None else self._views(mem)
        if views is None:
            return read_fm(mem, self.region, self.index, self.dtype)
        b = views[0][1].shape[0]
        if len(views) == 1:
            return np.ascontiguousarray(views[0][1]).reshape((b,) + self.index.shape)
        out = np.empty((b,) + self.index.shape, self.dtype)
        self._copy_into(views, out)
        return out

    def read_into(self, mem: Memory, out: np.ndarray) -> None:
        """``out[...] = read(mem)`` (converted to out's type), without the intermediate copy."""
        views = None if self.pieces is None else self._views(mem)
        if views is None:
            out[...] = read_fm(mem, self.region, self.index, self.dtype)
        else:
            self._copy_into(views, out)

    @staticmethod
    def _copy_into(views, out: np.ndarray) -> None:
        for cs, v in views:
            target = out[..., cs]
            target.shape = v.shape  # splits the channel axis in place (raises rather than copy)
            target[...] = v

    def write(self, mem: Memory, values: np.ndarray) -> None:
        """Scatter (batch, h, w, c) integer values already in the element type's range."""
        views = None if self.pieces is None or not self.injective else self._views(mem)
        if views is None:
            write_fm(mem, self.region, self.index, values, self.dtype)
            return
        mem.check_writable(self.region, "OFM")
        full = (views[0][1].shape[0],) + self.index.shape
        if values.shape != full:
            values = np.broadcast_to(values, full)
        for cs, v in views:
            # the assignment converts to the 8-bit type (the values are in its range)
            v[...] = values[..., cs].reshape(v.shape)
