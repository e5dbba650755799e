"""Every layer, every cost: Vela's per-layer CSV as ``LayerResult`` records.

Vela 5.2 writes ``<model>_per-layer.csv`` by joining fields with ``,`` and no quoting, so a tensor
name holding a comma or starting with ``"`` would, read with default CSV quoting, split into extra
fields or swallow the rows after it. ``Name`` is the last column, so the file is read with
``csv.QUOTE_NONE`` and everything from the ``Name`` column on is joined back into the name.

A layer's ``Op Cycles`` is the largest of its NPU (compute) cycles and its access cycles per
memory (SRAM, DRAM, on-chip flash, off-chip flash); whichever is largest is what the layer is
``bound_by``. A layer that reads flash streams its weights from there (feature maps never live in
flash).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import CompileError
from .records import Record, metric

# Vela's per-layer CSV column -> LayerResult field
VELA_COLUMNS = (
    ("Original Operator", "original_op"),
    ("NNG Operator", "op"),
    ("Target", "target"),
    ("Staging Usage", "staging_usage_bytes"),
    ("Op Cycles", "cycles"),
    ("Network% (cycles)", "share"),
    ("NPU", "npu_cycles"),
    ("SRAM AC", "sram_access_cycles"),
    ("DRAM AC", "dram_access_cycles"),
    ("OnFlash AC", "on_chip_flash_access_cycles"),
    ("OffFlash AC", "off_chip_flash_access_cycles"),
    ("MAC Count", "macs"),
    ("Util% (MAC)", "mac_utilization"),
    ("Name", "name"),
)
# The legacy Python core (--debug-force-legacy-core) writes its own layout; "Network%" appears
# twice there (cycles, then MACs), so a repeated header is named "<header>#2".
LEGACY_VELA_COLUMNS = (
    ("TFLite_operator", "original_op"),
    ("NNG Operator", "op"),
    ("SRAM Usage", "staging_usage_bytes"),
    ("Op Cycles", "cycles"),
    ("Network%", "share"),
    ("NPU", "npu_cycles"),
    ("SRAM AC", "sram_access_cycles"),
    ("DRAM AC", "dram_access_cycles"),
    ("OnFlash AC", "on_chip_flash_access_cycles"),
    ("OffFlash AC", "off_chip_flash_access_cycles"),
    ("MAC Count", "macs"),
    ("Util%", "mac_utilization"),
    ("Name", "name"),
)
_PERCENT_FIELDS = ("share", "mac_utilization")  # Vela writes percentages; we keep fractions
_TEXT_FIELDS = ("original_op", "op", "target", "name")

# The cost columns a layer can be bound by, in the order ties are resolved (compute first: a layer
# whose memory traffic exactly hides behind its MACs is compute-bound).
BOUND_BY = (
    ("npu_cycles", "compute"),
    ("sram_access_cycles", "SRAM"),
    ("dram_access_cycles", "DRAM"),
    ("on_chip_flash_access_cycles", "on-chip flash"),
    ("off_chip_flash_access_cycles", "off-chip flash"),
)
FUSED = "fused"  # a row with no cost of its own: an activation Vela fused into the op before it
CPU = "CPU"
FLASH_FIELDS = ("on_chip_flash_access_cycles", "off_chip_flash_access_cycles")


@dataclass(frozen=True)
class LayerResult(Record):
    name: str  # Vela's layer name: the OFM tensor
    op: str  # Vela's (NNG) operator, e.g. Conv2D, Relu, LUT
    # Vela's Op Cycles: the largest of the five cost columns below
    cycles: int = metric("cycles", "cycles")
    macs: int = metric("MACs", "count")
    # fraction of the MAC array busy over the layer's cycles
    mac_utilization: float = metric("MAC utilization", "ratio")
    index: int = 0  # row in Vela's per-layer CSV
    original_op: str = ""  # the TFLite operator as Vela names it, e.g. DepthwiseConv2D
    tflite_index: int | None = None  # the operator's index in the input model's subgraph 0
    tflite_op: str = ""  # its builtin name, e.g. DEPTHWISE_CONV_2D
    target: str = "NPU"
    npu_cycles: int = 0
    sram_access_cycles: int = 0
    dram_access_cycles: int = 0
    on_chip_flash_access_cycles: int = 0
    off_chip_flash_access_cycles: int = 0
    staging_usage_bytes: int = 0  # fast-storage (SRAM) in use while the layer runs
    share: float = 0.0  # of the network's cycles
    bound_by: str = ""  # compute | SRAM | DRAM | on-chip flash | off-chip flash | fused | CPU
    weights_from_flash: bool = False
    # bytes moved per memory, from Vela's debug database (None: not known)
    sram_read_bytes: int | None = None
    sram_write_bytes: int | None = None
    dram_read_bytes: int | None = None
    dram_write_bytes: int | None = None
    on_chip_flash_read_bytes: int | None = None
    on_chip_flash_write_bytes: int | None = None
    off_chip_flash_read_bytes: int | None = None
    off_chip_flash_write_bytes: int | None = None


LAYER_FIELDS = tuple(f.name for f in fields(LayerResult))
# layers.csv column order: where the layer comes from, what it costs, the long name last
LAYERS_CSV_FIELDS = (
    "index", "tflite_index", "tflite_op", "original_op", "op", "target", "cycles", "share",
    "bound_by", "npu_cycles", "sram_access_cycles", "dram_access_cycles",
    "on_chip_flash_access_cycles", "off_chip_flash_access_cycles", "macs", "mac_utilization",
    "staging_usage_bytes", "weights_from_flash", "sram_read_bytes", "sram_write_bytes",
    "dram_read_bytes", "dram_write_bytes", "on_chip_flash_read_bytes", "on_chip_flash_write_bytes",
    "off_chip_flash_read_bytes", "off_chip_flash_write_bytes", "name",
)  # fmt: skip


def bound_by(row: dict[str, Any]) -> str:
    """What limits a layer: the cost column with the most cycles."""
    if str(row.get("target", "NPU")).upper() == CPU:
        return CPU
    costs = [(int(row.get(f) or 0), label) for f, label in BOUND_BY]
    top = max(c for c, _ in costs)
    if top == 0:
        return FUSED
    return next(label for c, label in costs if c == top)


def read_per_layer_csv(path: Path) -> list[dict[str, str]]:
    """Rows of Vela's per-layer CSV as {column: text}, the unquoted ``Name`` kept whole."""
    return parse_per_layer_csv(path.read_text(encoding="utf-8", errors="replace"), path.name)


