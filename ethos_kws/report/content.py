"""What a sweep report says, in order: header, model, summary tables and plots, one section per
configuration, parity, FVP, and the published figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .document import Banner, Collapsible, Document, FigureBlock, Heading, KeyValues, Para, TableBlock
from .fvp_layers import fvp_layer_blocks
from .layers_section import cpu_blocks, layer_blocks
from .memory_section import memory_blocks
from .roofline import roofline_blocks
from .load import RunResults
from .plots import Plot
from .scaling import describe, family_scaling
from .tables import (
    Column,
    config_detail_table,
    fmt_float,
    fmt_int,
    fmt_kib,
    fmt_text,
    fvp_table,
    layer_table,
    memory_table,
    parity_table,
    performance_table,
    published_table,
    result_rows,
    table_from_rows,
)

SYNTHETIC = "synthetic stand-in"
PROVENANCE_TEXT = {
    "ml-zoo": "Arm ML-zoo file (identified by its sha256)",
    "derived": "derived from an ML-zoo file (not an ML-zoo file itself)",
    "user file": "a user-supplied file (not identified)",
    SYNTHETIC: "SYNTHETIC STAND-IN: generated weights, not a trained model",
}


def model_name(run: RunResults) -> str:
    m = run.model
    if m.get("name"):
        return str(m["name"])
    if m.get("path"):
        return Path(str(m["path"])).stem
    return "unknown model"


def is_synthetic(run: RunResults) -> bool:
    provenances = [run.model.get("provenance")] + [r.get("model_provenance") for r in run.results]
    return any(str(p).lower() == SYNTHETIC for p in provenances if p is not None)


def _distinct(run: RunResults, key: str) -> list[str]:
    out: list[str] = []
    for r in run.results:
        v = r.get(key)
        if v is not None and str(v) not in out:
            out.append(str(v))
    return out


def _system_configs(run: RunResults) -> str:
    groups: dict[tuple[str, str, str], list[str]] = {}
    for label, r in zip(run.config_labels(), run.results):
        clock = r.get("core_clock_hz")
        clock_s = f"{float(clock) / 1e6:,.0f} MHz" if isinstance(clock, (int, float)) else "clock n/a"
        key = (str(r.get("system_config", "n/a")), clock_s, str(r.get("memory_mode", "n/a")))
        groups.setdefault(key, []).append(label)
    return "; ".join(f"{sc} ({clk}, {mm}): {', '.join(labels)}" for (sc, clk, mm), labels in groups.items())


def _host(host: Any) -> str:
    if host is None:
        return "n/a"
    if isinstance(host, dict):
        return ", ".join(f"{k}: {v}" for k, v in host.items())
    return str(host)


def header_blocks(run: RunResults) -> list:
    m = run.model
    provenance = str(m.get("provenance", "unknown"))
    blocks: list = []
    if is_synthetic(run):
        blocks.append(Banner(
            "SYNTHETIC STAND-IN MODEL. This model has generated (seeded random) weights; it is not "
            "Arm's DS-CNN. Its cycles and memory show what the topology costs, its outputs and "
            "accuracy mean nothing. Pass --model or run `ethos-kws model fetch` for the real model.",
            "danger",
        ))
    items = [
        ("model", model_name(run)),
        ("description", str(m.get("description") or "n/a")),
        ("provenance", f"{provenance}: {PROVENANCE_TEXT.get(provenance.lower(), 'unknown origin')}"),
        ("sha256", str(m.get("sha256", "n/a"))),
        ("size", f"{m['size_bytes']:,} bytes" if isinstance(m.get("size_bytes"), int) else "n/a"),
        ("path", str(m.get("path", "n/a"))),
        ("Vela version", ", ".join(_distinct(run, "vela_version")) or "n/a"),
        ("system configs and clocks", _system_configs(run)),
        ("date", run.created or "n/a"),
        ("host", _host(run.host)),
        ("source", run.source),
    ]
    blocks.append(KeyValues(tuple(items)))
    versions = _distinct(run, "vela_version")
    if len(versions) > 1:
        blocks.append(Banner(f"Results come from different Vela versions ({', '.join(versions)}); "
                             "their estimates are not comparable."))
    model_sha = m.get("sha256")
    others = [s for s in _distinct(run, "model_sha256") if model_sha and s != model_sha]
    pm = (run.parity or {}).get("model")
    parity_model = pm.get("sha256") if isinstance(pm, dict) else None
    if parity_model and model_sha and parity_model != model_sha:
        others.append(parity_model)
    if others:
        blocks.append(Banner(f"Some results (compile or parity) come from a different model (sha256 "
                             f"{', '.join(s[:12] for s in others)}) than the one described here."))
    return blocks


def model_blocks(run: RunResults) -> list:
    m = run.model
    blocks: list = []
    tensors = [dict(t, role=role) for role in ("input", "output") for t in (m.get(f"{role}s") or [])
               if isinstance(t, dict)]
    if tensors:
        blocks.append(TableBlock(table_from_rows("Inputs and outputs", tensors, (
            Column("role", "role", numeric=False),
            Column("name", "tensor", numeric=False),
            Column("shape", "shape", numeric=False),
            Column("dtype", "dtype", numeric=False),
            Column("scale", "scale", fmt_text),
            Column("zero_point", "zero point", fmt_int),
        ), wrap=("tensor",))))
    ops = m.get("operators")
    if isinstance(ops, dict) and ops:
        rows = [{"op": k, "count": v} for k, v in ops.items()]
        blocks.append(TableBlock(table_from_rows("Operators", rows, (
            Column("op", "operator", numeric=False), Column("count", "count", fmt_int),
        ), note=f"{m.get('operator_count', sum(v for v in ops.values() if isinstance(v, int)))} operators, "
                f"{fmt_int(m.get('macs'))} MACs (model count).")))
    weights = [w for w in (m.get("weights") or []) if isinstance(w, dict)]
    if weights:
        uniq = [w.get("unique_values") for w in weights if isinstance(w.get("unique_values"), int)]
        if uniq:
            blocks.append(Para(f"{len(weights)} weight tensors; at most {max(uniq)} unique values per "
                               f"kernel{' (clustered weights)' if max(uniq) <= 32 else ''}."))
    for w in m.get("warnings") or []:
        blocks.append(Banner(str(w)))
    return blocks


def scaling_blocks(run: RunResults) -> list:
    """Where each family's cycles-vs-MACs curve flattens, and which layers hold it there."""
    curves = family_scaling(run.results)
    if not curves:
        return []
    return [Heading(2, "Scaling with MACs", "scaling"), *(Para(describe(c)) for c in curves)]


