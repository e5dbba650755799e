"""The memory map: Vela's tensor allocation (``--verbose-allocation``), tensor by tensor.

Vela prints one table per memory it allocates (the arena and fast-storage ``Staging`` area, and
the read-only NPU tensors: weights, scales, LUTs), each row a tensor with its live range in
schedule time steps (Vela's default core gives each operation two steps), its address range and
the memory in use when it becomes live:

    Allocation, memory Sram, usage mask: FeatureMap|Staging
    Start Time - End Time  : Start Addr -   End Addr: Tensor Size: Memory Usage: Format : Name
             0 -          1:    0x13360 -    0x13550:         496:        85888: NHWC   : input_int8
    Allocation Peak Tensor Size: 96400 bytes == 94.140625 KiB

The legacy core prints the same columns plus ``Purpose``. Columns are found by their header, the
name is the last one and may itself contain ``:``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

READ_ONLY = "read-only"

_SECTION = re.compile(r"^(?:Allocation, memory (?P<memory>\w+), usage mask: (?P<mask>\S+)"
                      r"|Tensor Allocation for (?P<legacy>mem_area (?P<lmem>\w+).*)"
                      r"|Tensor Allocation for read-only NPU tensors:)\s*$")
_PEAK = re.compile(r"^Allocation Peak Tensor Size: (?P<bytes>\d+) bytes")
_RANGE = re.compile(r"^\s*(?P<a>\S+)\s*-\s*(?P<b>\S+)\s*$")


@dataclass(frozen=True)
class TensorAllocation:
    name: str
    start_time: int  # first schedule step the tensor is live
    end_time: int  # last step, inclusive
    start_address: int
    end_address: int  # exclusive
    size_bytes: int
    usage_bytes: int  # memory in use when it becomes live (Vela's "Memory Usage")
    format: str
    purpose: str = ""  # legacy core only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Allocation:
    memory: str  # Vela's memory name: Sram, Dram, ...; "read-only" for the constant tensors
    usage: str  # Vela's usage mask, e.g. FeatureMap|Staging
    peak_bytes: int | None  # Vela's "Allocation Peak Tensor Size"
    tensors: tuple[TensorAllocation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"memory": self.memory, "usage": self.usage, "peak_bytes": self.peak_bytes,
                "tensors": [t.to_dict() for t in self.tensors]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Allocation":
        return cls(str(d["memory"]), str(d.get("usage", "")), d.get("peak_bytes"),
                   tuple(TensorAllocation(**t) for t in d.get("tensors", ())))


def _columns(header: str) -> list[str]:
    return [c.strip() for c in header.split(":")]


def _row(line: str, columns: Sequence[str]) -> TensorAllocation | None:
    parts = line.split(":", len(columns) - 1)
    if len(parts) != len(columns):
        return None
    cells = dict(zip(columns, (p.strip() for p in parts[:-1])))
    cells[columns[-1]] = parts[-1].strip()
    try:
        times = _RANGE.match(cells["Start Time - End Time"])
        addrs = _RANGE.match(cells["Start Addr - End Addr"]) or _RANGE.match(cells.get("Start Addr -   End Addr", ""))
        if times is None or addrs is None:
            return None
        return TensorAllocation(
            name=cells["Name"], start_time=int(times["a"]), end_time=int(times["b"]),
            start_address=int(addrs["a"], 16), end_address=int(addrs["b"], 16),
            size_bytes=int(cells["Tensor Size"]), usage_bytes=int(cells["Memory Usage"]),
            format=cells.get("Format", ""), purpose=cells.get("Purpose", ""),
        )
    except (KeyError, ValueError):
        return None


def parse_allocations(log: str) -> tuple[Allocation, ...]:
    """Every allocation table in Vela's console output, in the order printed."""
    out: list[Allocation] = []
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        m = _SECTION.match(lines[i].strip())
        i += 1
        if not m:
            continue
        if m["memory"]:
            memory, usage = m["memory"], m["mask"]
        elif m["legacy"]:
            memory, usage = m["lmem"], m["legacy"]
        else:
            memory, usage = READ_ONLY, "read-only NPU tensors"
        if i >= len(lines) or not lines[i].startswith("Start Time"):
            continue
        columns = [re.sub(r"\s+", " ", c) for c in _columns(lines[i])]
        columns = ["Start Addr - End Addr" if c.startswith("Start Addr") else c for c in columns]
        i += 1
        tensors, peak = [], None
        while i < len(lines):
            text = lines[i]
            p = _PEAK.match(text.strip())
            if p:
                peak = int(p["bytes"])
                i += 1
                break
            if not text.strip() or text.startswith("#"):
                break
            row = _row(text, columns)
            if row is not None:
                tensors.append(row)
            i += 1
        out.append(Allocation(memory, usage, peak, tuple(tensors)))
    return tuple(out)


def live_bytes(alloc: Allocation) -> list[tuple[int, int]]:
    """(time step, bytes of the tensors live then), for every step of the schedule."""
    if not alloc.tensors:
        return []
    last = max(t.end_time for t in alloc.tensors)
    return [(step, sum(t.size_bytes for t in alloc.tensors if t.start_time <= step <= t.end_time))
            for step in range(last + 1)]


def peak(alloc: Allocation) -> tuple[int, int] | None:
    """(time step, bytes) where the live tensors take the most memory; the first such step."""
    steps = live_bytes(alloc)
    if not steps:
        return None
    top = max(b for _, b in steps)
    return next((s, b) for s, b in steps if b == top)


def live_at(alloc: Allocation, step: int) -> list[TensorAllocation]:
    return sorted((t for t in alloc.tensors if t.start_time <= step <= t.end_time),
                  key=lambda t: -t.size_bytes)


def arena(allocs: Iterable[Allocation | Mapping[str, Any]]) -> Allocation | None:
    """The writable allocation that holds the staging area (the SRAM figure); else the largest."""
    items = [a if isinstance(a, Allocation) else Allocation.from_dict(a) for a in allocs]
    writable = [a for a in items if a.memory != READ_ONLY and a.tensors]
    staging = [a for a in writable if "Staging" in a.usage or "Scratch_fast" in a.usage]
    pool = staging or writable
    return max(pool, key=lambda a: a.peak_bytes or 0) if pool else None


def largest(alloc: Allocation, n: int = 10) -> list[TensorAllocation]:
    return sorted(alloc.tensors, key=lambda t: (-t.size_bytes, t.start_time))[:n]
