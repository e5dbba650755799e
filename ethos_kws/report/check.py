"""The regression gate: did cycles or memory grow past a threshold since the baseline?

Vela is deterministic, so the default threshold is 0 %: any growth fails. The gate fails closed:
a configuration or metric that the baseline has and the current results lack is a regression too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..records import metric_fields
from ..vela import CompileResult
from .compare import compare_results
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


def check_regression(baseline: Any, current: Any, max_regression_pct: float = 0.0) -> list[Regression]:
    """Regressions of ``current`` against ``baseline`` (documents, results files or run folders)."""
    if not isinstance(max_regression_pct, (int, float)) or not math.isfinite(max_regression_pct) \
            or max_regression_pct < 0:
        raise ResultsError(f"--max-regression must be a percentage >= 0, not {max_regression_pct!r}")
    cmp = compare_results(baseline, current)
    found = [Regression(c, "config", None, None, None) for c in cmp.only_in_a]
    for config in cmp.configs:
        deltas = {d.metric: d for d in cmp.for_config(config)}
        for metric in CHECKED_METRICS:
            d = deltas.get(metric)
            if d is None or d.a is None:
                continue  # the baseline never had it: nothing to hold the current run to
            if d.b is None:
                found.append(Regression(config, metric, d.a, None, None))
            elif d.b > d.a and d.delta_pct > max_regression_pct:
                found.append(Regression(config, metric, d.a, d.b, d.delta_pct))
    return found
