"""DMA_START: copies between regions, or from a region into internal SHRAM (LUTs)."""

from __future__ import annotations

from ....errors import CommandStreamError
from ..memory import SHRAM, Memory
from ..registers import RegisterFile

STRIDE_1D = 0


class DmaPlan:
    def __init__(self, r: RegisterFile, mem: Memory):
        src_reg, dst_reg = r.p("DMA0_SRC_REGION"), r.p("DMA0_DST_REGION")
        for name, reg in (("DMA0_SRC_REGION", src_reg), ("DMA0_DST_REGION", dst_reg)):
            mode = (reg >> 9) & 0x3
            if mode != STRIDE_1D:
                raise CommandStreamError(f"{name}: DMA stride mode {mode} (2D/3D) is not modelled")
        if (src_reg >> 8) & 1:
            raise CommandStreamError("DMA0_SRC_REGION: DMA from internal SHRAM is not modelled")
        self.src = src_reg & 0x7
        self.dst = SHRAM if (dst_reg >> 8) & 1 else dst_reg & 0x7
        self.src_addr, self.dst_addr, self.length = r.a("DMA0_SRC"), r.a("DMA0_DST"), r.a("DMA0_LEN")
        mem.check(self.src, self.src_addr, self.src_addr + self.length, "DMA source")
        mem.check(self.dst, self.dst_addr, self.dst_addr + self.length, "DMA destination")
        mem.check_writable(self.dst, "DMA destination")

    def run(self, mem: Memory) -> None:
        src = mem.region(self.src)[:, self.src_addr : self.src_addr + self.length]
        mem.region(self.dst)[:, self.dst_addr : self.dst_addr + self.length] = src
