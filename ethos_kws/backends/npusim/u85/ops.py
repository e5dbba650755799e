"""U85 operations: CONV, DEPTHWISE, POOL, ELEMENTWISE and DMA, on the shared kernels.

Feature-map addressing (``featuremap``), the convolution arithmetic (``ops.conv``) and exact
integer rescaling are the U55 simulator's; what is U85's own lives here: the output stage (rounding
in OFM_SCALE, LUT element types, B16/NONE clip range), chaining (an operand whose PRECISION storage
is CHAINED lives in chain buffer ``CB<region>`` instead of memory), IFM/IFM2 scaling of ADD/SUB,
the 32-bit OP_SCALAR operand, the U85 weight and scale streams, and the LUT RAM.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import CommandStreamError, InputNotModelledError, NotModelledError
from ..activation import sigmoid_q15, tanh_q15
from ..dataflow import Access
from ..lut import interpolate_lut16
from ..featuremap import NHWC, FeatureMap, FmAccess, read_fm, write_fm
from ..kernels import ScalarStage
from ..memory import ConstReads, Memory
from ..ops.common import Kernel, count_leading_zeros, valid_counts
from ..ops.conv import MAX_IM2COL, MAX_MACS, PaddedIfm, accumulate, fast_stage, float_type, run_fast, weight_matrix
from ..registers import RegisterFile
from . import isa
from .rescale import DOUBLE_SYMMETRIC, NATURAL, Scaler, rescale, round_terms
from .weights import DEPTH_FIRST, DEPTHWISE, PART_KERNEL, U85WeightParams, decode_weights, ofm_ublock

STORAGE_CHAINED, STORAGE_NONE = 2, 3
LUT_REGION = "LUT"
LUT_RAM_BYTES = 2048  # regor's "lutram"
SCALE_ENTRY_BYTES = 10
ACC_I32, ACC_I48 = 0, 1
ACC_RESET, ACC_IFM2 = 0, 2
WEIGHT_STREAMS = ("WEIGHT", "WEIGHT1", "WEIGHT2", "WEIGHT3")
BROADCAST_H, BROADCAST_W, BROADCAST_C, BROADCAST_SCALAR = 1, 2, 4, 8
# ACTIVATION function -> (LUT input dtype, LUT entry dtype); None = no LUT
# ACTIVATION function -> the native int16 function (LUT_TANH, LUT_SIGMOID)
NATIVE = {10: tanh_q15, 11: sigmoid_q15}
LUT_S16_S16 = 8
LUTS = {1: (np.dtype("u1"), np.dtype("u1")), 4: (np.dtype("i1"), np.dtype("i1")),
        5: (np.dtype("i1"), np.dtype("<i2")), 7: (np.dtype("i1"), np.dtype("<i4"))}


def chain_region(n: int) -> str:
    return f"CB{n}"


class Context:
    """What a plan needs besides the registers: the memory it checks against, the accelerator,
    and the chain buffers it declares (the executor allocates them for every run)."""

    def __init__(self, mem: Memory, macs: int, cores: int, behaviours):
        self.mem, self.macs, self.cores, self.behaviours = mem, macs, cores, behaviours
        self.regions: dict[str, int] = {LUT_REGION: LUT_RAM_BYTES}
        self.chains: dict[str, int] = {}  # chain buffer -> bytes the last chained OFM wrote
        ensure_regions(mem, self.regions)

    def need(self, key: str, nbytes: int) -> None:
        if nbytes > self.regions.get(key, 0):
            self.regions[key] = nbytes
            ensure_regions(self.mem, {key: nbytes})


def ensure_regions(mem: Memory, sizes: dict[str, int]) -> None:
    for key, n in sizes.items():
        cur = mem.regions.get(key)
        if cur is None or cur.shape[1] < n:
            mem.regions[key] = np.zeros((mem.batch, n), dtype=np.uint8)


def not_modelled(what: str) -> NotModelledError:
    return NotModelledError(f"{what} is not modelled by npu-sim for Ethos-U85")


def storage(r: RegisterFile, name: str) -> int:
    return (r.param(f"{name}_PRECISION") >> 14) & 0x3


def feature_map(r: RegisterFile, name: str, h: int, w: int, c: int, ctx: Context) -> FeatureMap:
    """The operand's feature map; a CHAINED operand is a dense NHWC map in its chain buffer."""
    fm = FeatureMap.from_registers(r, name)
    st = storage(r, name)
    if st == STORAGE_CHAINED:
        key = chain_region(r.param(f"{name}_REGION") & 0x7)
        e = fm.esize
        nbytes = h * w * c * e
        if name == "OFM":
            ctx.chains[key] = nbytes
        elif nbytes > ctx.chains.get(key, 0):
            # plans are built in stream order: a chained input must be an earlier chained output
            raise CommandStreamError(
                f"{name} reads chain buffer {key} ({h}x{w}x{c}, {fm.bits}-bit) that no earlier "
                f"operation wrote at that size")
        ctx.need(key, nbytes)
        return dataclasses.replace(fm, region=key, bases=(0, 0, 0, 0), height0=h, height1=h,
                                   width0=w, stride_x=c * e, stride_y=w * c * e, stride_c=e,
                                   layout=NHWC)
    if st == STORAGE_NONE:
        raise not_modelled(f"{name} storage NONE (output disabled or a scalar where a map is needed)")
    if st != 0:
        raise not_modelled(f"{name} storage {isa.STORAGE.get(st, st)}")
    if fm.layout == NHWC and fm.stride_c != fm.esize:
        # U55/U65 ignore it (shared FeatureMap); whether U85 does is not known, and no Regor U85
        # stream of the op matrix or the third-party models sets it
        raise not_modelled(f"an NHWC {name} with {name}_STRIDE_C {fm.stride_c} (not its element size)")
    return fm


