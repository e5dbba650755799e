"""The regression gate on real sweeps: identical passes, a doctored baseline fails naming the
configuration and metric, thresholds, missing configurations, compiling now, bad inputs."""

from __future__ import annotations

import json
import math

import pytest

from ethos_kws.cli import main
from ethos_kws.report import ResultsError, check_regression
from ethos_kws.sweeps import sweep


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, int8io_model):
    out = tmp_path_factory.mktemp("check") / "run"
    with pytest.MonkeyPatch.context() as mp:  # module scope: isolate the compile cache ourselves
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        sweep(int8io_model, accels="all", out_dir=out)
    return out


@pytest.fixture
def doc(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def _doctor(doc, tmp_path, changes, name="baseline.json"):
    """A baseline whose figures were smaller than today's: ``changes`` = {(accel, field): factor}."""
    for r in doc["results"]:
        for (accel, field), factor in changes.items():
            if r["accel"] == accel:
                r[field] = int(r[field] * factor)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_identical_baseline_passes(run_dir, capsys):
    assert main(["check", "--baseline", str(run_dir / "results.json"), "--current", str(run_dir)]) == 0
    assert "check: no regression above 0%" in capsys.readouterr().out
    assert check_regression(run_dir, run_dir / "results.json") == []


def test_doctored_baseline_fails_naming_config_and_metric(run_dir, doc, tmp_path, capsys):
    current = {r["accel"]: dict(r) for r in doc["results"]}  # before doctoring
    baseline = _doctor(doc, tmp_path, {("u55-128", "cycles_total"): 0.9, ("u65-512", "sram_bytes"): 0.5})
    assert main(["check", "--baseline", str(baseline), "--current", str(run_dir)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("REGRESSION")]
    assert len(lines) == 2
    assert lines[0].startswith("REGRESSION u55-128 cycles_total: ")
    assert f"-> {current['u55-128']['cycles_total']:,} cycles" in lines[0]
    assert lines[1].startswith("REGRESSION u65-512 sram_bytes: ") and "(+100." in lines[1]
    found = check_regression(baseline, run_dir)
    assert [(r.config, r.metric) for r in found] == [("u55-128", "cycles_total"), ("u65-512", "sram_bytes")]
    assert found[0].current == current["u55-128"]["cycles_total"]
    assert found[0].change_pct == pytest.approx((1 / 0.9 - 1) * 100, rel=1e-3)


def test_threshold(run_dir, doc, tmp_path, capsys):
    baseline = _doctor(doc, tmp_path, {("u55-32", "flash_bytes"): 0.97})  # current is ~3% larger
    assert main(["check", "--baseline", str(baseline), "--current", str(run_dir), "--max-regression", "5"]) == 0
    assert main(["check", "--baseline", str(baseline), "--current", str(run_dir), "--max-regression", "2"]) == 1
    assert "REGRESSION u55-32 flash_bytes" in capsys.readouterr().out


def test_improvement_is_not_a_regression(run_dir, doc, tmp_path):
    baseline = _doctor(doc, tmp_path, {("u55-64", "cycles_total"): 1.5, ("u65-256", "dram_bytes"): 2})
    assert check_regression(baseline, run_dir) == []


def test_growth_from_zero(run_dir, doc, tmp_path):
    baseline = _doctor(doc, tmp_path, {("u65-256", "dram_bytes"): 0})
    [r] = check_regression(baseline, run_dir, 1000.0)
    assert (r.config, r.metric, r.baseline) == ("u65-256", "dram_bytes", 0) and math.isinf(r.change_pct)
    assert "(from 0)" in str(r) and r.to_dict()["change_pct"] is None


def test_missing_configuration_fails(run_dir, int8io_model, tmp_path, capsys):
    sweep(int8io_model, accels="u55-64,u55-128,u55-256,u65,u85", out_dir=tmp_path / "partial")
    assert main(["check", "--baseline", str(run_dir), "--current", str(tmp_path / "partial"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert [(r["config"], r["metric"]) for r in report["regressions"]] == [("u55-32", "config")]
    # the other way round an extra configuration is fine
    assert check_regression(tmp_path / "partial", run_dir) == []


def test_without_current_compiles_the_baseline_configs_now(run_dir, doc, tmp_path, capsys):
    assert main(["check", "--baseline", str(run_dir / "results.json")]) == 0
    assert "compiled now" in capsys.readouterr().out
    baseline = _doctor(doc, tmp_path, {("u55-256", "cycles_npu"): 0.8})
    assert main(["check", "--baseline", str(baseline)]) == 1
    assert "REGRESSION u55-256 cycles_npu" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--baseline", "{missing}"], "results file not found"),
        (["--baseline", "{notjson}"], "is not JSON"),
        (["--baseline", "{schema}"], "not a sweep results document"),
        (["--baseline", "{run}", "--current", "{missing}"], "results file not found"),
        (["--baseline", "{run}", "--current", "{run}", "--max-regression", "-1"], "--max-regression must be"),
        (["--baseline", "{run}", "--current", "{run}", "--max-regression", "nan"], "--max-regression must be"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(run_dir, tmp_path, capsys, args, message):
    (tmp_path / "notjson.json").write_text("results: yes")
    (tmp_path / "schema.json").write_text('{"model": {}}')
    paths = {"missing": tmp_path / "nope.json", "notjson": tmp_path / "notjson.json",
             "schema": tmp_path / "schema.json", "run": run_dir}
    assert main(["check", *[a.format(**paths) for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ethos-kws: error: ") and message in err


def test_api_rejects_bad_threshold(run_dir):
    with pytest.raises(ResultsError):
        check_regression(run_dir, run_dir, -0.5)
