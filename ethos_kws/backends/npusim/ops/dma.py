"""DMA_START: copies between regions, or from a region into internal SHRAM (LUTs)."""

from __future__ import annotations

from ethosu.vela.ethos_u55_regs.ethos_u55_regs import stride_mode as StrideMode

from ....errors import CommandStreamError, NotModelledError
from ..dataflow import Access
from ..memory import SHRAM, Memory
from ..registers import RegisterFile

STRIDE_1D = StrideMode.STRIDE_MODE_1D.value


class DmaPlan:
    is_copy = True  # dataflow: the destination takes the source's written state

    def __init__(self, r: RegisterFile, mem: Memory):
        for name in ("DMA0_SRC_REGION", "DMA0_DST_REGION"):
            mode = r.field(name, "stride_mode")
            if mode not in {m.value for m in StrideMode}:
                raise CommandStreamError(f"{name}: undefined DMA stride mode {mode}")
            if mode != STRIDE_1D:
                raise NotModelledError(f"{name}: DMA {StrideMode(mode).name} is not modelled")
        if r.field("DMA0_SRC_REGION", "internal"):
            raise NotModelledError("DMA0_SRC_REGION: DMA from internal SHRAM is not modelled")
        self.src = r.field("DMA0_SRC_REGION", "region") & 0x7
        dst = r.field("DMA0_DST_REGION", "region") & 0x7
        self.dst = SHRAM if r.field("DMA0_DST_REGION", "internal") else dst
        self.src_addr, self.dst_addr, self.length = r.address("DMA0_SRC"), r.address("DMA0_DST"), r.address("DMA0_LEN")
        mem.check(self.src, self.src_addr, self.src_addr + self.length, "DMA source")
        mem.check(self.dst, self.dst_addr, self.dst_addr + self.length, "DMA destination")
        mem.check_writable(self.dst, "DMA destination")

    def accesses(self) -> tuple[list[Access], list[Access]]:
        return ([Access("DMA source", self.src, slice(self.src_addr, self.src_addr + self.length))],
                [Access("DMA destination", self.dst, slice(self.dst_addr, self.dst_addr + self.length))])

    def run(self, mem: Memory) -> None:
        src = mem.region(self.src)[:, self.src_addr : self.src_addr + self.length]
        mem.region(self.dst)[:, self.dst_addr : self.dst_addr + self.length] = src
