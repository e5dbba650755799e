"""What every compute operation shares: OFM shape, kernel geometry and the output stage
(rescale, zero point, clamp to the clip range, LUT)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import acc_format as AccFormat
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import activation as Activation
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import clip_range as ClipRange
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import resampling_mode as Resampling

from ....errors import CommandStreamError, NotModelledError
from ..activation import sigmoid_q15, tanh_q15
from ..behaviours import Behaviours
from ..featuremap import FeatureMap, FmAccess, write_fm
from ..dataflow import Access
from ..lut import LUT_FIRST, LUT_LAST, apply_lut, lut_span
from ..memory import SHRAM, Memory
from ..registers import RegisterFile

# ACTIVATION [15:12] clip range -> forced (min, max); OFM_PRECISION = the OFM type's range
CLIP_RANGES = {
    ClipRange.OFM_PRECISION.value: None,
    ClipRange.FORCE_UINT8.value: (0, 255),
    ClipRange.FORCE_INT8.value: (-128, 127),
    ClipRange.FORCE_INT16.value: (-32768, 32767),
}
ACT_NONE = Activation.NONE.value
CLIP_UFUNC_SIZE = 4096
# native activations on the rescaled value (input in units of 1/0x3000, output Q0.15)
NATIVE_ACTIVATIONS = {Activation.TANH.value: tanh_q15, Activation.SIGMOID.value: sigmoid_q15}


@dataclass(frozen=True)
class Kernel:
    height: int  # undilated
    width: int
    stride_y: int
    stride_x: int
    dilation_y: int
    dilation_x: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    part_kernel_first: bool

    @property
    def dilated_height(self) -> int:
        return (self.height - 1) * self.dilation_y + 1

    @property
    def dilated_width(self) -> int:
        return (self.width - 1) * self.dilation_x + 1

    @classmethod
    def from_registers(cls, r: RegisterFile) -> Kernel:
        ks = r.param("KERNEL_STRIDE")
        sx = ((ks >> 0) & 1 | ((ks >> 6) & 1) << 1) + 1
        sy = ((ks >> 1) & 1 | ((ks >> 9) & 1) << 1) + 1
        dx, dy = ((ks >> 3) & 1) + 1, ((ks >> 4) & 1) + 1
        kh_d, kw_d = r.param("KERNEL_HEIGHT_M1") + 1, r.param("KERNEL_WIDTH_M1") + 1
        if (kh_d - 1) % dy or (kw_d - 1) % dx:
            raise CommandStreamError(f"kernel {kh_d}x{kw_d} does not fit dilation {dy}x{dx}")
        return cls((kh_d - 1) // dy + 1, (kw_d - 1) // dx + 1, sy, sx, dy, dx,
                   r.param("IFM_PAD_TOP"), r.param("IFM_PAD_LEFT"), r.param("IFM_PAD_BOTTOM"),
                   r.param("IFM_PAD_RIGHT"), bool((ks >> 2) & 1))

    def ifm_size(self, ofm_h: int, ofm_w: int) -> tuple[int, int]:
        """IFM height/width are not programmed; they follow from OFM size, stride, kernel, padding."""
        h = (ofm_h - 1) * self.stride_y + self.dilated_height - self.pad_top - self.pad_bottom
        w = (ofm_w - 1) * self.stride_x + self.dilated_width - self.pad_left - self.pad_right
        if h <= 0 or w <= 0:
            raise CommandStreamError(f"kernel/padding registers give an empty IFM ({h}x{w})")
        return h, w


@dataclass(frozen=True)
class Upscale:
    """IFM_UPSCALE: the IFM registers describe the stored IFM; the kernel sees it upscaled 2x in
    height and width, by repeating each element (NEAREST: RESIZE_NEAREST_NEIGHBOR) or by placing
    it at even positions with the zero point in between (TRANSPOSE: TRANSPOSE_CONV)."""

    mode: int

    @classmethod
    def from_registers(cls, r: RegisterFile, op: str) -> Upscale:
        mode = r.field("IFM_UPSCALE", "mode")
        if mode not in {m.value for m in Resampling}:
            raise CommandStreamError(f"IFM_UPSCALE mode {mode} is not defined")
        if mode != Resampling.NONE.value and op not in ("CONV", "DEPTHWISE", "POOL"):
            raise NotModelledError(f"IFM_UPSCALE {Resampling(mode).name} on {op} is not modelled")
        return cls(mode)

    @property
    def active(self) -> bool:
        return self.mode != Resampling.NONE.value

    def stored_size(self, h: int, w: int) -> tuple[int, int]:
        """Stored IFM size for the upscaled size the kernel needs."""
        return ((h + 1) // 2, (w + 1) // 2) if self.active else (h, w)

    def apply(self, x: np.ndarray, h: int, w: int, fill) -> np.ndarray:
        """(batch, h', w', c) stored IFM -> (batch, h, w, c) as the kernel sees it."""
        if self.mode == Resampling.NEAREST.value:
            return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[:, :h, :w]
        if self.mode == Resampling.TRANSPOSE.value:
            out = np.full((x.shape[0], h, w, x.shape[3]), fill, dtype=x.dtype)
            out[:, ::2, ::2] = x[:, : (h + 1) // 2, : (w + 1) // 2]
            return out
        return x


def valid_counts(k: Kernel, h: int, w: int, ih: int, iw: int) -> np.ndarray:
    """Divisor of a padded average pool, shape (1, h, w, 1): the kernel elements inside the IFM
    (U55, U65 and U85 alike)."""
    ys = np.arange(h)[:, None] * k.stride_y - k.pad_top + np.arange(k.height)[None, :]
    xs = np.arange(w)[:, None] * k.stride_x - k.pad_left + np.arange(k.width)[None, :]
    ny = ((ys >= 0) & (ys < ih)).sum(axis=1)
    nx = ((xs >= 0) & (xs < iw)).sum(axis=1)
    return (ny[:, None] * nx[None, :])[None, :, :, None].astype(np.int64)


def count_leading_zeros(a: np.ndarray) -> np.ndarray:
    """ELEMENTWISE CLZ: the leading zero bits of each value's 32-bit pattern (int64 in, int64
    out; 32 for 0). The bit length is frexp's exponent, exact for every uint32 in float64."""
    return 32 - np.frexp((a & 0xFFFFFFFF).astype(np.float64))[1].astype(np.int64)


