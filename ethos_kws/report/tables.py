"""The report's tables: pandas frames of raw values, plus Markdown and HTML rendering.

A ``Table`` keeps numbers as numbers (for CSV and deltas) and knows how to format each column;
the renderers escape every cell, since layer and model names come straight from the model file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from .escape import html_escape, md_escape
from .load import RunResults
from .metrics import bound_ratio, compute_bound_cycles, fvp_comparison, is_missing, keyed_layers
from .published import PUBLISHED_ACCEL, PUBLISHED_FIGURES, PUBLISHED_SOURCE

NA = "n/a"
KIB = 1024.0

Formatter = Callable[[Any], str]


def _guard(f: Formatter) -> Formatter:
    def fmt(v: Any) -> str:
        if is_missing(v):
            return NA
        try:
            return f(v)
        except (TypeError, ValueError):  # a string where a number was expected: show it as is
            return str(v)

    return fmt


fmt_text = _guard(str)
fmt_int = _guard(lambda v: f"{float(v):,.0f}")
fmt_kib = _guard(lambda v: f"{float(v) / KIB:,.1f}")
fmt_mhz = _guard(lambda v: f"{float(v) / 1e6:,.0f}")
fmt_pct = _guard(lambda v: f"{float(v) * 100:.1f}%")
fmt_ratio = _guard(lambda v: f"{float(v):.2f}×")
fmt_signed_pct = _guard(lambda v: "new (was 0)" if abs(float(v)) == float("inf") else f"{float(v):+.2f}%")


def fmt_float(digits: int) -> Formatter:
    return _guard(lambda v: f"{float(v):,.{digits}f}")


def fmt_signed(digits: int) -> Formatter:
    return _guard(lambda v: f"{float(v):+,.{digits}f}")


def _scaled(f: Formatter, scale: float) -> Formatter:
    return lambda v: f(None if is_missing(v) else float(v) / scale)


# unit of a metric field (``records.metric``) -> (header suffix, value format, delta format): the
# one place a unit's display is defined; every table and the comparison take it from here
UNIT_FORMATS: dict[str, tuple[str, Formatter, Formatter]] = {
    "cycles": ("", fmt_int, fmt_signed(0)),
    "count": ("", fmt_int, fmt_signed(0)),
    "ms": (" (ms)", fmt_float(3), fmt_signed(3)),
    "per_s": ("", fmt_float(1), fmt_signed(1)),
    "bytes": (" (KiB)", fmt_kib, _scaled(fmt_signed(1), KIB)),
    "ratio": ("", fmt_pct, _scaled(fmt_signed(2), 0.01)),
    "hz": (" (MHz)", fmt_mhz, _scaled(fmt_signed(0), 1e6)),
}


@dataclass(frozen=True)
class Column:
    field: str  # key in the source row
    header: str
    fmt: Formatter = fmt_text
    numeric: bool = True
    delta_fmt: Formatter = fmt_text


def metric_columns(cls: type) -> dict[str, Column]:
    """A ``Column`` per metric field of the dataclass ``cls``: header = its label and unit,
    formats from ``UNIT_FORMATS``."""
    from ..records import metric_fields

    out = {}
    for f in metric_fields(cls):
        suffix, fmt, delta = UNIT_FORMATS[f.metadata["unit"]]
        out[f.name] = Column(f.name, f.metadata["label"] + suffix, fmt, True, delta)
    return out


def _compile_columns() -> dict[str, Column]:
    from ..vela import CompileResult, LayerResult

    cols = metric_columns(CompileResult)
    for name, header in (("accel", "accelerator"), ("system_config", "system config"),
                         ("memory_mode", "memory mode"), ("optimise", "optimise"),
                         ("compiler", "Vela compiler"), ("vela_version", "Vela version"),
                         ("compiled_model", "compiled model")):
        cols[name] = Column(name, header, fmt_text, numeric=False)
    cols["config"] = Column("config", "config", fmt_text, numeric=False)
    # derived in this report (metrics.py), not fields of a compile
    cols["compute_bound_cycles"] = Column("compute_bound_cycles", "compute bound (cycles)", fmt_int)
    cols["bound_ratio"] = Column("bound_ratio", "cycles ÷ compute bound", fmt_ratio)
    return cols


COMPILE_COLUMNS = _compile_columns()


def columns(*names: str) -> tuple[Column, ...]:
    return tuple(COMPILE_COLUMNS[n] for n in names)


@dataclass(frozen=True)
class Table:
    title: str
    frame: pd.DataFrame  # raw values; columns are the headers
    formats: Mapping[str, Formatter] = field(default_factory=dict)
    numeric: frozenset[str] = frozenset()  # right-aligned columns
    note: str = ""
    wrap: frozenset[str] = frozenset()  # columns with long names that may break anywhere

    def formatted(self) -> pd.DataFrame:
        out = pd.DataFrame(index=self.frame.index)
        for col in self.frame.columns:
            fmt = self.formats.get(col, fmt_text)
            out[col] = [fmt(v) for v in self.frame[col].tolist()]
        return out


def table_from_rows(
    title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], note: str = "", wrap=()
) -> Table:
    frame = pd.DataFrame(
        [[row.get(c.field) for c in columns] for row in rows],
        columns=[c.header for c in columns],
        dtype=object,
    )
    return Table(
        title,
        frame,
        {c.header: c.fmt for c in columns},
        frozenset(c.header for c in columns if c.numeric),
        note,
        frozenset(wrap),
    )


# ---- Rendering -----------------------------------------------------------------------------------


def to_markdown(table: Table) -> str:
    cells = table.formatted()
    headers = list(cells.columns)
    align = ["---:" if h in table.numeric else "---" for h in headers]
    lines = [
        "| " + " | ".join(md_escape(h) for h in headers) + " |",
        "|" + "|".join(align) + "|",
    ]
    for row in cells.itertuples(index=False):
        lines.append("| " + " | ".join(md_escape(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_html(table: Table, css_class: str = "data") -> str:
    cells = table.formatted()
    headers = list(cells.columns)

    def cls(h: str) -> str:
        names = (["num"] if h in table.numeric else []) + (["wrap"] if h in table.wrap else [])
        return f' class="{" ".join(names)}"' if names else ""

    parts = [f'<table class="{css_class}"><thead><tr>']
    parts += [f"<th{cls(h)}>{html_escape(h)}</th>" for h in headers]
    parts.append("</tr></thead><tbody>")
    for row in cells.itertuples(index=False):
        parts.append("<tr>" + "".join(f"<td{cls(h)}>{html_escape(v)}</td>" for h, v in zip(headers, row)) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


# ---- The tables of a run -------------------------------------------------------------------------

PERFORMANCE_COLUMNS = columns(
    "config", "system_config", "core_clock_hz", "cycles_total", "cycles_npu", "inference_time_ms",
    "inferences_per_second", "macs", "mac_utilization", "compute_bound_cycles", "bound_ratio",
)
MEMORY_COLUMNS = columns(
    "config", "memory_mode", "sram_bytes", "flash_bytes", "dram_bytes", "encoded_weights_bytes",
    "original_weights_bytes", "npu_ops", "cpu_ops",
)
# The per-configuration table: one metric per row.
CONFIG_DETAIL = columns(
    "accel", "system_config", "memory_mode", "optimise", "core_clock_hz", "cycles_total", "cycles_npu",
    "inference_time_ms", "inferences_per_second", "sram_bytes", "flash_bytes", "dram_bytes", "npu_ops",
    "cpu_ops", "macs", "mac_utilization", "compute_bound_cycles", "bound_ratio",
    "encoded_weights_bytes", "original_weights_bytes", "compiler", "vela_version", "compiled_model",
)
LAYER_COLUMNS = (
    Column("rank", "#", fmt_int),
    Column("op", "op", fmt_text, numeric=False),
    Column("name", "layer (OFM tensor)", fmt_text, numeric=False),
    Column("cycles", "cycles", fmt_int),
    Column("share", "share of cycles", fmt_pct),
    Column("macs", "MACs", fmt_int),
    Column("mac_utilization", "MAC utilization", fmt_pct),
)
PARITY_COLUMNS = (
    Column("config", "config", fmt_text, numeric=False),
    Column("status", "status", fmt_text, numeric=False),
    Column("vectors", "vectors", fmt_int),
    Column("bit_exact_fraction", "bit-exact", fmt_pct),
    Column("max_abs_diff_lsb", "max |diff| (LSB)", fmt_int),
    Column("mismatched_elements", "mismatched elements", fmt_int),
    Column("top1_agreement", "top-1 agreement", fmt_pct),
    Column("npu_host_ms", "NPU backend, host time (ms)", fmt_float(3)),
    Column("cpu_host_ms", "CPU oracle, host time (ms)", fmt_float(3)),
)
FVP_COLUMNS = (
    Column("config", "config", fmt_text, numeric=False),
    Column("platform", "platform", fmt_text, numeric=False),
    Column("npu_active_cycles", "NPU active", fmt_int),
    Column("npu_idle_cycles", "NPU idle", fmt_int),
    Column("npu_total_cycles", "NPU total (FVP)", fmt_int),
    Column("vela_estimate_cycles", "Vela estimate", fmt_int),
    Column("vela_over_fvp", "Vela ÷ FVP", fmt_ratio),
    Column("inference_time_ms", "time (ms)", fmt_float(3)),
    Column("axi0_read_bytes", "AXI0 read (B)", fmt_int),
    Column("axi0_write_bytes", "AXI0 write (B)", fmt_int),
    Column("axi1_read_bytes", "AXI1 read (B)", fmt_int),
)
TOP_LAYERS_PER_CONFIG = 10


def result_rows(run: RunResults) -> list[dict[str, Any]]:
    """Compile results with their config label and the derived bound figures."""
    rows = []
    for label, r in zip(run.config_labels(), run.results):
        row = dict(r)
        row["config"] = label
        row["compute_bound_cycles"] = compute_bound_cycles(r)
        row["bound_ratio"] = bound_ratio(r)
        rows.append(row)
    return rows


def performance_table(run: RunResults) -> Table:
    return table_from_rows(
        "Performance per configuration",
        result_rows(run),
        PERFORMANCE_COLUMNS,
        "Vela 5.2 estimates. Compute bound = MACs ÷ MACs per cycle of the accelerator; "
        "cycles ÷ bound says how far from the MAC limit each configuration runs.",
    )


def memory_table(run: RunResults) -> Table:
    return table_from_rows(
        "Memory and operator placement per configuration",
        result_rows(run),
        MEMORY_COLUMNS,
        "SRAM, flash and DRAM as Vela allocates them (Dedicated_Sram keeps weights in DRAM).",
    )


def config_detail_table(label: str, row: Mapping[str, Any]) -> Table:
    """One configuration, one metric per row (formatted here: each row has its own unit)."""
    frame = pd.DataFrame(
        {"metric": [c.header for c in CONFIG_DETAIL],
         "value": [c.fmt(row.get(c.field)) for c in CONFIG_DETAIL]},
        dtype=object,
    )
    return Table("", frame, {}, frozenset({"value"}), wrap=frozenset({"value"}))


def layer_table(label: str, result: Mapping[str, Any], top: int = TOP_LAYERS_PER_CONFIG) -> Table | None:
    layers = [layer for _, layer in keyed_layers(result) if not is_missing(layer.get("cycles"))]
    if not layers:
        return None
    total = sum(float(layer["cycles"]) for layer in layers) or None
    ranked = sorted(enumerate(layers), key=lambda t: (-float(t[1]["cycles"]), t[0]))[:top]
    rows = [
        {
            **layer,
            "rank": i + 1,
            "share": float(layer["cycles"]) / total if total else None,
        }
        for i, (_, layer) in enumerate(ranked)
    ]
    return table_from_rows(
        f"Top {len(rows)} layers of {label}",
        rows,
        LAYER_COLUMNS,
        "Share = the layer's cycles over the sum of per-layer cycles.",
        wrap=("layer (OFM tensor)",),
    )


def _matched_rows(run: RunResults, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Parity/FVP rows carry only ``accel``; show them under the sweep's config label."""
    label_of = {}
    for label, r in zip(run.config_labels(), run.results):
        label_of.setdefault(str(r.get("accel")), label)
    return [{**r, "config": label_of.get(str(r.get("accel")), str(r.get("accel")))} for r in rows]