MAX_DETAILED_CONFIGS = 48  # per-configuration sections; a report stays readable and linear in time


def build_document(run: RunResults, plots: list[Plot]) -> Document:
    by_file = {p.filename: p for p in plots}

    def fig(filename: str) -> list:
        return [FigureBlock(by_file[filename])] if filename in by_file else []

    title = f"ethos-kws report: {model_name(run)}"
    if is_synthetic(run):
        title += " [SYNTHETIC STAND-IN]"
    blocks: list = header_blocks(run)
    blocks += [Heading(2, "Model", "model"), *model_blocks(run)]
    blocks += [
        Heading(2, "Summary", "summary"),
        *cpu_blocks(run),
        TableBlock(performance_table(run)),
        TableBlock(memory_table(run)),
        *fig("time_cycles.png"),
        *fig("memory.png"),
        *fig("compute_bound.png"),
        *fig("layers.png"),
    ]
    blocks += scaling_blocks(run)
    blocks.append(Heading(2, "Per configuration", "configs"))
    blocks.append(Para("One table per configuration and its most expensive layers (click to open)."))
    detailed = zip(run.config_labels(), result_rows(run), run.results)
    if len(run.results) > MAX_DETAILED_CONFIGS:  # the summary tables above hold every row
        blocks.append(Banner(f"{len(run.results)} configurations: details of the first {MAX_DETAILED_CONFIGS} "
                             "only (every configuration is in the summary tables and results.csv)."))
        detailed = list(detailed)[:MAX_DETAILED_CONFIGS]
    for label, row, result in detailed:
        inner = [TableBlock(config_detail_table(label, row))]
        layers = layer_table(label, result)
        if layers is not None:
            inner.append(TableBlock(layers, sortable=True))
        summary = (f"{label}: {fmt_int(row.get('cycles_total'))} cycles, "
                   f"{fmt_float(3)(row.get('inference_time_ms'))} ms, "
                   f"SRAM {fmt_kib(row.get('sram_bytes'))} KiB")
        blocks.append(Collapsible(summary, tuple(inner)))
    blocks += layer_blocks(run)
    blocks += roofline_blocks(run, fig("roofline.png"))
    blocks += memory_blocks(run, fig("memory_map.png"))
    parity = parity_table(run)
    if parity is not None:
        blocks += [Heading(2, "NPU vs CPU parity", "parity"), TableBlock(parity), *fig("parity.png")]
    fvp = fvp_table(run)
    if fvp is not None:
        blocks += [Heading(2, "Vela estimate vs FVP measurement", "fvp"), TableBlock(fvp), *fig("fvp.png")]
        blocks += fvp_layer_blocks(run)
    from .kws import kws_blocks  # accuracy / detection sections, when the document has them

    blocks += kws_blocks(run.document, plots)
    blocks += [
        Heading(2, "Published reference figures (not ours)", "published"),
        Banner("The figures in the PUBLISHED column are Arm's published measurements (2021) of DS-CNN "
               "clustered INT8 on Ethos-U55-128, not results of this run."),
        TableBlock(published_table(run)),
        *fig("published.png"),
    ]
    return Document(title, tuple(blocks))
