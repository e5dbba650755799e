"""The report's exploration page (``ethos-kws report explore.json``): SRAM against latency for
every point, the Pareto front drawn and tabulated, the budget as lines and as a list.

The tables come from ``report.tables`` (the one renderer); the page is a ``Document`` like the
sweep report's, so HTML and Markdown show the same content.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..explore import EXPLORE_CSV, EXPLORE_JSON, ExploreResult, explore_csv_text
from ..fsutil import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text
from .document import Collapsible, Document, FigureBlock, Heading, KeyValues, Para, TableBlock
from .escape import mpl_text
from .plots import DPI, KIB, Plot, _colors, _png
from .tables import explore_table

# one marker per memory mode, in the order they first appear
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
FRONT_COLOR = "#222222"


def explore_source(path: str | os.PathLike) -> Path | None:
    """The explore.json that ``path`` names (the file or a folder holding it), or None when it
    is something else (a sweep's run folder or results.json)."""
    p = Path(path)
    candidate = p / EXPLORE_JSON if p.is_dir() else p
    if not candidate.is_file():
        return None
    if candidate.name == EXPLORE_JSON:
        return candidate
    try:
        doc = json.loads(candidate.read_text())
    except (OSError, ValueError):
        return None
    return candidate if isinstance(doc, dict) and doc.get("kind") == "explore" else None


def load_explore(path: Path) -> ExploreResult:
    from ..errors import UserError

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable JSON document ({type(e).__name__})") from None
    return ExploreResult.from_dict(doc, str(path))


def scatter_plot(result: ExploreResult) -> Plot:
    ok = result.ok()
    accels = list(dict.fromkeys(p.accel for p in ok))
    modes = list(dict.fromkeys(p.result.memory_mode for p in ok))
    colors = dict(zip(accels, _colors(len(accels))))
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(modes)}
    fig = Figure(figsize=(11, 6), layout="constrained", dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    for acc in accels:
        for mode in modes:
            pts = [p for p in ok if p.accel == acc and p.result.memory_mode == mode]
            if pts:
                ax.scatter([p.result.sram_bytes / KIB for p in pts], [p.result.inference_time_ms for p in pts],
                           color=colors[acc], marker=markers[mode], s=42, alpha=0.85,
                           label=mpl_text(f"{acc}, {mode}"))
    front = sorted(result.front(), key=lambda p: (p.result.sram_bytes, p.result.inference_time_ms))
    if front:
        ax.scatter([p.result.sram_bytes / KIB for p in front], [p.result.inference_time_ms for p in front],
                   facecolors="none", edgecolors=FRONT_COLOR, s=140, linewidths=1.2, label="Pareto front")
        # the front's SRAM/latency projection: the best time reachable at each SRAM size
        xs, ys, best = [], [], float("inf")
        for p in front:
            if p.result.inference_time_ms < best:
                best = p.result.inference_time_ms
                xs.append(p.result.sram_bytes / KIB)
                ys.append(best)
        ax.step(xs, ys, where="post", color=FRONT_COLOR, linewidth=1, linestyle="--")
    if result.max_time_ms is not None:
        ax.axhline(result.max_time_ms, color="#c44e52", linewidth=1, label=f"budget {result.max_time_ms:g} ms")
    if result.max_sram_kib is not None:
        ax.axvline(result.max_sram_kib, color="#8172b2", linewidth=1, label=f"budget {result.max_sram_kib:g} KiB")
    ax.set_xlabel("SRAM (KiB)")
    ax.set_ylabel("inference time (ms, Vela's estimate)")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")  # 0.5, not 5x10^-1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.grid(True, which="both", alpha=0.3)
    # beside the axes, never over a point
    ax.legend(fontsize=7, ncols=2 if len(accels) * len(modes) > 16 else 1, loc="upper left", bbox_to_anchor=(1.01, 1))
    return Plot("explore_sram_vs_time.png", "SRAM against inference time, every point", _png(fig),
                "Colour: accelerator; marker: memory mode; circled: the Pareto front over (time, SRAM, "
                "flash+DRAM, MACs/cycle), its SRAM/time projection dashed; lines: the budget.")


def explore_document(result: ExploreResult, plot: Plot | None) -> Document:
    ok, failed = result.ok(), [p for p in result.points if p.status != "ok"]
    axes = result.axes
    blocks: list[Any] = [
        KeyValues((
            ("model", f"{result.model.name} (sha256 {result.model.sha256[:12]}…, {result.model.provenance})"),
            ("points", f"{len(result.points)} ({len(ok)} compiled, {len(failed)} failed)"),
            *((a, ", ".join("default" if v is None else str(v) for v in getattr(axes, a)))
              for a in ("accel", "system_config", "memory_mode", "optimise", "arena_cache_size", "tensor_allocator")),
            ("Vela", ok[0].result.vela_version if ok else "n/a"),
            ("Vela ini", f"{ok[0].result.vela_ini} (sha256 {ok[0].result.vela_ini_sha256[:12]}…)" if ok else "n/a"),
        )),
    ]
    if plot is not None:
        blocks.append(FigureBlock(plot))
    blocks.append(Heading(2, "Pareto front", "front"))
    blocks.append(Para("No other point is at least as good in all of inference time, SRAM, flash+DRAM bytes "
                       "and MACs/cycle (the silicon-cost proxy) and better in one."))
    blocks.append(TableBlock(explore_table("Pareto front", result.front())))
    if result.max_time_ms is not None or result.max_sram_kib is not None:
        limits = " and ".join(x for x in (
            f"inference time ≤ {result.max_time_ms:g} ms" if result.max_time_ms is not None else "",
            f"SRAM ≤ {result.max_sram_kib:g} KiB" if result.max_sram_kib is not None else "") if x)
        chosen = result.within_budget()
        blocks.append(Heading(2, "Budget", "budget"))
        if chosen:
            blocks.append(Para(f"{len(chosen)} point(s) meet {limits}; cheapest first (fewest MACs/cycle, then "
                               "least SRAM):"))
            blocks.append(TableBlock(explore_table("Within budget", chosen)))
        else:
            blocks.append(Para(f"No point meets {limits}."))
    if failed:
        blocks.append(Collapsible(f"{len(failed)} failed point(s)", (
            TableBlock(explore_table("Failed points", failed, ("label", "error"))),)))
    blocks.append(Collapsible(f"All {len(ok)} compiled points", (TableBlock(explore_table("All points", ok)),)))
    return Document(f"Design-space exploration: {result.model.name}", tuple(blocks))


def write_explore_report(source: Path, out_dir: str | os.PathLike | None = None, *, name: str | None = None) -> Path:
    """index.html, report.md, the scatter PNG, explore.json and explore.csv in the report folder."""
    from .. import __version__
    from .html import render_html
    from .markdown import render_markdown
    from .writer import check_destination, report_dir

    result = load_explore(source)
    dest = check_destination(report_dir(name, out_dir, f"explore-{result.model.name}"))
    plot = scatter_plot(result) if result.ok() else None
    doc = explore_document(result, plot)
    footer = f"Generated by ethos-kws {__version__}. Vela figures are static estimates."
    with atomic_dir(dest) as tmp:
        if plot is not None:
            atomic_write_bytes(tmp / plot.filename, plot.png)
        atomic_write_text(tmp / "index.html", render_html(doc, footer))
        atomic_write_text(tmp / "report.md", render_markdown(doc, footer))
        atomic_write_json(tmp / EXPLORE_JSON, result.to_dict())
        atomic_write_text(tmp / EXPLORE_CSV, explore_csv_text(result))
    return dest