def parse_per_layer_csv(text: str, source: str = "per-layer CSV") -> list[dict[str, str]]:
    if not text.strip():  # Vela writes an empty per-layer CSV when no operator goes to the NPU
        return []
    reader = csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONE)
    try:
        header = next(reader)
    except StopIteration:
        raise CompileError(f"Vela's {source} is empty") from None
    raw_header = [h.strip() for h in header]
    header = _unique(raw_header)
    if not header or header[-1] != "Name":
        raise CompileError(f"Vela's {source} does not end with a 'Name' column: {header}")
    missing = [col for col, _ in layout_of(header) if col not in header]
    if missing:
        raise CompileError(f"Vela's {source} lacks the column(s) {', '.join(missing)}")
    width = len(header) - 1
    rows = []
    for line_no, fields_ in enumerate(reader, start=2):
        if not fields_ or [f.strip() for f in fields_] == raw_header:
            continue  # the legacy compiler repeats the header for every NPU subgraph
        if len(fields_) < len(header):
            raise CompileError(f"Vela's {source} line {line_no} has {len(fields_)} fields, expected {len(header)}")
        row = dict(zip(header[:width], fields_[:width]))
        row["Name"] = ",".join(fields_[width:])
        rows.append(row)
    return rows


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h}#{seen[h]}")
    return out


