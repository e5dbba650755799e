"""POOL: MAX, AVERAGE and REDUCE_SUM (a sum over channels, the softmax denominator)."""

from __future__ import annotations

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import pooling_mode as Mode
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import CommandStreamError, NotModelledError
from ..behaviours import Behaviours
from ..dataflow import Access
from ..featuremap import FeatureMap, FmAccess
from ..memory import Memory
from ..registers import RegisterFile
from ..rescale import Rescale
from .common import Kernel, OutputStage, Upscale, effective_zero_point, ofm_shape, valid_counts



class PoolPlan:
    def __init__(self, r: RegisterFile, mem: Memory, mode: int, behaviours: Behaviours):
        if mode not in {m.value for m in Mode}:
            raise CommandStreamError(f"POOL mode {mode} is not defined")
        self.mode = mode = Mode(mode)
        self.behaviours = behaviours
        self.ofm = FeatureMap.from_registers(r, "OFM")
        self.ifm = FeatureMap.from_registers(r, "IFM")
        self.out = OutputStage.from_registers(r, self.ofm, behaviours)
        self.lut = self.out.lut_reads(mem)
        self.h, self.w, self.c = ofm_shape(r)
        self.k = Kernel.from_registers(r)
        if self.k.dilation_x != 1 or self.k.dilation_y != 1:
            raise NotModelledError("POOL with dilation is not modelled")
        self.ih, self.iw = self.k.ifm_size(self.h, self.w)
        self.upscale = Upscale.from_registers(r, "POOL")
        self.ifm_depth = r.param("IFM_DEPTH_M1") + 1 if mode is Mode.REDUCE_SUM else self.c
        if mode is Mode.REDUCE_SUM and self.c != 1:
            raise NotModelledError(f"REDUCE_SUM with OFM depth {self.c} (expected 1) is not modelled")
        self.padded = any((self.k.pad_top, self.k.pad_left, self.k.pad_bottom, self.k.pad_right))
        if mode is Mode.AVERAGE and not self.padded and not self.out.global_scale:
            raise NotModelledError("unpadded AVERAGE pool without global OFM_SCALE is not modelled")
        if mode is Mode.REDUCE_SUM and not self.out.global_scale:
            raise NotModelledError("REDUCE_SUM without global OFM_SCALE is not modelled")
        self.scale = r.scale("OFM_SCALE")
        self._rescale: Rescale | None = None  # made when first used
        self.ifm_zp = effective_zero_point(self.ifm, 0, behaviours)
        self.ifm_index = self.ifm.byte_index(mem, *self.upscale.stored_size(self.ih, self.iw), self.ifm_depth)
        self.ofm_index = self.ofm.byte_index(mem, self.h, self.w, self.c)
        self.ifm_io = FmAccess(self.ifm.region, self.ifm_index, self.ifm.dtype)
        self.ofm_io = FmAccess(self.ofm.region, self.ofm_index, self.ofm.dtype)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        return [Access("IFM", self.ifm.region, self.ifm_index)] + self.lut, [Access("OFM", self.ofm.region, self.ofm_index)]

    def _scaled(self, v: np.ndarray) -> np.ndarray:
        if self._rescale is None:
            self._rescale = Rescale(*self.scale, self.out.rounding)
        return self._rescale.apply(v)

    def _valid_counts(self) -> np.ndarray:
        return valid_counts(self.k, self.h, self.w, self.ih, self.iw)

    def run(self, mem: Memory) -> None:
        x = np.subtract(self.ifm_io.read(mem), self.ifm_zp, dtype=np.int64)
        if self.upscale.active:
            x = self.upscale.apply(x, self.ih, self.iw, 0)
        k = self.k
        if self.mode is Mode.REDUCE_SUM:
            v = self._scaled(x.sum(axis=3, keepdims=True))
            self.out.write(mem, self.ofm_io, self.out.finish(v))
            return
        if self.mode is Mode.MAX:
            fill = np.iinfo(np.int64).min // 4
        else:
            fill = 0
        b = x.shape[0]
        if self.padded:
            xp = np.full((b, self.ih + k.pad_top + k.pad_bottom, self.iw + k.pad_left + k.pad_right, self.c),
                         fill, dtype=np.int64)
            xp[:, k.pad_top : k.pad_top + self.ih, k.pad_left : k.pad_left + self.iw] = x
        else:
            xp = x
        if (self.h, self.w) == (1, 1) and xp.shape[1:3] == (k.height, k.width):
            # a global pool: the one window is the whole (padded) IFM; reduced as (b, 1, 1, c)
            def reduce(f):
                return f(xp, axis=(1, 2), keepdims=True)
        else:
            win = sliding_window_view(xp, (k.height, k.width), axis=(1, 2))
            win = win[:, : (self.h - 1) * k.stride_y + 1 : k.stride_y, : (self.w - 1) * k.stride_x + 1 : k.stride_x]

            def reduce(f):
                return f(win, axis=(4, 5))
        if self.mode is Mode.MAX:
            v = reduce(np.max)
            if self.out.global_scale:
                v = self._scaled(v)
        elif not self.padded:
            v = self._scaled(reduce(np.sum))
        else:  # padding: the hardware divides by the number of valid elements itself
            v = _divide(reduce(np.sum), self._valid_counts(), self.behaviours.padded_avg_round_away)
            if self.out.global_scale:
                v = self._scaled(v)
        self.out.write(mem, self.ofm_io, self.out.finish(v))


def _divide(total: np.ndarray, count: np.ndarray, away: bool) -> np.ndarray:
    """total / count rounded half away from zero (the padded average pool's hardware divisor)."""
    if not away:
        return (2 * total + count) // (2 * count)
    q = (2 * np.abs(total) + count) // (2 * count)
    return np.where(total < 0, -q, q)
