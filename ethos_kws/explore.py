"""Design-space exploration: the product of Vela's settings, the Pareto front and a budget.

``explore`` compiles one model for every point of the product of its axes (accelerator, system
config, memory mode, optimise, arena cache size, tensor allocator) through the one executor seam
(``sweeps.compile_all``: the content-addressed cache, then the local pool or a Dask cluster), so a
re-run is instant and an interrupted one resumes. A combination Vela cannot take (a U55 with a
DRAM system config, a memory mode whose area lands in the wrong memory) is a failed point with its
reason, never a silent substitute. ``explore.json`` (schema-versioned) and ``explore.csv`` (one
row per point) hold every point; the Pareto front is marked over the four costs in ``OBJECTIVES``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import itertools
import os
import platform
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .accel import check_memory_mode, get_system_config, parse_accelerator_list
from .errors import EthosKwsError, UserError
from .fsutil import atomic_dir, atomic_write_json, atomic_write_text
from .model import ModelInfo, ResolvedModel, model_info, resolve_model
from .records import Record, check_schema, versioned
from .results import CSV_COLUMNS
from .vela import OPTIMISE_CHOICES, TENSOR_ALLOCATORS, CompileResult, make_spec

if TYPE_CHECKING:
    from .executors import DaskRunner
    from .vela_ini import UserIni

MAX_POINTS = 10_000  # beyond this, --yes: a typo in a list should not start a day of compiles
AXES = ("accel", "system_config", "memory_mode", "optimise", "arena_cache_size", "tensor_allocator")
DEFAULT = "default"  # an axis left unset: each accelerator's own default (Vela's, for the last two)
# the costs the front is taken over, all lower-is-better: time, on-chip memory, off-chip memory,
# and MACs/cycle as the silicon-area proxy
OBJECTIVES = ("inference_time_ms", "sram_bytes", "offchip_bytes", "macs_per_cycle")
EXPLORE_JSON, EXPLORE_CSV = "explore.json", "explore.csv"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|KB|MB|K|M)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1024, "k": 1024, "kb": 1000, "mib": 1 << 20, "m": 1 << 20, "mb": 1000_000}


def parse_size(text: str, flag: str = "--arena-cache-size") -> int:
    """``65536``, ``64KiB``, ``1.5MiB`` (KB/MB are decimal) -> bytes."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise UserError(f"{flag} {text!r} is not a size such as 65536, 64KiB or 1MiB")
    value = float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]
    if value <= 0 or value != int(value):
        raise UserError(f"{flag} {text!r} must be a positive whole number of bytes")
    return int(value)