def scale_register(r: RegisterFile, name: str) -> tuple[int, int, int, int]:
    """(scale, shift, dbl_rnd, round_mode) of OFM_SCALE/IFM_SCALE/IFM2_SCALE."""
    param, payload = r.cmd1.get(name, (0, 0))
    mode = (param >> 13) & (0x7 if name == "OFM_SCALE" else 0x1)
    if mode > 5:
        raise CommandStreamError(f"{name} rounding mode {mode} is not defined")
    return payload & 0x7FFFFFFF, param & 0x3F, (param >> 6) & 0x1F, mode


def check_common(r: RegisterFile) -> None:
    if r.param("IFM_UPSCALE") & 0x3:
        raise not_modelled(f"IFM_UPSCALE mode {r.param('IFM_UPSCALE') & 0x3} (resampling)")
    acc = r.param("ACC_FORMAT")
    if (acc >> 4) & 0x3 != ACC_RESET:
        raise not_modelled(f"ACC_FORMAT acc_input {isa.ENUM_FIELDS[('NPU_SET_ACC_FORMAT', 'acc_input')].get((acc >> 4) & 3)} (accumulator chaining)")
    if (acc >> 6) & 0x1:
        raise not_modelled("ACC_FORMAT acc_output DISABLE (accumulators kept for the next op)")



# OFM_PRECISION activation_transpose: the stored OFM's axes in order, each naming the op's axis
# (0 H, 1 W, 2 C) it holds — WHC stores the op's (h, w, c) element at (w, h, c) (TRANSPOSE)
IDENTITY_ORDER = (0, 1, 2)
OFM_ORDER = {code: tuple("HWC".index(a) for a in name)
             for code, name in isa.ENUM_FIELDS[("NPU_SET_OFM_PRECISION", "activation_transpose")].items()}


def ofm_order(r: RegisterFile, ofm: FeatureMap) -> tuple[tuple[int, int, int], int | None]:
    """(axes, flipped axis) of the stored OFM from OFM_PRECISION's transpose and reverse fields;
    reverse (MIRROR_PAD, REVERSE_V2) flips one axis of the stored OFM."""
    prec = r.param("OFM_PRECISION")
    rev, tr = (prec >> 9) & 0x3, (prec >> 11) & 0x7
    if tr not in OFM_ORDER:
        raise CommandStreamError(f"OFM_PRECISION activation_transpose {tr} is not defined")
    if rev and tr:
        raise not_modelled("OFM_PRECISION activation_reverse together with activation_transpose")
    if (rev or tr) and ofm.region not in range(8):
        raise not_modelled("a reversed or transposed chained OFM")
    return OFM_ORDER[tr], (rev - 1 if rev else None)


