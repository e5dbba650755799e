"""How cycles scale with the MAC count inside one NPU family, and where the curve flattens.

Only configurations that share a system config, memory mode, optimise goal and compiler are put
on one curve (the MACs are the only thing that changes along it). A doubling of the MACs that buys
less than ``FLAT_GAIN`` of the cycles is where the curve has flattened; at that step the layers
whose cycles fall by less than ``STUCK_GAIN`` are the ones that set the floor: memory traffic or
an array their feature maps cannot fill bounds them, not the MAC count. Everything is computed
from the results (Vela's per-layer cycles); which of the two bounds a layer is Vela's per-layer
CSV (compute vs SRAM/DRAM access cycles) tells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

FLAT_GAIN = 0.10  # a doubling of MACs that saves less than this share of cycles: flat
STUCK_GAIN = 0.05  # a layer whose cycles fall less than this over that doubling: not MAC-bound
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
class FamilyScaling:
    family: str  # "u85"
    system_config: str
    memory_mode: str
    steps: tuple[Step, ...]
    flat_step: Step | None  # the first doubling that saves less than FLAT_GAIN
    stuck_layers: int  # at the flat step: layers whose cycles fall less than STUCK_GAIN
    stuck_cycles: int  # their cycles in the larger configuration
    layers: int  # layers with cycles in the larger configuration

    @property
    def flattens_at(self) -> str | None:
        return self.flat_step.accel_from if self.flat_step else None

    @property
    def stuck_share(self) -> float:
        return self.stuck_cycles / self.flat_step.cycles_to if self.flat_step and self.flat_step.cycles_to else 0.0


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _layer_cycles(r: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for layer in r.get("layers") or ():
        if isinstance(layer, Mapping) and _int(layer.get("cycles")):
            key = f"{layer.get('op')}|{layer.get('name')}"
            out[key] = out.get(key, 0) + int(layer["cycles"])
    return out


def _stuck(small: Mapping[str, Any], large: Mapping[str, Any]) -> tuple[int, int, int]:
    a, b = _layer_cycles(small), _layer_cycles(large)
    stuck = [k for k, c in b.items() if k in a and a[k] and 1.0 - c / a[k] < STUCK_GAIN]
    return len(stuck), sum(b[k] for k in stuck), len(b)


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
        stuck = _stuck(rows[flat], rows[flat + 1]) if flat is not None else (0, 0, 0)
        out.append(FamilyScaling(family, system_config, memory_mode, steps,
                                 steps[flat] if flat is not None else None, *stuck))  # fmt: skip
    return out


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
        f"{1 - STUCK_GAIN:.0%} of their {f.accel_from} cycles: doubling the MACs does not speed "
        "them up, because their cycles are set by memory traffic or by a MAC array their "
        "feature maps no longer fill (Vela's per-layer CSV gives each layer's compute, SRAM and "
        "DRAM access cycles)."
    )
