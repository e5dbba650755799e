"""POOL: MAX, AVERAGE and REDUCE_SUM (a sum over channels, the softmax denominator)."""

from __future__ import annotations

import numpy as np
from ethosu.vela.ethos_u55_regs.ethos_u55_regs import pooling_mode as Mode
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import CommandStreamError, NotModelledError
from ..behaviours import Behaviours
from ..dataflow import Access
from ..featuremap import FeatureMap, read_fm
from ..memory import Memory
from ..registers import RegisterFile
from ..rescale import rescale
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
        self.ifm_zp = effective_zero_point(self.ifm, 0, behaviours)
        self.ifm_index = self.ifm.byte_index(mem, *self.upscale.stored_size(self.ih, self.iw), self.ifm_depth)
        self.ofm_index = self.ofm.byte_index(mem, self.h, self.w, self.c)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        return [Access("IFM", self.ifm.region, self.ifm_index)], [Access("OFM", self.ofm.region, self.ofm_index)]

    def _valid_counts(self) -> np.ndarray:
        return valid_counts(self.k, self.h, self.w, self.ih, self.iw)

    def run(self, mem: Memory) -> None:
        x = read_fm(mem, self.ifm.region, self.ifm_index, self.ifm.dtype).astype(np.int64) - self.ifm_zp
        if self.upscale.active:
            x = self.upscale.apply(x, self.ih, self.iw, 0)
        k = self.k
        if self.mode is Mode.REDUCE_SUM:
            v = rescale(x.sum(axis=3, keepdims=True), *self.scale, self.out.rounding)
            self.out.write(mem, self.ofm_index, self.out.finish(v))
            return
        if self.mode is Mode.MAX:
            fill = np.iinfo(np.int64).min // 4
        else:
            fill = 0
        b = x.shape[0]
        xp = np.full((b, self.ih + k.pad_top + k.pad_bottom, self.iw + k.pad_left + k.pad_right, self.c),
                     fill, dtype=np.int64)
        xp[:, k.pad_top : k.pad_top + self.ih, k.pad_left : k.pad_left + self.iw] = x
        win = sliding_window_view(xp, (k.height, k.width), axis=(1, 2))
        win = win[:, : (self.h - 1) * k.stride_y + 1 : k.stride_y, : (self.w - 1) * k.stride_x + 1 : k.stride_x]
        if self.mode is Mode.MAX:
            v = win.max(axis=(4, 5))
            if self.out.global_scale:
                v = rescale(v, *self.scale, self.out.rounding)
        elif not self.padded:
            v = rescale(win.sum(axis=(4, 5)), *self.scale, self.out.rounding)
        else:  # padding: the hardware divides by the number of valid elements itself
            v = _divide(win.sum(axis=(4, 5)), self._valid_counts(), self.behaviours.padded_avg_round_away)
            if self.out.global_scale:
                v = rescale(v, *self.scale, self.out.rounding)
        self.out.write(mem, self.ofm_index, self.out.finish(v))


def _divide(total: np.ndarray, count: np.ndarray, away: bool) -> np.ndarray:
    """total / count rounded half away from zero (the padded average pool's hardware divisor)."""
    if not away:
        return (2 * total + count) // (2 * count)
    q = (2 * np.abs(total) + count) // (2 * count)
    return np.where(total < 0, -q, q)
