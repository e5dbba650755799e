"""Every recorded FVP console log in shared/data/fvp-logs parses to the numbers (or the error) it
shows. The expected values below were read from the fixture files by hand."""

from __future__ import annotations

import base64
import json

import pytest

from ethos_kws.backends.fvp import pmu
from ethos_kws.errors import BackendError


def console(fvp_logs, name: str) -> str:
    """The recorded console text: the fixture minus its leading ``# SOURCE``/comment header."""
    lines = (fvp_logs / name).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# SOURCE:"), name
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines) + "\n"


FULL_U55_COUNTERS = {
    # fixture: (format, ACTIVE, IDLE, TOTAL, AXI0 RD, AXI0 WR, AXI1 RD)
    "mlek_21.05_kws_dscnn_lowercase_total.txt": ("mlek-text-2021", 680611, 561, 681172, 217385, 82607, 59608),
    "mlek_21.11_kws_dscnn_corstone300_u55.txt": ("mlek-text-2021", 680611, 561, 681172, 217385, 82607, 59608),
    "mlek_22.05plus_new_format_u55_kws.txt": ("mlek-text", 404973, 635, 405608, 125388, 48254, 17493),
    "mlek_inference_runner_corstone300_u55.txt": ("mlek-text-2021", 33145, 1033, 34178, 9332, 3248, 2219),
    "mlek_kws_micronet_corstone300_u55.txt": ("mlek-text-2021", 413814, 358, 414172, 132130, 48252, 17544),
    "mlek_testing_benchmarking_fvp.txt": ("mlek-text-2021", 1081007, 626, 1081634, 628122, 135087, 62870),
    "mlek_testing_benchmarking_fpga_cpu_profile.txt": ("mlek-text-2021", 1081007, 626, 1081634, 628122, 135087, 62870),
    "mlia_runner_metrics_b64_fixture.txt": ("mlia-metrics", 1, 2, 3, 4, 5, 6),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FULL_U55_COUNTERS))
def test_full_counter_sets(fvp_logs, name):
    fmt, active, idle, total, rd0, wr0, rd1 = FULL_U55_COUNTERS[name]
    report = pmu.parse_pmu(console(fvp_logs, name))
    assert report is not None and report.format == fmt
    assert report.missing() == []
    assert dict(report.counters) == {
        pmu.NPU_ACTIVE: active,
        pmu.NPU_IDLE: idle,
        pmu.NPU_TOTAL: total,
        pmu.AXI0_READ: rd0,
        pmu.AXI0_WRITE: wr0,
        pmu.AXI1_READ: rd1,
    }


def test_2021_lowercase_total_keeps_printed_name(fvp_logs):
    report = pmu.parse_pmu(console(fvp_logs, "mlek_21.05_kws_dscnn_lowercase_total.txt"))
    assert report.raw["NPU total"] == 681172
    assert report.counters[pmu.NPU_TOTAL] == 681172


def test_fpga_cpu_lines_are_not_npu_counters(fvp_logs):
    report = pmu.parse_pmu(console(fvp_logs, "mlek_testing_benchmarking_fpga_cpu_profile.txt"))
    assert not any("CPU" in k or "Time" in k for k in report.raw)


def test_oldest_format_has_no_total_and_none_is_invented(fvp_logs):
    report = pmu.parse_pmu(console(fvp_logs, "mlek_21.03_kws_dscnn_old_format.txt"))
    assert report.format == "mlek-text-2021-03"
    assert dict(report.counters) == {pmu.NPU_ACTIVE: 680400, pmu.NPU_IDLE: 766}
    assert report.missing() == [pmu.NPU_TOTAL, pmu.AXI0_READ, pmu.AXI0_WRITE, pmu.AXI1_READ]


