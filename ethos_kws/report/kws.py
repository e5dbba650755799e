"""Keyword-spotting sections of a report: detection timelines (``classify``) and accuracy per
backend/configuration with confusion matrices (``accuracy``).

Both read plain documents: ``{"detection": <classify --json document>}`` and/or
``{"accuracy": <accuracy --json document>}``. ``kws_plots``/``kws_blocks`` are the hook the sweep
report calls (its ``results.json`` may carry those keys); ``write_kws_report`` writes a report of
just these sections.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure

from ..fsutil import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text
from .document import Banner, Document, FigureBlock, Heading, Para, TableBlock
from .escape import mpl_text
from .plots import Plot, _colors, _png
from .tables import Column, fmt_float, table_from_rows

MAX_TIMELINES = 6  # recordings plotted; the rest are listed in the table only
NON_KEYWORDS = ("_silence_", "_unknown_")


# ---- detection timeline ------------------------------------------------------------------------


def _long_recordings(detection: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in detection.get("results") or [] if len(r.get("windows") or []) > 1]


def timeline_plot(detection: Mapping[str, Any]) -> Plot | None:
    """Per recording: each keyword's averaged posterior over time, the threshold, the events."""
    recs = _long_recordings(detection)[:MAX_TIMELINES]
    if not recs:
        return None
    fig = Figure(figsize=(9.0, 2.3 * len(recs) + 0.6))
    for n, rec in enumerate(recs):
        ax = fig.add_subplot(len(recs), 1, n + 1)
        labels = rec.get("labels") or []
        wins = rec["windows"]
        t = np.array([w["start_s"] for w in wins]) + rec.get("window_s", 1.0) / 2  # window centre
        scores = np.array([w.get("scores") or [] for w in wins], dtype=float)
        keywords = [i for i, lab in enumerate(labels) if lab not in NON_KEYWORDS]
        shown = [i for i in keywords if scores.size and scores[:, i].max() >= 0.2]
        for color, i in zip(_colors(len(shown)), shown):
            ax.plot(t, scores[:, i], color=color, lw=1.4, label=mpl_text(labels[i]))
        for e in rec.get("events") or []:
            ax.axvspan(e["start_s"], e["end_s"], color="#f2c14e", alpha=0.3, lw=0)
            ax.text((e["start_s"] + e["end_s"]) / 2, 1.02, mpl_text(e["label"]), ha="center",
                    va="bottom", fontsize=8)
        ax.axhline(rec["threshold"], color="#c44e52", ls="--", lw=1, label="threshold")
        ax.set_xlim(0, max(rec["duration_s"], 1.0))
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("score")
        ax.set_title(mpl_text(Path(rec["clip"]).name), fontsize=9, loc="left")
        if shown:
            ax.legend(fontsize=7, loc="upper right", ncol=min(len(shown) + 1, 6))
    ax.set_xlabel("time (s): window centres; shaded: merged keyword events")
    fig.tight_layout()
    return Plot("timeline.png", "Keyword detection timeline", _png(fig),
                "Averaged posterior of every keyword that reaches 0.2, per 1 s window (plotted at "
                "its centre); dashed: the threshold; shaded: merged events.")


def detection_blocks(detection: Mapping[str, Any], plots: Mapping[str, Plot]) -> list:
    results = detection.get("results") or []
    rows = []
    for r in results:
        events = "; ".join(f"{e['label']} {e['start_s']:.2f}-{e['end_s']:.2f} s ({e['score']:.2f})"
                           for e in r.get("events") or [])
        rows.append({"file": Path(r["clip"]).name, "label": r["label"], "score": r["score"],
                     "duration_s": r["duration_s"], "windows": len(r.get("windows") or []),
                     "events": events or "-",
                     "audio": ((r.get("audio") or {}).get("conversion") or "-")})
    cols = [Column("file", "file", numeric=False), Column("label", "label", numeric=False),
            Column("score", "score", fmt_float(3)), Column("duration_s", "duration (s)", fmt_float(2)),
            Column("windows", "windows"), Column("events", "events", numeric=False),
            Column("audio", "audio", numeric=False)]
    blocks: list = [Heading(2, "Keyword detection", "detection"),
                    TableBlock(table_from_rows("Classified recordings", rows, cols))]
    if "timeline.png" in plots:
        blocks.append(FigureBlock(plots["timeline.png"]))
    return blocks


# ---- accuracy ------------------------------------------------------------------------------------


