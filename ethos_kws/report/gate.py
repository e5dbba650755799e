"""The checks of the regression gate beyond whole-network metrics: that the baseline is about the
same thing (model, Vela version, ini), that no operator fell back to the CPU, and that no single
layer got slower.

A figure the current run has and the baseline lacks cannot be checked, and an unchecked gate
passes silently; so that is an error (``BaselineIncomplete``), with the advice to regenerate the
baseline, never a skipped check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .load import ResultsError, RunResults, config_key, config_labels
from .metrics import is_missing, keyed_layers

# (field, what it is): a difference means the two runs are not about the same thing
IDENTITY_FIELDS = (
    ("model_sha256", "model sha256"),
    ("vela_version", "Vela version"),
    ("ini_sha256", "Vela ini sha256"),
)
COUNTED_FIELDS = ("cpu_ops",)  # may never grow, whatever the threshold


class BaselineIncomplete(ResultsError):
    """The baseline lacks a field the current run has, so the gate cannot check it."""


@dataclass(frozen=True)
class Finding:
    """A regression the whole-network comparison cannot express: an identity change, more CPU
    operators, a slower layer."""

    config: str
    metric: str  # "model_sha256", "vela_version", "ini_sha256", "cpu_ops", "layer_cycles"
    baseline: Any
    current: Any
    change_pct: float | None = None
    layer: str | None = None
    message: str = ""

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        pct = self.change_pct
        return {"config": self.config, "metric": self.metric, "baseline": self.baseline,
                "current": self.current, "layer": self.layer,
                "change_pct": None if pct is None or math.isinf(pct) else pct, "message": self.message}


def matched_pairs(a: RunResults, b: RunResults) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(label, baseline row, current row) for each configuration in both, labelled as the
    comparison labels them."""
    labels = config_labels(list(a.results) + list(b.results))
    by_key_b: dict[tuple, Mapping[str, Any]] = {}
    for r in b.results:
        by_key_b.setdefault(config_key(r), r)
    out, seen = [], set()
    for label, r in zip(labels, a.results):
        other = by_key_b.get(config_key(r))
        if other is not None and config_key(r) not in seen:
            seen.add(config_key(r))
            out.append((label, r, other))
    return out


def _has(row: Mapping[str, Any], field: str) -> bool:
    return field in row and not is_missing(row[field]) and row[field] != ""


def require_fields(label: str, baseline: Mapping[str, Any], current: Mapping[str, Any],
                   fields: Sequence[str], source: str) -> None:
    for field in fields:
        if _has(current, field) and not _has(baseline, field):
            raise BaselineIncomplete(
                f"baseline {source} ({label}) has no {field!r}, which the current run has, so the gate "
                "cannot check it; regenerate the baseline with this ethos-kws (ethos-kws sweep)"
            )
    cur_layers, base_layers = current.get("layers") or [], baseline.get("layers") or []
    if any(_has(x, "cycles") for x in cur_layers) and not any(_has(x, "cycles") for x in base_layers):
        raise BaselineIncomplete(
            f"baseline {source} ({label}) has no per-layer cycles, which the current run has, so the "
            "gate cannot check layers; regenerate the baseline with this ethos-kws (ethos-kws sweep)"
        )


def identity_findings(label: str, baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[Finding]:
    out = []
    for field, what in IDENTITY_FIELDS:
        a, b = baseline.get(field), current.get(field)
        if _has(baseline, field) and _has(current, field) and a != b:
            out.append(Finding(label, field, a, b, message=(
                f"{label} {field}: {what} changed ({str(a)[:16]} -> {str(b)[:16]}); the baseline is "
                "about something else (--allow-model-change to compare anyway)")))
    return out


def count_findings(label: str, baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[Finding]:
    out = []
    for field in COUNTED_FIELDS:
        a, b = baseline.get(field), current.get(field)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > a:
            names = ", ".join(str(n) for n in current.get("cpu_op_names") or [])
            out.append(Finding(label, field, a, b, message=(
                f"{label} {field}: {a:.0f} -> {b:.0f} operators on the CPU"
                + (f" ({names})" if names else "") + "; Vela's figures now cover less of the model")))
    return out


def layer_findings(label: str, baseline: Mapping[str, Any], current: Mapping[str, Any],
                   max_pct: float, allow_model_change: bool) -> list[Finding]:
    """Layers matched by (Vela layer name, op, occurrence); each may grow by ``max_pct`` at most."""
    now = {key: layer for key, layer in keyed_layers(current)}
    out = []
    for key, layer in keyed_layers(baseline):
        a = layer.get("cycles")
        if is_missing(a):
            continue
        cur = now.get(key)
        where = f"row {layer.get('index', '?')}, TFLite op #{layer.get('tflite_index', '?')}"
        if cur is None or is_missing(cur.get("cycles")):
            if not allow_model_change:
                out.append(Finding(label, "layer_cycles", a, None, None, key.label, message=(
                    f"{label} layer {key.op} {key.name!r} ({where}): in the baseline but missing from "
                    "the current results")))
            continue
        b = float(cur["cycles"])
        if b <= float(a):
            continue
        pct = math.inf if float(a) == 0 else (b - float(a)) / float(a) * 100.0
        if pct > max_pct:
            shown = "from 0" if math.isinf(pct) else f"{pct:+.2f}%"
            out.append(Finding(label, "layer_cycles", a, b, pct, key.label, message=(
                f"{label} layer {key.op} {key.name!r} ({where}): {float(a):,.0f} -> {b:,.0f} cycles "
                f"({shown}, above {max_pct:g}%)")))
    return out


def gate_findings(a: RunResults, b: RunResults, *, max_layer_regression_pct: float,
                  allow_model_change: bool = False) -> list[Finding]:
    from .check import CHECKED_METRICS

    fields = (*CHECKED_METRICS, *COUNTED_FIELDS, *(() if allow_model_change else (f for f, _ in IDENTITY_FIELDS)))
    found: list[Finding] = []
    for label, base, cur in matched_pairs(a, b):
        require_fields(label, base, cur, tuple(fields), a.source)
        if not allow_model_change:
            found += identity_findings(label, base, cur)
        found += count_findings(label, base, cur)
        found += layer_findings(label, base, cur, max_layer_regression_pct, allow_model_change)
    return found
