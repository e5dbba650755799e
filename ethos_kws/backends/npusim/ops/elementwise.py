"""ELEMENTWISE: MUL, ADD, SUB, MIN, MAX, LRELU, ABS, CLZ, SHR, SHL.

Binary ops read IFM2 as a feature map (broadcast in H/W/C when flagged) or as the 16-bit
``IFM2_SCALAR``; ``IFM2_BROADCAST`` bit 6 swaps the operands. ADD/SUB scale their operands with
OPA/OPB_SCALE (IFM_PRECISION [9:8]: 0 both 16-bit multipliers, 1/2 operand A/B rescaled with a
32-bit multiplier and shift, the other shifted left), then everything goes through OFM_SCALE.
"""

from __future__ import annotations

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import elementwise_mode as Mode
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import ifm_scale_mode as ScaleMode

from ....errors import CommandStreamError, NotModelledError
from ..behaviours import Behaviours
from ..commands import decode_fields
from ..dataflow import Access
from ..featuremap import FeatureMap, FmAccess
from ..memory import Memory
from ..kernels import ScalarStage
from ..registers import RegisterFile
from ..rescale import NATURAL, TRUNCATE, Rescale, round_terms
from .common import NATIVE_ACTIVATIONS, OutputStage, Upscale, count_leading_zeros, effective_zero_point, ofm_shape

UNARY = (Mode.LRELU, Mode.ABS, Mode.CLZ)
# Which scale registers each mode reads (Vela's generate_scaling_for_elementwise): ADD/SUB
# OPA/OPB_SCALE and OFM_SCALE; MUL and ABS OFM_SCALE on the result; LRELU OFM_SCALE = alpha on the
# negative elements. The rest take no scale: Vela programs OFM_SCALE 1, shift 0, and a stream that
# asks for another scale is something npu-sim does not model rather than a scale to ignore.
UNSCALED = (Mode.MIN, Mode.MAX, Mode.CLZ, Mode.SHR, Mode.SHL)
UNIT_SCALE = (1, 0)
# Advanced ADD/SUB scaling: the unscaled operand is shifted left so that it lines up with the
# rescaled one (input shift 20 for 8-bit, 15 for 16-bit, minus the factor 2 of Vela's 2*max).
UNSCALED_SHIFT = {8: 19, 16: 14, 32: 0}
ROUND_AT = {8: 11, 16: 16, 32: 31}  # TFLite rounds the scaled operand at bit 31 of (x << shift) * M