def confusion_plot(accuracy: Mapping[str, Any]) -> Plot | None:
    runs = [r for r in accuracy.get("runs") or [] if r.get("confusion")]
    if not runs:
        return None
    labels = accuracy.get("labels") or []
    cols = min(3, len(runs))
    rows = -(-len(runs) // cols)
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows))
    for n, run in enumerate(runs):
        ax = fig.add_subplot(rows, cols, n + 1)
        m = np.asarray(run["confusion"], dtype=float)
        norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
        short = [mpl_text(lab.strip("_")[:7]) for lab in labels]
        ax.set_xticks(range(len(labels)), short, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), short, fontsize=7)
        ax.set_title(mpl_text(f"{run['config']}: top-1 {run['top1']:.4f}"), fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    fig.tight_layout()
    return Plot("confusion.png", "Confusion matrices", _png(fig),
                "Rows: true label, columns: predicted; counts, shaded by row share (recall).")


def accuracy_blocks(accuracy: Mapping[str, Any], plots: Mapping[str, Plot]) -> list:
    runs = accuracy.get("runs") or []
    blocks: list = [Heading(2, "Accuracy", "accuracy"),
                    Para(f"{accuracy.get('clips')} clips of the {accuracy.get('split')} split of "
                         f"{accuracy.get('dataset')}. {accuracy.get('recipe', {}).get('summary', '')}")]
    if accuracy.get("limited"):
        blocks.append(Banner(f"--limit {accuracy['limited']}: a subset, not the whole split."))
    rows = [{"config": r["config"], "backend": r["backend"], "top1": r["top1"], "correct": r["correct"],
             "clips": r["clips"], "score_diff": r.get("scores_differ_from_cpu"),
             "label_diff": r.get("labels_differ_from_cpu")} for r in runs]
    cols = [Column("config", "configuration", numeric=False), Column("backend", "backend", numeric=False),
            Column("top1", "top-1", fmt_float(4)), Column("correct", "correct"), Column("clips", "clips"),
            Column("score_diff", "clips with scores != CPU"), Column("label_diff", "clips with top label != CPU")]
    blocks.append(TableBlock(table_from_rows("Top-1 per backend and configuration", rows, cols,
                                             note="Bit-for-bit comparison against the cpu run of "
                                             "the same clips (empty when there is none).")))
    if "confusion.png" in plots:
        blocks.append(FigureBlock(plots["confusion.png"]))
    labels = accuracy.get("labels") or []
    for r in runs:
        pc = r.get("per_class") or []
        prow = [{"label": c["label"], "precision": c["precision"], "recall": c["recall"],
                 "support": c["support"]} for c in pc]
        pcols = [Column("label", "label", numeric=False), Column("precision", "precision", fmt_float(3)),
                 Column("recall", "recall", fmt_float(3)), Column("support", "clips")]
        blocks.append(TableBlock(table_from_rows(f"{r['config']}: per class", prow, pcols)))
        diff = r.get("label_differs") or []
        if diff:
            blocks.append(Para(f"{r['config']}: top label differs from the CPU on "
                               + ", ".join(f"{d['clip']} ({d['cpu']} -> {d['label']})" for d in diff[:20])
                               + (" ..." if len(diff) > 20 else "")))
    del labels
    return blocks


# ---- the hook and a report of its own ------------------------------------------------------------


def kws_plots(document: Mapping[str, Any]) -> list[Plot]:
    out = []
    if document.get("detection"):
        out.append(timeline_plot(document["detection"]))
    if document.get("accuracy"):
        out.append(confusion_plot(document["accuracy"]))
    return [p for p in out if p is not None]


def kws_blocks(document: Mapping[str, Any], plots: list[Plot]) -> list:
    by_file = {p.filename: p for p in plots}
    blocks: list = []
    if document.get("accuracy"):
        blocks += accuracy_blocks(document["accuracy"], by_file)
    if document.get("detection"):
        blocks += detection_blocks(document["detection"], by_file)
    return blocks


def write_kws_report(document: Mapping[str, Any], out_dir: str | os.PathLike) -> Path:
    """A report folder (index.html, report.md, results.json, PNGs) of the KWS sections alone."""
    from .html import render_html
    from .markdown import render_markdown
    from .writer import _footer, check_destination

    dest = check_destination(Path(out_dir))
    plots = kws_plots(document)
    title = "ethos-kws keyword spotting report"
    model = (document.get("accuracy") or document.get("detection") or {}).get("model")
    if model:
        title += f": {Path(model).name}"
    doc = Document(title, tuple(kws_blocks(document, plots)))
    with atomic_dir(dest) as tmp:
        for p in plots:
            atomic_write_bytes(tmp / p.filename, p.png)
        atomic_write_text(tmp / "index.html", render_html(doc, _footer()))
        atomic_write_text(tmp / "report.md", render_markdown(doc, _footer()))
        atomic_write_json(tmp / "results.json", dict(document))
    return dest