def test_u85_counters_keep_their_sram_ext_names(fvp_logs):
    """The real Corstone-320 (Ethos-U85) profile: SRAM/EXT ports, EXT writes counted too."""
    report = pmu.parse_pmu(console(fvp_logs, "mlek_new_format_u85.txt"))
    assert report.format == "mlek-text"
    assert dict(report.counters) == {
        pmu.NPU_ACTIVE: 48560,
        pmu.NPU_IDLE: 526,
        pmu.NPU_TOTAL: 49086,
        pmu.SRAM_READ: 143,
        pmu.SRAM_WRITE: 135,
        pmu.EXT_READ: 7838,
        pmu.EXT_WRITE: 36,
    }
    assert pmu.SRAM_READ == "NPU SRAM_RD_DATA_BEAT_RECEIVED"  # the driver's ETHOSU_PMU_ dropped
    assert report.raw["NPU ETHOSU_PMU_SRAM_RD_DATA_BEAT_RECEIVED"] == 143  # as printed
    assert report.missing(pmu.required_counters("U85")) == []
    # U85 ports are SRAM/EXT, not AXI0/AXI1: nothing is mapped onto the U55/U65 names
    assert pmu.AXI0_READ not in report.counters
    assert report.missing() == [pmu.AXI0_READ, pmu.AXI0_WRITE, pmu.AXI1_READ]


def test_port_counters_per_family():
    assert pmu.required_counters("U55") == pmu.REQUIRED_COUNTERS == pmu.required_counters("u65")
    u85 = pmu.port_counters("U85")
    assert (u85.sram_read, u85.sram_write, u85.ext_read, u85.ext_write) == (
        pmu.SRAM_READ, pmu.SRAM_WRITE, pmu.EXT_READ, pmu.EXT_WRITE)
    assert pmu.port_counters("U55").ext_write is None
    with pytest.raises(BackendError, match="Ethos-U99"):
        pmu.port_counters("U99")


def test_u85_axi_port_mismatch_line():
    """The Corstone-320 runner's driver also checks the AXI port counts (format string from the
    runner ELF: 'NPU config mismatch. npu.num_axi_sram=%u, optimizer.num_axi_sram=%u')."""
    line = "E: ethosu_driver.c:410: NPU config mismatch. npu.num_axi_sram=2, optimizer.num_axi_sram=4"
    assert pmu.find_errors(line)[0].kind == "npu-config-mismatch"
    assert pmu.axi_ports_mismatch(line) == ("sram", 2, 4)
    assert pmu.axi_ports_mismatch(line.replace("sram", "ext")) == ("ext", 2, 4)
    assert pmu.axi_ports_mismatch("npu.num_axi_sram=2, optimizer.num_axi_ext=4") is None
    assert pmu.macs_mismatch(line) is None


def test_executorch_pmu_report_with_event_names(fvp_logs):
    report = pmu.parse_pmu(console(fvp_logs, "executorch_arm_executor_runner_corstone320.txt"))
    assert report.format == "ethosu-pmu"
    assert dict(report.raw) == {
        "ethosu_pmu_cycle_cntr": 5920305,
        "ethosu_pmu_cntr0": 359921,
        "ethosu_pmu_cntr1": 0,
        "ethosu_pmu_cntr2": 0,
        "ethosu_pmu_cntr3": 503,
    }
    assert report.counters[pmu.NPU_TOTAL] == 5920305
    assert report.counters[pmu.NPU_IDLE] == 503
    assert report.counters["NPU EXT0_RD_DATA_BEAT_RECEIVED"] == 359921
    assert report.counters["NPU EXT1_RD_DATA_BEAT_RECEIVED"] == 0
    assert report.counters["NPU EXT0_WR_DATA_BEAT_WRITTEN"] == 0
    assert pmu.NPU_ACTIVE not in report.counters  # not printed, so not there
    # "ethos-u : cycle_cnt : 1498202 cycles" is a CPU cycle count, never an NPU counter
    assert 1498202 not in report.counters.values()


def test_executorch_partial_report(fvp_logs):
    report = pmu.parse_pmu(console(fvp_logs, "executorch_issue9356_corstone300_u55_pmu_partial.txt"))
    assert dict(report.raw) == {"ethosu_pmu_cycle_cntr": 411, "ethosu_pmu_cntr0": 6}
    assert dict(report.counters) == {pmu.NPU_TOTAL: 411}  # cntr0's event is not named


