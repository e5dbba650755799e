"""CONV and DEPTHWISE: weights from the (per-core) weight streams, bias/scale per channel.

CONV multiplies raw IFM values by the decoded weights in one BLAS matmul (a 1x1 kernel straight on
the IFM, larger kernels on an im2col window view); DEPTHWISE sums one shifted multiply per kernel
tap. The IFM zero point is folded into the bias (sum((x - zp) * w) = sum(x * w) - zp * sum(w)) and
padding holds the zero point. The float type is chosen per operation from the accumulator bound
max|x| * sum|w|: float32 when it stays below 2^24, float64 below 2^53 (exact either way), else the
operation stops with CommandStreamError. The output stage then runs compiled in exact int64
(``kernels``, with depthwise accumulation fused in), else in float32 where ``fastscale`` can prove
each element exact (its near-ties recomputed in int64), else in numpy int64 (``rescale``). The
stripes of one layer may run as one matmul (``stripes``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import CommandStreamError, NotModelledError
from .. import weights as weight_decoder
from ..behaviours import Behaviours
from ..container import NpuConfig
from ..dataflow import Access
from ..featuremap import FeatureMap, FmAccess
from ..memory import ConstReads, Memory
from ..registers import RegisterFile
from ..fastscale import VerifiedScale
from ..kernels import IntegerStage
from ..rescale import NATURAL, TFL, Rescale, round_terms
from ..scales import decode_scales, interleave
from .common import ACT_NONE, NATIVE_ACTIVATIONS, Kernel, OutputStage, Upscale, effective_zero_point, ofm_shape

MAX_MACS = 1 << 31  # per operation and batch item; bounds run time for corrupt registers
MAX_IM2COL = 1 << 24  # im2col elements per batch item (64 MiB as float32, 128 MiB as float64)
DEPTHWISE_BLOCK_ELEMENTS = 1 << 16  # accumulators per block of batch items (256 KiB as float32)
CORE_STREAMS = (("WEIGHT", "SCALE"), ("WEIGHT1", "SCALE1"))


class ConvPlan:
    def __init__(self, r: RegisterFile, mem: Memory, config: NpuConfig, behaviours: Behaviours,
                 depthwise: bool, num_cores: int):
        self.depthwise = depthwise
        self.op = "DEPTHWISE" if depthwise else "CONV"
        self.ofm = FeatureMap.from_registers(r, "OFM")
        self.ifm = FeatureMap.from_registers(r, "IFM")
        if self.ifm.bits not in (8, 16):
            raise CommandStreamError(f"{self.op} with a {self.ifm.bits}-bit IFM (the NPU convolves 8 and 16 bit)")
        self.out = OutputStage.from_registers(r, self.ofm, behaviours)
        self.lut = self.out.lut_reads(mem)
        if self.out.global_scale:
            raise NotModelledError(f"{self.op} with global OFM_SCALE (no scale stream) is not modelled")
        self.h, self.w, self.c = ofm_shape(r)
        self.k = Kernel.from_registers(r)
        self.ifm_depth = self.c if depthwise else r.param("IFM_DEPTH_M1") + 1
        self.ih, self.iw = self.k.ifm_size(self.h, self.w)
        self.upscale = Upscale.from_registers(r, "DEPTHWISE" if depthwise else "CONV")
        work = self.h * self.w * self.ifm_depth * self.k.height * self.k.width * (1 if depthwise else self.c)
        if work > MAX_MACS:
            raise CommandStreamError(f"{self.op} of {work} MACs exceeds the simulator's limit")
        if not depthwise and self.h * self.w * self.ifm_depth * self.k.height * self.k.width > MAX_IM2COL:
            raise CommandStreamError(f"{self.op} im2col buffer exceeds the simulator's limit")
        self.ifm_index = self.ifm.byte_index(mem, *self.upscale.stored_size(self.ih, self.iw), self.ifm_depth)
        self.ofm_index = self.ofm.byte_index(mem, self.h, self.w, self.c)
        self.ifm_io = FmAccess(self.ifm.region, self.ifm_index, self.ifm.dtype)
        self.ofm_io = FmAccess(self.ofm.region, self.ofm_index, self.ofm.dtype)
        self.ifm_zp = effective_zero_point(self.ifm, 0, behaviours)
        info = np.iinfo(self.ifm.dtype)
        self.ifm_lo, self.ifm_hi = int(info.min), int(info.max)
        self.num_cores = num_cores
        self.rounding = self.out.rounding
        is_fc = not depthwise and self.h == self.w == self.ih == self.iw == 1
        if is_fc and behaviours.litert_fc_rounding and self.rounding == TFL:
            self.rounding = NATURAL
        self.streams = []
        for core in range(num_cores):
            wname, sname = CORE_STREAMS[core]
            channels = len(range(core, self.c, num_cores))
            if channels == 0:
                continue
            w = (r.param("WEIGHT_REGION") & 7, r.address(f"{wname}_BASE"), r.address(f"{wname}_LENGTH"))
            s = (r.param("SCALE_REGION") & 7, r.address(f"{sname}_BASE"), r.address(f"{sname}_LENGTH"))
            for what, (reg, base, length) in ((wname, w), (sname, s)):
                mem.check(reg, base, base + length, f"{self.op} {what} stream")
            params = weight_decoder.WeightStreamParams(
                macs_per_cycle=config.macs_per_cycle, npu=config.npu, num_cores=num_cores,
                core=core, op=self.op, kernel_h=self.k.height, kernel_w=self.k.width,
                dilation_y=self.k.dilation_y, dilation_x=self.k.dilation_x,
                ifm_depth=self.ifm_depth, ofm_depth=self.c,
                ofm_block_depth=r.param("OFM_BLK_DEPTH_M1") + 1,
                part_kernel_first=self.k.part_kernel_first, ifm_bits=self.ifm.bits)
            self.streams.append((core, channels, w, s, params))
        self._cache_key: tuple | None = None
        self._prepared = None
        self._const = ConstReads()
        self.padded = PaddedIfm(self.ifm_io, self.k, self.ih, self.iw, self.ifm_depth, self.ifm_zp)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        reads = [Access("IFM", self.ifm.region, self.ifm_index)]
        for core, _n, w, s, _p in self.streams:
            reads += [Access(f"core {core} weight stream", w[0], slice(w[1], w[1] + w[2])),
                      Access(f"core {core} scale stream", s[0], slice(s[1], s[1] + s[2]))]
        return reads + self.lut, [Access("OFM", self.ofm.region, self.ofm_index)]

    def _prepare(self, mem: Memory):
        raw = tuple(
            (self._const.read(mem, w[0], w[1], w[2], f"{self.op} weights"),
             self._const.read(mem, s[0], s[1], s[2], f"{self.op} scales"))
            for _core, _n, w, s, _p in self.streams
        )
        if raw == self._cache_key:
            return self._prepared
        wparts, bias, scale, shift = [], [], [], []
        for (wbytes, sbytes), (core, n, _w, _s, params) in zip(raw, self.streams):
            wt = weight_decoder.decode_weights(wbytes, params)
            if wt.shape[0] != n:
                raise CommandStreamError(f"{self.op}: core {core} weight stream decoded to {wt.shape[0]} channels, expected {n}")
            wparts.append(wt)
            ss = decode_scales(sbytes, n, f"{self.op} core {core} scale stream")
            bias.append(ss.bias), scale.append(ss.scale), shift.append(ss.shift)
        wfull = interleave(wparts) if len(wparts) > 1 else wparts[0]
        # Matmul on raw IFM values: the zero point folds into the bias (sum(x - zp)*w =
        # sum(x*w) - zp*sum(w)) and padding holds the zero point. float32 is exact while every
        # partial sum stays below 2^24, float64 below 2^53.
        w64 = wfull.astype(np.int64)
        wsum = w64.sum(axis=(1, 2, 3))
        bias_full = interleave(bias) if len(bias) > 1 else bias[0]
        bias_full = bias_full - self.ifm_zp * wsum
        ftype = float_type(w64, self.ifm_lo, self.ifm_hi, self.op)
        wmat = weight_matrix(wfull, self.depthwise, ftype)
        # the raw accumulator is bounded by max|x| * sum|w| (float_type's bound); the bias folds
        # into the rescale's per-channel offset
        bound = max(abs(self.ifm_lo), abs(self.ifm_hi)) * int(np.abs(w64).sum(axis=(1, 2, 3)).max(initial=0))
        out_scale = Rescale(interleave(scale) if len(scale) > 1 else scale[0],
                            interleave(shift) if len(shift) > 1 else shift[0], self.rounding, bound, bias_full)
        prepared = (wmat, out_scale, self._fast_stage(out_scale, bias_full, bound, wmat.dtype))
        self._cache_key, self._prepared = raw, prepared
        return prepared

    def _fast_stage(self, out_scale: Rescale, bias, bound: int, ftype) -> IntegerStage | VerifiedScale | None:
        """The compiled output stage or else the float32 one, when it applies (see ``kernels``,
        ``fastscale``); None: the numpy int64 path."""
        terms = round_terms(out_scale.s, self.rounding)
        if terms is None or self.out.function in NATIVE_ACTIVATIONS:
            return None
        m = np.broadcast_to(out_scale.m, (self.c,))
        s = np.broadcast_to(out_scale.s, (self.c,))
        return fast_stage(m, s, bias, terms, self.out.zero_point, self.out.clamp, bound, ftype, self.ofm.dtype)

    def _padded_ifm(self, mem: Memory, ftype) -> np.ndarray:
        if self.upscale.active:
            x = self.ifm_io.read(mem).astype(ftype)
            return pad_ifm(self.upscale.apply(x, self.ih, self.iw, self.ifm_zp), self.k, self.ifm_zp)
        return self.padded.read(mem, ftype)

    # the three steps of a run, apart so that ``stripes`` can run a layer's stripes as one matmul
    def operands(self, mem: Memory):
        """Weights and output stage, decoded from the streams as they are now (cached)."""
        return self._prepare(mem)

    def read_ifm(self, mem: Memory, operands) -> np.ndarray:
        return self._padded_ifm(mem, operands[0].dtype)

    def compute(self, mem: Memory, xp: np.ndarray, operands) -> None:
        """Accumulate over the padded IFM and write the OFM."""
        wmat, out_scale, fast = operands
        if fast is not None:
            self.out.write(mem, self.ofm_io, run_fast(fast, xp, wmat, self.k, self.h, self.w, self.c,
                                                      self.ifm_depth, self.depthwise))
            return
        acc = accumulate(xp, wmat, self.k, self.h, self.w, self.c, self.ifm_depth, self.depthwise, exact=False)
        step = self.out.finish_in_place
        if step is not None and out_scale.always_int64:  # the output stage joins the rescale's blocks
            self.out.write(mem, self.ofm_io, out_scale.apply(acc, then=step))
        else:
            self.out.write(mem, self.ofm_io, self.out.finish(out_scale.apply(acc), owned=True))

    def run(self, mem: Memory) -> None:
        operands = self.operands(mem)
        self.compute(mem, self.read_ifm(mem, operands), operands)

    def stripe_key(self) -> tuple | None:
        """What the stripes of one layer share (``stripes``), or None: a CONV whose output stage
        reads nothing at write time (no LUT, no native activation)."""
        if self.depthwise or self.out.function != ACT_NONE:
            return None
        return ("U55", self.ifm.region, self.ifm.dtype, self.ifm_zp, self.k, self.upscale, self.h, self.w,
                self.ifm_depth, self.out.zero_point, self.out.clamp, self.ofm.dtype)


class PaddedIfm:
    """The IFM as the kernel reads it: padded with the zero point, in the accumulation's float
    type. The buffer is kept between runs (its border always holds the zero point; remade when the
    batch size or type changes) and the IFM is converted as it is copied in."""

    def __init__(self, io: FmAccess, k, ih: int, iw: int, depth: int, zero_point: int):
        self.io, self.k, self.ih, self.iw, self.depth, self.zero_point = io, k, ih, iw, depth, zero_point
        self._buf: np.ndarray | None = None

    def read(self, mem: Memory, ftype) -> np.ndarray:
        k = self.k
        shape = (mem.batch, self.ih + k.pad_top + k.pad_bottom, self.iw + k.pad_left + k.pad_right, self.depth)
        xp = self._buf
        if xp is None or xp.shape != shape or xp.dtype != ftype:
            xp = self._buf = np.full(shape, self.zero_point, dtype=ftype)
        self.io.read_into(mem, xp[:, k.pad_top : k.pad_top + self.ih, k.pad_left : k.pad_left + self.iw])
        return xp


def fast_stage(m, s, bias, terms, zero_point: int, clamp: tuple[int, int], bound: int, ftype, dtype):
    """A convolution's output stage: compiled (exact int64, ``kernels``), else float32 proven per
    element (``fastscale``, float32 accumulators only), else None (the numpy int64 path)."""
    stage = IntegerStage.build(m, s, bias, *terms, zero_point, *clamp, bound, dtype)
    if stage is None and ftype == np.float32:
        stage = VerifiedScale.build(m, s, bias, *terms, zero_point, *clamp, bound)
    return stage


def run_fast(stage, xp, wmat, k, h: int, w: int, c: int, ifm_depth: int, depthwise: bool) -> np.ndarray:
    """Accumulate and apply a ``fast_stage``: depthwise fused into the compiled stage's kernel."""
    if depthwise and isinstance(stage, IntegerStage):
        return stage.depthwise(xp, wmat, k, h, w)
    return stage.apply(accumulate(xp, wmat, k, h, w, c, ifm_depth, depthwise, exact=False))


