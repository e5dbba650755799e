"""Figures derived from compile results: compute bounds and the layers that cost the most."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..accel import get_accelerator
from ..errors import AcceleratorError


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def macs_per_cycle(result: Mapping[str, Any]) -> float | None:
    """The result's own figure when it carries one, else the accelerator table's."""
    own = result.get("macs_per_cycle")
    if isinstance(own, (int, float)) and not isinstance(own, bool) and own > 0:
        return own
    try:
        return get_accelerator(str(result.get("accel", ""))).macs_per_cycle
    except AcceleratorError:  # a result from a newer tool or another NPU: no bound to draw
        return None


def compute_bound_cycles(result: Mapping[str, Any]) -> float | None:
    """The fewest cycles the MACs could take with every MAC unit busy every cycle."""
    mpc, macs = macs_per_cycle(result), result.get("macs")
    if mpc is None or is_missing(macs):
        return None
    return float(macs) / mpc


def bound_ratio(result: Mapping[str, Any]) -> float | None:
    """Cycles over the compute bound: 1.0 would be a perfectly compute-bound network."""
    bound, cycles = compute_bound_cycles(result), result.get("cycles_total")
    if not bound or is_missing(cycles):
        return None
    return float(cycles) / bound


@dataclass(frozen=True)
class LayerKey:
    """A layer across configurations: Vela names a pass by its OFM tensor, so one tensor name can
    appear several times (an op and its fused activation); the occurrence tells them apart."""

    name: str
    op: str
    occurrence: int

    @property
    def label(self) -> str:
        return f"{self.op} {self.name}" if self.occurrence == 0 else f"{self.op} {self.name} ({self.occurrence + 1})"


def keyed_layers(result: Mapping[str, Any]) -> list[tuple[LayerKey, Mapping[str, Any]]]:
    seen: Counter = Counter()
    out = []
    for layer in result.get("layers") or []:
        name, op = str(layer.get("name", "")), str(layer.get("op", ""))
        out.append((LayerKey(name, op, seen[(name, op)]), layer))
        seen[(name, op)] += 1
    return out


def top_layers(results: Sequence[Mapping[str, Any]], n: int = 8) -> list[LayerKey]:
    """The ``n`` layers with the most cycles in any configuration, most expensive first."""
    worst: dict[LayerKey, float] = {}
    order: dict[LayerKey, int] = {}
    for r in results:
        for key, layer in keyed_layers(r):
            c = layer.get("cycles")
            if is_missing(c):
                continue
            order.setdefault(key, len(order))
            worst[key] = max(worst.get(key, 0.0), float(c))
    ranked = sorted((k for k in worst if worst[k] > 0), key=lambda k: (-worst[k], order[k]))
    return ranked[:n]


def layer_cycles(result: Mapping[str, Any]) -> dict[LayerKey, float]:
    return {
        k: float(layer["cycles"])
        for k, layer in keyed_layers(result)
        if not is_missing(layer.get("cycles"))
    }


# How a Vela estimate lines up with an FVP counter: (field in the FVP row, FVP counter, field of
# the sweep's result). The FVP backend records Vela's NPU estimate against NPU ACTIVE; a row may
# instead carry Vela's total against NPU TOTAL.
_FVP_BASES = (
    ("vela_cycles_npu", "npu_active_cycles", "cycles_npu"),
    ("vela_cycles_total", "npu_total_cycles", "cycles_total"),
)


def fvp_comparison(fvp_row: Mapping[str, Any], vela: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Vela estimate, the FVP counter it is compared with, and estimate ÷ measurement."""
    given = [b for b in _FVP_BASES if not is_missing(fvp_row.get(b[0]))]
    if given:
        row_field, counter, sweep_field = given[0]
        estimate = fvp_row[row_field]
    else:  # the row carries no estimate: take the sweep's NPU cycles
        row_field, counter, sweep_field = _FVP_BASES[0]
        estimate = (vela or {}).get(sweep_field)
    measured = fvp_row.get(counter)
    ratio = fvp_row.get("vela_over_fvp_cycles")
    if is_missing(ratio) and not is_missing(estimate) and not is_missing(measured) and measured:
        ratio = float(estimate) / float(measured)
    return {
        "vela_estimate_cycles": None if is_missing(estimate) else float(estimate),
        "fvp_cycles": None if is_missing(measured) else float(measured),
        "basis": f"Vela {sweep_field} ÷ FVP {counter}",
        "vela_over_fvp": None if is_missing(ratio) else float(ratio),
    }
