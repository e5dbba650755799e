"""Issue 9 item 4: one set of column definitions, three renderers (terminal, Markdown, HTML)."""

from __future__ import annotations

import re

from ethos_kws.records import metric_fields
from ethos_kws.report.tables import (
    COMPILE_COLUMNS,
    UNIT_FORMATS,
    format_table,
    table_from_rows,
    to_html,
    to_markdown,
    to_text,
)
from ethos_kws.vela import CompileResult

ROW = {"config": "u55-128", "accel": "u55-128", "system_config": "Ethos_U55_High_End_Embedded",
       "cycles_total": 668729, "inference_time_ms": 1.337458, "sram_bytes": 111514,
       "mac_utilization": 0.3312}


def test_every_metric_field_has_one_column_with_its_unit_format():
    for f in metric_fields(CompileResult):
        col = COMPILE_COLUMNS[f.name]
        suffix, fmt, _ = UNIT_FORMATS[f.metadata["unit"]]
        assert col.header == f.metadata["label"] + suffix and col.fmt is fmt


def test_three_renderers_show_the_same_cells():
    cols = tuple(COMPILE_COLUMNS[n] for n in ("config", "cycles_total", "inference_time_ms", "sram_bytes",
                                              "mac_utilization"))
    t = table_from_rows("t", [ROW], cols)
    cells = ["u55-128", "668,729", "1.337", "108.9", "33.1%"]
    text, md, html = to_text(t), to_markdown(t), to_html(t)
    for c in cells:
        assert c in text and c in md and f">{c}<" in html
    for h in ("cycles (total)", "inference time (ms)", "SRAM (KiB)", "MAC utilization"):
        assert h in text and h in md and h in html


def test_sweep_terminal_table_uses_the_same_formats():
    out = format_table([ROW])
    header, rule, row = out.splitlines()
    assert header.split()[:3] == ["accel", "system", "config"] and "time ms" in header and "SRAM KiB" in header
    assert set(rule) <= {"-", " "}
    assert "668,729" in row and "1.337" in row and "108.9" in row and "33.1%" in row


def test_sweeps_keeps_only_orchestration():
    import inspect

    import ethos_kws.sweeps as sweeps

    src = inspect.getsource(sweeps)
    assert not re.search(r"^def (format_\w+|_table)\(", src, re.M)
    assert sweeps.format_table is format_table  # still importable from sweeps
