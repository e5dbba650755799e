"""How cycles scale with the MAC count inside one NPU family, and where the curve flattens.

Only configurations that share a system config, memory mode, optimise goal and compiler are put
on one curve (the MACs are the only thing that changes along it). A doubling of the MACs that buys
less than ``FLAT_GAIN`` of the cycles is where the curve has flattened; at that step the layers
whose cycles fall by less than ``STUCK_GAIN`` are the ones that set the floor. Why they do is what
Vela's per-layer cost says (``bound_by``, see ``layers.py``): a memory-bound layer's traffic does
not shrink with more MACs, and a compute-bound one stops speeding up when its feature maps no
longer fill the wider MAC array (its MAC utilization drops). Everything is computed from the
results; nothing is assumed about the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

FLAT_GAIN = 0.10  # a doubling of MACs that saves less than this share of cycles: flat
STUCK_GAIN = 0.05  # a layer whose cycles fall less than this over that doubling: not MAC-bound
MINOR_SHARE = 0.01  # bounds holding less than this share of the cycles are not worth a mention
COMPUTE = "compute"  # layers.BOUND_BY's label for a layer its MACs bound
_CURVE_KEY = ("system_config", "memory_mode", "optimise", "compiler")


@dataclass(frozen=True)
class Step:
    accel_from: str
    accel_to: str
    cycles_from: int
    cycles_to: int

    @property
    def gain(self) -> float:
        """Share of cycles saved by the larger configuration."""
        return 1.0 - self.cycles_to / self.cycles_from if self.cycles_from else 0.0


@dataclass(frozen=True)
class Bound:
    """Layers of one ``bound_by`` kind in the larger configuration of the flat step."""

    layers: int
    cycles: int
    stuck_layers: int
    stuck_cycles: int
    # cycle-weighted MAC utilization of the stuck layers, before and after the doubling
    utilization_from: float | None = None
    utilization_to: float | None = None


@dataclass(frozen=True)
class FamilyScaling:
    family: str  # "u85"
    system_config: str
    memory_mode: str
    steps: tuple[Step, ...]
    flat_step: Step | None  # the first doubling that saves less than FLAT_GAIN
    stuck_layers: int  # at the flat step: layers whose cycles fall less than STUCK_GAIN
    stuck_cycles: int  # their cycles in the larger configuration
    layers: int  # layers with cycles in the larger configuration
    bounds: Mapping[str, Bound] = field(default_factory=dict)  # by bound_by, when the results have it

    @property
    def flattens_at(self) -> str | None:
        return self.flat_step.accel_from if self.flat_step else None

    @property
    def stuck_share(self) -> float:
        return self.stuck_cycles / self.flat_step.cycles_to if self.flat_step and self.flat_step.cycles_to else 0.0


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _layers(r: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for i, layer in enumerate(r.get("layers") or ()):
        if isinstance(layer, Mapping) and _int(layer.get("cycles")):
            out[f"{layer.get('index', i)}|{layer.get('op')}|{layer.get('name')}"] = layer
    return out


def _weighted_util(layers: Sequence[Mapping[str, Any]]) -> float | None:
    total = sum(int(x["cycles"]) for x in layers)
    if not total or any(not isinstance(x.get("mac_utilization"), (int, float)) for x in layers):
        return None
    return sum(float(x["mac_utilization"]) * int(x["cycles"]) for x in layers) / total


def _floor(small: Mapping[str, Any], large: Mapping[str, Any]) -> tuple[int, int, int, dict[str, Bound]]:
    a, b = _layers(small), _layers(large)
    stuck = {k for k, x in b.items() if k in a and 1.0 - int(x["cycles"]) / int(a[k]["cycles"]) < STUCK_GAIN}
    bounds: dict[str, Bound] = {}
    kinds = sorted({str(x.get("bound_by")) for x in b.values() if x.get("bound_by")})
    for kind in kinds:
        mine = [k for k, x in b.items() if x.get("bound_by") == kind]
        stuck_mine = [k for k in mine if k in stuck]
        bounds[kind] = Bound(
            len(mine), sum(int(b[k]["cycles"]) for k in mine),
            len(stuck_mine), sum(int(b[k]["cycles"]) for k in stuck_mine),
            _weighted_util([a[k] for k in stuck_mine]) if stuck_mine else None,
            _weighted_util([b[k] for k in stuck_mine]) if stuck_mine else None,
        )  # fmt: skip
    return len(stuck), sum(int(b[k]["cycles"]) for k in stuck), len(b), bounds


def family_scaling(results: Sequence[Mapping[str, Any]]) -> list[FamilyScaling]:
    """One curve per family (and system config, memory mode, ...) with at least three sizes."""
    curves: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in results:
        accel, macs, cycles = str(r.get("accel") or ""), _int(r.get("macs_per_cycle")), _int(r.get("cycles_total"))
        if "-" not in accel or not macs or not cycles:
            continue
        key = (accel.split("-", 1)[0].lower(), *(str(r.get(k)) for k in _CURVE_KEY))
        curves.setdefault(key, []).append(r)
    out = []
    for (family, system_config, memory_mode, *_rest), rows in curves.items():
        rows = sorted(rows, key=lambda r: int(r["macs_per_cycle"]))
        if len(rows) < 3:
            continue
        steps = tuple(
            Step(str(a["accel"]), str(b["accel"]), int(a["cycles_total"]), int(b["cycles_total"]))
            for a, b in zip(rows, rows[1:])
        )
        flat = next((i for i, s in enumerate(steps) if s.gain < FLAT_GAIN), None)
        floor = _floor(rows[flat], rows[flat + 1]) if flat is not None else (0, 0, 0, {})
        out.append(FamilyScaling(family, system_config, memory_mode, steps,
                                 steps[flat] if flat is not None else None, *floor))  # fmt: skip
    return out


def _why(s: FamilyScaling) -> str:
    f = s.flat_step
    if not s.bounds:
        return (" Doubling the MACs does not speed them up: their cycles are set by memory traffic "
                "or by a MAC array their feature maps no longer fill (Vela's per-layer CSV gives "
                "each layer's compute, SRAM and DRAM access cycles).")
    parts = []
    for kind, b in sorted(s.bounds.items(), key=lambda kv: -kv[1].cycles):
        if not b.stuck_layers or b.stuck_cycles < MINOR_SHARE * f.cycles_to:
            continue
        text = f"{b.stuck_layers} {kind}-bound ({b.stuck_cycles / f.cycles_to:.0%} of the cycles)"
        if kind == COMPUTE and b.utilization_from is not None and b.utilization_to is not None:
            text += (f", whose MAC utilization falls from {b.utilization_from:.0%} to "
                     f"{b.utilization_to:.0%}: their feature maps no longer fill the wider array")
        elif kind != COMPUTE:
            text += f": their {kind} traffic does not shrink with more MACs"
        parts.append(text)
    shares = ", ".join(f"{kind} {b.cycles / f.cycles_to:.0%}" for kind, b in
                       sorted(s.bounds.items(), key=lambda kv: -kv[1].cycles)
                       if b.cycles >= MINOR_SHARE * f.cycles_to)
    return (f" By what bounds them (Vela's per-layer cost): {'; '.join(parts)}. All of "
            f"{f.accel_to}'s cycles by bound: {shares}.")


def describe(s: FamilyScaling) -> str:
    """One paragraph a reader can quote."""
    gains = ", ".join(f"{step.gain:.0%}" for step in s.steps)
    text = (f"Ethos-{s.family.upper()} ({s.system_config}, {s.memory_mode}): each doubling of the "
            f"MACs saves {gains} of the cycles ({s.steps[0].accel_from} to {s.steps[-1].accel_to}).")
    if s.flat_step is None:
        return text + " The curve has not flattened within these sizes."
    f = s.flat_step
    return text + (
        f" The curve flattens at {f.accel_from}: {f.accel_to} is only {f.gain:.1%} faster "
        f"({f.cycles_from:,} to {f.cycles_to:,} cycles). There, {s.stuck_layers} of {s.layers} "
        f"layers ({s.stuck_share:.0%} of {f.accel_to}'s cycles) take no fewer than "
        f"{1 - STUCK_GAIN:.0%} of their {f.accel_from} cycles."
    ) + _why(s)