def _parity_status(row: Mapping[str, Any]) -> str:
    if row.get("error"):
        return f"error: {row['error']}"
    passed = row.get("passed", row.get("within_tolerance"))
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


def parity_table(run: RunResults) -> Table | None:
    parity = run.parity or {}
    rows = parity.get("results") or []
    if not rows:
        return None
    rows = [{**r, "status": _parity_status(r)} for r in _matched_rows(run, rows)]
    note = "NPU outputs compared with the CPU reference on the same int8 input vectors"
    details = [f"{k}: {parity[k]}" for k in ("npu", "oracle", "tolerance_lsb", "seed") if parity.get(k) is not None]
    if parity.get("clips"):
        details.append(f"clips: {len(parity['clips'])}")
    note += f" ({', '.join(details)})." if details else "."
    return table_from_rows("Parity per configuration", rows, PARITY_COLUMNS, note)


def fvp_table(run: RunResults) -> Table | None:
    if not run.fvp:
        return None
    vela_by_accel = {str(r.get("accel")): r for r in run.results}
    rows = [
        {**r, **fvp_comparison(r, vela_by_accel.get(str(r.get("accel"))))}
        for r in _matched_rows(run, run.fvp)
    ]
    bases = sorted({r["basis"] for r in rows})
    return table_from_rows(
        "FVP counters and Vela estimates per configuration",
        rows,
        FVP_COLUMNS,
        "FVP figures are NPU PMU counters from a Corstone FVP run; Vela's are static estimates. "
        f"Ratio: {'; '.join(bases)} (above 1: Vela estimates more cycles than the FVP counted).",
    )


