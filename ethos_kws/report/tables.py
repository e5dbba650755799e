"""Every table ethos-kws shows: pandas frames of raw values, rendered as terminal text, Markdown or HTML.

A ``Column`` is defined once (field, header, short terminal header, format); a metric field's
label and unit come from its dataclass (``records.metric``) and its format from ``UNIT_FORMATS``.
A ``Table`` keeps numbers as numbers (for CSV and deltas); ``to_text``, ``to_markdown`` and
``to_html`` render the same table, and the last two escape every cell, since layer and model
names come straight from the model file.
"""

from __future__ import annotations

import dataclasses
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
fmt_g = _guard(lambda v: f"{float(v):g}")
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
    "lsb": (" (LSB)", fmt_g, fmt_signed(0)),
    "x": ("", fmt_ratio, fmt_signed(2)),
}


@dataclass(frozen=True)
class Column:
    field: str  # key in the source row
    header: str
    fmt: Formatter = fmt_text
    numeric: bool = True
    delta_fmt: Formatter = fmt_text
    short: str | None = None  # header in the narrow terminal tables

    @property
    def short_header(self) -> str:
        return self.short or self.header


def metric_columns(cls: type) -> dict[str, Column]:
    """A ``Column`` per metric field of the dataclass ``cls``: header = its label and unit,
    formats from ``UNIT_FORMATS``."""
    from ..records import metric_fields

    out = {}
    for f in metric_fields(cls):
        suffix, fmt, delta = UNIT_FORMATS[f.metadata["unit"]]
        out[f.name] = Column(f.name, f.metadata["label"] + suffix, fmt, True, delta, f.metadata.get("short"))
    return out


def _compile_columns() -> dict[str, Column]:
    from ..vela import CompileResult, LayerResult

    cols = metric_columns(CompileResult)
    for name, header in (("system_config", "system config"),
                         ("memory_mode", "memory mode"), ("optimise", "optimise"),
                         ("compiler", "Vela compiler"), ("vela_version", "Vela version"),
                         ("compiled_model", "compiled model")):
        cols[name] = Column(name, header, fmt_text, numeric=False)
    cols["accel"] = Column("accel", "accelerator", fmt_text, numeric=False, short="accel")
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
    title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], note: str = "", wrap=(),
    *, short: bool = False,
) -> Table:
    """``short``: the columns' terminal headers (for ``to_text``)."""
    header = (lambda c: c.short_header) if short else (lambda c: c.header)
    frame = pd.DataFrame(
        [[row.get(c.field) for c in columns] for row in rows],
        columns=[header(c) for c in columns],
        dtype=object,
    )
    return Table(
        title,
        frame,
        {header(c): c.fmt for c in columns},
        frozenset(header(c) for c in columns if c.numeric),
        note,
        frozenset(wrap),
    )


# ---- Rendering -----------------------------------------------------------------------------------


def to_text(table: Table) -> str:
    """Plain-text table for a terminal: text columns left-aligned, numbers right-aligned."""
    cells = table.formatted()
    headers = list(cells.columns)
    rows = [[str(v) for v in row] for row in cells.itertuples(index=False)]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if h in table.numeric else v.ljust(w)
                         for v, w, h in zip(values, widths, headers)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _memo(escape):
    """``escape`` for the cells of one table, each distinct text escaped once: cell values repeat
    (configurations, formatted figures); escaping each cell took about 2 of the 10 s of a
    10,000-row report."""
    done: dict[str, str] = {}

    def esc(v) -> str:
        text = v if isinstance(v, str) else str(v)
        out = done.get(text)
        if out is None:
            out = done[text] = escape(text)
        return out
    return esc


