"""NPU memories: the regions behind the base pointers and the internal SHRAM.

Every region is a uint8 array of shape ``(batch, size)`` (read-only region 0 is ``(1, size)`` and
broadcasts over the batch). Every access is checked against the region's size before it happens;
a violation raises ``CommandStreamError`` naming the region, offset and length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import CommandStreamError

READ_ONLY_REGION = 0
SHRAM = "SHRAM"
MAX_REGION_BYTES = 1 << 28  # a corrupt model cannot make us allocate more than this per region
MAX_MEMORY_BYTES = 1 << 31  # ... nor more than this for all batch items together
LUT_BYTES = 2048  # LUTs live in the top 2 KiB of SHRAM in 256-byte slots
LUT_SLOT_BYTES = 256


@dataclass
class Memory:
    regions: dict[int, np.ndarray]
    shram: np.ndarray
    batch: int
    read_only_source: object = None  # the bytes region 0 was made from (``ConstReads``)

    @classmethod
    def create(cls, batch: int, read_only: bytes, scratch_bytes: int, fast_bytes: int,
               fast_is_scratch: bool, shram_bytes: int) -> Memory:
        for what, n in (("scratch", scratch_bytes), ("scratch_fast", fast_bytes)):
            if n > MAX_REGION_BYTES:
                raise CommandStreamError(f"{what} region of {n} bytes exceeds the simulator's limit")
        if batch * (scratch_bytes + (0 if fast_is_scratch else fast_bytes)) > MAX_MEMORY_BYTES:
            raise CommandStreamError(f"batch of {batch} needs more than {MAX_MEMORY_BYTES} bytes of NPU memory")
        ro = np.frombuffer(read_only, dtype=np.uint8).reshape(1, -1)
        scratch = np.zeros((batch, scratch_bytes), dtype=np.uint8)
        fast = scratch if fast_is_scratch else np.zeros((batch, fast_bytes), dtype=np.uint8)
        return cls({READ_ONLY_REGION: ro, 1: scratch, 2: fast},
                   np.zeros((batch, max(shram_bytes, LUT_BYTES)), dtype=np.uint8), batch, read_only)

    def region(self, index: int | str) -> np.ndarray:
        if index == SHRAM:
            return self.shram
        try:
            return self.regions[index]
        except KeyError:
            raise CommandStreamError(
                f"region {index} is not backed by any tensor of the ethos-u op "
                f"(regions: {', '.join(sorted(map(str, self.regions)))})"
            ) from None

    def check(self, index: int | str, lo: int, hi: int, what: str) -> None:
        """Check that bytes [lo, hi) are inside a region."""
        size = self.region(index).shape[1]
        if lo < 0 or hi > size or lo > hi:
            raise CommandStreamError(
                f"{what}: access to region {index} at offset {lo} length {hi - lo} is outside "
                f"the region ({size} bytes)"
            )

    def check_writable(self, index: int | str, what: str) -> None:
        if index == READ_ONLY_REGION:
            raise CommandStreamError(f"{what}: write to read-only region {READ_ONLY_REGION}")

    def read_bytes(self, index: int | str, offset: int, length: int, what: str) -> np.ndarray:
        """(batch or 1, length) view."""
        self.check(index, offset, offset + length, what)
        return self.region(index)[:, offset : offset + length]

    def read_const(self, index: int | str, offset: int, length: int, what: str) -> bytes:
        """Bytes that must be the same for every batch element (weights, scales)."""
        view = self.read_bytes(index, offset, length, what)
        if view.shape[0] > 1 and not (view == view[:1]).all():
            raise CommandStreamError(f"{what}: region {index} at {offset} differs between batch items")
        return view[0].tobytes()

    def lut_base(self) -> int:
        return self.shram.shape[1] - LUT_BYTES


class ConstReads:
    """A plan's reads of its weight and scale streams (``Memory.read_const``), with the streams
    left in read-only region 0 read once: they are bytes of the same immutable object on every
    run, which is checked, so a plan run on other memory reads them again. Streams in a writable
    region are read on every run, as a DMA or an operation may have changed them."""

    def __init__(self):
        self._source: object = None
        self._fixed: dict[tuple[int, int], bytes] = {}

    def read(self, mem: Memory, index: int | str, offset: int, length: int, what: str) -> bytes:
        if index != READ_ONLY_REGION or mem.read_only_source is None:
            return mem.read_const(index, offset, length, what)
        if mem.read_only_source is not self._source:
            self._source, self._fixed = mem.read_only_source, {}
        data = self._fixed.get((offset, length))
        if data is None:
            data = self._fixed[(offset, length)] = mem.read_const(index, offset, length, what)
        return data
