"""The report's plots as PNG bytes.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly: no pyplot, so no
global figure state, no display needed and nothing shared between threads or tests. Every label
that comes from a file goes through ``mpl_text`` so a ``$`` in a tensor name stays text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .escape import mpl_text
from .load import RunResults
from .metrics import compute_bound_cycles, fvp_comparison, is_missing, layer_cycles, top_layers
from .published import PUBLISHED_ACCEL, PUBLISHED_FIGURES

DPI = 110
KIB = 1024.0
TOP_LAYERS_PLOTTED = 8
MEMORY_AREAS = (
    ("sram_bytes", "SRAM", "#4c72b0"),
    ("flash_bytes", "flash", "#dd8452"),
    ("dram_bytes", "DRAM", "#55a868"),
)
PUBLISHED_COLOR = "#9a9a9a"
# one colour per NPU family, and a gap between families on the x axis: eleven configurations
# stay readable as three groups instead of a ten-colour cycle that repeats
FAMILY_COLORS = {"u55": "#4c72b0", "u65": "#dd8452", "u85": "#55a868"}
OTHER_FAMILY_COLOR = "#8c8c8c"
FAMILY_GAP = 0.6


@dataclass(frozen=True)
class Plot:
    filename: str
    title: str
    png: bytes
    caption: str


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No "Software" tag: the same results give byte-identical PNGs across matplotlib patch versions.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _value(r: Mapping[str, Any], key: str) -> float:
    v = r.get(key)
    return float("nan") if is_missing(v) else float(v)


def _labels(run: RunResults) -> list[str]:
    return [mpl_text(x) for x in run.config_labels()]


def _family(r: Mapping[str, Any]) -> str:
    return str(r.get("accel") or "").split("-", 1)[0].lower()


def _family_x(results: Sequence[Mapping[str, Any]]) -> list[float]:
    """Bar positions: consecutive within a family, ``FAMILY_GAP`` wider where the family changes."""
    xs: list[float] = []
    for i, r in enumerate(results):
        step = 0.0 if i == 0 else 1.0 + (FAMILY_GAP if _family(r) != _family(results[i - 1]) else 0.0)
        xs.append((xs[-1] if xs else 0.0) + step)
    return xs


def _family_colors(results: Sequence[Mapping[str, Any]]) -> list[str]:
    return [FAMILY_COLORS.get(_family(r), OTHER_FAMILY_COLOR) for r in results]


def _family_legend(ax, results: Sequence[Mapping[str, Any]]) -> None:
    from matplotlib.patches import Patch

    families = list(dict.fromkeys(_family(r) for r in results))
    ax.legend(handles=[Patch(color=FAMILY_COLORS.get(f, OTHER_FAMILY_COLOR), label=mpl_text(f"Ethos-{f.upper()}"))
                       for f in families], fontsize=8, loc="upper right")


def _width(n: int, per_bar: float = 0.7, minimum: float = 8.0) -> float:
    return max(minimum, 2.0 + per_bar * n)


def _annotate(ax, bars, texts: Sequence[str]) -> None:
    for bar, text in zip(bars, texts):
        if text:
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)


def _few_bars(ax, n: int) -> None:
    """One or two groups would stretch across the whole axis; keep bars a sensible width."""
    if n < 3:
        centre = (n - 1) / 2
        ax.set_xlim(centre - 1.5, centre + 1.5)


def _rotate(ax) -> None:
    for t in ax.get_xticklabels():
        t.set_rotation(30)
        t.set_ha("right")


def time_and_cycles_plot(run: RunResults) -> Plot:
    labels = _labels(run)
    xs, colors = _family_x(run.results), _family_colors(run.results)
    fig = Figure(figsize=(_width(len(labels)), 6.6), layout="constrained")
    for ax, key, title, fmt in (
        (fig.add_subplot(2, 1, 1), "inference_time_ms", "Inference time (ms)", "{:.3f}"),
        (fig.add_subplot(2, 1, 2), "cycles_total", "Cycles (total)", "{:,.0f}"),
    ):
        values = [_value(r, key) for r in run.results]
        bars = ax.bar(xs, values, color=colors)
        _annotate(ax, bars, ["" if v != v else fmt.format(v) for v in values])
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_title(title)
        ax.margins(y=0.15)
        _few_bars(ax, len(labels))
        _family_legend(ax, run.results)
        _rotate(ax)
    return Plot("time_cycles.png", "Inference time and cycles per configuration", _png(fig),
                "Vela's estimate per configuration at each system config's core clock, grouped "
                "and coloured by NPU family.")


def memory_plot(run: RunResults) -> Plot:
    labels = _labels(run)
    xs = _family_x(run.results)
    fig = Figure(figsize=(_width(len(labels), minimum=8.0), 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    bottom = [0.0] * len(labels)
    for key, name, color in MEMORY_AREAS:
        values = [0.0 if is_missing(r.get(key)) else float(r[key]) / KIB for r in run.results]
        ax.bar(xs, values, bottom=bottom, label=name, color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    for x, total in zip(xs, bottom):
        ax.annotate(f"{total:,.0f}", (x, total), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels)
    _few_bars(ax, len(labels))
    ax.set_ylabel("KiB")
    ax.set_title("Memory per configuration (stacked)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.margins(y=0.12)
    _rotate(ax)
    return Plot("memory.png", "Memory per configuration", _png(fig),
                "SRAM, flash and DRAM stacked, in KiB, as Vela allocates them.")


def _short_layer(label: str, limit: int = 48) -> str:
    # Vela names a layer by its OFM tensor; the part before the first ';' is the readable one.
    head = label.split(";", 1)[0]
    return head if len(head) <= limit else "…" + head[-(limit - 1):]


def layers_plot(run: RunResults) -> Plot | None:
    keys = top_layers(run.results, TOP_LAYERS_PLOTTED)
    if not keys:
        return None
    labels = _labels(run)
    per_config = [layer_cycles(r) for r in run.results]
    n = len(labels)
    height = 0.8 / max(n, 1)
    fig = Figure(figsize=(10, 1.0 + 0.55 * len(keys) * max(1.0, n / 4)), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, cycles, color) in enumerate(zip(labels, per_config, _colors(n))):
        ys = [k + i * height for k in range(len(keys))]
        ax.barh(ys, [cycles.get(key, 0.0) for key in keys], height=height, label=label, color=color)
    ax.set_yticks([k + (n - 1) * height / 2 for k in range(len(keys))])
    ax.set_yticklabels([mpl_text(f"#{i + 1} {key.op}: {_short_layer(key.name)}") for i, key in enumerate(keys)],
                       fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("cycles")
    ax.set_title(f"Top {len(keys)} layers by cycles, per configuration")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return Plot("layers.png", "Top layers' cycles per configuration", _png(fig),
                "The most expensive layers in any configuration (Vela per-layer estimate); full "
                "layer names are in the per-configuration tables.")


def compute_bound_plot(run: RunResults) -> Plot | None:
    bounds = [compute_bound_cycles(r) for r in run.results]
    if all(b is None for b in bounds):
        return None
    labels = _labels(run)
    x = _family_x(run.results)
    cycles = [_value(r, "cycles_total") for r in run.results]
    bound_values = [float("nan") if b is None else b for b in bounds]
    fig = Figure(figsize=(_width(len(labels), minimum=9.0), 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar([i - 0.2 for i in x], cycles, width=0.4, label="cycles (Vela)", color="#4c72b0")
    ax.bar([i + 0.2 for i in x], bound_values, width=0.4, label="compute bound (MACs ÷ MACs/cycle)",
           color="#c44e52")
    _annotate(ax, bars, ["" if c != c or b != b or not b else f"{c / b:.1f}× bound"
                         for c, b in zip(cycles, bound_values)])
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    if any(v > 0 for v in cycles + bound_values if v == v):  # a model wholly on the CPU has none
        ax.set_yscale("log")
        ax.set_ylabel("cycles (log)")
    else:
        ax.set_ylabel("cycles")
    ax.set_title("Cycles against the compute bound")
    ax.legend(fontsize=8, loc="upper right")
    ax.margins(y=0.2)
    _rotate(ax)
    return Plot("compute_bound.png", "Cycles vs compute bound", _png(fig),
                "How far each configuration runs from its MAC limit; the ratio is cycles ÷ bound.")


def parity_plot(run: RunResults) -> Plot | None:
    rows = (run.parity or {}).get("results") or []
    if not rows:
        return None
    labels = [mpl_text(r.get("accel")) for r in rows]
    x = range(len(rows))
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for offset, key, name, color in ((-0.2, "bit_exact_fraction", "bit-exact outputs", "#55a868"),
                                     (0.2, "top1_agreement", "top-1 agreement", "#8172b2")):
        values = [_value(r, key) * 100 for r in rows]
        bars = ax.bar([i + offset for i in x], values, width=0.4, label=name, color=color)
        _annotate(ax, bars, ["" if v != v else f"{v:.1f}%" for v in values])
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    ax.set_ylim(0, 115)
    ax.set_ylabel("%")
    ax.set_title("NPU vs CPU parity per configuration")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _few_bars(ax, len(rows))
    _rotate(ax)
    return Plot("parity.png", "Parity per configuration", _png(fig),
                "Share of output vectors that match the CPU reference bit for bit, and top-1 agreement.")


def fvp_plot(run: RunResults) -> Plot | None:
    if not run.fvp:
        return None
    vela = {str(r.get("accel")): r for r in run.results}
    rows = list(run.fvp)
    pairs = [fvp_comparison(r, vela.get(str(r.get("accel")))) for r in rows]
    labels = [mpl_text(r.get("accel")) for r in rows]
    est = [float("nan") if p["vela_estimate_cycles"] is None else p["vela_estimate_cycles"] for p in pairs]
    meas = [float("nan") if p["fvp_cycles"] is None else p["fvp_cycles"] for p in pairs]
    x = range(len(rows))
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar([i - 0.2 for i in x], est, width=0.4, label="Vela estimate", color="#4c72b0")
    ax.bar([i + 0.2 for i in x], meas, width=0.4, label="FVP measurement", color="#dd8452")
    _annotate(ax, bars, ["" if p["vela_over_fvp"] is None else f"Vela ÷ FVP {p['vela_over_fvp']:.2f}"
                         for p in pairs])
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    ax.set_ylabel("NPU cycles")
    ax.set_title("Vela estimate vs FVP measurement")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _few_bars(ax, len(rows))
    ax.margins(y=0.2)
    _rotate(ax)
    return Plot("fvp.png", "Vela estimate vs FVP measurement", _png(fig),
                "; ".join(sorted({p["basis"] for p in pairs})) + ".")


def published_plot(run: RunResults) -> Plot | None:
    ours = next((r for r in run.results if str(r.get("accel")) == PUBLISHED_ACCEL), None)
    if ours is None:
        return None
    fvp = next((r for r in (run.fvp or ()) if str(r.get("accel")) == PUBLISHED_ACCEL), None)
    published = next(f for f in PUBLISHED_FIGURES if f.ours_field == "cycles_total")
    bars = [("ours: Vela estimate", _value(ours, "cycles_total"), "#4c72b0", "")]
    if fvp is not None and not is_missing(fvp.get("npu_total_cycles")):
        bars.append(("ours: FVP", float(fvp["npu_total_cycles"]), "#dd8452", ""))
    bars.append(("PUBLISHED: Arm 2021, FVP\n(DS-CNN clustered INT8)", published.value, PUBLISHED_COLOR, "//"))
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    drawn = ax.bar([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars],
                   hatch=None, edgecolor="black", linewidth=0.5)
    for bar, (_, _, _, hatch) in zip(drawn, bars):
        bar.set_hatch(hatch)
    _annotate(ax, drawn, [f"{b[1]:,.0f}" for b in bars])
    ax.set_ylabel("NPU cycles")
    ax.set_title(f"{PUBLISHED_ACCEL}: our cycles beside the published figure")
    ax.margins(y=0.15)
    ax.tick_params(axis="x", labelsize=8)
    return Plot("published.png", "Ours beside the published DS-CNN figure", _png(fig),
                "Grey hatched bar: published by Arm (2021), not measured by ethos-kws.")


def roofline_plot(run: RunResults) -> Plot | None:
    from .roofline import roofline_plot as build  # its module renders report blocks too

    return build(run)


def memory_map_plot(run: RunResults) -> Plot | None:
    from .memory_section import memory_map_plot as build

    return build(run)


PLOT_BUILDERS: tuple[Callable[[RunResults], Plot | None], ...] = (
    time_and_cycles_plot,
    memory_plot,
    layers_plot,
    compute_bound_plot,
    parity_plot,
    fvp_plot,
    published_plot,
    roofline_plot,
    memory_map_plot,
)


MAX_PLOTTED_CONFIGS = 48  # a bar per configuration: beyond this a plot is unreadable and slow to draw


def make_plots(run: RunResults) -> list[Plot]:
    """The report's plots; of a results document with more configurations than
    ``MAX_PLOTTED_CONFIGS`` only the first ones are plotted (the tables hold every row), so a
    report costs time linear in its rows."""
    import dataclasses

    from .kws import kws_plots  # keyword-spotting sections (accuracy, detection), when present

    if len(run.results) > MAX_PLOTTED_CONFIGS:
        run = dataclasses.replace(run, results=run.results[:MAX_PLOTTED_CONFIGS])
    return [p for p in (build(run) for build in PLOT_BUILDERS) if p is not None] + kws_plots(run.document)
