"""Deltas between two sweeps (a Vela upgrade, a model change): per configuration and metric."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..fsutil import atomic_dir, atomic_write_json, atomic_write_text
from .content import model_name
from .document import Banner, Document, Heading, KeyValues, Para, TableBlock
from .html import render_html
from .load import RunResults, config_key, config_labels, load_results
from .markdown import render_markdown
from ..records import metric_fields
from ..vela import CompileResult
from .tables import COMPILE_COLUMNS, Table, fmt_signed_pct
from .writer import REPORTS_DIR, check_destination, check_name, safe_name

# The compile figures with a "better" direction (records.metric), in field order
COMPARED_METRICS = tuple(c for c in COMPILE_COLUMNS.values()
                         if c.field in {f.name for f in metric_fields(CompileResult) if f.metadata["better"]})
METRIC_LABELS = {c.field: c.header for c in COMPARED_METRICS}


def _num(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


@dataclass(frozen=True)
class MetricDelta:
    config: str
    metric: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def delta_pct(self) -> float | None:
        """Relative change in percent; +inf when something appears where there was nothing."""
        d = self.delta
        if d is None:
            return None
        if self.a == 0:
            return 0.0 if d == 0 else math.copysign(math.inf, d)
        return d / abs(self.a) * 100.0

    def to_dict(self) -> dict[str, Any]:
        pct = self.delta_pct
        return {**asdict(self), "delta": self.delta,
                "delta_pct": None if pct is None or math.isinf(pct) else pct}


@dataclass(frozen=True)
class Comparison:
    a: RunResults
    b: RunResults
    configs: tuple[str, ...]  # matched, in A's order
    deltas: tuple[MetricDelta, ...]
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([d.to_dict() for d in self.deltas],
                            columns=["config", "metric", "a", "b", "delta", "delta_pct"])

    def for_config(self, config: str) -> list[MetricDelta]:
        return [d for d in self.deltas if d.config == config]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"source": self.a.source, "model": _model_summary(self.a)},
            "b": {"source": self.b.source, "model": _model_summary(self.b)},
            "configs": list(self.configs),
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
            "deltas": [d.to_dict() for d in self.deltas],
        }


def _model_summary(run: RunResults) -> dict[str, Any]:
    versions = sorted({str(r.get("vela_version")) for r in run.results if r.get("vela_version")})
    return {"name": model_name(run), "sha256": run.model.get("sha256"),
            "provenance": run.model.get("provenance"), "vela_versions": versions}


def compare_results(a: Any, b: Any) -> Comparison:
    """Match configurations by (accel, system config, memory mode, optimise) and diff each metric."""
    ra, rb = load_results(a), load_results(b)
    # Label configurations over both runs, so a label means the same thing on each side.
    labels = config_labels(list(ra.results) + list(rb.results))
    label_a = dict(zip(map(config_key, ra.results), labels[: len(ra.results)]))
    label_b = dict(zip(map(config_key, rb.results), labels[len(ra.results):]))
    by_key_b: dict[tuple, Mapping[str, Any]] = {}
    for r in rb.results:
        by_key_b.setdefault(config_key(r), r)
    matched, deltas, only_a = [], [], []
    for r in ra.results:
        key = config_key(r)
        other = by_key_b.get(key)
        if other is None:
            only_a.append(label_a[key])
            continue
        if label_a[key] in matched:
            continue  # a duplicate config in A: compare the first only
        matched.append(label_a[key])
        for metric in METRIC_LABELS:
            va, vb = _num(r.get(metric)), _num(other.get(metric))
            if va is None and vb is None:
                continue
            deltas.append(MetricDelta(label_a[key], metric, va, vb))
    keys_a = {config_key(r) for r in ra.results}
    only_b = [label_b[config_key(r)] for r in rb.results if config_key(r) not in keys_a]
    return Comparison(ra, rb, tuple(matched), tuple(deltas), tuple(only_a), tuple(dict.fromkeys(only_b)))


# ---- Rendering ------------------------------------------------------------------------------------

_FORMATS = {c.field: (c.fmt, c.delta_fmt) for c in COMPARED_METRICS}


def _config_table(cmp: Comparison, config: str) -> Table:
    rows = []
    for d in cmp.for_config(config):
        fv, fd = _FORMATS[d.metric]
        rows.append([METRIC_LABELS[d.metric], fv(d.a), fv(d.b), fd(d.delta), fmt_signed_pct(d.delta_pct)])
    frame = pd.DataFrame(rows, columns=["metric", "A", "B", "Δ (B − A)", "Δ %"], dtype=object)
    return Table(config, frame, {}, frozenset({"A", "B", "Δ (B − A)", "Δ %"}))


def _summary_table(cmp: Comparison) -> Table:
    shown = ("cycles_total", "inference_time_ms", "sram_bytes", "flash_bytes", "dram_bytes")
    cols = ["config"] + [f"{METRIC_LABELS[m]} Δ %" for m in shown]
    rows = []
    for config in cmp.configs:
        pct = {d.metric: d.delta_pct for d in cmp.for_config(config)}
        rows.append([config] + [fmt_signed_pct(pct.get(m)) for m in shown])
    return Table("Change from A to B (percent)", pd.DataFrame(rows, columns=cols, dtype=object), {},
                 frozenset(cols[1:]), "Positive = B is larger (for cycles and memory: worse).")


def _side(label: str, run: RunResults) -> KeyValues:
    s = _model_summary(run)
    return KeyValues((
        (label, run.source),
        ("model", f"{s['name']} ({s['provenance'] or 'provenance n/a'})"),
        ("sha256", str(s["sha256"] or "n/a")),
        ("Vela version", ", ".join(s["vela_versions"]) or "n/a"),
        ("date", run.created or "n/a"),
    ))


def comparison_document(cmp: Comparison) -> Document:
    na, nb = model_name(cmp.a), model_name(cmp.b)
    blocks: list = [Heading(2, "Inputs", "inputs"), _side("A", cmp.a), _side("B", cmp.b)]
    if cmp.a.model.get("sha256") != cmp.b.model.get("sha256"):
        blocks.append(Banner("A and B are different models (sha256 differs)."))
    if cmp.only_in_a:
        blocks.append(Banner(f"Only in A (not compared): {', '.join(cmp.only_in_a)}"))
    if cmp.only_in_b:
        blocks.append(Banner(f"Only in B (not compared): {', '.join(cmp.only_in_b)}"))
    if not cmp.configs:
        blocks.append(Para("No configuration appears in both A and B; nothing to compare."))
    else:
        blocks += [Heading(2, "Summary", "summary"), TableBlock(_summary_table(cmp)),
                   Heading(2, "Per configuration", "configs")]
        blocks += [TableBlock(_config_table(cmp, c)) for c in cmp.configs]
    return Document(f"ethos-kws comparison: {na} (A) vs {nb} (B)", tuple(blocks))


def comparison_text(cmp: Comparison) -> str:
    """A plain-text version of the per-configuration tables, for the terminal."""
    lines = []
    for config in cmp.configs:
        t = _config_table(cmp, config).formatted()
        lines.append(config)
        widths = [max(len(str(x)) for x in [c, *t[c]]) for c in t.columns]
        lines.append("  " + "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                      for i, (c, w) in enumerate(zip(t.columns, widths))))
        for row in t.itertuples(index=False):
            lines.append("  " + "  ".join(str(v).rjust(w) if i else str(v).ljust(w)
                                          for i, (v, w) in enumerate(zip(row, widths))))
    for label, only in (("only in A", cmp.only_in_a), ("only in B", cmp.only_in_b)):
        if only:
            lines.append(f"{label}: {', '.join(only)}")
    return "\n".join(lines) + "\n"


def write_comparison(
    a: Any, b: Any, out_dir: str | os.PathLike | None = None, *, name: str | None = None
) -> tuple[Path, Comparison]:
    """Write ``index.html``, ``report.md``, ``compare.csv`` and ``compare.json``."""
    cmp = a if isinstance(a, Comparison) else compare_results(a, b)
    if out_dir is not None:
        dest = Path(out_dir)
    elif name is not None:
        dest = Path.cwd() / REPORTS_DIR / check_name(name)
    else:
        dest = Path.cwd() / REPORTS_DIR / safe_name(f"compare-{model_name(cmp.a)}-vs-{model_name(cmp.b)}")
    check_destination(dest)
    doc = comparison_document(cmp)
    with atomic_dir(dest) as tmp:
        atomic_write_text(tmp / "index.html", render_html(doc))
        atomic_write_text(tmp / "report.md", render_markdown(doc))
        atomic_write_text(tmp / "compare.csv", cmp.frame().to_csv(index=False))
        atomic_write_json(tmp / "compare.json", cmp.to_dict())
    return dest, cmp