def to_markdown(table: Table) -> str:
    cells = table.formatted()
    headers = list(cells.columns)
    align = ["---:" if h in table.numeric else "---" for h in headers]
    lines = [
        "| " + " | ".join(md_escape(h) for h in headers) + " |",
        "|" + "|".join(align) + "|",
    ]
    esc = _memo(md_escape)
    for row in cells.itertuples(index=False):
        lines.append("| " + " | ".join(esc(v) for v in row) + " |")
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
    opens = [f"<td{cls(h)}>" for h in headers]
    esc = _memo(html_escape)
    for row in cells.itertuples(index=False):
        parts.append("<tr>" + "".join(f"{o}{esc(v)}</td>" for o, v in zip(opens, row)) + "</tr>")
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
def _parity_columns() -> tuple[Column, ...]:
    from ..parity import ConfigParity

    m = metric_columns(ConfigParity)
    return (COMPILE_COLUMNS["config"], Column("status", "status", fmt_text, numeric=False)) + tuple(
        m[f] for f in ("vectors", "bit_exact_fraction", "max_abs_diff_lsb", "mismatched_elements",
                       "top1_agreement", "npu_host_ms", "cpu_host_ms"))


def _fvp_columns() -> dict[str, Column]:
    from ..backends.fvp.measurement import FvpMeasurement

    m = metric_columns(FvpMeasurement)
    m["accel"] = Column("accel", "accel", fmt_text, numeric=False)
    m["config"] = COMPILE_COLUMNS["config"]
    m["platform"] = Column("platform", "platform", fmt_text, numeric=False)
    # the report's comparison (metrics.fvp_comparison) picks the estimate and the counter it uses
    m["vela_estimate_cycles"] = dataclasses.replace(m["vela_cycles_npu"], field="vela_estimate_cycles")
    m["vela_over_fvp"] = dataclasses.replace(m["vela_over_fvp_cycles"], field="vela_over_fvp")
    return m


PARITY_COLUMNS = _parity_columns()
# the report adds where each configuration first differs (the terminal table stays narrow)
PARITY_REPORT_COLUMNS = PARITY_COLUMNS + (Column("first_difference", "first differing element", fmt_text,
                                                 numeric=False),)
FVP_COLUMN_SET = _fvp_columns()
FVP_COLUMNS = tuple(FVP_COLUMN_SET[f] for f in (
    "config", "platform", "npu_active_cycles", "npu_idle_cycles", "npu_total_cycles",
    "vela_estimate_cycles", "vela_over_fvp", "inference_time_ms", "axi0_read_bytes",
    "axi0_write_bytes", "axi1_read_bytes"))
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


def _first_difference(row: Mapping[str, Any]) -> str:
    """Where the NPU first disagrees (and the named cause, when parity found one), or empty."""
    firsts = row.get("first_differences") or []
    first = firsts[0] if firsts and isinstance(firsts[0], Mapping) else None
    if first is None:
        return ""
    text = (f"{first.get('source', 'vector ' + str(first.get('vector')))}, {first.get('output')}[{first.get('index')}]: "
            f"npu {first.get('npu')} cpu {first.get('cpu')} ({first.get('diff_lsb')} LSB)")
    return text + (f"; {row['diagnosis']}" if row.get("diagnosis") else "")


def parity_table(run: RunResults) -> Table | None:
    parity = run.parity or {}
    rows = parity.get("results") or []
    if not rows:
        return None
    rows = [{**r, "status": _parity_status(r), "first_difference": _first_difference(r)}
            for r in _matched_rows(run, rows)]
    note = "NPU outputs compared with the CPU reference on the same int8 input vectors"
    details = [f"{k}: {parity[k]}" for k in ("npu", "oracle", "tolerance_lsb", "seed") if parity.get(k) is not None]
    if parity.get("clips"):
        details.append(f"clips: {len(parity['clips'])}")
    note += f" ({', '.join(details)})." if details else "."
    return table_from_rows("Parity per configuration", rows, PARITY_REPORT_COLUMNS, note)


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


# ---- terminal tables (`sweep`, `parity`): the same columns, short headers -----------------------

SWEEP_TERMINAL = ("accel", "system_config", "cycles_total", "inference_time_ms", "inferences_per_second",
                  "sram_bytes", "flash_bytes", "dram_bytes", "npu_ops", "cpu_ops", "mac_utilization")