def published_rows(run: RunResults) -> tuple[list[dict[str, Any]], str | None]:
    """Published figures beside ours (the sweep's u55-128 result and its FVP run, if any)."""
    ours = next((r for r in run.results if str(r.get("accel")) == PUBLISHED_ACCEL), None)
    label = None
    if ours is not None:
        label = run.config_labels()[run.results.index(ours)]
    fvp = next((r for r in (run.fvp or ()) if str(r.get("accel")) == PUBLISHED_ACCEL), None)
    rows = []
    for fig in PUBLISHED_FIGURES:
        vela_v = ours.get(fig.ours_field) if ours is not None and fig.ours_field else None
        fvp_v = fvp.get(fig.fvp_field) if fvp is not None and fig.fvp_field else None
        scale = fig.scale_to_ours
        rows.append(
            {
                "quantity": fig.quantity,
                "published": f"{_num(fig.value)} {fig.unit}",
                "ours_vela": None if is_missing(vela_v) else f"{_num(float(vela_v) / scale)} {fig.unit}",
                "ours_fvp": None if is_missing(fvp_v) else f"{_num(float(fvp_v) / scale)} {fig.unit}",
                "note": fig.note,
            }
        )
    return rows, label


def _num(v: float) -> str:
    if abs(v) >= 1e7:  # MACs: published as "28.35 M"
        return f"{v / 1e6:,.2f} M"
    if float(v).is_integer() and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4f}"


def published_table(run: RunResults) -> Table:
    rows, label = published_rows(run)
    ours = f"ours: {label}" if label else f"ours ({PUBLISHED_ACCEL} not in this sweep)"
    columns = (
        Column("quantity", "quantity", numeric=False),
        Column("published", "PUBLISHED (Arm, 2021)"),
        Column("ours_vela", f"{ours}, Vela estimate"),
        Column("ours_fvp", f"{ours}, FVP"),
        Column("note", "note", numeric=False),
    )
    return table_from_rows(
        "Published reference figures: DS-CNN on Ethos-U55-128",
        rows,
        columns,
        f"Published: {PUBLISHED_SOURCE}. A different build of the model (clustered INT8) and older "
        "tools, so expect differences; ours are this run's figures for our model.",
    )
