"""`sweep --measure fvp` and `sweep --report`.

The FVP here is the TEST DOUBLE from test_fvp_process.py (a script replaying recorded console
output): an FVP cannot be installed on this machine. It checks our plumbing only; the numbers it
replays are the recorded 2021 Corstone-300 figures, never presented as a measurement of this run.
"""

from __future__ import annotations

import json

from test_fvp_process import FakeFvp, success_log

from ethos_kws.cli import main


def test_sweep_measure_fvp_puts_measurement_beside_estimate(tmp_path, fvp_logs, int8io_model, capsys):
    fake = FakeFvp(tmp_path / "test-double")
    fake.configure(log=success_log(fvp_logs), dump_hex="00" * 12)
    out = tmp_path / "run"
    rc = main([
        "sweep", "--model", str(int8io_model), "--accel", "u55-128", "--measure", "fvp",
        "--fvp", str(fake.path), "--runner", str(fake.runner), "--out", str(out), "--json",
    ])  # fmt: skip
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["fvp"]
    vela = doc["results"][0]
    assert row["accel"] == "u55-128" and row["npu_active_cycles"] == 680611
    assert row["vela_over_fvp_cycles"] == vela["cycles_npu"] / 680611
    assert row["sweep_cycles_total"] == vela["cycles_total"]
    assert json.loads((out / "fvp.json").read_text()) == {"schema_version": 1, "results": doc["fvp"]}
    assert json.loads((out / "results.json").read_text())["fvp"] == doc["fvp"]


def test_sweep_measure_fvp_without_fvp_exits_2_before_compiling(int8io_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no FVP anywhere on PATH
    rc = main(["sweep", "--model", str(int8io_model), "--measure", "fvp", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "fvp doctor" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_sweep_report_writes_the_report(int8io_model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["sweep", "--model", str(int8io_model), "--accel", "u55-128,u65-256", "--report"])
    out = capsys.readouterr().out
    assert rc == 0 and "report:" in out
    report = tmp_path / "reports" / "ds_cnn_l_int8io"
    assert (report / "index.html").is_file() and (report / "report.md").is_file()
    assert json.loads((report / "results.json").read_text())["results"][0]["accel"] == "u55-128"
    assert (tmp_path / "reports" / "runs" / "ds_cnn_l_int8io" / "results.json").is_file()