class OutputStage:
    """OFM_SCALE rounding, OFM zero point, the B16 clip range and LUT activations."""

    def __init__(self, r: RegisterFile, ofm: FeatureMap, behaviours):
        self.ofm = ofm
        self.lut_index_plus_128 = behaviours.lut_index_plus_128
        self.global_scale = bool((r.param("OFM_PRECISION") >> 8) & 1)
        self.scale, self.shift, self.dbl_rnd, self.round_mode = scale_register(r, "OFM_SCALE")
        act = r.param("ACTIVATION")
        self.function, self.table, self.clip_none = act & 0x1F, (act >> 5) & 0x7, bool((act >> 12) & 1)
        # TANH/SIGMOID are the native int16 functions U55 has too (on the rescaled value, in
        # units of 1/0x3000, giving Q0.15): the same arithmetic, shared with U55
        self.native = NATIVE.get(self.function) if ofm.bits == 16 else None
        self.lut16 = self.function == LUT_S16_S16
        if self.lut16 and ofm.bits != 16:
            raise CommandStreamError(f"ACTIVATION LUT_S16_S16 with a {ofm.bits}-bit OFM")
        if self.function and self.function not in LUTS and self.native is None and not self.lut16:
            raise not_modelled(f"ACTIVATION {isa.ACTIVATION_FUNCTION.get(self.function, self.function)}"
                               + (f" with a {ofm.bits}-bit OFM" if self.function in NATIVE else ""))
        if self.function and self.native is None and not self.lut16:
            lut_in, entry = LUTS[self.function]
            if entry.itemsize != ofm.esize or entry.kind != ofm.dtype.kind:
                raise CommandStreamError(
                    f"ACTIVATION {isa.ACTIVATION_FUNCTION[self.function]} with a {ofm.bits}-bit OFM")
            self.lut_in, self.lut_entry = lut_in, entry
        self.zero_point = ofm.zero_point
        self.axes, self.flip = ofm_order(r, ofm)
        self.act_min = r.signed("ACTIVATION_MIN")
        mx = r.param("ACTIVATION_MAX")
        # MAX holds up to the uint16 maximum (regor clips int32 to [int16 min, uint16 max])
        self.act_max = mx - 0x10000 if (mx & 0x8000 and ofm.signed and ofm.bits <= 16) else mx
        if not ofm.signed and self.act_min < 0:
            self.act_min = r.param("ACTIVATION_MIN")

    def lut_span(self) -> tuple[int, int] | None:
        """[lo, hi) of the LUT RAM the activation reads (None without a LUT)."""
        if self.lut16:  # 512 base+slope entries
            return self.table * 256 * 4, self.table * 256 * 4 + 512 * 4
        if self.function and self.native is None:
            return self.table * 256 * self.lut_entry.itemsize, (self.table + 1) * 256 * self.lut_entry.itemsize
        return None

    def reads(self) -> list[Access]:
        """The LUT as a data-flow access: it must have been loaded (DMA to the LUT RAM) before."""
        span = self.lut_span()
        return [] if span is None else [Access(f"LUT table {self.table}", LUT_REGION, slice(*span))]

    def rescale(self, v: np.ndarray, scale=None, shift=None, bound: int | None = None) -> np.ndarray:
        if scale is None and shift is None:
            return self._scaler(v, bound)
        if scale == 1 and shift is None:  # a 32-bit MUL: OFM_SCALE's shift alone, on every run
            return self._shift_only(v, bound)
        return rescale(v, self.scale if scale is None else scale, self.shift if shift is None else shift,
                       self.round_mode, self.dbl_rnd, bound)

    @cached_property
    def _scaler(self) -> Scaler:
        """OFM_SCALE's rescale, checked once (at the first run: a bad shift is an error there)."""
        return Scaler(self.scale, self.shift, self.round_mode, self.dbl_rnd)

    def finish_rescaled(self, v: np.ndarray, shift_only: bool = False) -> np.ndarray:
        """``finish(rescale(v))`` with OFM_SCALE (its shift alone for ``shift_only``): compiled in
        one call (``kernels.ScalarStage``) where it applies, else through numpy."""
        stage = self._stages[shift_only]
        y = None if stage is None else stage.apply(v)
        return y if y is not None else self.finish(self.rescale(v, 1 if shift_only else None))

    @cached_property
    def _stages(self) -> tuple[ScalarStage | None, ScalarStage | None]:
        """The compiled stage with OFM_SCALE and with its shift alone; None where numpy runs (a
        native activation, TRUNCATE_TO_ZERO, no numba)."""
        terms = None if self.native is not None else round_terms(self.shift, self.round_mode, self.dbl_rnd)
        if terms is None:
            return None, None
        return tuple(ScalarStage.build(m, self.shift, int(terms[0]), int(terms[1]), self.zero_point, *self.clamp)
                     for m in (self.scale, 1))

    @cached_property
    def _shift_only(self) -> Scaler:
        """OFM_SCALE's shift and rounding with a unit scale, checked once."""
        return Scaler(1, self.shift, self.round_mode, self.dbl_rnd)

    @cached_property
    def clamp(self) -> tuple[int, int]:
        """The range ``finish`` clips to: the LUT's input type or the OFM's, and ACTIVATION_MIN/MAX."""
        info = np.iinfo(self.lut_in if self.function and self.native is None and not self.lut16
                        else self.ofm.dtype)
        lo, hi = int(info.min), int(info.max)
        if not self.clip_none:
            lo, hi = max(lo, self.act_min), min(hi, self.act_max)
        return lo, hi

    def finish(self, v: np.ndarray) -> np.ndarray:
        if self.native is not None:
            v = self.native(v.astype(np.int64) if v.dtype == object else v)
        v = v + self.zero_point
        lo, hi = self.clamp
        if v.dtype == object:
            v = np.clip(v, lo, hi).astype(np.int64)
        return np.clip(v, np.int64(lo), np.int64(hi))  # numpy scalars: no type-limit lookup per call

    def index(self, mem: Memory, h: int, w: int, c: int) -> np.ndarray:
        """Byte index of the stored OFM: the op's (h, w, c) in the order the OFM is written."""
        dims = (h, w, c)
        return self.ofm.byte_index(mem, *(dims[a] for a in self.axes))

    def write(self, mem: Memory, index: np.ndarray, v: np.ndarray) -> None:
        if self.axes != IDENTITY_ORDER:
            v = np.transpose(v, (0,) + tuple(1 + a for a in self.axes))
        if self.flip is not None:
            v = np.flip(v, axis=1 + self.flip)
        if self.lut16:  # 512 base+slope entries filling the LUT memory, as on U55
            lo, hi = self.lut_span()
            raw = mem.read_bytes(LUT_REGION, lo, hi - lo, f"16-bit LUT table {self.table}")
            v = interpolate_lut16(raw, v.astype(np.int64))
        elif self.function and self.native is None:
            lo, hi = self.lut_span()
            raw = mem.read_bytes(LUT_REGION, lo, hi - lo, f"LUT table {self.table}")
            table = np.ascontiguousarray(raw).view(self.lut_entry).astype(np.int64)
            # behaviour switch shared with U55: the index is the clamped value - the type's minimum
            # (+128 for int8), not its raw byte
            idx = (v.astype(np.int64) - int(np.iinfo(self.lut_in).min) if self.lut_index_plus_128
                   else v.astype(np.int64) & 0xFF)
            b = v.shape[0]
            v = np.take_along_axis(np.broadcast_to(table, (b, 256)), idx.reshape(b, -1), axis=1).reshape(v.shape)
        if isinstance(index, FmAccess):
            index.write(mem, v)
        else:
            write_fm(mem, self.ofm.region, index, v, self.ofm.dtype)


def _decode_u85_scales(data: bytes, channels: int, acc48: bool, what: str):
    need = channels * SCALE_ENTRY_BYTES
    if len(data) < need:
        raise CommandStreamError(f"{what}: {len(data)} bytes hold fewer than {channels} entries of 10 bytes")
    raw = np.frombuffer(data[:need], dtype=np.uint8).reshape(channels, SCALE_ENTRY_BYTES).astype(np.int64)
    nb = 6 if acc48 else 4
    bias = sum(raw[:, i] << (8 * i) for i in range(nb))
    bias = np.where(bias >= (1 << (8 * nb - 1)), bias - (1 << (8 * nb)), bias)
    if acc48:
        scale = raw[:, 6] | ((raw[:, 7] & 0x7F) << 8)
    else:
        scale = raw[:, 4] | (raw[:, 5] << 8) | (raw[:, 6] << 16) | ((raw[:, 7] & 0x7F) << 24)
    return bias, scale, raw[:, 8] & 0x3F


