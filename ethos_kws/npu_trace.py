"""``run --backend npu-sim --trace``: the NPU commands the simulator executed, per Vela layer.

The simulator reports each operation it executes (its ``trace`` hook). What an operation does is
read from the register file as it stood when the operation was issued: the OFM box and its blocks
(OFM_BLK_*), the weight and scale streams it reads (WEIGHT*/SCALE*_LENGTH), the IFM box the kernel reads (from the OFM size, stride, kernel and padding), the IFM2
of a binary elementwise op, and the length of a DMA. Feature-map bytes count each element of those
boxes once (what the op touches, not the NPU's internal re-reads).

Which Vela layer an operation belongs to comes from Vela's debug database beside the compiled model
(``<model>_debug.xml``): its ``queue`` table gives, for each kernel operation's byte offset in the
command stream, the scheduled op, i.e. a row of the per-layer CSV. A DMA belongs to the kernel
operation after it (Vela fetches an op's weights and LUTs just before the op).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .backends.npusim.commands import Command, decode_fields, field_label
from .backends.npusim.featuremap import FeatureMap
from .backends.npusim.ops.common import Kernel, ofm_shape
from .backends.npusim.registers import RegisterFile
from .errors import EthosKwsError

KERNEL_OPS = ("NPU_OP_CONV", "NPU_OP_DEPTHWISE", "NPU_OP_POOL", "NPU_OP_ELEMENTWISE")
DMA_OP = "NPU_OP_DMA_START"
# the weight and scale streams of a CONV/DEPTHWISE (the second pair: a 2-core U65's other core)
WEIGHT_STREAMS = ("WEIGHT_LENGTH", "SCALE_LENGTH", "WEIGHT1_LENGTH", "SCALE1_LENGTH")
_UNARY_ELEMENTWISE = {"ABS", "LRELU", "CLZ"}  # modes with no IFM2


@dataclass(frozen=True)
class TracedOp:
    stream: int  # which ethos-u operator of the model (0 for a single NPU subgraph)
    offset: int  # byte offset of the operation command in its command stream
    command: str  # NPU_OP_CONV, NPU_OP_DMA_START, ...
    mode: str  # pooling or elementwise mode, "" otherwise
    ofm_shape: tuple[int, int, int] | None
    blocks: int  # OFM blocks the op is split into (0 for a DMA)
    ifm_read_bytes: int
    ifm2_read_bytes: int
    ofm_write_bytes: int
    dma_bytes: int
    layer_index: int | None = None  # row of Vela's per-layer CSV
    weight_read_bytes: int = 0  # weight and scale streams the op reads (WEIGHT*/SCALE*_LENGTH)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LayerTrace:
    """The executed operations of one Vela layer, summed."""

    layer_index: int | None
    name: str
    op: str
    tflite_index: int | None
    commands: dict[str, int] = field(default_factory=dict)
    blocks: int = 0
    dma_bytes: int = 0
    weight_read_bytes: int = 0
    ifm_read_bytes: int = 0
    ofm_write_bytes: int = 0
    vela_cycles: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _box(h: int, w: int, c: int, fm: FeatureMap) -> int:
    return h * w * c * fm.esize


def describe(cmd: Command, r: RegisterFile, stream: int = 0) -> TracedOp:
    """What one operation does, from the registers it was issued with."""
    if cmd.name == DMA_OP:
        return TracedOp(stream, cmd.offset, cmd.name, "", None, 0, 0, 0, 0, r.address("DMA0_LEN"))
    h, w, c = ofm_shape(r)
    ofm = FeatureMap.from_registers(r, "OFM")
    ifm = FeatureMap.from_registers(r, "IFM")
    bh, bw, bd = (r.param("OFM_BLK_HEIGHT_M1") + 1, r.param("OFM_BLK_WIDTH_M1") + 1,
                  r.param("OFM_BLK_DEPTH_M1") + 1)
    blocks = math.ceil(h / bh) * math.ceil(w / bw) * math.ceil(c / bd)
    mode = ""
    ifm2_bytes = 0
    if cmd.name == "NPU_OP_ELEMENTWISE":
        mode = field_label(cmd.name, "mode", cmd.param)
        ifm_bytes = _box(h, w, c, ifm)
        if mode.upper() not in _UNARY_ELEMENTWISE:
            bc = decode_fields("NPU_SET_IFM2_BROADCAST", r.param("IFM2_BROADCAST"))
            if not bc["broadcast_scalar"]:  # a broadcast axis reads one element along it
                ifm2_bytes = _box(1 if bc["broadcast_height"] else h, 1 if bc["broadcast_width"] else w,
                                  1 if bc["broadcast_depth"] else c, FeatureMap.from_registers(r, "IFM2"))
    else:
        if cmd.name == "NPU_OP_POOL":
            mode = field_label(cmd.name, "mode", cmd.param)
        ih, iw = Kernel.from_registers(r).ifm_size(h, w)
        depth = c if cmd.name in ("NPU_OP_DEPTHWISE", "NPU_OP_POOL") else r.param("IFM_DEPTH_M1") + 1
        ifm_bytes = _box(ih, iw, depth, ifm)
    weights = 0
    if cmd.name in ("NPU_OP_CONV", "NPU_OP_DEPTHWISE"):
        weights = sum(r.address(name) for name in WEIGHT_STREAMS if name in r.cmd1)
    return TracedOp(stream, cmd.offset, cmd.name, mode, (h, w, c), blocks, ifm_bytes, ifm2_bytes,
                    _box(h, w, c, ofm), 0, None, weights)


def describe_stream(commands: Sequence[Command], stream: int = 0) -> dict[int, TracedOp]:
    """Every kernel and DMA operation of a stream, keyed by its byte offset."""
    r = RegisterFile()
    out: dict[int, TracedOp] = {}
    for cmd in commands:
        if cmd.name == "NPU_OP_STOP":
            break
        if cmd.is_operation:
            if cmd.name in KERNEL_OPS or cmd.name == DMA_OP:
                try:
                    out[cmd.offset] = describe(cmd, r, stream)
                except (EthosKwsError, KeyError, ValueError) as e:
                    raise EthosKwsError(f"trace: cannot describe {cmd.name} at stream byte {cmd.offset}: {e}") from None
        else:
            r.write(cmd)
    return out


_TABLE = re.compile(r'<table name="(?P<name>[^"]+)">\s*<!\[CDATA\[\n(?P<body>.*?)\]\]>', re.S)


def queue_layers(debug_xml: Path) -> dict[tuple[int, int], int] | None:
    """(stream, kernel op byte offset) -> per-layer CSV row, from Vela's debug database."""
    if not debug_xml.is_file():
        return None
    tables = {m["name"]: m["body"] for m in _TABLE.finditer(debug_xml.read_text(encoding="utf-8", errors="replace"))}
    if "queue" not in tables or "perf" not in tables:
        return None
    perf_ids = [ln.split(",", 1)[0].strip('"') for ln in tables["perf"].splitlines()[1:] if ln.strip()]
    row_of = {pid: i for i, pid in enumerate(perf_ids)}
    streams: dict[str, int] = {}
    out = {}
    for q in csv.DictReader(io.StringIO(tables["queue"])):
        stream = streams.setdefault(q["cmdstream_id"], len(streams))
        row = row_of.get(q.get("scheduled_id", ""))
        if row is not None:
            out[(stream, int(q["offset"]))] = row
    return out


