"""The report's memory map: Vela's tensor allocation of the arena per configuration, its peak and
the operation it happens in, the largest tensors, and a plot of address against schedule time."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..layers import short_name
from ..memory_map import Allocation, arena, largest, live_at, peak
from .document import Heading, Para, TableBlock
from .load import RunResults
from .tables import Column, fmt_int, fmt_text, table_from_rows

LARGEST_TENSORS = 10
LIVE_AT_PEAK_NAMED = 4
STEPS_PER_OP = 2  # Vela's default core: each scheduled operation spans two time steps


def scheduled_layers(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The layer rows that are operations of the NPU schedule (not fused activations, not CPU)."""
    return [x for x in result.get("layers") or []
            if x.get("target", "NPU") == "NPU" and (x.get("cycles") or x.get("staging_usage_bytes"))]


def op_at(result: Mapping[str, Any], step: int) -> Mapping[str, Any] | None:
    """The layer running at a schedule time step (default core only; the legacy core counts
    differently, so nothing is claimed there)."""
    if result.get("compiler", "regor") != "regor":
        return None
    ops = scheduled_layers(result)
    k = step // STEPS_PER_OP
    return ops[k] if 0 <= k < len(ops) else None


def memory_arena(result: Mapping[str, Any]) -> Allocation | None:
    return arena(result.get("allocations") or [])


def _hex(v: int) -> str:
    return f"0x{v:x}"


def peak_sentence(label: str, result: Mapping[str, Any]) -> str | None:
    a = memory_arena(result)
    if a is None:
        return None
    found = peak(a)
    if found is None:
        return None
    step, live = found
    extent = max(t.end_address for t in a.tensors)
    op = op_at(result, step)
    where = (f"during Vela row {op.get('index')} ({op.get('op')}, TFLite op #{op.get('tflite_index')} "
             f"{op.get('tflite_op')})" if op is not None else "")
    tensors = live_at(a, step)
    named = ", ".join(f"{short_name(t.name, 50)} ({t.size_bytes:,} B, {t.format})" for t in tensors[:LIVE_AT_PEAK_NAMED])
    more = f" and {len(tensors) - LIVE_AT_PEAK_NAMED} more" if len(tensors) > LIVE_AT_PEAK_NAMED else ""
    vela_peak = f"Vela's peak {a.peak_bytes:,} B; " if a.peak_bytes is not None else ""
    return (f"{label}: {a.memory} ({a.usage}) {vela_peak}{live:,} B live at time step {step} {where}, "
            f"arena extent {extent:,} B. Live then: {named}{more}.")


def largest_rows(run: RunResults) -> list[dict[str, Any]]:
    rows = []
    for label, r in zip(run.config_labels(), run.results):
        a = memory_arena(r)
        if a is None:
            continue
        for t in largest(a, LARGEST_TENSORS):
            rows.append({"config": label, "memory": a.memory, "tensor": short_name(t.name, 70),
                         "format": t.format, "size": t.size_bytes,
                         "addresses": f"{_hex(t.start_address)}–{_hex(t.end_address)}",
                         "live": f"{t.start_time}–{t.end_time}"})
    return rows


def memory_blocks(run: RunResults, figure: list) -> list:
    sentences = [s for s in (peak_sentence(label, r) for label, r in zip(run.config_labels(), run.results)) if s]
    if not sentences:
        return []
    table = table_from_rows(f"The {LARGEST_TENSORS} largest tensors of each arena", largest_rows(run), (
        Column("config", "config", fmt_text, numeric=False),
        Column("memory", "memory", fmt_text, numeric=False),
        Column("tensor", "tensor", fmt_text, numeric=False),
        Column("format", "format", fmt_text, numeric=False),
        Column("size", "bytes", fmt_int),
        Column("addresses", "address range", fmt_text, numeric=False),
        Column("live", "live (time steps)", fmt_text, numeric=False),
    ), "From Vela's tensor allocation (--verbose-allocation). Time steps: Vela's schedule, two per "
       "operation; WB_* are the weight buffers Vela streams weights into.", wrap=("tensor",))
    return [Heading(2, "Memory map: why the arena is the size it is", "memory-map"),
            *[Para(s) for s in sentences], TableBlock(table, sortable=True), *figure]


KIND_COLORS = (("WB_", "#dd8452", "weight buffer"), ("", "#4c72b0", "feature map"))


def memory_map_plot(run: RunResults):
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from .escape import mpl_text
    from .plots import Plot, _png

    panels = [(label, r, memory_arena(r)) for label, r in zip(run.config_labels(), run.results)]
    panels = [(label, r, a) for label, r, a in panels if a is not None and a.tensors]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.4 * rows), layout="constrained")
    for i, (label, r, a) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for t in a.tensors:
            color = next(c for prefix, c, _ in KIND_COLORS if t.name.startswith(prefix))
            ax.bar(t.start_time, t.size_bytes / 1024, width=t.end_time - t.start_time + 1,
                   bottom=t.start_address / 1024, align="edge", color=color, edgecolor="white", linewidth=0.4)
        found = peak(a)
        if found is not None:
            ax.axvline(found[0] + 0.5, color="#c44e52", lw=1, ls=":")
            ax.annotate(f"peak {found[1] / 1024:,.1f} KiB", (found[0] + 0.5, max(t.end_address for t in a.tensors) / 1024),
                        xytext=(4, -10), textcoords="offset points", fontsize=7, color="#c44e52",
                        bbox={"fc": "white", "ec": "none", "alpha": 0.85, "pad": 1})
        ax.set_title(mpl_text(f"{label}: {a.memory} ({a.usage})"), fontsize=8)
        ax.set_xlabel("schedule time step", fontsize=8)
        ax.set_ylabel("address (KiB)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.legend(handles=[Patch(color=c, label=name) for _, c, name in KIND_COLORS], loc="outside lower center",
               ncols=2, fontsize=8)
    return Plot("memory_map.png", "Memory map per configuration", _png(fig),
                "One bar per tensor of the arena: its address range (height) over its live range in "
                "Vela's schedule (width); the dotted line marks the step with the most live bytes.")
