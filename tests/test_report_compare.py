"""``report --compare``: deltas between two real sweeps (int8-I/O vs float-I/O DS-CNN-L)."""

from __future__ import annotations

import json

import pytest

from ethos_kws.cli import main
from ethos_kws.report import compare_results, write_comparison
from ethos_kws.sweeps import sweep


@pytest.fixture(scope="module")
def runs(tmp_path_factory, int8io_model, float_io_model):
    base = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:  # module scope: isolate the compile cache ourselves
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        sweep(int8io_model, accels="all", out_dir=base / "int8io")
        sweep(float_io_model, accels="all", out_dir=base / "floatio")
    return base / "int8io", base / "floatio"


def test_deltas_per_configuration_and_metric(runs):
    a, b = runs
    cmp = compare_results(a, b)
    da = {r["accel"]: r for r in json.loads((a / "results.json").read_text())["results"]}
    db = {r["accel"]: r for r in json.loads((b / "results.json").read_text())["results"]}
    assert cmp.configs == tuple(da) and cmp.only_in_a == () and cmp.only_in_b == ()
    for d in cmp.deltas:
        assert d.a == da[d.config][d.metric] and d.b == db[d.config][d.metric]
        assert d.delta == d.b - d.a
    cpu = [d for d in cmp.deltas if d.metric == "cpu_ops"]
    assert {(d.a, d.b) for d in cpu} == {(0, 2)}  # QUANTIZE/DEQUANTIZE stay on the CPU
    frame = cmp.frame()
    assert len(frame) == len(cmp.deltas) and set(frame.columns) >= {"config", "metric", "delta_pct"}


def test_unmatched_configurations_are_listed(runs, int8io_model, tmp_path):
    sweep(int8io_model, accels="u55-128,u65-512", out_dir=tmp_path / "two")
    cmp = compare_results(runs[0], tmp_path / "two")
    assert cmp.configs == ("u55-128", "u65-512")
    assert cmp.only_in_a == ("u55-32", "u55-64", "u55-256", "u65-256", *(f"u85-{m}" for m in (128, 256, 512, 1024, 2048)))


def test_comparison_folder_and_cli(runs, tmp_path, capsys, monkeypatch):
    a, b = runs
    dest, cmp = write_comparison(a, b, tmp_path / "cmp")
    assert {p.name for p in dest.iterdir()} == {"index.html", "report.md", "compare.csv", "compare.json"}
    html = (dest / "index.html").read_text()
    assert "A and B are different models" in html and "Δ %" in html
    saved = json.loads((dest / "compare.json").read_text())
    assert saved["a"]["model"]["name"] == "ds_cnn_l_int8io" and len(saved["deltas"]) == len(cmp.deltas)

    monkeypatch.chdir(tmp_path)
    assert main(["report", "--compare", str(a / "results.json"), str(b)]) == 0
    out = capsys.readouterr().out
    assert "u55-128" in out and "CPU ops" in out and "+2" in out
    assert (tmp_path / "reports" / "compare-ds_cnn_l_int8io-vs-ds_cnn_l_quantized" / "index.html").is_file()
    assert main(["report", "--compare", str(a), str(tmp_path / "nope")]) == 2
    assert "results file not found" in capsys.readouterr().err
