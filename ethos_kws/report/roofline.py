"""Roofline per configuration: what bounds each layer and the whole network.

Every layer is a point: operational intensity (MACs per byte it moves through SRAM, DRAM and flash,
from Vela's debug database) against achieved MACs per cycle (MACs ÷ Vela's cycles for it). The
compute roof is the accelerator's MACs per cycle; each memory's roof is its peak bytes per cycle
times the intensity. Bandwidths are Vela's own (its summary CSV, computed from the ini the compile
used: clock scale × AXI bytes per beat), so the roofs are the ones Vela estimated against.

Per network, each resource sets a floor: compute floor = MACs ÷ MACs per cycle; a memory's floor
= bytes moved on it ÷ its bytes per cycle. A network runs at or above its largest floor; how far
above says how well the schedule overlaps transfers with compute.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..accel import AcceleratorError, get_accelerator, get_system_config
from .load import RunResults
from .metrics import is_missing, macs_per_cycle

# our memory name -> (label, Vela's per-layer access-cycle field, colour)
MEMORY_ROOFS = (
    ("sram", "SRAM", "sram_access_cycles", "#4c72b0"),
    ("dram", "DRAM", "dram_access_cycles", "#55a868"),
    ("on_chip_flash", "on-chip flash", "on_chip_flash_access_cycles", "#8172b2"),
    ("off_chip_flash", "off-chip flash", "off_chip_flash_access_cycles", "#dd8452"),
)
# a system config's AXI port value (the ini's spelling) -> our memory name
PORT_MEMORY = {"sram": "sram", "dram": "dram", "onchipflash": "on_chip_flash", "offchipflash": "off_chip_flash"}


def _bytes(layer: Mapping[str, Any], memory: str) -> int | None:
    r, w = layer.get(f"{memory}_read_bytes"), layer.get(f"{memory}_write_bytes")
    if is_missing(r) or is_missing(w):
        return None
    return int(r) + int(w)


def memories_of(result: Mapping[str, Any]) -> list[str]:
    """The memories on the system config's AXI ports (what the NPU can reach)."""
    try:
        sc = get_system_config(str(result.get("system_config")))
    except AcceleratorError:
        return [m for m, *_ in MEMORY_ROOFS]
    ports = [PORT_MEMORY.get(p.lower()) for p in (sc.axi0_port, sc.axi1_port)]
    return [m for m, *_ in MEMORY_ROOFS if m in ports]


def ini_bytes_per_cycle(result: Mapping[str, Any]) -> dict[str, float]:
    """Peak bytes per cycle from the ini itself: the memory's clock scale × the AXI beat × the
    AXI ports that reach it (U85's ``<Memory>_ports_used``)."""
    from ..accel import _read_ini, vela_ini_path

    try:
        acc = get_accelerator(str(result.get("accel")))
        sc = get_system_config(str(result.get("system_config")))
        section = _read_ini(str(vela_ini_path()))[f"System_Config.{result.get('system_config')}"]
    except (AcceleratorError, KeyError):
        return {}
    ports = {sc.axi0_port.lower(): sc.axi0_ports_used, sc.axi1_port.lower(): sc.axi1_ports_used}
    out = {}
    for memory, port in (("sram", "Sram"), ("dram", "Dram"), ("on_chip_flash", "OnChipFlash"),
                         ("off_chip_flash", "OffChipFlash")):
        scale = section.get(f"{port}_clock_scale")
        if scale is not None:
            out[memory] = float(scale) * acc.axi_bytes_per_beat * ports.get(port.lower(), 1)
    return out


def roofs(result: Mapping[str, Any]) -> dict[str, float]:
    """Bytes per cycle of each memory the configuration uses, as Vela computed them."""
    vela = result.get("memory_bytes_per_cycle") or {}
    return {m: float(vela[m]) for m in memories_of(result) if isinstance(vela.get(m), (int, float)) and vela[m] > 0}


