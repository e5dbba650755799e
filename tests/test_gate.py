"""The gate checks what matters: CPU operators 0 -> 2 fails, a model/Vela/ini change fails unless
allowed, a 10 % slower layer fails --max-layer-regression 5 naming the layer, and a baseline that
lacks a field the current run has is an error rather than a skipped check."""

from __future__ import annotations

import json

import pytest

from ethos_kws.cli import main
from ethos_kws.report import check_regression
from ethos_kws.report.gate import BaselineIncomplete
from ethos_kws.sweeps import sweep

ACCELS = "u55-128,u55-256,u65-256"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, int8io_model, float_io_model):
    base = tmp_path_factory.mktemp("gate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        sweep(int8io_model, accels=ACCELS, out_dir=base / "int8io")
        sweep(float_io_model, accels=ACCELS, out_dir=base / "float_io")
    return base / "int8io", base / "float_io"


@pytest.fixture
def doc(runs):
    return json.loads((runs[0] / "results.json").read_text())


def _write(doc, tmp_path, name="baseline.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _check(capsys, *argv):
    rc = main(["check", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_identical_passes_with_every_check_on(runs, capsys):
    rc, out, _ = _check(capsys, "--baseline", runs[0], "--current", runs[0], "--max-layer-regression", "0")
    assert rc == 0 and "no regression" in out


def test_cpu_ops_zero_to_two_fails(runs, capsys):
    int8io, float_io = runs
    # another model, so the identity check fires too; allowed, the CPU fallback still fails
    rc, out, _ = _check(capsys, "--baseline", int8io, "--current", float_io, "--allow-model-change")
    assert rc == 1
    lines = [ln for ln in out.splitlines() if "cpu_ops" in ln]
    assert len(lines) == 3 and "u55-128 cpu_ops: 0 -> 2 operators on the CPU (QUANTIZE, DEQUANTIZE)" in lines[0]
    assert "model_sha256" not in out
    # the other way round (2 -> 0) is an improvement
    assert not [r for r in check_regression(float_io, int8io, allow_model_change=True) if r.metric == "cpu_ops"]


def test_model_change_fails_unless_allowed(runs, doc, tmp_path, capsys):
    for r in doc["results"]:
        r["model_sha256"] = "0" * 64
    baseline = _write(doc, tmp_path)
    rc, out, _ = _check(capsys, "--baseline", baseline, "--current", runs[0])
    assert rc == 1
    assert out.count("REGRESSION") == 3 and "u55-128 model_sha256: model sha256 changed" in out
    rc, out, _ = _check(capsys, "--baseline", baseline, "--current", runs[0], "--allow-model-change")
    assert rc == 0


@pytest.mark.parametrize("field, value, what", [
    ("vela_version", "4.0.0", "Vela version changed"),
    ("ini_sha256", "f" * 64, "Vela ini sha256 changed"),
])
def test_vela_or_ini_change_fails_unless_allowed(runs, doc, tmp_path, capsys, field, value, what):
    doc["results"][1][field] = value
    baseline = _write(doc, tmp_path)
    rc, out, _ = _check(capsys, "--baseline", baseline, "--current", runs[0])
    assert rc == 1 and f"REGRESSION u55-256 {field}: {what}" in out
    assert _check(capsys, "--baseline", baseline, "--current", runs[0], "--allow-model-change")[0] == 0


def _slow_layer(doc, accel="u55-256"):
    """Make the baseline's most expensive layer 10 % cheaper than today's: today is 10 % slower."""
    r = next(r for r in doc["results"] if r["accel"] == accel)
    layer = max(r["layers"], key=lambda x: x["cycles"])
    layer["cycles"] = round(layer["cycles"] / 1.10)
    return layer


def test_ten_percent_layer_regression_fails_at_five_naming_the_layer(runs, doc, tmp_path, capsys):
    layer = _slow_layer(doc)
    baseline = _write(doc, tmp_path)
    rc, out, _ = _check(capsys, "--baseline", baseline, "--current", runs[0], "--max-layer-regression", "5")
    assert rc == 1
    [line] = [ln for ln in out.splitlines() if ln.startswith("REGRESSION")]
    assert line.startswith(f"REGRESSION u55-256 layer {layer['op']} '{layer['name']}'")
    assert f"TFLite op #{layer['tflite_index']}" in line and "(+10.0" in line and "above 5%" in line
    # within a 15 % allowance it passes; the whole-network figures were not touched
    assert _check(capsys, "--baseline", baseline, "--current", runs[0], "--max-layer-regression", "15")[0] == 0
    rc, out, _ = _check(capsys, "--baseline", baseline, "--current", runs[0], "--max-layer-regression", "5", "--json")
    [reg] = json.loads(out)["regressions"]
    assert reg["metric"] == "layer_cycles" and reg["layer"].startswith(layer["op"]) and reg["change_pct"] > 9.9


def test_layer_missing_from_current_fails(runs, doc, tmp_path, capsys):
    doc["results"][0]["layers"].append({**doc["results"][0]["layers"][0], "name": "gone", "index": 99})
    rc, out, _ = _check(capsys, "--baseline", _write(doc, tmp_path), "--current", runs[0])
    assert rc == 1 and "layer Conv2D 'gone'" in out and "missing from the current results" in out


@pytest.mark.parametrize("strip", ["ini_sha256", "cpu_ops", "model_sha256", "layers"])
def test_baseline_lacking_a_field_the_current_has_is_an_error(runs, doc, tmp_path, capsys, strip):
    for r in doc["results"]:
        if strip == "layers":
            for layer in r["layers"]:
                del layer["cycles"]
        else:
            del r[strip]
    baseline = _write(doc, tmp_path)
    rc, out, err = _check(capsys, "--baseline", baseline, "--current", runs[0])
    assert rc == 2 and err.count("\n") == 1
    assert "cannot check" in err and "regenerate the baseline" in err
    with pytest.raises(BaselineIncomplete):
        check_regression(baseline, runs[0])


def test_bad_layer_threshold_is_exit_2(runs, capsys):
    rc, _, err = _check(capsys, "--baseline", runs[0], "--current", runs[0], "--max-layer-regression", "-3")
    assert rc == 2 and "--max-layer-regression must be" in err