def parse_budget(text: str | float | None, flag: str, unit: str) -> float | None:
    """A budget flag's value: a non-negative number, optionally followed by the flag's own unit
    (``--max-time-ms 2`` or ``2ms``); another unit is refused rather than guessed."""
    if text is None:
        return None
    m = re.match(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$", str(text))
    if not m:
        raise UserError(f"{flag} {text!r} is not a number (in {unit})")
    if m.group(2) and m.group(2).lower() != unit.lower():
        raise UserError(f"{flag} {text!r}: the unit of this flag is {unit}; give the number in {unit}")
    value = float(m.group(1))
    if value < 0:
        raise UserError(f"{flag} {text!r} must not be negative")
    return value


def _items(flag: str, value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    items = [p.strip() for p in parts if p.strip()]
    if not items:
        raise UserError(f"{flag} {value!r} names no value; leave it out for the default")
    return list(dict.fromkeys(items))


def _choice(flag: str, value: str, choices: Sequence[str]) -> str:
    for c in choices:
        if c.lower() == value.lower():
            return c
    raise UserError(f"unknown {flag} value {value!r}; choose from {', '.join(choices)}")


@dataclass(frozen=True)
class Axes(Record):
    """The checked axis values; None in a list is the default of that setting."""

    accel: tuple[str, ...]
    system_config: tuple[str | None, ...] = (None,)
    memory_mode: tuple[str | None, ...] = (None,)
    optimise: tuple[str, ...] = ("Performance",)
    arena_cache_size: tuple[int | None, ...] = (None,)
    tensor_allocator: tuple[str | None, ...] = (None,)

    def size(self) -> int:
        n = 1
        for a in AXES:
            n *= len(getattr(self, a))
        return n

    def points(self):
        return itertools.product(*(getattr(self, a) for a in AXES))


def parse_axes(*, accel="all", system_config=None, memory_mode=None, optimise=None, arena_cache_size=None,
               tensor_allocator=None, user_ini: "UserIni | None" = None) -> Axes:
    """Every value of every axis checked once, before any compile: an unknown one is bad input."""
    ini = user_ini.path if user_ini else None
    accels = tuple(a.name for a in parse_accelerator_list(accel if accel is not None else "all"))
    scs = _items("--system-config", system_config)
    mms = _items("--memory-mode", memory_mode)
    for s in scs or ():
        get_system_config(s, ini)
    for m in mms or ():
        check_memory_mode(m, ini)
    opts = _items("--optimise", optimise) or ["Performance"]
    sizes = _items("--arena-cache-size", arena_cache_size)
    allocs = _items("--tensor-allocator", tensor_allocator)
    return Axes(
        accels,
        tuple(scs) if scs else (None,),
        tuple(mms) if mms else (None,),
        tuple(_choice("--optimise", o, OPTIMISE_CHOICES) for o in opts),
        tuple(parse_size(s) for s in sizes) if sizes else (None,),
        tuple(_choice("--tensor-allocator", t, TENSOR_ALLOCATORS) for t in allocs) if allocs else (None,),
    )


@dataclass(frozen=True)
class ExplorePoint(Record):
    """One point of the product: the axis values asked for, and its compile or why there is none."""

    point: int
    accel: str
    system_config: str  # as asked ("default": the accelerator's)
    memory_mode: str
    optimise: str
    arena_cache_size: str
    tensor_allocator: str
    status: str  # "ok" or "failed"
    error: str = ""
    pareto: bool = False
    meets_budget: bool | None = None  # None: no budget given
    result: CompileResult | None = None

    def costs(self) -> tuple[float, ...]:
        r = self.result
        return (r.inference_time_ms, r.sram_bytes, r.flash_bytes + r.dram_bytes, r.macs_per_cycle)

    def label(self) -> str:
        bits = [self.accel] + [str(getattr(self, a)) for a in AXES[1:] if str(getattr(self, a)) != DEFAULT]
        return " / ".join(bits)


@dataclass(frozen=True)
class ExploreResult(Record):
    model: ModelInfo
    axes: Axes
    points: tuple[ExplorePoint, ...]
    max_time_ms: float | None = None
    max_sram_kib: float | None = None
    out_dir: str | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    host: str = field(default_factory=lambda: f"{socket.gethostname()} ({platform.platform()}, {os.cpu_count()} cores)")
    kind: str = "explore"  # what the report looks for

    def to_dict(self) -> dict[str, Any]:
        return versioned(super().to_dict())

    @classmethod
    def from_dict(cls, d, source: str = EXPLORE_JSON):
        check_schema(d, source)
        if not isinstance(d, dict) or d.get("kind") != "explore":
            raise UserError(f"{source} is not an explore.json (no \"kind\": \"explore\")")
        return super().from_dict(d)

    def ok(self) -> list[ExplorePoint]:
        return [p for p in self.points if p.status == "ok"]

    def front(self) -> list[ExplorePoint]:
        return sorted((p for p in self.points if p.pareto), key=lambda p: p.costs())

    def within_budget(self) -> list[ExplorePoint]:
        """The points meeting the budget, cheapest first: fewest MACs/cycle, then least SRAM."""
        return sorted((p for p in self.points if p.meets_budget),
                      key=lambda p: (p.result.macs_per_cycle, p.result.sram_bytes, p.result.inference_time_ms))

    def csv_text(self) -> str:
        return explore_csv_text(self)


def pareto_flags(costs: Sequence[tuple[float, ...] | None]) -> list[bool]:
    """Which cost vectors no other one dominates (no worse in every cost, better in one)."""
    order = sorted((i for i, c in enumerate(costs) if c is not None), key=lambda i: costs[i])
    front: list[int] = []
    for i in order:  # lexicographic order: a dominating vector always comes before what it dominates
        c = costs[i]
        if not any(all(f <= x for f, x in zip(costs[j], c)) and costs[j] != c for j in front):
            front.append(i)
    flags = [False] * len(costs)
    for i in front:
        flags[i] = True
    return flags


def _budget_ok(r: CompileResult, max_time_ms: float | None, max_sram_kib: float | None) -> bool:
    return ((max_time_ms is None or r.inference_time_ms <= max_time_ms)
            and (max_sram_kib is None or r.sram_bytes <= max_sram_kib * 1024))


def explore(
    model: str | os.PathLike | ResolvedModel | None,
    axes: Axes,
    *,
    user_ini: "UserIni | None" = None,
    max_time_ms: float | None = None,
    max_sram_kib: float | None = None,
    jobs: int | None = None,
    dask: "DaskRunner | None" = None,
    yes: bool = False,
    out_dir: str | os.PathLike | None = None,
    progress: Callable[[CompileResult], None] | None = None,
    allow_synthetic: bool = False,
) -> ExploreResult:
    from .sweeps import compile_all

    n = axes.size()
    if n == 0:
        raise UserError("the exploration is empty: every axis needs at least one value")
    if n > MAX_POINTS and not yes:
        raise UserError(f"the exploration has {n:,} points (over {MAX_POINTS:,}); narrow the axes or pass --yes")
    if dask is not None:
        dask.warm_up()  # the workers import Vela while the points are made and looked up here
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, allow_synthetic=allow_synthetic)
    info = model_info(resolved)
    points: list[ExplorePoint] = []
    specs, spec_point = [], []
    for k, (acc, sc, mm, opt, arena, alloc) in enumerate(axes.points()):
        asked = dict(accel=acc, system_config=sc or DEFAULT, memory_mode=mm or DEFAULT, optimise=opt,
                     arena_cache_size=DEFAULT if arena is None else str(arena), tensor_allocator=alloc or DEFAULT)
        try:
            spec = make_spec(resolved.path, acc, system_config=sc, memory_mode=mm, optimise=opt,
                             arena_cache_size=arena, tensor_allocator=alloc, model_sha256=info.sha256,
                             user_ini=user_ini)
        except EthosKwsError as e:  # this combination, not the input: a failed point with the reason
            points.append(ExplorePoint(k, **asked, status="failed", error=str(e)))
            continue
        points.append(ExplorePoint(k, **asked, status="pending"))
        specs.append(spec)
        spec_point.append(k)
    errors: dict[int, EthosKwsError] = {}
    compiled = iter(compile_all(specs, jobs=jobs, progress=progress, errors=errors, dask=dask, detail=False))
    for s, k in enumerate(spec_point):
        if s in errors:
            points[k] = replace(points[k], status="failed", error=str(errors[s]))
        else:  # per-layer detail stays in the point's compile.json (result.output_dir, the cache)
            points[k] = replace(points[k], status="ok", result=replace(next(compiled), layers=(), allocations=()))
    flags = pareto_flags([p.costs() if p.status == "ok" else None for p in points])
    budget = max_time_ms is not None or max_sram_kib is not None
    points = [replace(p, pareto=f, meets_budget=(p.status == "ok" and _budget_ok(p.result, max_time_ms, max_sram_kib))
                      if budget else None) for p, f in zip(points, flags)]
    result = ExploreResult(info, axes, tuple(points), max_time_ms, max_sram_kib)
    if out_dir is not None:
        result = write_explore(result, Path(out_dir))
    return result


def write_explore(result: ExploreResult, out: Path) -> ExploreResult:
    """explore.json and explore.csv, written whole into ``out`` in one rename. The compiled models
    stay in the compile cache (each point's ``compiled_model``): 96 copies would add nothing."""
    result = replace(result, out_dir=str(out.resolve()))
    doc = result.to_dict()
    with atomic_dir(out, marker=EXPLORE_JSON) as tmp:
        atomic_write_json(tmp / EXPLORE_JSON, doc)
        atomic_write_text(tmp / EXPLORE_CSV, explore_csv_text(result, doc))
    return result


POINT_COLUMNS = ("point", "label", "status", "error", "pareto", "meets_budget") + tuple(f"axis_{a}" for a in AXES)
EXPLORE_CSV_COLUMNS = POINT_COLUMNS + tuple(c for c in CSV_COLUMNS if c != "config")


def explore_csv_text(result: ExploreResult, doc: dict[str, Any] | None = None) -> str:
    """One row per point: the point's axis values and status, then every ``results.csv`` field
    (empty for a failed point). ``doc``: ``result.to_dict()`` when the caller has it already."""
    docs = [p["result"] for p in doc["points"]] if doc is not None else [None] * len(result.points)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPLORE_CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for p, d in zip(result.points, docs):
        row = {"point": p.point, "label": p.label(), "status": p.status, "error": p.error, "pareto": p.pareto,
               "meets_budget": "" if p.meets_budget is None else p.meets_budget}
        row.update({f"axis_{a}": getattr(p, a) for a in AXES})
        if p.result is not None:
            d = d if d is not None else p.result.to_dict()
            row.update({c: d.get(c) for c in CSV_COLUMNS if c in d})
            row["model_provenance"] = result.model.provenance
        w.writerow(row)
    return buf.getvalue()