class ConvPlan:
    def __init__(self, r: RegisterFile, ctx: Context, depthwise: bool, param: int):
        self.op = "DEPTHWISE" if depthwise else "CONV"
        self.depthwise = depthwise
        check_common(r)
        if not depthwise and param & 1:
            raise not_modelled("CONV weights_ifm2 (dynamic weights from IFM2, e.g. MatMul)")
        wf = r.param("WEIGHT_FORMAT")
        fast = bool(wf & 1)
        if fast and depthwise:
            raise not_modelled("WEIGHT_FORMAT FWD with DEPTHWISE (regor never encodes it)")
        sparse = bool((wf >> 4) & 1)
        if sparse and (depthwise or r.param("IFM_PRECISION") >> 2 & 3):
            raise not_modelled("WEIGHT_FORMAT SPARSE_2_4 with depthwise or a 16-bit IFM")
        self.h, self.w, self.c = r.param("OFM_HEIGHT_M1") + 1, r.param("OFM_WIDTH_M1") + 1, r.param("OFM_DEPTH_M1") + 1
        self.k = Kernel.from_registers(r)
        self.ifm_depth = self.c if depthwise else r.param("IFM_DEPTH_M1") + 1
        self.ih, self.iw = self.k.ifm_size(self.h, self.w)
        work = self.h * self.w * self.ifm_depth * self.k.height * self.k.width * (1 if depthwise else self.c)
        if work > MAX_MACS or (not depthwise and self.h * self.w * self.ifm_depth * self.k.height * self.k.width > MAX_IM2COL):
            raise CommandStreamError(f"{self.op} of {work} MACs exceeds the simulator's limit")
        self.ifm = feature_map(r, "IFM", self.ih, self.iw, self.ifm_depth, ctx)
        if self.ifm.bits not in (8, 16):
            raise not_modelled(f"{self.op} with a {self.ifm.bits}-bit IFM")
        self.ofm = feature_map(r, "OFM", self.h, self.w, self.c, ctx)
        self.out = OutputStage(r, self.ofm, ctx.behaviours)
        if self.out.global_scale:
            raise not_modelled(f"{self.op} with a global OFM_SCALE (no scale stream)")
        mem = ctx.mem
        self.ifm_index = self.ifm.byte_index(mem, self.ih, self.iw, self.ifm_depth)
        self.ofm_index = self.out.index(mem, self.h, self.w, self.c)
        self.padded = PaddedIfm(FmAccess(self.ifm.region, self.ifm_index, self.ifm.dtype), self.k,
                                self.ih, self.iw, self.ifm_depth, self.ifm.zero_point)
        self.ofm_io = FmAccess(self.ofm.region, self.ofm_index, self.ofm.dtype)
        info = np.iinfo(self.ifm.dtype)
        self.ifm_lo, self.ifm_hi = int(info.min), int(info.max)
        acc = r.param("ACC_FORMAT")
        if acc & 0x3 not in (ACC_I32, ACC_I48):
            raise CommandStreamError(f"ACC_FORMAT acc_format {acc & 3} is not defined")
        self.acc48 = (acc & 0x3) == ACC_I48
        ub = ofm_ublock(ctx.macs, (acc >> 8) & 0x7)
        traversal = DEPTHWISE if depthwise else (PART_KERNEL if self.k.part_kernel_first else DEPTH_FIRST)
        self.params = U85WeightParams(
            macs_per_cycle=ctx.macs, cores=ctx.cores, traversal=traversal,
            kernel_h=self.k.height, kernel_w=self.k.width, stride_y=self.k.stride_y,
            stride_x=self.k.stride_x, dilation_y=self.k.dilation_y, dilation_x=self.k.dilation_x,
            ifm_depth=self.ifm_depth, ofm_depth=self.c, ofm_block_depth=r.param("OFM_BLK_DEPTH_M1") + 1,
            ublock_depth=ub[2], ifm_bits=self.ifm.bits, sparse=sparse, fast=fast)
        wreg = r.param("WEIGHT_REGION") & 7
        self.weights = []
        for core in range(1 if fast else ctx.cores):  # FWD: one stream feeds every core
            base, length = r.address(f"{WEIGHT_STREAMS[core]}_BASE"), r.address(f"{WEIGHT_STREAMS[core]}_LENGTH")
            mem.check(wreg, base, base + length, f"{self.op} {WEIGHT_STREAMS[core]} stream")
            self.weights.append((wreg, base, length))
        sreg = r.param("SCALE_REGION") & 7
        self.scales = (sreg, r.address("SCALE_BASE"), r.address("SCALE_LENGTH"))
        mem.check(sreg, self.scales[1], self.scales[1] + self.scales[2], f"{self.op} scale stream")
        self._key = None
        self._prepared = None
        self._const = ConstReads()

    def accesses(self) -> tuple[list[Access], list[Access]]:
        reads = [Access("IFM", self.ifm.region, self.ifm_index)]
        reads += [Access(f"core {core} weight stream", reg, slice(base, base + length))
                  for core, (reg, base, length) in enumerate(self.weights)]
        reads.append(Access("scale stream", self.scales[0], slice(self.scales[1], self.scales[1] + self.scales[2])))
        return reads + self.out.reads(), [Access("OFM", self.ofm.region, self.ofm_index)]

    def _prepare(self, mem: Memory):
        raw = tuple(self._const.read(mem, *w, f"{self.op} weights") for w in self.weights)
        sraw = self._const.read(mem, *self.scales, f"{self.op} scales")
        if (raw, sraw) == self._key:
            return self._prepared
        wfull = decode_weights(list(raw), self.params)
        bias, scale, shift = _decode_u85_scales(sraw, self.c, self.acc48, f"{self.op} scale stream")
        w64 = wfull.astype(np.int64)
        bias = bias - self.ifm.zero_point * w64.sum(axis=(1, 2, 3))
        ftype = float_type(w64, self.ifm_lo, self.ifm_hi, self.op)
        # |acc + bias| <= max|x| * sum|w| + max|bias|: known here, so rescale need not measure it
        bound = (max(abs(self.ifm_lo), abs(self.ifm_hi)) * int(np.abs(w64).sum(axis=(1, 2, 3)).max(initial=0))
                 + int(np.abs(bias).max(initial=0)))
        raw_bound = bound - int(np.abs(bias).max(initial=0))
        fast = self._fast_stage(bias, scale, shift, raw_bound, ftype)
        self._prepared = (weight_matrix(wfull, self.depthwise, ftype), bias, scale, shift, bound, fast)
        self._key = (raw, sraw)
        return self._prepared

    def _fast_stage(self, bias, scale, shift, raw_bound: int, ftype):
        """The compiled or float32 output stage, when it applies (``conv.fast_stage``)."""
        out = self.out
        terms = round_terms(shift, out.round_mode, out.dbl_rnd)
        if terms is None or out.native is not None:
            return None
        return fast_stage(scale, shift, bias, terms, out.zero_point, out.clamp, raw_bound, ftype, self.ofm.dtype)

    # the three steps of a run, apart so that ``stripes`` can run a layer's stripes as one matmul
    def operands(self, mem: Memory):
        """Weights, scales and output stage, decoded from the streams as they are now (cached)."""
        return self._prepare(mem)

    def read_ifm(self, mem: Memory, operands) -> np.ndarray:
        return self.padded.read(mem, operands[0].dtype)

    def stripe_key(self) -> tuple | None:
        """What the stripes of one layer share (``stripes``), or None: a CONV whose output stage
        reads nothing at write time (no LUT), written in the natural order."""
        out = self.out
        if self.depthwise or out.function or out.axes != IDENTITY_ORDER or out.flip is not None:
            return None
        return ("U85", self.ifm.region, self.ifm.dtype, self.ifm.zero_point, self.k, self.h, self.w,
                self.ifm_depth, out.zero_point, out.clamp, self.ofm.dtype)

    def run(self, mem: Memory) -> None:
        operands = self.operands(mem)
        self.compute(mem, self.read_ifm(mem, operands), operands)

    def compute(self, mem: Memory, xp: np.ndarray, operands) -> None:
        """Accumulate over the padded IFM and write the OFM."""
        wmat, bias, scale, shift, bound, fast = operands
        if fast is not None:
            self.out.write(mem, self.ofm_io, run_fast(fast, xp, wmat, self.k, self.h, self.w, self.c,
                                                      self.ifm_depth, self.depthwise))
            return
        acc = accumulate(xp, wmat, self.k, self.h, self.w, self.c, self.ifm_depth, self.depthwise, exact=False)
        acc = np.add(acc, bias, dtype=np.int64, casting="unsafe")  # the float sums are exact integers
        v = self.out.rescale(acc, scale, shift, bound)
        self.out.write(mem, self.ofm_io, self.out.finish(v))