def float_type(w64: np.ndarray, ifm_lo: int, ifm_hi: int, op: str):
    """float32 is exact while every partial sum stays below 2^24, float64 below 2^53."""
    bound = max(abs(ifm_lo), abs(ifm_hi)) * int(np.abs(w64).sum(axis=(1, 2, 3)).max(initial=0))
    if bound < (1 << 24):
        return np.float32
    if bound < (1 << 53):
        return np.float64
    raise CommandStreamError(f"{op}: accumulator bound {bound} exceeds exact float arithmetic")


def weight_matrix(wfull: np.ndarray, depthwise: bool, ftype) -> np.ndarray:
    """OHWI weights as the matmul operand: [kh, kw, C] (depthwise: each tap's weights contiguous,
    as the per-tap multiply reads them) or rows (cin, kh, kw) x C."""
    if depthwise:
        return np.ascontiguousarray(wfull[..., 0].transpose(1, 2, 0)).astype(ftype)
    c = wfull.shape[0]
    return np.ascontiguousarray(wfull.transpose(3, 1, 2, 0).reshape(-1, c)).astype(ftype)


def pad_ifm(x: np.ndarray, k, zero_point: int) -> np.ndarray:
    """(batch, h, w, c) IFM with the kernel's padding filled with the zero point."""
    if not (k.pad_top or k.pad_bottom or k.pad_left or k.pad_right):
        return x
    b, ih, iw, c = x.shape
    xp = np.full((b, ih + k.pad_top + k.pad_bottom, iw + k.pad_left + k.pad_right, c), zero_point,
                 dtype=x.dtype)
    xp[:, k.pad_top : k.pad_top + ih, k.pad_left : k.pad_left + iw] = x
    return xp