FVP_TERMINAL = ("accel", "platform", "npu_active_cycles", "npu_total_cycles", "inference_time_ms",
                "vela_cycles_npu", "vela_over_fvp_cycles")


def format_table(results: Sequence[Any]) -> str:
    """The one-screen table ``ethos-kws sweep`` prints (compile results or their dicts), then the
    operators Vela left on the CPU."""
    rows = [r if isinstance(r, Mapping) else r.to_dict() for r in results]
    return to_text(table_from_rows("", rows, columns(*SWEEP_TERMINAL), short=True)) + cpu_fallback_lines(rows)


def cpu_fallback_lines(rows: Sequence[Mapping[str, Any]]) -> str:
    """Below the table: the operators Vela left on the CPU, named with its reason, once per
    distinct set (every configuration of one model usually leaves the same ones)."""
    from ..cpu_fallback import CpuOperator, npu_only_note
    from ..records import from_record

    lines: list[str] = []
    seen: dict[tuple, list[str]] = {}
    for r in rows:
        if r.get("cpu_ops"):
            ops = tuple(str(from_record(CpuOperator, c) if isinstance(c, Mapping) else c)
                        for c in r.get("cpu_operators") or ())
            seen.setdefault(ops or tuple(r.get("cpu_op_names") or ()), []).append(str(r.get("accel")))
    for ops, accels in seen.items():
        lines.append(f"NOTE ({', '.join(accels)}): {npu_only_note(len(ops))}")
        lines += [f"  CPU: {op}" for op in ops]
    return "".join("\n" + line for line in lines)


def format_fvp_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """FVP measurements beside Vela's estimate, for the terminal."""
    return to_text(table_from_rows("", rows, tuple(FVP_COLUMN_SET[f] for f in FVP_TERMINAL), short=True))


def format_parity_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Parity per configuration, for the terminal (rows carry ``config`` and ``status``)."""
    return to_text(table_from_rows("", rows, PARITY_COLUMNS, short=True))


# ---- exploration (ethos-kws explore, the report's exploration page) -----------------------------

EXPLORE_COLUMN_SET = {
    "label": Column("label", "point", fmt_text, numeric=False),
    "offchip_bytes": Column("offchip_bytes", "flash + DRAM (KiB)", fmt_kib, short="off-chip KiB"),
    "pareto": Column("pareto", "Pareto", lambda v: "front" if v else "", numeric=False),
    "error": Column("error", "reason", fmt_text, numeric=False),
}
EXPLORE_TERMINAL = ("label", "inference_time_ms", "cycles_total", "sram_bytes", "offchip_bytes", "macs_per_cycle",
                    "pareto")


def explore_rows(points: Sequence[Any]) -> list[dict[str, Any]]:
    """Exploration points (``ExplorePoint`` or their dicts) as table rows: the compile's fields,
    the point's label and the off-chip bytes the front is taken over."""
    from ..explore import ExplorePoint
    from ..records import from_record

    rows = []
    for p in points:
        p = p if isinstance(p, ExplorePoint) else from_record(ExplorePoint, p)
        row = {**(p.result.to_dict() if p.result is not None else {}), "label": p.label(), "pareto": p.pareto,
               "error": p.error, "status": p.status}
        if p.result is not None:
            row["offchip_bytes"] = p.result.flash_bytes + p.result.dram_bytes
        rows.append(row)
    return rows


def explore_columns(names: Sequence[str] = EXPLORE_TERMINAL) -> tuple[Column, ...]:
    return tuple(EXPLORE_COLUMN_SET.get(n) or COMPILE_COLUMNS[n] for n in names)


def explore_table(title: str, points: Sequence[Any], names: Sequence[str] = EXPLORE_TERMINAL, *,
                  short: bool = False, note: str = "") -> Table:
    return table_from_rows(title, explore_rows(points), explore_columns(names), note, short=short)


def format_explore_table(points: Sequence[Any], names: Sequence[str] = EXPLORE_TERMINAL) -> str:
    """Exploration points for the terminal."""
    return to_text(explore_table("", points, names, short=True))
