"""An FVP runner's per-operator profile beside Vela's per-layer estimate. The profile comes from a
recorded runner log (ExecuTorch arm_perf_monitor, shared/data/fvp-logs); the FVP row it is attached
to is a TEST DOUBLE (no FVP can run here), named as such."""

from __future__ import annotations

from ethos_kws.report import write_report
from ethos_kws.report.fvp_layers import attach_profile, parse_operator_profile
from ethos_kws.sweeps import sweep


def test_parse_the_recorded_per_operator_profile(fvp_logs):
    text = (fvp_logs / "executorch_arm_executor_runner_corstone320.txt").read_text()
    assert parse_operator_profile(text) == [{"op": "ethos-u", "cycles": 1498202}]
    assert parse_operator_profile("NPU ACTIVE cycles: 5\n") == []


def test_report_sets_the_profile_beside_velas_layers(int8io_model, fvp_logs, tmp_path):
    result = sweep(int8io_model, accels="u55-128,u55-256").to_dict()
    u55 = next(r for r in result["results"] if r["accel"] == "u55-128")
    text = (fvp_logs / "executorch_arm_executor_runner_corstone320.txt").read_text()
    fvp_double = [{"accel": "u55-128", "platform": "corstone-300 (TEST DOUBLE)", "npu_active_cycles": 1,
                   "npu_total_cycles": 1}]
    rows = attach_profile(fvp_double, "u55-128", text)
    dest = write_report(result, tmp_path / "r", fvp=rows)
    md = (dest / "report.md").read_text()
    assert "### Per operator on the FVP" in md
    npu_sum = sum(x["cycles"] for x in u55["layers"] if x["target"] == "NPU")
    assert npu_sum == u55["cycles_total"]
    line = next(ln for ln in md.splitlines() if ln.startswith("| u55-128 | ethos-u |"))
    assert "1,498,202" in line and f"{npu_sum:,}" in line and "the whole NPU subgraph" in line
    assert f"{npu_sum / 1498202:.2f}×" in line
    assert "Per operator on the FVP" not in (write_report(result, tmp_path / "r2", fvp=fvp_double) / "report.md").read_text()