POOL_MAX, POOL_AVERAGE, POOL_REDUCE_SUM, POOL_SUM = range(4)
POOL_ARGMAX_X = 6
# ARGMAX_X leaves the x index of the window's first maximum in the accumulator's upper 16 bits;
# Vela reads it with OFM_SCALE 1 >> 16. What the lower 16 bits hold is not known, so any other
# OFM_SCALE is not modelled rather than guessed.
ARGMAX_SCALE = (1, 16)


POOL_NONE = 4


def _pool_output(r: RegisterFile, ctx: Context, h: int, w: int, c: int, op: str):
    """(OFM, output stage, OFM byte index) of a POOL: its scale is global (OFM_SCALE), never a
    per-channel stream."""
    ofm = feature_map(r, "OFM", h, w, c, ctx)
    out = OutputStage(r, ofm, ctx.behaviours)
    if not out.global_scale:
        raise not_modelled(f"{op} with a per-channel scale stream")
    return ofm, out, out.index(ctx.mem, h, w, c)


class NullPoolPlan:
    """POOL NONE with ACC_FORMAT acc_input IFM2: regor's NullPool, how U85 copies, rescales,
    transposes or reverses a 32-bit tensor (MemoryCopy, e.g. the parts of an int32 CONCATENATION;
    Rescale, Transpose, Reverse). The accumulators are loaded from IFM2 (I32 from a 32-bit IFM2),
    which then runs through the output stage (OFM_SCALE, zero point, clip, the OFM's transpose
    and reverse); the IFM, set to int8 by regor, is not read."""

    def __init__(self, r: RegisterFile, ctx: Context):
        acc = r.param("ACC_FORMAT")
        if (acc >> 4) & 0x3 != ACC_IFM2:
            raise not_modelled(f"POOL NONE with ACC_FORMAT acc_input "
                               f"{isa.ENUM_FIELDS[('NPU_SET_ACC_FORMAT', 'acc_input')].get((acc >> 4) & 3)}")
        if (acc >> 6) & 0x1:
            raise not_modelled("ACC_FORMAT acc_output DISABLE (accumulators kept for the next op)")
        if r.param("IFM_UPSCALE") & 0x3:
            raise not_modelled(f"IFM_UPSCALE mode {r.param('IFM_UPSCALE') & 0x3} (resampling)")
        k = Kernel.from_registers(r)
        if (k.height, k.width, k.stride_y, k.stride_x, k.pad_top, k.pad_left, k.pad_bottom, k.pad_right) != (1, 1, 1, 1, 0, 0, 0, 0):
            raise not_modelled("POOL NONE with a kernel, stride or padding (NullPool is element to element)")
        self.h, self.w, self.c = r.param("OFM_HEIGHT_M1") + 1, r.param("OFM_WIDTH_M1") + 1, r.param("OFM_DEPTH_M1") + 1
        self.ifm2 = feature_map(r, "IFM2", self.h, self.w, self.c, ctx)
        if self.ifm2.bits != 32 or acc & 0x3 != ACC_I32:
            raise not_modelled(f"POOL NONE loading {'I48' if acc & 3 == ACC_I48 else 'I32'} accumulators "
                               f"from a {self.ifm2.bits}-bit IFM2 (modelled: I32 from 32 bits)")
        if self.ifm2.zero_point:
            raise not_modelled("POOL NONE with an IFM2 zero point (Vela writes 0)")
        self.ofm, self.out, self.ofm_index = _pool_output(r, ctx, self.h, self.w, self.c, "POOL NONE")
        self.ifm2_index = self.ifm2.byte_index(ctx.mem, self.h, self.w, self.c)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        # the IFM is not read: only IFM2 (the accumulators) counts for the data-flow check
        return ([Access("IFM2", self.ifm2.region, self.ifm2_index)] + self.out.reads(),
                [Access("OFM", self.ofm.region, self.ofm_index)])

    def run(self, mem: Memory) -> None:
        v = read_fm(mem, self.ifm2.region, self.ifm2_index, self.ifm2.dtype).astype(np.int64)
        self.out.write(mem, self.ofm_index, self.out.finish(self.out.rescale(v)))