def test_zephyr_pmu_report_counters_stay_unnamed(fvp_logs):
    report = pmu.parse_pmu(console(fvp_logs, "zephyr_tflm_ethosu_pmu_report.txt"))
    assert dict(report.raw) == {
        "ethosu_pmu_cycle_cntr": 134869,
        "ethosu_pmu_cntr0": 133577,
        "ethosu_pmu_cntr1": 0,
        "ethosu_pmu_cntr2": 111744,
        "ethosu_pmu_cntr3": 0,
    }
    assert dict(report.counters) == {pmu.NPU_TOTAL: 134869}


@pytest.mark.parametrize(
    "name",
    [
        "fvp_error_execstack_glibc241.txt",
        "fvp_error_missing_libpython39.txt",
        "fvp_stat_corstone300_tflm_mobilenet_tail.txt",
        "fvp_stat_corstone300_u55_hello_tflm.txt",
        "fvp_telnet_banner.txt",
        "mlek_npu_config_mismatch_error.txt",
        "mlek_startup_banner_corstone300_u55.txt",
    ],
)
def test_logs_without_counters_give_none(fvp_logs, name):
    assert pmu.parse_pmu(console(fvp_logs, name)) is None


def test_stat_block_qualified_cpu_name(fvp_logs):
    log = pmu.parse_console(console(fvp_logs, "fvp_stat_corstone300_u55_hello_tflm.txt"))
    s = log.stat
    assert s.platform == "FVP_MPS3_Corstone_SSE_300"
    assert (s.simulated_time_s, s.user_time_s, s.system_time_s, s.wall_time_s) == (
        0.066055, 0.157169, 0.008168, 0.165018
    )
    assert s.performance_index == 0.40
    assert dict(s.instructions) == {"FVP_MPS3_Corstone_SSE_300.cpu0": 1171181}
    assert dict(s.mips) == {"FVP_MPS3_Corstone_SSE_300.cpu0": 7.08}
    assert s.memory_highwater_bytes is None
    assert log.errors == ()
    assert log.fvp_npu == ("U55", 128)  # "Creating Ethos-U55 with config H128"


def test_stat_block_short_cpu_name_and_highwater(fvp_logs):
    log = pmu.parse_console(console(fvp_logs, "fvp_stat_corstone300_tflm_mobilenet_tail.txt"))
    s = log.stat
    assert s.platform == "FVP_MPS3_Corstone_SSE_300"
    assert (s.simulated_time_s, s.user_time_s, s.system_time_s, s.wall_time_s) == (
        2.958458, 1.768731, 0.227094, 2.022361
    )
    assert s.performance_index == 1.46
    assert dict(s.instructions) == {"cpu0": 73961463}
    assert s.memory_highwater_bytes == 0x11935000
    assert log.errors == ()  # "Application exit code: 0." is a success


def test_npu_config_mismatch(fvp_logs):
    text = console(fvp_logs, "mlek_npu_config_mismatch_error.txt")
    errors = pmu.find_errors(text)
    assert [e.kind for e in errors] == [
        "npu-config-mismatch",
        "npu-config-mismatch",
        "runner-error",
        "runner-error",
    ]
    assert errors[2].line == "ERROR - Invoke failed."
    # macs_per_cc is log2: 8 -> 256 MACs in the FVP, 7 -> 128 in the compiled model
    assert pmu.macs_mismatch(text) == (256, 128)


def test_driver_style_mismatch_line():
    line = "E: ethosu_driver.c:123: NPU config mismatch. npu.macs_per_cc=7, optimizer.macs_per_cc=8"
    assert pmu.find_errors(line)[0].kind == "npu-config-mismatch"
    assert pmu.macs_mismatch(line) == (128, 256)


def test_missing_libpython(fvp_logs):
    errors = pmu.find_errors(console(fvp_logs, "fvp_error_missing_libpython39.txt"))
    assert len(errors) == 1 and errors[0].kind == "missing-library"
    assert "libpython3.9.so.1.0" in errors[0].line
    assert "PYTHONHOME" in errors[0].hint