def check_unmodelled(r: RegisterFile) -> None:
    """Registers whose non-default values change results in ways npu-sim does not model."""
    if r.param("ACC_FORMAT") & 0x3 == AccFormat.FP_S5_10.value:
        raise NotModelledError("ACC_FORMAT FP_S5_10 (floating-point accumulators) is not modelled")


def ofm_shape(r: RegisterFile) -> tuple[int, int, int]:
    return r.param("OFM_HEIGHT_M1") + 1, r.param("OFM_WIDTH_M1") + 1, r.param("OFM_DEPTH_M1") + 1


def effective_zero_point(fm: FeatureMap, clip_range: int, behaviours: Behaviours) -> int:
    if fm.bits == 32 and behaviours.ignore_zp_on_32bit and clip_range == 0:
        return 0
    return fm.zero_point


@dataclass(frozen=True)
class OutputStage:
    """ACTIVATION, ACTIVATION_MIN/MAX, OFM zero point/type and OFM_PRECISION rounding."""

    ofm: FeatureMap
    rounding: int
    global_scale: bool
    function: int
    clip_range: int
    act_min: int
    act_max: int
    zero_point: int
    behaviours: Behaviours

    @classmethod
    def from_registers(cls, r: RegisterFile, ofm: FeatureMap, behaviours: Behaviours) -> OutputStage:
        check_unmodelled(r)
        function, clip = r.field("ACTIVATION", "type"), r.field("ACTIVATION", "act_clip_range")
        if clip not in CLIP_RANGES:
            raise CommandStreamError(f"ACTIVATION clip range {clip} is not defined")
        if function in NATIVE_ACTIVATIONS and ofm.bits != 16:
            raise NotModelledError(f"ACTIVATION function {Activation(function).name} with a "
                                   f"{ofm.bits}-bit OFM is not modelled (Vela uses it for int16)")
        if function != ACT_NONE and function not in NATIVE_ACTIVATIONS and not (LUT_FIRST <= function <= LUT_LAST):
            raise CommandStreamError(f"ACTIVATION function {function} is not defined")
        rounding = r.field("OFM_PRECISION", "rounding")
        if rounding == 3:
            raise CommandStreamError("OFM_PRECISION rounding mode 3 is not defined")
        return cls(ofm, rounding, bool(r.field("OFM_PRECISION", "scaling")), function, clip, r.signed("ACTIVATION_MIN"),
                   r.signed("ACTIVATION_MAX"), effective_zero_point(ofm, clip, behaviours), behaviours)

    def lut_reads(self, mem: Memory) -> list[Access]:
        """The LUT this stage reads, as a data-flow access of SHRAM (none without a LUT)."""
        span = lut_span(mem, self.function, self.ofm.dtype.itemsize)
        if span is None:
            return []
        return [Access(f"LUT TABLE_{self.function - LUT_FIRST}", SHRAM, slice(*span))]

    def type_range(self) -> tuple[int, int]:
        info = np.iinfo(self.ofm.dtype)
        return int(info.min), int(info.max)

    @cached_property
    def clamp(self) -> tuple[int, int]:
        """The final range: the type's, the forced clip range's and ACTIVATION_MIN/MAX."""
        lo, hi = self.type_range()
        forced = CLIP_RANGES[self.clip_range]
        if forced is not None:
            lo, hi = max(lo, forced[0]), min(hi, forced[1])
        unclamped = self.ofm.bits == 32 and forced is None and self.behaviours.minmax_no_clamp_32bit
        if not unclamped:
            lo, hi = max(lo, self.act_min), min(hi, self.act_max)
        return lo, hi

    @cached_property
    def finish_in_place(self):
        """``finish`` as an in-place step on an int64 array (None with a native activation,
        which comes before the zero point)."""
        if self.function in NATIVE_ACTIVATIONS:
            return None
        zp, (lo, hi) = self.zero_point, self.clamp

        def step(v: np.ndarray) -> None:
            if zp:
                v += zp
            if lo > hi:
                v[...] = hi
            else:
                np.clip(v, lo64, hi64, out=v)
        lo64, hi64 = np.int64(lo), np.int64(hi)  # numpy scalars: np.clip looks up no type limits
        return step

    def finish(self, values: np.ndarray, owned: bool = False) -> np.ndarray:
        """Zero point, clamp, LUT and saturation; values are integers (int64 or object).
        ``owned``: values is an int64 array the caller no longer needs (worked on in place)."""
        native = NATIVE_ACTIVATIONS.get(self.function)
        if native is not None:
            values = native(values.astype(np.int64) if values.dtype == object else values)
            owned = True
        lo, hi = self.clamp
        if values.dtype == object:
            return np.clip(values + self.zero_point, lo, hi).astype(np.int64)
        if owned and values.dtype == np.int64 and values.flags.writeable:
            v = values
            if self.zero_point:
                v += self.zero_point
        else:
            v = values + self.zero_point
        if lo > hi:  # np.clip's order when the bounds cross: the maximum wins
            v[...] = hi
            return v
        if v.size > CLIP_UFUNC_SIZE:
            np.clip(v, np.int64(lo), np.int64(hi), out=v)  # one pass (numpy scalars: no limit lookup)
        else:
            np.maximum(v, lo, out=v)
            np.minimum(v, hi, out=v)
        return v  # a LUT, if any, is applied by write(), which has the memory

    def write(self, mem: Memory, index: np.ndarray | FmAccess, values: np.ndarray) -> None:
        if LUT_FIRST <= self.function <= LUT_LAST:
            values = apply_lut(mem, self.function, values, self.ofm.dtype, self.behaviours)
            lo, hi = self.type_range()
            values = np.clip(values, lo, hi)
        if isinstance(index, FmAccess):
            index.write(mem, values)
        else:
            write_fm(mem, self.ofm.region, index, values, self.ofm.dtype)