def pool_plan(r: RegisterFile, ctx: Context, mode: int):
    return NullPoolPlan(r, ctx) if mode == POOL_NONE else PoolPlan(r, ctx, mode)


class PoolPlan:
    def __init__(self, r: RegisterFile, ctx: Context, mode: int):
        if mode not in (POOL_MAX, POOL_AVERAGE, POOL_REDUCE_SUM, POOL_SUM, POOL_ARGMAX_X):  # MIN: no test model yet
            raise not_modelled(f"POOL {isa.POOLING_MODE.get(mode, mode)}")
        check_common(r)
        self.mode = mode
        self.h, self.w, self.c = r.param("OFM_HEIGHT_M1") + 1, r.param("OFM_WIDTH_M1") + 1, r.param("OFM_DEPTH_M1") + 1
        self.k = Kernel.from_registers(r)
        if self.k.dilation_x != 1 or self.k.dilation_y != 1:
            raise not_modelled("POOL with dilation")
        self.ih, self.iw = self.k.ifm_size(self.h, self.w)
        self.ifm_depth = r.param("IFM_DEPTH_M1") + 1 if mode == POOL_REDUCE_SUM else self.c
        if mode == POOL_REDUCE_SUM and self.c != 1:
            raise not_modelled(f"REDUCE_SUM with OFM depth {self.c}")
        self.ifm = feature_map(r, "IFM", self.ih, self.iw, self.ifm_depth, ctx)
        self.ofm, self.out, self.ofm_index = _pool_output(r, ctx, self.h, self.w, self.c, "POOL")
        self.ifm_index = self.ifm.byte_index(ctx.mem, self.ih, self.iw, self.ifm_depth)
        self.round_away = ctx.behaviours.padded_avg_round_away
        if mode == POOL_ARGMAX_X:
            k = self.k
            if k.height != 1 or k.pad_top or k.pad_bottom or k.pad_left or k.pad_right:
                raise not_modelled("POOL ARGMAX_X with a kernel height above 1 or padding")
            if (self.out.scale, self.out.shift) != ARGMAX_SCALE:
                raise not_modelled(f"POOL ARGMAX_X with OFM_SCALE {(self.out.scale, self.out.shift)} "
                                   f"(only {ARGMAX_SCALE}: the index alone)")

    def accesses(self) -> tuple[list[Access], list[Access]]:
        return ([Access("IFM", self.ifm.region, self.ifm_index)] + self.out.reads(),
                [Access("OFM", self.ofm.region, self.ofm_index)])

    def _valid_counts(self) -> np.ndarray:
        return valid_counts(self.k, self.h, self.w, self.ih, self.iw)

    def run(self, mem: Memory) -> None:
        x = read_fm(mem, self.ifm.region, self.ifm_index, self.ifm.dtype).astype(np.int64) - self.ifm.zero_point
        k = self.k
        if self.mode == POOL_REDUCE_SUM:
            v = x.sum(axis=3, keepdims=True)
        else:
            fill = np.iinfo(np.int64).min // 4 if self.mode in (POOL_MAX, POOL_ARGMAX_X) else 0
            b = x.shape[0]
            xp = np.full((b, self.ih + k.pad_top + k.pad_bottom, self.iw + k.pad_left + k.pad_right, self.c),
                         fill, dtype=np.int64)
            xp[:, k.pad_top : k.pad_top + self.ih, k.pad_left : k.pad_left + self.iw] = x
            win = sliding_window_view(xp, (k.height, k.width), axis=(1, 2))
            win = win[:, : (self.h - 1) * k.stride_y + 1 : k.stride_y, : (self.w - 1) * k.stride_x + 1 : k.stride_x]
            if self.mode == POOL_ARGMAX_X:  # first maximum wins, as TFLite's ARG_MAX
                v = win[..., 0, :].argmax(axis=4).astype(np.int64) << 16
            elif self.mode == POOL_MAX:
                v = win.max(axis=(4, 5))
            elif self.mode == POOL_SUM:
                v = win.sum(axis=(4, 5))
            else:  # AVERAGE: the hardware divides by the elements inside the IFM (behaviour switch
                # shared with U55's padded average: half away from zero, else half up)
                total, count = win.sum(axis=(4, 5)), self._valid_counts()
                if self.round_away:
                    q = (2 * np.abs(total) + count) // (2 * count)
                    v = np.where(total < 0, -q, q)
                else:
                    v = (2 * total + count) // (2 * count)
        v = self.out.rescale(v)
        self.out.write(mem, self.ofm_index, self.out.finish(v))


EW = {name: code for code, name in isa.ELEMENTWISE_MODE.items()}
# modelled and verified against TFLite Micro (softmax, ADD/MUL, DS-CNN; ABS and int16 LRELU by the
# op matrix: int8 LeakyRelu/Tanh/Logistic are LUTs)
EW_MODELLED = frozenset(EW[n] for n in ("MUL", "ADD", "SUB", "MIN", "MAX", "CLZ", "SHR", "SHL", "ABS", "LRELU",
                                        "DIV"))
EW_UNARY = frozenset(EW[n] for n in ("LRELU", "ABS", "CLZ", "NOT"))


