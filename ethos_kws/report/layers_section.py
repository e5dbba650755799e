"""The report's per-layer section: every costed layer of every configuration, what bounds it, the
layers that stream weights from flash, and the operators left on the CPU."""

from __future__ import annotations

from typing import Any, Mapping

from ..cpu_fallback import npu_only_note
from ..layers import bound_by_summary, costed, flash_streaming_layers, short_name
from .document import Banner, Collapsible, Heading, Para, TableBlock
from .load import RunResults
from .tables import Column, fmt_int, fmt_pct, fmt_text, table_from_rows

LAYER_TABLE_ID = "layers-all"
STREAMING_NAMED = 12  # layers named in the flash-streaming sentence; the table has them all


def _fmt_tflite(v: Any) -> str:
    return "n/a" if v is None else str(v)


ALL_LAYER_COLUMNS = (
    Column("config", "config", fmt_text, numeric=False),
    Column("index", "Vela row", fmt_int),
    Column("tflite_index", "TFLite op #", _fmt_tflite),
    Column("tflite_op", "TFLite op", fmt_text, numeric=False),
    Column("op", "Vela op", fmt_text, numeric=False),
    Column("short_name", "layer (OFM tensor)", fmt_text, numeric=False),
    Column("cycles", "cycles", fmt_int),
    Column("share", "share", fmt_pct),
    Column("bound_by", "bound by", fmt_text, numeric=False),
    Column("npu_cycles", "NPU (compute)", fmt_int),
    Column("sram_access_cycles", "SRAM AC", fmt_int),
    Column("dram_access_cycles", "DRAM AC", fmt_int),
    Column("on_chip_flash_access_cycles", "on-chip flash AC", fmt_int),
    Column("off_chip_flash_access_cycles", "off-chip flash AC", fmt_int),
    Column("macs", "MACs", fmt_int),
    Column("mac_utilization", "MAC util", fmt_pct),
    Column("weights_from_flash", "weights from flash", lambda v: "yes" if v else "", numeric=False),
)
BOUND_LABELS = ("compute", "SRAM", "DRAM", "on-chip flash", "off-chip flash")


def layer_rows(run: RunResults) -> list[dict[str, Any]]:
    rows = []
    for label, r in zip(run.config_labels(), run.results):
        for d in costed(r.get("layers") or []):
            rows.append({**d, "config": label, "short_name": short_name(str(d.get("name", "")))})
    return rows


def all_layers_table(run: RunResults):
    rows = layer_rows(run)
    if not rows:
        return None
    fused = sum(len(r.get("layers") or []) for r in run.results) - len(rows)
    return table_from_rows(
        "Every layer of every configuration",
        rows,
        ALL_LAYER_COLUMNS,
        "Vela's per-layer estimate. A layer's cycles are the largest of its NPU (compute) cycles and "
        "its access cycles (AC) per memory; 'bound by' names that largest column. Share = the "
        "layer's cycles over the network's. "
        + (f"{fused} rows with no cost of their own (activations Vela fused into the op before "
           "them) are left out here; layers.csv and results.json keep every row." if fused > 0 else ""),
    )


def bound_summary_rows(run: RunResults) -> list[dict[str, Any]]:
    rows = []
    for label, r in zip(run.config_labels(), run.results):
        summary = bound_by_summary(r.get("layers") or [])
        if not summary:
            continue
        total = sum(v["cycles"] for v in summary.values()) or 1
        row: dict[str, Any] = {"config": label, "network": next(iter(summary))}
        for b in BOUND_LABELS:
            v = summary.get(b, {"layers": 0, "cycles": 0})
            n = v["layers"]
            row[b] = f"{v['cycles']:,} ({n} layer{'s' if n != 1 else ''}, {v['cycles'] / total:.0%})" if n else ""
        rows.append(row)
    return rows


def bound_summary_table(run: RunResults):
    rows = bound_summary_rows(run)
    if not rows:
        return None
    cols = (Column("config", "config", numeric=False),
            Column("network", "most cycles in layers bound by", numeric=False),
            *(Column(b, f"{b}-bound layers: cycles", numeric=True) for b in BOUND_LABELS))
    return table_from_rows("What bounds the layers, per configuration", rows, cols,
                           "Cycles summed over the layers each cost column bounds.")


def streaming_blocks(label: str, result: Mapping[str, Any]) -> list:
    layers = flash_streaming_layers(result.get("layers") or [])
    if not layers:
        return []
    names = ", ".join(f"#{d.get('tflite_index')} {d.get('op')}" for d in layers[:STREAMING_NAMED])
    if len(layers) > STREAMING_NAMED:
        names += f" and {len(layers) - STREAMING_NAMED} more (see the layer table)"
    flash_cycles = sum(int(d.get("on_chip_flash_access_cycles") or 0) + int(d.get("off_chip_flash_access_cycles") or 0)
                       for d in layers)
    return [Para(f"{label}: the weights live in flash ({result.get('memory_mode', 'n/a')}); {len(layers)} "
                 f"layers stream them from flash while they run ({flash_cycles:,} flash access cycles): "
                 f"TFLite op {names}.")]


def cpu_blocks(run: RunResults) -> list:
    """A banner and a table of the CPU operators, once per distinct set of them."""
    groups: dict[tuple, list[str]] = {}
    for label, r in zip(run.config_labels(), run.results):
        n = r.get("cpu_ops")
        if not isinstance(n, int) or n <= 0:
            continue
        ops = tuple((c.get("index"), c.get("op"), c.get("ofm"), c.get("reason"))
                    for c in r.get("cpu_operators") or [] if isinstance(c, dict))
        if not ops:
            ops = tuple((None, name, "", "reason not recorded") for name in r.get("cpu_op_names") or [])
        key = (n, tuple(op[:3] for op in ops))  # the same operators, whatever the reason's wording
        groups.setdefault(key, [ops]).append(label)
    blocks: list = []
    for (n, _), (ops, *labels) in groups.items():
        which = "every configuration" if len(labels) == len(run.results) else ", ".join(labels)
        blocks.append(Banner(f"{npu_only_note(n)} ({which})."))
        rows = [{"index": i, "op": op, "ofm": ofm, "reason": reason} for i, op, ofm, reason in ops]
        blocks.append(TableBlock(table_from_rows("Operators Vela leaves on the CPU", rows, (
            Column("index", "op # (compiled model)", _fmt_tflite),
            Column("op", "operator", numeric=False),
            Column("ofm", "output tensor", numeric=False),
            Column("reason", "Vela's reason", numeric=False),
        ), wrap=("Vela's reason", "output tensor"))))
    return blocks


def layer_blocks(run: RunResults) -> list:
    """The 'Per layer' section: bound-by summary, flash streaming, the full layer table."""
    table = all_layers_table(run)
    if table is None:
        return []
    blocks: list = [Heading(2, "Per layer: where the cycles go", "layers")]
    summary = bound_summary_table(run)
    if summary is not None:
        blocks.append(TableBlock(summary, sortable=True))
    for label, r in zip(run.config_labels(), run.results):
        blocks += streaming_blocks(label, r)
    blocks.append(Collapsible(f"All {len(table.frame)} costed layers (every configuration)",
                              (TableBlock(table, sortable=True),)))
    return blocks
