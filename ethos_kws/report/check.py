"""The regression gate: did cycles or memory grow past a threshold since the baseline, did an
operator fall back to the CPU, did any layer get slower, is the baseline about the same model?

Vela is deterministic, so the default threshold is 0 %: any growth fails. The gate fails closed:
a configuration or metric that the baseline has and the current results lack is a regression too,
and a field the current run has and the baseline lacks is an error (``gate.BaselineIncomplete``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import metric_fields
from ..vela import CompileResult
from .compare import compare_results
from .gate import Finding, gate_findings
from .load import ResultsError

# The compile figures declared with gate=True (records.metric); lower is better for all of them.
CHECKED_METRICS = tuple(f.name for f in metric_fields(CompileResult) if f.metadata["gate"])


@dataclass(frozen=True)
class Regression:
    config: str
    metric: str  # a CHECKED_METRICS field, or "config" when the configuration is missing
    baseline: float | None
    current: float | None
    change_pct: float | None  # +inf when growing from 0

    def __str__(self) -> str:
        if self.metric == "config":
            return f"{self.config}: in the baseline but missing from the current results"
        if self.current is None:
            return f"{self.config} {self.metric}: in the baseline but missing from the current results"
        unit = "bytes" if self.metric.endswith("_bytes") else "cycles"
        pct = "from 0" if self.change_pct is None or math.isinf(self.change_pct) else f"{self.change_pct:+.2f}%"
        return f"{self.config} {self.metric}: {self.baseline:,.0f} -> {self.current:,.0f} {unit} ({pct})"

    def to_dict(self) -> dict[str, Any]:
        pct = self.change_pct
        return {"config": self.config, "metric": self.metric, "baseline": self.baseline,
                "current": self.current, "change_pct": None if pct is None or math.isinf(pct) else pct,
                "message": str(self)}


def _check_pct(value: Any, flag: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ResultsError(f"{flag} must be a percentage >= 0, not {value!r}")


def check_regression(
    baseline: Any,
    current: Any,
    max_regression_pct: float = 0.0,
    *,
    max_layer_regression_pct: float | None = None,
    allow_model_change: bool = False,
) -> list[Regression | Finding]:
    """Regressions of ``current`` against ``baseline`` (documents, results files or run folders).

    Besides the whole-network metrics: a changed model sha256, Vela version or ini (unless
    ``allow_model_change``), more operators on the CPU, and any layer whose cycles grew by more
    than ``max_layer_regression_pct`` (default: ``max_regression_pct``). A baseline that lacks a
    field the current run has raises ``BaselineIncomplete``.
    """
    _check_pct(max_regression_pct, "--max-regression")
    if max_layer_regression_pct is None:
        max_layer_regression_pct = max_regression_pct
    _check_pct(max_layer_regression_pct, "--max-layer-regression")
    cmp = compare_results(baseline, current)
    found: list[Regression | Finding] = [Regression(c, "config", None, None, None) for c in cmp.only_in_a]
    for config in cmp.configs:
        deltas = {d.metric: d for d in cmp.for_config(config)}
        for metric in CHECKED_METRICS:
            d = deltas.get(metric)
            if d is None or d.a is None:
                continue  # neither has it (the baseline lacking what the current has fails in gate)
            if d.b is None:
                found.append(Regression(config, metric, d.a, None, None))
            elif d.b > d.a and d.delta_pct > max_regression_pct:
                found.append(Regression(config, metric, d.a, d.b, d.delta_pct))
    return found + gate_findings(cmp.a, cmp.b, max_layer_regression_pct=max_layer_regression_pct,
                                 allow_model_change=allow_model_change)


def current_by_compiling(baseline: Any, model: str | None) -> dict[str, Any]:
    """Compile the baseline's configurations now (same system config, memory mode, optimise, arena
    cache size and compiler per group) and return a sweep document. ``model``: the model to
    compile; by default the baseline's recorded model file when it still exists, else the usual
    model resolution."""
    from ..model import resolve_model
    from ..sweeps import sweep

    if model is None:
        recorded = baseline.model.get("path")
        if recorded and Path(str(recorded)).is_file():
            model = str(recorded)
    resolved = resolve_model(model)
    groups: dict[tuple, list[str]] = {}
    for r in baseline.results:
        key = (r.get("system_config"), r.get("memory_mode"), r.get("optimise") or "Performance",
               r.get("arena_cache_size_bytes"), r.get("compiler") == "legacy")
        groups.setdefault(key, []).append(str(r["accel"]))
    doc: dict[str, Any] | None = None
    for (system_config, memory_mode, optimise, arena, legacy), accels in groups.items():
        part = sweep(resolved, accels=accels, system_config=system_config, memory_mode=memory_mode,
                     optimise=optimise, arena_cache_size=arena, legacy_core=legacy).to_dict()
        if doc is None:
            doc = part
        else:
            doc["results"] += part["results"]
    assert doc is not None  # a loaded baseline has at least one result
    return doc
