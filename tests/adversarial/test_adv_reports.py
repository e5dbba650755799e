"""Issue 10, item 9: reports and the gate on hostile results documents."""

from __future__ import annotations

import json

import pytest
from advcli import cli
from hostile_files import deep_json, huge_int_results, results_doc, results_json_text



def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name, text, message", [
    ("big.json", huge_int_results(), "expected a number"),
    ("deep.json", deep_json(), "nested too deeply"),
    ("neg.json", results_json_text(cycles_total=-5), "cannot be negative"),
])
def test_report_refuses_hostile_documents(name, text, message, tmp_path):
    src = _write(tmp_path, name, text)
    cli("report", "--from", src, "--out", tmp_path / "r", rc=2, match=message, clean=(tmp_path,))


def test_check_refuses_hostile_baselines(tmp_path):
    good = _write(tmp_path, "good.json", results_json_text())
    nosram = results_doc()
    del nosram["results"][0]["sram_bytes"]
    nosram = _write(tmp_path, "nosram.json", json.dumps(nosram))
    layer = {"name": "conv", "cycles": 10, "npu_cycles": 10, "macs": 5}
    for baseline, message in (
        (_write(tmp_path, "deep.json", deep_json()), "nested too deeply"),
        (nosram, "has no 'sram_bytes'"),  # the gate cannot check what the baseline lacks
        (_write(tmp_path, "neg.json", results_json_text(cycles_npu=-1)), "cycles_npu is -1, a count cannot be negative"),
        (_write(tmp_path, "negtotal.json", results_json_text(cycles_total=-5)), "cycles_total is -5"),
        (_write(tmp_path, "neglayer.json", results_json_text(layers=[{**layer, "cycles": -3}])),
         "layers[0].cycles is -3, a count cannot be negative"),
    ):
        cli("check", "--baseline", baseline, "--current", good, rc=2, match=message)
    gap = cli("check", "--baseline", good, "--current", nosram, rc=1, error_line=False)  # a gap in --current
    assert "sram_bytes" in gap.stdout and "missing" in gap.stdout


@pytest.mark.parametrize("flag", ["--parity", "--fvp"])
def test_report_sections_of_the_wrong_schema_are_refused(flag, tmp_path):
    good = _write(tmp_path, "good.json", results_json_text())
    wrong = _write(tmp_path, "wrong.json", json.dumps({"hello": [1, 2, 3]}))
    cli("report", "--from", good, flag, wrong, "--out", tmp_path / "r", rc=2)


def test_report_on_10000_rows_completes(tmp_path):
    """A guard against quadratic work, not a timing target: at the old ~32 ms per row, 10,000 rows
    needed over 300 s and this fails by its timeout. The speed itself is measured side by side in
    benchmarks/bench_report.py."""
    src = _write(tmp_path, "rows.json", results_json_text(10_000))
    cli("report", "--from", src, "--out", tmp_path / "r", rc=0, timeout=240)
    assert (tmp_path / "r" / "index.html").stat().st_size > 10_000


def test_tensor_name_starting_with_a_quote_keeps_every_layer(int8io_model, tmp_path):
    """Vela's per-layer CSV is read with the csv module: a name starting with '"' swallows no row."""
    from hostile_files import first_conv_output, with_name_first_char

    from ethos_kws.vela import compile_model

    quoted = tmp_path / "quoted.tflite"
    quoted.write_bytes(with_name_first_char(int8io_model.read_bytes(), first_conv_output(int8io_model.read_bytes()), b'"'))
    clean = compile_model(int8io_model, "u55-128")
    odd = compile_model(quoted, "u55-128")
    assert len(odd.layers) == len(clean.layers)
    assert [x.cycles for x in odd.layers] == [x.cycles for x in clean.layers]
    assert any(x.name.startswith('"') for x in odd.layers)