def accumulate(xp: np.ndarray, wmat: np.ndarray, k, h: int, w: int, c: int, ifm_depth: int,
               depthwise: bool, exact: bool = True) -> np.ndarray:
    """Accumulators (batch, h, w, c) of a convolution over the padded IFM: exact int64, or with
    ``exact=False`` the float sums themselves (exact integers, see ``float_type``)."""
    b = xp.shape[0]
    hs = slice(None, (h - 1) * k.stride_y + 1, k.stride_y)
    ws = slice(None, (w - 1) * k.stride_x + 1, k.stride_x)
    if depthwise:
        acc = np.empty((b, h, w, c), dtype=wmat.dtype)
        # a few batch items at a time: the sum and the tap stay in the cache across the taps
        step = max(1, DEPTHWISE_BLOCK_ELEMENTS // (h * w * c))
        tap = np.empty((min(step, b), h, w, c), dtype=wmat.dtype)
        for first in range(0, b, step):
            x, a = xp[first : first + step], acc[first : first + step]
            t = tap[: a.shape[0]]
            for i in range(k.height):
                for j in range(k.width):
                    oy, ox = i * k.dilation_y, j * k.dilation_x
                    # the first tap starts the sum; float sums of integers are exact in any order
                    np.multiply(x[:, oy:, ox:][:, hs, ws], wmat[i, j], out=a if i == j == 0 else t)
                    if i or j:
                        a += t
    elif k.height == k.width == 1:
        cols = xp[:, hs, ws].reshape(-1, ifm_depth)
        acc = (cols @ wmat).reshape(b, h, w, c)
    else:
        win = sliding_window_view(xp, (k.dilated_height, k.dilated_width), axis=(1, 2))
        win = win[:, hs, ws, :, :: k.dilation_y, :: k.dilation_x]  # b,h,w,cin,kh,kw
        cols = win.reshape(b * h * w, -1)
        acc = (cols @ wmat).reshape(b, h, w, c)
    return acc.astype(np.int64) if exact else acc