class ElementwisePlan:
    def __init__(self, r: RegisterFile, ctx: Context, mode: int):
        if mode not in EW_MODELLED:
            raise not_modelled(f"ELEMENTWISE {isa.ELEMENTWISE_MODE.get(mode, mode)}")
        check_common(r)
        self.mode = mode
        self.h, self.w, self.c = r.param("OFM_HEIGHT_M1") + 1, r.param("OFM_WIDTH_M1") + 1, r.param("OFM_DEPTH_M1") + 1
        self.ofm = feature_map(r, "OFM", self.h, self.w, self.c, ctx)
        self.out = OutputStage(r, self.ofm, ctx.behaviours)
        self.operands = [self._operand(r, ctx, "IFM")]
        if mode not in EW_UNARY:
            self.operands.append(self._operand(r, ctx, "IFM2"))
        self.ifm_scale = scale_register(r, "IFM_SCALE")
        self.ifm2_scale = scale_register(r, "IFM2_SCALE")
        name = isa.ELEMENTWISE_MODE[mode]
        scaled = self.ifm_scale[:2] != (1, 0) or (mode not in EW_UNARY and self.ifm2_scale[:2] != (1, 0))
        if name not in ("ADD", "SUB", "LRELU") and scaled:
            raise not_modelled(f"ELEMENTWISE {name} with IFM/IFM2 scaling")
        if name == "DIV" and any(fm.bits != 32 for _k, _w, fm in self.operands):
            raise not_modelled("ELEMENTWISE DIV of 8- or 16-bit operands (modelled: int32 DIV)")
        self.ofm_index = self.out.index(ctx.mem, self.h, self.w, self.c)
        self.ofm_io = FmAccess(self.ofm.region, self.ofm_index, self.ofm.dtype)
        self.mul32_shift_only = self.ofm.bits == 32 and ctx.behaviours.mul32_shift_only

    def _operand(self, r: RegisterFile, ctx: Context, name: str):
        bc = r.param(f"{name}_BROADCAST") & 0xF
        fm = FeatureMap.from_registers(r, name)
        if bc & BROADCAST_SCALAR:
            param, payload = r.cmd1.get("OP_SCALAR", (0, 0))
            value = payload - (1 << 32) if payload & 0x80000000 else payload
            return ("scalar", value - fm.zero_point if fm.bits < 32 else value, fm)
        h = 1 if bc & BROADCAST_H else self.h
        w = 1 if bc & BROADCAST_W else self.w
        c = 1 if bc & BROADCAST_C else self.c
        fm = feature_map(r, name, h, w, c, ctx)
        return ("map", FmAccess(fm.region, fm.byte_index(ctx.mem, h, w, c), fm.dtype), fm)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        reads = [Access(fm.name, fm.region, io.index) for kind, io, fm in self.operands if kind == "map"]
        return reads + self.out.reads(), [Access("OFM", self.ofm.region, self.ofm_index)]

    @staticmethod
    def _read(mem: Memory, operand) -> np.ndarray:
        kind, what, fm = operand
        if kind == "scalar":
            return np.full((1, 1, 1, 1), what, dtype=np.int64)
        return np.subtract(what.read(mem), fm.zero_point, dtype=np.int64)

    @cached_property
    def _ifm_unit(self) -> tuple[bool, bool]:
        """IFM_SCALE, IFM2_SCALE multiply by 1 and shift by 0 (with a defined dbl_rnd, which
        ``Scaler`` checks): every rounding leaves the value."""
        return tuple(sc[:2] == (1, 0) and 0 <= sc[2] <= 30 for sc in (self.ifm_scale, self.ifm2_scale))

    @cached_property
    def _ifm_scalers(self) -> tuple[Scaler, Scaler]:
        """IFM_SCALE and IFM2_SCALE (rounding: DOUBLE_SYMMETRIC unless the register says NATURAL)."""
        return tuple(Scaler(sc[0], sc[1], DOUBLE_SYMMETRIC if sc[3] == 0 else NATURAL, sc[2])
                     for sc in (self.ifm_scale, self.ifm2_scale))

    def _rescaled(self, a: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, bool]:
        """The value OFM_SCALE rescales and whether its multiplier is forced to 1 (modes that rescale)."""
        name = isa.ELEMENTWISE_MODE[self.mode]
        if name in ("ADD", "SUB"):
            sa, sb = (x if unit else scaler(x) for x, scaler, unit in zip((a, b), self._ifm_scalers, self._ifm_unit))
            return (sa + sb if name == "ADD" else sa - sb), False
        if name == "MUL":
            # the U55 behaviour holds on U85 too: a 32-bit MUL applies only OFM_SCALE's shift
            # (Vela programs 2^30 >> 31 for TFLite's rounding doubling high multiply)
            return a * b, self.mul32_shift_only
        if name in ("MIN", "MAX"):
            return (np.minimum(a, b) if name == "MIN" else np.maximum(a, b)), False
        if name == "DIV":
            # int32 DIV (TFLite's, TOSA's INTDIV): the quotient truncated toward zero
            if not np.all(b):
                raise InputNotModelledError("ELEMENTWISE DIV by zero is not modelled by npu-sim for Ethos-U85 "
                                            "(what the hardware returns is not known)")
            q = np.abs(a) // np.abs(b)
            return np.where((a < 0) != (b < 0), -q, q), False
        if name == "ABS":
            return np.abs(a), False
        # LRELU, Regor's U85 one: IFM_SCALE scales the non-negative elements, IFM2_SCALE (alpha
        # times that) the negative ones; OFM_SCALE follows as for every op (unit here)
        pos, neg = self._ifm_scalers[0](a), self._ifm_scalers[1](a)
        return np.where(a < 0, neg, pos), False

    def run(self, mem: Memory) -> None:
        a = self._read(mem, self.operands[0])
        b = self._read(mem, self.operands[1]) if len(self.operands) > 1 else None
        name = isa.ELEMENTWISE_MODE[self.mode]
        out = self.out
        if name == "CLZ":
            v = out.finish(count_leading_zeros(a))
        elif name == "SHR":
            v = out.finish(rescale(a, 1, np.broadcast_to(np.clip(b, 0, 31), np.broadcast_shapes(a.shape, b.shape)),
                                   out.round_mode, out.dbl_rnd))
        elif name == "SHL":
            v = out.finish(a << np.clip(b, 0, 31))
        else:
            v = out.finish_rescaled(*self._rescaled(a, b))
        full = (v.shape[0], self.h, self.w, self.c)
        out.write(mem, self.ofm_io, v if v.shape == full else np.broadcast_to(v, full))


