"""Every layer, every cost: our per-layer records equal Vela's per-layer CSV row for row on all six
configurations, 'bound by' is the largest cost column, names Vela writes unquoted survive, and the
operators Vela leaves on the CPU are named with its reason everywhere."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from ethos_kws.accel import ACCELERATORS
from ethos_kws.cli import main
from ethos_kws.layers import (
    BOUND_BY,
    LAYER_FIELDS,
    LAYERS_CSV_FIELDS,
    bound_by_summary,
    parse_per_layer_csv,
)
from ethos_kws.sweeps import sweep
from ethos_kws.synth.flatbuf import serialize
from ethos_kws.synth.net import NetBuilder
from ethos_kws.vela import LAYERS_CSV, compile_model

# Vela's per-layer CSV cost columns -> our bound-by labels
VELA_COST_COLUMNS = {"NPU": "compute", "SRAM AC": "SRAM", "DRAM AC": "DRAM",
                     "OnFlash AC": "on-chip flash", "OffFlash AC": "off-chip flash"}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, int8io_model):
    out = tmp_path_factory.mktemp("layers") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        result = sweep(int8io_model, accels="all", out_dir=out)
    return result, out


def _vela_rows(folder: Path) -> list[dict[str, str]]:
    """Vela's own per-layer CSV, read the plain way (DS-CNN's names hold no comma or quote)."""
    [path] = folder.glob("*_per-layer.csv")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_layer_cycles_equal_velas_csv_row_for_row_on_all_six(swept):
    result, out = swept
    assert [r.accel for r in result.results] == list(ACCELERATORS)
    for r in result.results:
        vela = _vela_rows(out / r.accel)
        assert len(r.layers) == len(vela), r.accel
        for ours, theirs in zip(r.layers, vela):
            assert ours.cycles == int(theirs["Op Cycles"]), (r.accel, ours.index)
            assert ours.npu_cycles == int(theirs["NPU"])
            assert ours.sram_access_cycles == int(theirs["SRAM AC"])
            assert ours.dram_access_cycles == int(theirs["DRAM AC"])
            assert ours.on_chip_flash_access_cycles == int(theirs["OnFlash AC"])
            assert ours.off_chip_flash_access_cycles == int(theirs["OffFlash AC"])
            assert ours.macs == int(theirs["MAC Count"])
            assert ours.name == theirs["Name"] and ours.op == theirs["NNG Operator"]
        assert sum(layer.cycles for layer in r.layers) == r.cycles_total
        # layers.csv in the configuration's folder says the same
        with (out / r.accel / LAYERS_CSV).open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(x["cycles"]) for x in rows] == [layer.cycles for layer in r.layers]
        assert list(rows[0]) == list(LAYERS_CSV_FIELDS)


def test_bound_by_is_the_largest_access_cycle_column(swept):
    result, out = swept
    seen = set()
    for r in result.results:
        for ours, theirs in zip(r.layers, _vela_rows(out / r.accel)):
            costs = {label: int(theirs[col]) for col, label in VELA_COST_COLUMNS.items()}
            top = max(costs.values())
            assert top == int(theirs["Op Cycles"])  # Vela's op cycles are the largest column
            if top == 0:
                assert ours.bound_by == "fused"
                continue
            assert costs[ours.bound_by] == top, (r.accel, ours.index, ours.bound_by, costs)
            seen.add(ours.bound_by)
    # DS-CNN-L exercises compute-, SRAM-, DRAM- and flash-bound layers across the six
    assert {"compute", "SRAM", "DRAM", "off-chip flash"} <= seen


def test_u55_256_is_flash_bound_and_names_streaming_layers(swept):
    result, _ = swept
    by = {r.accel: r for r in result.results}
    u55 = bound_by_summary(by["u55-256"].layers)
    assert next(iter(u55)) == "off-chip flash"  # most of its cycles: layers waiting for weights
    streaming = [x for x in by["u55-256"].layers if x.weights_from_flash]
    assert {x.tflite_op for x in streaming} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert not any(x.weights_from_flash for x in by["u65-256"].layers)  # U65: weights in DRAM


def test_every_layer_maps_to_its_tflite_operator(swept, int8io_model):
    from ethos_kws.tflite import load_tflite

    ops = load_tflite(int8io_model).operators()
    for r in swept[0].results:
        for layer in r.layers:
            assert layer.tflite_index is not None, layer
            assert ops[layer.tflite_index].opcode == layer.tflite_op
        # Vela's ~25 softmax layers all map back to the one SOFTMAX
        soft = {x.tflite_index for x in r.layers if x.original_op == "Softmax"}
        assert len(soft) == 1 and ops[soft.pop()].opcode == "SOFTMAX"


def test_compile_json_carries_every_cost(int8io_model, tmp_path, capsys):
    assert main(["compile", "--accel", "u55-128", "--model", str(int8io_model),
                 "--out", str(tmp_path / "c"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["layers"]) > 40
    assert set(doc["layers"][0]) == set(LAYER_FIELDS)
    conv = doc["layers"][0]
    assert conv["tflite_op"] == "CONV_2D" and conv["bound_by"] in {label for _, label in BOUND_BY}
    assert 0 < conv["share"] < 1 and 0 < conv["mac_utilization"] < 1
    assert (tmp_path / "c" / LAYERS_CSV).is_file()


def _quoted_name_model(path: Path) -> Path:
    nb = NetBuilder(seed=0)
    x = nb.input((1, 8, 8, 16))
    y = nb.conv2d(x, 16, name='"quoted,conv')
    z = nb.conv2d(y, 16, name="plain_conv")
    nb.output(z)
    path.write_bytes(serialize(nb.graph))
    return path


def test_a_name_starting_with_a_quote_does_not_swallow_the_next_row(tmp_path):
    model = _quoted_name_model(tmp_path / "quoted.tflite")
    r = compile_model(model, "u55-64")
    [vela_csv] = Path(r.output_dir).glob("*_per-layer.csv")
    text = vela_csv.read_text()
    lines = [ln for ln in text.splitlines()[1:] if ln]
    # default CSV quoting merges the rows after the quote: the trap this parser avoids
    assert len(list(csv.DictReader(io.StringIO(text)))) < len(lines)
    assert len(r.layers) == len(lines) == len(parse_per_layer_csv(text))
    names = [layer.name for layer in r.layers]
    assert any(n.startswith('"quoted,conv') for n in names)
    assert any(n.startswith("plain_conv") for n in names)
    assert all(layer.tflite_op == "CONV_2D" for layer in r.layers)
    # and layers.csv, written with proper quoting, reads back the same names
    with (Path(r.output_dir) / LAYERS_CSV).open(newline="") as f:
        assert [row["name"] for row in csv.DictReader(f)] == names


def test_cpu_operators_named_with_velas_reason(float_io_model, tmp_path, capsys):
    r = compile_model(float_io_model, "u55-128")
    assert [(c.op, c.ofm) for c in r.cpu_operators] == [("QUANTIZE", "input_int8"), ("DEQUANTIZE", "Identity")]
    assert "unsupported DataType Float32" in r.cpu_operators[0].reason
    assert r.cpu_operators[1].reason == "Unsupported opType"
    assert [x.target for x in r.layers if x.target != "NPU"] == ["CPU", "CPU"]

    assert main(["compile", "--accel", "u55-128", "--model", str(float_io_model), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "figures cover the NPU part only: 2 operators on the CPU" in out
    assert "DEQUANTIZE 'Identity': Unsupported opType" in out

    assert main(["sweep", "--model", str(float_io_model), "--accel", "u55-64,u65-256", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "figures cover the NPU part only: 2 operators on the CPU" in out
    assert "CPU: QUANTIZE 'input_int8': Operation has tensor with unsupported DataType Float32" in out

    assert main(["model", "info", str(float_io_model), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["op"] for c in doc["vela_cpu_operators"]] == ["QUANTIZE", "DEQUANTIZE"]
    assert all(c["reason"] for c in doc["vela_cpu_operators"])

    assert main(["report", str(tmp_path / "s"), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "figures cover the NPU part only: 2 operators on the CPU" in md
    assert "Unsupported opType" in md
    assert "figures cover the NPU part only" in (tmp_path / "r" / "index.html").read_text()


def test_all_npu_model_has_no_cpu_note(swept, capsys):
    from ethos_kws.sweeps import format_table

    result, _ = swept
    assert all(r.cpu_ops == 0 and r.cpu_operators == () for r in result.results)
    assert "NPU part only" not in format_table(result.results)


def test_report_carries_every_costed_layer(swept, tmp_path):
    from ethos_kws.report import write_report

    result, out = swept
    dest = write_report(out, tmp_path / "r")
    md = (dest / "report.md").read_text()
    assert "## Per layer: where the cycles go" in md
    costed = sum(1 for r in result.results for x in r.layers if x.cycles or x.macs)
    table = md.split("**Every layer of every configuration**", 1)[1].split("\n\n*", 1)[0]
    assert len([ln for ln in table.splitlines() if ln.startswith("| u")]) == costed
    assert "| u55-256 | off-chip flash |" in md  # the bound-by summary row


def test_repeated_header_and_empty_csv(tmp_path):
    """The legacy compiler repeats the header line for every NPU subgraph; a model with no NPU
    operator gets an empty CSV: neither is a compile failure."""
    model = _quoted_name_model(tmp_path / "quoted.tflite")
    r = compile_model(model, "u55-64")
    [vela_csv] = Path(r.output_dir).glob("*_per-layer.csv")
    text = vela_csv.read_text()
    header, _, body = text.partition("\n")
    rows = parse_per_layer_csv(text)
    assert parse_per_layer_csv(text + header + "\n" + body) == rows + rows
    assert parse_per_layer_csv("") == [] and parse_per_layer_csv("\n") == []