class ElementwisePlan:
    def __init__(self, r: RegisterFile, mem: Memory, mode: int, behaviours: Behaviours):
        if mode not in {m.value for m in Mode}:
            raise CommandStreamError(f"ELEMENTWISE mode {mode} is not defined")
        self.mode = mode = Mode(mode)
        self.behaviours = behaviours
        self.ofm = FeatureMap.from_registers(r, "OFM")
        self.ifm = FeatureMap.from_registers(r, "IFM")
        Upscale.from_registers(r, "ELEMENTWISE")  # refuses resampling it does not model
        self.out = OutputStage.from_registers(r, self.ofm, behaviours)
        self.lut = self.out.lut_reads(mem)
        self.h, self.w, self.c = ofm_shape(r)
        self.ifm_index = self.ifm.byte_index(mem, self.h, self.w, self.c)
        self.ofm_index = self.ofm.byte_index(mem, self.h, self.w, self.c)
        self.ifm_io = FmAccess(self.ifm.region, self.ifm_index, self.ifm.dtype)
        self.ofm_io = FmAccess(self.ofm.region, self.ofm_index, self.ofm.dtype)
        self.ifm_zp = effective_zero_point(self.ifm, self.out.clip_range, behaviours)
        self.scale_mode = r.field("IFM_PRECISION", "scale_mode")
        self.opa = r.scale("OPA_SCALE")
        self.opb = r.scale("OPB_SCALE")
        self.ofm_scale = r.scale("OFM_SCALE")
        if mode in UNSCALED and self.ofm_scale != UNIT_SCALE:
            raise NotModelledError(f"ELEMENTWISE {mode.name} with OFM_SCALE {self.ofm_scale} "
                                   f"(multiplier, shift) is not modelled")
        self._rescales: dict[tuple[int, int, int], Rescale] = {}  # made when first used
        self._stages: dict[tuple[int, int], ScalarStage | None] = {}
        self.ifm2 = None
        self.reversed = False
        if mode not in UNARY:
            bc = decode_fields("NPU_SET_IFM2_BROADCAST", r.param("IFM2_BROADCAST"))
            self.reversed = bool(bc["operand_order"])
            self.ifm2 = FeatureMap.from_registers(r, "IFM2")
            self.ifm2_zp = effective_zero_point(self.ifm2, self.out.clip_range, behaviours)
            if bc["broadcast_scalar"]:
                self.scalar = r.signed("IFM2_SCALAR") if self.ifm2.signed else r.param("IFM2_SCALAR")
                # the operand as every run uses it, made once (read-only: no step may change it)
                self._scalar_operand = np.full((1, 1, 1, 1), self.scalar - self.ifm2_zp, dtype=np.int64)
                self._scalar_operand.flags.writeable = False
                self.ifm2_index = None
            else:
                self.scalar = None
                h2 = 1 if bc["broadcast_height"] else self.h
                w2 = 1 if bc["broadcast_width"] else self.w
                c2 = 1 if bc["broadcast_depth"] else self.c
                self.ifm2_index = self.ifm2.byte_index(mem, h2, w2, c2)
                self.ifm2_io = FmAccess(self.ifm2.region, self.ifm2_index, self.ifm2.dtype)

    def _scale(self, multiplier: int, shift: int, mode: int) -> Rescale:
        """The prepared rescale for one (multiplier, shift, mode), made when first used: a scale
        register the mode does not read is never checked."""
        key = (multiplier, shift, mode)
        r = self._rescales.get(key)
        if r is None:
            r = self._rescales[key] = Rescale(multiplier, shift, mode)
        return r

    def accesses(self) -> tuple[list[Access], list[Access]]:
        reads = [Access("IFM", self.ifm.region, self.ifm_index)]
        if self.ifm2 is not None and self.ifm2_index is not None:
            reads.append(Access("IFM2", self.ifm2.region, self.ifm2_index))
        return reads + self.lut, [Access("OFM", self.ofm.region, self.ofm_index)]

    def _operands(self, mem: Memory):
        a = np.subtract(self.ifm_io.read(mem), self.ifm_zp, dtype=np.int64)
        if self.ifm2 is None:
            return a, None
        if self.ifm2_index is None:
            b = self._scalar_operand
        else:
            b = np.subtract(self.ifm2_io.read(mem), self.ifm2_zp,
                            dtype=np.int64)
        return (b, a) if self.reversed else (a, b)

    def _scaled_add_operands(self, a, b):
        bits = self.ifm.bits
        if self.scale_mode == ScaleMode.SCALE_16BIT.value:
            return a * self.opa[0], b * self.opb[0]
        if self.scale_mode not in (ScaleMode.SCALE_OPA_32BIT.value, ScaleMode.SCALE_OPB_32BIT.value):
            raise CommandStreamError(f"IFM_PRECISION scale mode {self.scale_mode} is not defined")
        mult, shift = self.opa
        k = ROUND_AT[bits]
        if shift < k:
            raise NotModelledError(f"OPA_SCALE shift {shift} below {k} is not modelled")

        def scale(x):
            # TFLite's rounding doubling high multiply of (x << input shift) by the multiplier
            # (round half up at bit k of x*M), then a rounding divide by 2^(shift-k), half away
            # from zero
            t = self._scale(mult, k, NATURAL).apply(x)
            e = shift - k
            if e == 0:
                return t
            return (t + (1 << (e - 1)) - (t < 0)) >> e

        unscaled = UNSCALED_SHIFT[bits]
        if self.scale_mode == ScaleMode.SCALE_OPA_32BIT.value:
            return scale(a), b << unscaled
        return a << unscaled, scale(b)

    def _stage(self, multiplier: int, shift: int) -> ScalarStage | None:
        """OFM_SCALE, zero point and clamp compiled (``kernels.ScalarStage``), made when first used;
        None where the numpy path runs (a native activation, TRUNCATE rounding, no numba)."""
        key = (multiplier, shift)
        if key not in self._stages:
            out = self.out
            terms = None if out.function in NATIVE_ACTIVATIONS else round_terms(shift, out.rounding)
            self._stages[key] = None if terms is None else ScalarStage.build(
                multiplier, shift, int(terms[0]), int(terms[1]), out.zero_point, *out.clamp)
        return self._stages[key]

    def _scaled(self, x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
        """OFM_SCALE's rescale of x and the output stage: compiled in one call when it applies."""
        stage = self._stage(multiplier, shift)
        v = None if stage is None else stage.apply(x)
        if v is None:
            v = self.out.finish(self._scale(multiplier, shift, self.out.rounding).apply(x), owned=True)
        return v

    def run(self, mem: Memory) -> None:
        a, b = self._operands(mem)
        m, out = self.mode, self.out
        full = (mem.batch, self.h, self.w, self.c)
        if m in (Mode.ADD, Mode.SUB, Mode.MUL, Mode.ABS):  # rescaled by OFM_SCALE
            mult, shift = self.ofm_scale
            if m is Mode.MUL:
                x = a * b
                # Vela: "32 bit Mul op do not scale the value" (its squared difference multiplies
                # by a constant multiplier instead); the IFM's precision decides, not the OFM's
                if self.ifm.bits == 32 and self.behaviours.mul32_shift_only:
                    mult = 1
            elif m is Mode.ABS:
                x = np.abs(a)
            else:
                sa, sb = self._scaled_add_operands(a, b)
                x = sa + sb if m is Mode.ADD else sa - sb
            v = self._scaled(x, mult, shift)
            out.write(mem, self.ofm_io, v if v.shape == full else np.broadcast_to(v, full))
            return
        if m in (Mode.MIN, Mode.MAX):
            v = np.minimum(a, b) if m is Mode.MIN else np.maximum(a, b)
            v = np.broadcast_to(v, np.broadcast_shapes(a.shape, b.shape))
        elif m is Mode.LRELU:
            if self.behaviours.lrelu_alpha_in_ofm_scale:
                v = np.where(a < 0, self._scale(*self.ofm_scale, out.rounding).apply(a), a)
            else:
                neg = self._scale(*self.opa, out.rounding).apply(a)
                v = self._scale(*self.ofm_scale, out.rounding).apply(np.where(a < 0, neg, a))
        elif m is Mode.CLZ:
            v = count_leading_zeros(a)
        elif m is Mode.SHR:
            sh = np.clip(b, 0, 31)
            if out.rounding == NATURAL:
                v = (a + np.where(sh > 0, np.int64(1) << np.maximum(sh - 1, 0), 0)) >> sh
            elif out.rounding == TRUNCATE:
                mag = np.abs(a) >> sh
                v = np.where(a < 0, -mag, mag)
            else:
                v = a >> sh
        else:  # SHL
            sh = np.clip(b, 0, 31)
            v = a << sh
        if v.shape == full:
            out.write(mem, self.ofm_io, out.finish(v, owned=True))
        else:
            out.write(mem, self.ofm_io, out.finish(np.broadcast_to(v, full)))