def layout_of(header: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Which core wrote the CSV: the legacy core names its first column TFLite_operator."""
    return LEGACY_VELA_COLUMNS if header and header[0] == "TFLite_operator" else VELA_COLUMNS


def _number(text: str, column: str, source: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CompileError(f"Vela's {source}: {column} is {text!r}, not a number") from None


def _type_key(name: str) -> str:
    """One spelling for Vela's operator names and TFLite builtin names (AvgPool = AVERAGE_POOL_2D)."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return _TYPE_ALIASES.get(key, key)


_TYPE_ALIASES = {"avgpool": "averagepool2d", "maxpool": "maxpool2d", "averagepool": "averagepool2d"}


@dataclass(frozen=True)
class SourceOp:
    """An operator of the input model: what a Vela layer maps back to."""

    index: int
    opcode: str
    outputs: tuple[str, ...]


def source_ops(model_path: str | Path) -> list[SourceOp]:
    import os

    try:  # an exploration compiles one model many times: parse it once per process
        st = os.stat(model_path)
        stamp = (str(Path(model_path).resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (str(model_path), None, None)
    return list(_source_ops(stamp))


@functools.lru_cache(maxsize=4)
def _source_ops(stamp: tuple) -> tuple[SourceOp, ...]:
    from .tflite import load_tflite

    m = load_tflite(stamp[0])
    return tuple(
        SourceOp(o.index, o.opcode, tuple(m.tensor_spec(t).name for t in o.outputs if t >= 0))
        for o in m.operators()
    )


def map_to_source(rows: Sequence[dict[str, Any]], ops: Sequence[SourceOp]) -> list[SourceOp | None]:
    """The input-model operator of each layer row.

    Vela names a layer by its OFM tensor, so a row whose name is an operator's output maps to that
    operator. Rows Vela made up while lowering one operator (Softmax becomes ~25 elementwise layers
    named ``<ifm>_softmax_N``) map to the operator of the same type the rows before them mapped
    to, or else to the next operator of that type in the model.
    """
    by_output = {name: op for op in ops for name in op.outputs}
    out: list[SourceOp | None] = []
    prev: SourceOp | None = None
    for row in rows:
        kind = _type_key(str(row.get("original_op", "")))
        exact = by_output.get(str(row.get("name", "")))
        if exact is not None and _type_key(exact.opcode) == kind:
            found: SourceOp | None = exact
        elif prev is not None and _type_key(prev.opcode) == kind:
            found = prev
        else:
            start = prev.index + 1 if prev is not None else 0
            found = next((op for op in ops if op.index >= start and _type_key(op.opcode) == kind), None)
        out.append(found)
        if found is not None:
            prev = found
    return out


def parse_layers(path: Path, model_path: str | Path | None = None,
                 layer_bytes: Sequence[dict[str, int]] | None = None) -> tuple[LayerResult, ...]:
    """All rows of Vela's per-layer CSV, fused and CPU rows included, in Vela's order;
    ``layer_bytes`` (one dict per row, from Vela's debug database) adds the bytes moved."""
    source = path.name
    rows = []
    raws = read_per_layer_csv(path)
    layout = layout_of(list(raws[0])) if raws else VELA_COLUMNS
    for i, raw in enumerate(raws):
        row: dict[str, Any] = {"index": i}
        for column, name in layout:
            text = raw[column].strip() if name != "name" else raw[column]
            if name in _TEXT_FIELDS:
                row[name] = text.strip() if name != "name" else text
                continue
            value = _number(text, column, source)
            row[name] = value / 100.0 if name in _PERCENT_FIELDS else int(round(value))
        if row["macs"] == 0 and row["cycles"] == 0:
            row["mac_utilization"] = 0.0  # Vela prints 100% for a row with nothing to do
        row["bound_by"] = bound_by(row)
        row["weights_from_flash"] = any(row[f] > 0 for f in FLASH_FIELDS)
        rows.append(row)
    if layer_bytes is not None and len(layer_bytes) == len(rows):
        for row, moved in zip(rows, layer_bytes):
            row.update(moved)
    ops = source_ops(model_path) if model_path is not None else []
    for row, op in zip(rows, map_to_source(rows, ops)):
        row["tflite_index"] = None if op is None else op.index
        row["tflite_op"] = "" if op is None else op.opcode
    return tuple(LayerResult(**row) for row in rows)


def costed(layers: Iterable[LayerResult | dict[str, Any]]) -> list[dict[str, Any]]:
    """Layers as dicts, without the rows that cost nothing (fused activations)."""
    out = []
    for layer in layers:
        d = layer.to_dict() if isinstance(layer, LayerResult) else dict(layer)
        if d.get("cycles") or d.get("macs"):
            out.append(d)
    return out


def flash_streaming_layers(layers: Iterable[LayerResult | dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers that read their weights from flash while they run."""
    return [d for d in costed(layers) if d.get("weights_from_flash")]


def bound_by_summary(layers: Iterable[LayerResult | dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per bound-by label: how many costed layers and how many cycles, most cycles first."""
    out: dict[str, dict[str, int]] = {}
    for d in costed(layers):
        if d.get("target", "NPU") != "NPU":
            continue
        s = out.setdefault(str(d.get("bound_by") or "n/a"), {"layers": 0, "cycles": 0})
        s["layers"] += 1
        s["cycles"] += int(d.get("cycles") or 0)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["cycles"]))


def short_name(name: str, limit: int = 60) -> str:
    """Vela's layer names join every fused tensor with ';'; the first part is the readable one."""
    head = name.split(";", 1)[0]
    return head if len(head) <= limit else "…" + head[-(limit - 1):]


def layers_csv_text(layers: Sequence[LayerResult | dict[str, Any]]) -> str:
    """``layers.csv``: one row per Vela layer, every field (quoted properly, unlike Vela's)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LAYERS_CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for layer in layers:
        w.writerow(layer.to_dict() if isinstance(layer, LayerResult) else dict(layer))
    return buf.getvalue()