def test_execstack_glibc241(fvp_logs):
    errors = pmu.find_errors(console(fvp_logs, "fvp_error_execstack_glibc241.txt"))
    assert len(errors) == 1 and errors[0].kind == "executable-stack"
    assert errors[0].line.startswith("Error: (E549)")


def test_banners_are_not_errors(fvp_logs):
    for name in ("fvp_telnet_banner.txt", "mlek_startup_banner_corstone300_u55.txt"):
        assert pmu.find_errors(console(fvp_logs, name)) == []


def test_startup_banner_macs(fvp_logs):
    log = pmu.parse_console(console(fvp_logs, "mlek_startup_banner_corstone300_u55.txt"))
    assert log.runner_macs == 128


def test_every_fixture_is_covered(fvp_logs):
    covered = set(FULL_U55_COUNTERS) | {
        "mlek_21.03_kws_dscnn_old_format.txt",
        "mlek_new_format_u85.txt",
        "executorch_arm_executor_runner_corstone320.txt",
        "executorch_issue9356_corstone300_u55_pmu_partial.txt",
        "zephyr_tflm_ethosu_pmu_report.txt",
        "fvp_error_execstack_glibc241.txt",
        "fvp_error_missing_libpython39.txt",
        "fvp_stat_corstone300_tflm_mobilenet_tail.txt",
        "fvp_stat_corstone300_u55_hello_tflm.txt",
        "fvp_telnet_banner.txt",
        "mlek_npu_config_mismatch_error.txt",
        "mlek_startup_banner_corstone300_u55.txt",
    }
    assert {p.name for p in fvp_logs.iterdir()} == covered


# ---- edge cases of the formats themselves -------------------------------------------------------


def _metrics_line(samples, group="Inference") -> str:
    doc = [{"profiling_group": group, "count": 1, "samples": samples}]
    return "<metrics>" + base64.b64encode(json.dumps(doc).encode()).decode() + "</metrics>"


def test_transfer_lines():
    text = (
        "INFO - 1 input tensor/s populated with 490 bytes with data read from 0x92000000\n"
        "INFO - 1 output tensor/s worth 12 bytes copied to 0x93000000\n"
    )
    log = pmu.parse_console(text)
    assert log.ifm == pmu.Transfer(1, 490, 0x92000000)
    assert log.ofm == pmu.Transfer(1, 12, 0x93000000)


def test_broken_base64_is_an_error():
    with pytest.raises(BackendError, match="unreadable <metrics>"):
        pmu.parse_pmu("<metrics>not base64!!</metrics>")


def test_metrics_and_text_must_agree():
    line = _metrics_line([{"name": "NPU ACTIVE", "value": [10]}])
    assert pmu.parse_pmu(line + "\nINFO - NPU ACTIVE: 10 cycles\n").counters[pmu.NPU_ACTIVE] == 10
    with pytest.raises(BackendError, match="NPU ACTIVE"):
        pmu.parse_pmu(line + "\nINFO - NPU ACTIVE: 11 cycles\n")


def test_only_the_inference_group_counts():
    doc = [
        {"profiling_group": "Setup", "count": 1, "samples": [{"name": "NPU ACTIVE", "value": [7]}]},
        {"profiling_group": "Inference", "count": 1, "samples": [{"name": "NPU ACTIVE", "value": [9]}]},
    ]
    text = "<metrics>" + base64.b64encode(json.dumps(doc).encode()).decode() + "</metrics>"
    assert pmu.parse_pmu(text).counters[pmu.NPU_ACTIVE] == 9


def test_crlf_console():
    log = pmu.parse_console("INFO - NPU ACTIVE: 5 cycles\r\nINFO - NPU IDLE: 1 cycles\r\n")
    assert dict(log.pmu.counters) == {pmu.NPU_ACTIVE: 5, pmu.NPU_IDLE: 1}