def attribute(executed: Sequence[TracedOp], mapping: dict[tuple[int, int], int] | None) -> list[TracedOp]:
    """Give every executed op its layer: kernel ops from Vela's queue, a DMA the next kernel op's."""
    out: list[TracedOp | None] = [None] * len(executed)
    pending: list[int] = []
    for i, op in enumerate(executed):
        if op.command == DMA_OP:
            pending.append(i)
            continue
        layer = None if mapping is None else mapping.get((op.stream, op.offset))
        out[i] = TracedOp(**{**op.to_dict(), "layer_index": layer})
        for j in pending:
            out[j] = TracedOp(**{**executed[j].to_dict(), "layer_index": layer})
        pending = []
    for j in pending:  # trailing DMAs with no kernel op after them
        out[j] = executed[j]
    return [o for o in out if o is not None]


def per_layer(ops: Sequence[TracedOp], layers: Sequence[Any]) -> list[LayerTrace]:
    """Sum the executed ops by layer, in execution order of each layer's first op."""
    by: dict[int | None, dict[str, Any]] = {}
    for op in ops:
        d = by.setdefault(op.layer_index, {"commands": {}, "blocks": 0, "dma_bytes": 0, "w": 0, "ifm": 0, "ofm": 0})
        label = op.command.removeprefix("NPU_OP_") + (f" {op.mode}" if op.mode else "")
        d["commands"][label] = d["commands"].get(label, 0) + 1
        d["blocks"] += op.blocks
        d["dma_bytes"] += op.dma_bytes
        d["w"] += op.weight_read_bytes
        d["ifm"] += op.ifm_read_bytes + op.ifm2_read_bytes
        d["ofm"] += op.ofm_write_bytes
    out = []
    for index, d in by.items():
        layer = layers[index] if index is not None and 0 <= index < len(layers) else None
        get = (lambda k, default=None: getattr(layer, k, default)) if layer is not None and not isinstance(layer, dict) \
            else (lambda k, default=None: (layer or {}).get(k, default))
        out.append(LayerTrace(index, str(get("name", "") or "(not mapped to a Vela layer)"), str(get("op", "") or ""),
                              get("tflite_index"), d["commands"], d["blocks"], d["dma_bytes"], d["w"], d["ifm"], d["ofm"],
                              get("cycles")))
    return out