def layer_points(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Costed layers with MACs and known bytes: achieved MACs per cycle, and the intensity on each
    memory (MACs per byte the layer moves on it) and over all of them."""
    points = []
    for layer in result.get("layers") or []:
        macs, cycles = layer.get("macs") or 0, layer.get("cycles") or 0
        moved = {m: _bytes(layer, m) for m, *_ in MEMORY_ROOFS}
        if not macs or not cycles or any(b is None for b in moved.values()):
            continue
        total = sum(moved.values())
        if total <= 0:
            continue
        points.append({**layer, "bytes_moved": total, "intensity_macs_per_byte": macs / total,
                       "intensity_by_memory": {m: macs / b for m, b in moved.items() if b},
                       "achieved_macs_per_cycle": macs / cycles})
    return points


def network_floors(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """Compute floor and each memory's floor (bytes ÷ bytes per cycle) for the whole network."""
    layers = result.get("layers") or []
    mpc = macs_per_cycle(result)
    if not layers or mpc is None or is_missing(result.get("macs")):
        return None
    bw = roofs(result)
    floors: dict[str, Any] = {"compute": float(result["macs"]) / mpc}
    moved: dict[str, int] = {}
    access: dict[str, int] = {}
    for memory, label, ac_field, _ in MEMORY_ROOFS:
        if memory not in bw:
            continue
        per_layer = [_bytes(x, memory) for x in layers]
        access[label] = sum(int(x.get(ac_field) or 0) for x in layers)
        if any(b is None for b in per_layer):
            continue  # no bytes known (legacy core): no floor, nothing guessed
        moved[label] = sum(per_layer)
        floors[label] = moved[label] / bw[memory]
    return {"floors": floors, "bytes": moved, "access_cycles": access, "bytes_per_cycle": bw}


def _bound_of(result: Mapping[str, Any]) -> tuple[str, float]:
    """The bound-by label holding most of the network's cycles, and its share."""
    from ..layers import bound_by_summary

    summary = bound_by_summary(result.get("layers") or [])
    if not summary:
        return "n/a", 0.0
    total = sum(v["cycles"] for v in summary.values()) or 1
    label, v = next(iter(summary.items()))
    return label, v["cycles"] / total


def summary_rows(run: RunResults) -> list[dict[str, Any]]:
    rows = []
    for label, r in zip(run.config_labels(), run.results):
        f = network_floors(r)
        if f is None:
            continue
        cycles = r.get("cycles_total")
        floors = f["floors"]
        largest = max(floors, key=floors.get)
        bound, share = _bound_of(r)
        row = {"config": label, "cycles_total": cycles, "bound": bound, "bound_share": share,
               "largest_floor": largest, "compute_floor": floors["compute"],
               "over_compute": None if is_missing(cycles) or not floors["compute"] else float(cycles) / floors["compute"],
               "explanation": explain(label, r, f, bound, share)}
        for _, mlabel, _, _ in MEMORY_ROOFS:
            if mlabel in floors:
                row[f"{mlabel} floor"] = floors[mlabel]
                row[f"{mlabel} bytes"] = f["bytes"][mlabel]
                row[f"{mlabel} B/cycle"] = f["bytes_per_cycle"][next(m for m, lab, *_ in MEMORY_ROOFS if lab == mlabel)]
        rows.append(row)
    return rows


def explain(label: str, result: Mapping[str, Any], f: Mapping[str, Any], bound: str, share: float) -> str:
    """One sentence per configuration: how far off the compute bound, and why."""
    cycles = result.get("cycles_total")
    floors = f["floors"]
    if is_missing(cycles) or not floors.get("compute"):
        return ""
    ratio = float(cycles) / floors["compute"]
    text = (f"{label} runs {ratio:.1f}× its compute floor ({float(cycles):,.0f} cycles against "
            f"{floors['compute']:,.0f}); {share:.0%} of its cycles are in layers bound by {bound}")
    if bound in f["access_cycles"]:
        text += f" ({f['access_cycles'][bound]:,} {bound} access cycles over the network)"
    if bound in floors and bound in f["bytes"]:
        bpc = f["bytes_per_cycle"][next(m for m, lab, *_ in MEMORY_ROOFS if lab == bound)]
        text += (f"; {bound} alone needs {f['bytes'][bound]:,} B ÷ {bpc:g} B/cycle = "
                 f"{floors[bound]:,.0f} cycles, {floors[bound] / floors['compute']:.1f}× the compute floor")
    return text + "."


def roofline_plot(run: RunResults):
    from matplotlib.figure import Figure

    from .escape import mpl_text
    from .plots import Plot, _png

    panels = [(label, r) for label, r in zip(run.config_labels(), run.results) if layer_points(r)]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.8 * rows), layout="constrained")
    for i, (label, r) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        points = layer_points(r)
        bw = roofs(r)
        xs = [x for p in points for m, x in p["intensity_by_memory"].items() if m in bw]
        lo, hi = min(xs) / 3, max(xs) * 3
        mpc = macs_per_cycle(r) or math.inf
        grid = [lo * (hi / lo) ** (k / 60) for k in range(61)]
        if math.isfinite(mpc):
            ax.plot([lo, hi], [mpc, mpc], color="#c44e52", lw=1.6, label=f"compute roof {mpc:g} MACs/cycle")
        for memory, mlabel, _, color in MEMORY_ROOFS:
            if memory not in bw:
                continue
            ax.plot(grid, [min(bw[memory] * x, mpc) for x in grid], color=color, lw=1.2, ls="--",
                    label=f"{mlabel} roof {bw[memory]:g} B/cycle")
            sel = [p for p in points if memory in p["intensity_by_memory"]]
            for bound in (False, True):  # filled: the memory that bounds the layer
                group = [p for p in sel if (p.get("bound_by") == mlabel) == bound]
                if group:
                    ax.scatter([p["intensity_by_memory"][memory] for p in group],
                               [p["achieved_macs_per_cycle"] for p in group], s=24, zorder=3,
                               color=color if bound else "none", edgecolors=color,
                               label=f"layers on {mlabel}" + (f" ({mlabel}-bound)" if bound else ""))
        compute = [p for p in points if p.get("bound_by") == "compute"]
        if compute:
            ax.scatter([p["intensity_macs_per_byte"] for p in compute], [p["achieved_macs_per_cycle"] for p in compute],
                       marker="x", s=26, color="#c44e52", zorder=4, label="compute-bound layers (all bytes)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_title(mpl_text(label), fontsize=9)
        ax.set_xlabel("MACs per byte moved", fontsize=8)
        ax.set_ylabel("achieved MACs/cycle", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5.5, loc="lower right")
    return Plot("roofline.png", "Roofline per configuration", _png(fig),
                "Hierarchical roofline: each layer appears once per memory it uses, at MACs per byte it "
                "moves on that memory against the MACs per cycle it achieves (MACs ÷ its Vela cycles); "
                "filled where that memory bounds the layer; red crosses: compute-bound layers at MACs "
                "per byte over all memories. Red line: the compute roof; dashed: each memory's roof (its "
                "peak bytes per cycle × intensity), from Vela's bandwidths for the ini used. A point on "
                "a roof is limited by it.")


def roofline_blocks(run: RunResults, figure: list) -> list:
    """The report section: the summary table, one explanation per configuration, the plot."""
    from .document import Heading, Para, TableBlock
    from .tables import Column, fmt_int, fmt_pct, fmt_ratio, fmt_text, table_from_rows

    rows = summary_rows(run)
    if not rows:
        return []
    floor_cols = [Column(f"{lab} floor", f"{lab} floor (cycles)", fmt_int)
                  for _, lab, _, _ in MEMORY_ROOFS if any(f"{lab} floor" in r for r in rows)]
    table = table_from_rows("What bounds the network, per configuration", rows, (
        Column("config", "config", fmt_text, numeric=False),
        Column("cycles_total", "cycles", fmt_int),
        Column("over_compute", "cycles ÷ compute floor", fmt_ratio),
        Column("bound", "most cycles in layers bound by", fmt_text, numeric=False),
        Column("bound_share", "their share", fmt_pct),
        Column("compute_floor", "compute floor (cycles)", fmt_int),
        *floor_cols,
        Column("largest_floor", "largest floor", fmt_text, numeric=False),
    ), "Compute floor = MACs ÷ the accelerator's MACs per cycle; a memory's floor = the bytes the "
       "network moves on it ÷ its peak bytes per cycle (Vela's bandwidth for the system config in "
       "the ini used). No schedule beats its largest floor.")
    blocks: list = [Heading(2, "Roofline: compute and memory bounds", "roofline"),
                         TableBlock(table, sortable=True)]
    blocks += [Para(r["explanation"]) for r in rows if r["explanation"]]
    return blocks + figure
