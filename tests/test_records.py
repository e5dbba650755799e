"""Issue 9 item 3: versioned documents, round-tripping result types, field lists from dataclasses."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ethos_kws.backends.base import OutputTensor, RunResult
from ethos_kws.backends.fvp.measurement import FvpMeasurement
from ethos_kws.cli import main
from ethos_kws.parity import ConfigParity, Difference, ParityReport
from ethos_kws.records import SCHEMA_VERSION, SchemaError, check_schema, numeric_fields, scalar_fields
from ethos_kws.results import CSV_COLUMNS, SweepResult
from ethos_kws.tflite import TensorSpec
from ethos_kws.vela import CompileResult, LayerResult


def _json(d):
    return json.loads(json.dumps(d))


@pytest.fixture(scope="module")
def swept(int8io_model):
    from ethos_kws.sweeps import sweep

    return sweep(int8io_model, accels="u55-128,u65-256")


def test_sweep_and_compile_results_round_trip(swept):
    d = swept.to_dict()
    assert d["schema_version"] == SCHEMA_VERSION
    back = SweepResult.from_dict(_json(d))
    assert back == swept and back.to_dict() == d
    r = swept.results[0]
    assert CompileResult.from_dict(_json(r.to_dict())) == r
    assert isinstance(r.layers[0], LayerResult) and LayerResult.from_dict(r.layers[0].to_dict()) == r.layers[0]


def _parity() -> ParityReport:
    diff = Difference(32, "random #32", "Identity", 3, -12, -11, 1.0)
    ok = ConfigParity("u55-128", "regor", 50, 600, 0.98, 1.0, 1, 1.0, 0.4, 0.1, True, (diff,))
    bad = ConfigParity("u65-512", "legacy", 50, None, None, None, None, None, None, 0.1, False, (), "BackendError: x")
    return ParityReport({"name": "m", "sha256": "ab"}, "npu-sim", 0.0, 0, 50, ("yes.wav",), (ok, bad),
                        cpu_total_ms=5.0)


def test_parity_report_round_trips():
    p = _parity()
    d = p.to_dict()
    assert d["schema_version"] == SCHEMA_VERSION
    assert ParityReport.from_dict(_json(d)) == p


def test_fvp_measurement_and_run_result_round_trip():
    spec = TensorSpec("Identity", (1, 3), "int8", 1 / 256, -128)
    out = (OutputTensor(spec, np.array([[1, -2, 3]], np.int8)),)
    values = {f.name: 7 for f in dataclasses.fields(FvpMeasurement) if f.type in ("int", "float")}
    strs = {f.name: "s" for f in dataclasses.fields(FvpMeasurement) if "str" in str(f.type)}
    m = FvpMeasurement(**{**values, **strs, "outputs": out, "fvp_simulated_time_s": 1.5, "argv": ("a", "b")})
    back = FvpMeasurement.from_dict(_json(m.to_dict()))
    assert back.to_dict() == m.to_dict() and np.array_equal(back.outputs[0].data, out[0].data)
    assert FvpMeasurement.from_dict(_json(m.to_dict(outputs=False))).outputs == ()
    r = RunResult("cpu", "ab", out, 1.25, {"kernels": "ref"}, ("a", "b", "c"))
    assert RunResult.from_dict(_json(r.to_dict())).to_dict() == r.to_dict()


def test_field_lists_come_from_the_dataclasses():
    from ethos_kws.report.check import CHECKED_METRICS
    from ethos_kws.report.compare import METRIC_LABELS
    from ethos_kws.report.load import NUMERIC_FIELDS, PARITY_NUMERIC_FIELDS

    assert NUMERIC_FIELDS == numeric_fields(CompileResult)
    assert PARITY_NUMERIC_FIELDS == numeric_fields(ConfigParity)
    assert set(scalar_fields(CompileResult)) <= set(CSV_COLUMNS)
    assert set(CHECKED_METRICS) == {"cycles_npu", "cycles_total", "sram_bytes", "flash_bytes", "dram_bytes"}
    assert set(METRIC_LABELS) <= set(NUMERIC_FIELDS) and METRIC_LABELS["sram_bytes"] == "SRAM (KiB)"


@pytest.mark.parametrize("field", numeric_fields(CompileResult))
def test_every_numeric_field_is_checked_on_load(swept, field):
    from ethos_kws.report.load import ResultsError, load_results

    d = _json(swept.to_dict())
    d["results"][0][field] = "many"
    with pytest.raises(ResultsError, match=f"results\\[0\\].{field} is 'many', expected a number"):
        load_results(d)


def test_one_csv_layout_for_sweep_and_report(swept, tmp_path):
    from ethos_kws.report import write_report
    from ethos_kws.sweeps import write_sweep

    run = write_sweep(swept, tmp_path / "run")
    dest = write_report(str(tmp_path / "run"), out_dir=tmp_path / "report")
    sweep_csv = (tmp_path / "run" / "results.csv").read_text().splitlines()
    report_csv = (dest / "results.csv").read_text().splitlines()
    assert sweep_csv[0] == report_csv[0] == ",".join(CSV_COLUMNS)
    assert len(sweep_csv) == len(report_csv) == 1 + len(run.results)


def test_schema_check():
    assert check_schema({}, "x") == 1  # written before versioning
    assert check_schema({"schema_version": SCHEMA_VERSION}, "x") == SCHEMA_VERSION
    with pytest.raises(SchemaError, match=f"schema_version {SCHEMA_VERSION + 1}, newer than"):
        check_schema({"schema_version": SCHEMA_VERSION + 1}, "x")
    with pytest.raises(SchemaError, match="'2b' is not a schema"):
        check_schema({"schema_version": "2b"}, "x")


def _newer(d):
    return {**d, "schema_version": SCHEMA_VERSION + 1}


def test_newer_documents_are_refused_with_exit_2(swept, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_newer(swept.to_dict())))
    for argv in (["report", str(run), "--out", str(tmp_path / "r")],
                 ["check", "--baseline", str(run / "results.json"), "--current", str(run / "results.json")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"schema_version {SCHEMA_VERSION + 1}, newer than" in err
    assert not (tmp_path / "r").exists()
    (run / "results.json").write_text(json.dumps(swept.to_dict()))
    (run / "parity.json").write_text(json.dumps(_newer(_parity().to_dict())))
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 2
    assert "parity.json has schema_version" in capsys.readouterr().err
    (run / "parity.json").unlink()
    (run / "fvp.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "results": []}))
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 2
    assert "fvp.json has schema_version" in capsys.readouterr().err


def test_newer_compile_cache_entry_is_not_used(int8io_model):
    from ethos_kws.vela import cached_result, compile_cache_dir, make_spec

    spec = make_spec(int8io_model, "u55-64")
    from ethos_kws.vela import compile_spec

    compile_spec(spec)
    doc = compile_cache_dir() / spec.cache_key() / "compile.json"
    d = json.loads(doc.read_text())
    assert d["schema_version"] == SCHEMA_VERSION
    doc.write_text(json.dumps(_newer(d)))
    assert cached_result(spec) is None