@dataclass(frozen=True)
class Trace:
    operations: tuple[TracedOp, ...]
    layers: tuple[LayerTrace, ...]
    mapped: bool  # False without Vela's debug database beside the compiled model

    def to_dict(self) -> dict[str, Any]:
        return {"mapped_to_vela_layers": self.mapped, "layers": [x.to_dict() for x in self.layers],
                "operations": [x.to_dict() for x in self.operations]}


def _vela_layers(compiled: Path) -> list[Any]:
    """The compile's layers: compile.json beside the compiled model, else Vela's per-layer CSV."""
    import json

    from .layers import parse_layers

    for name in ("compile.json", "detail.json"):  # a cache entry keeps the layers in detail.json
        doc = compiled.parent / name
        if doc.is_file():
            try:
                layers = json.loads(doc.read_text()).get("layers")
            except (ValueError, AttributeError):
                continue
            if layers:
                return list(layers)
    stem = compiled.stem.removesuffix("_vela")
    csv_path = compiled.parent / f"{stem}_per-layer.csv"
    return list(parse_layers(csv_path)) if csv_path.is_file() else []


def trace_run(backend, inputs) -> tuple[Any, Trace]:
    """Run one inference on an ``NpuSimBackend`` and record every operation it executed."""
    executors = backend.executors
    described = [describe_stream(ex.commands, i) for i, ex in enumerate(executors)]
    executed: list[TracedOp] = []

    def hook(executor, cmd: Command) -> None:
        i = next(k for k, ex in enumerate(executors) if ex is executor)
        op = described[i].get(cmd.offset)
        if op is not None:
            executed.append(op)

    backend.trace = hook
    try:
        result = backend.run(inputs)
    finally:
        backend.trace = None
    compiled = Path(backend.model.path)
    mapping = queue_layers(compiled.parent / f"{compiled.stem.removesuffix('_vela')}_debug.xml")
    ops = attribute(executed, mapping)
    return result, Trace(tuple(ops), tuple(per_layer(ops, _vela_layers(compiled))), mapping is not None)


def format_trace(trace: Trace) -> str:
    from .layers import short_name

    header = ("row", "TFLite op", "Vela op", "NPU commands", "blocks", "DMA B", "weights B", "FM read B",
              "FM write B", "Vela cycles", "layer")
    rows = [(
        "" if x.layer_index is None else str(x.layer_index), "" if x.tflite_index is None else f"#{x.tflite_index}",
        x.op, ", ".join(f"{n} {k}" if n > 1 else k for k, n in ((k, v) for k, v in x.commands.items())),
        f"{x.blocks:,}", f"{x.dma_bytes:,}", f"{x.weight_read_bytes:,}", f"{x.ifm_read_bytes:,}",
        f"{x.ofm_write_bytes:,}", "" if x.vela_cycles is None else f"{x.vela_cycles:,}", short_name(x.name, 40),
    ) for x in trace.layers]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i in (1, 2, 3, 10) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = len(trace.operations)
    note = "" if trace.mapped else " (no Vela debug database beside the model: not mapped to Vela's layers)"
    return f"NPU trace: {total} operations executed in {len(trace.layers)} layers{note}\n" + "\n".join(lines)