class DmaPlan:
    """DMA_START, 1-D: region to region, or into the LUT RAM (dst region_mode INTERNAL)."""

    is_copy = True  # dataflow: the destination takes the source's written state

    def __init__(self, r: RegisterFile, ctx: Context):
        src, dst = r.param("DMA0_SRC_REGION"), r.param("DMA0_DST_REGION")
        if (src >> 9) & 0x3:
            raise not_modelled(f"DMA stride mode {isa.ENUM_FIELDS[('NPU_SET_DMA0_SRC_REGION', 'stride_mode')].get((src >> 9) & 3)} (2-D/3-D DMA)")
        if (src >> 11) & 1 or (dst >> 11) & 1:
            raise not_modelled("indexed DMA (gather/scatter)")
        if (src >> 8) & 1:
            raise not_modelled("DMA from internal memory")
        self.src = src & 0x7
        self.dst = LUT_REGION if (dst >> 8) & 1 else dst & 0x7
        self.src_addr, self.dst_addr, self.length = r.address("DMA0_SRC"), r.address("DMA0_DST"), r.address("DMA0_LEN")
        mem = ctx.mem
        mem.check(self.src, self.src_addr, self.src_addr + self.length, "DMA source")
        mem.check(self.dst, self.dst_addr, self.dst_addr + self.length, "DMA destination")
        mem.check_writable(self.dst, "DMA destination")

    def accesses(self) -> tuple[list[Access], list[Access]]:
        return ([Access("DMA source", self.src, slice(self.src_addr, self.src_addr + self.length))],
                [Access("DMA destination", self.dst, slice(self.dst_addr, self.dst_addr + self.length))])

    def run(self, mem: Memory) -> None:
        src = mem.region(self.src)[:, self.src_addr : self.src_addr + self.length]
        mem.region(self.dst)[:, self.dst_addr : self.dst_addr + self.length] = src


RESIZE_BILINEAR, RESIZE_NEAREST = 0, 2


def _resize_axis(r: RegisterFile, axis: str, size: int):
    """(n, first IFM index, fraction in 1/n) of each OFM position along one axis: the position is
    o * step + offset in units of 1/n of an IFM element (RESIZE_*_SCALE_N_M1, _STEP, _OFFSET)."""
    n = r.param(f"RESIZE_{axis}_SCALE_N_M1") + 1
    # the low 16 bits step one OFM element; X_STEP's upper fields (they differ between U85 sizes
    # for one model) step whole OFM blocks and do not change what is computed
    step = r.cmd1.get(f"RESIZE_{axis}_STEP", (0, 0))[1] & 0xFFFF
    off = r.param(f"RESIZE_{axis}_OFFSET") & 0xFFF
    off = off - 0x1000 if off & 0x800 else off  # 12-bit signed
    pos = np.arange(size, dtype=np.int64) * step + off
    i0 = np.floor_divide(pos, n)
    return n, i0, pos - i0 * n


class ResizePlan:
    """NPU_OP_RESIZE, NEAREST and BILINEAR: each OFM element from the IFM elements around its
    position (clamped to the IFM), bilinear weights (n - f) and f per axis; the accumulator holds
    the result << 16, as Vela's OFM_SCALE (1 >> 16 nearest, 1 >> 16 + log2(n*n) bilinear) expects."""

    def __init__(self, r: RegisterFile, ctx: Context, mode: int):
        if mode not in (RESIZE_BILINEAR, RESIZE_NEAREST):
            raise not_modelled(f"NPU_OP_RESIZE {isa.RESIZE_MODE.get(mode, mode)}")
        check_common(r)
        self.mode = mode
        self.h, self.w, self.c = r.param("OFM_HEIGHT_M1") + 1, r.param("OFM_WIDTH_M1") + 1, r.param("OFM_DEPTH_M1") + 1
        # the IFM's size is the kernel's (regor sets KERNEL_* to the IFM height and width)
        self.ih, self.iw = r.param("KERNEL_HEIGHT_M1") + 1, r.param("KERNEL_WIDTH_M1") + 1
        self.ifm = feature_map(r, "IFM", self.ih, self.iw, self.c, ctx)
        self.ofm = feature_map(r, "OFM", self.h, self.w, self.c, ctx)
        self.out = OutputStage(r, self.ofm, ctx.behaviours)
        self.ifm_index = self.ifm.byte_index(ctx.mem, self.ih, self.iw, self.c)
        self.ofm_index = self.out.index(ctx.mem, self.h, self.w, self.c)
        self.ny, self.y0, self.fy = _resize_axis(r, "Y", self.h)
        self.nx, self.x0, self.fx = _resize_axis(r, "X", self.w)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        return ([Access("IFM", self.ifm.region, self.ifm_index)] + self.out.reads(),
                [Access("OFM", self.ofm.region, self.ofm_index)])

    def run(self, mem: Memory) -> None:
        x = read_fm(mem, self.ifm.region, self.ifm_index, self.ifm.dtype).astype(np.int64) - self.ifm.zero_point

        def rows(i):
            return np.clip(i, 0, self.ih - 1)

        def cols(i):
            return np.clip(i, 0, self.iw - 1)

        if self.mode == RESIZE_NEAREST:  # the nearer element; half way rounds up (half-pixel centres)
            v = x[:, rows(self.y0 + (2 * self.fy >= self.ny))][:, :, cols(self.x0 + (2 * self.fx >= self.nx))]
        else:
            wy1, wx1 = self.fy[None, :, None, None], self.fx[None, None, :, None]
            wy0, wx0 = self.ny - wy1, self.nx - wx1
            top, bottom = x[:, rows(self.y0)], x[:, rows(self.y0 + 1)]
            c0, c1 = cols(self.x0), cols(self.x0 + 1)
            v = (top[:, :, c0] * wx0 + top[:, :, c1] * wx1) * wy0 + (bottom[:, :, c0] * wx0 + bottom[:, :, c1] * wx1) * wy1
        v = self.out.rescale(v << 16)
        self.out.write(mem, self.ofm_index, self.out.finish(v))
