"""FVP process behaviour through a TEST DOUBLE: a small script created in tmp_path that stands in
for the FVP executable. It replays console text assembled from the recorded logs in
shared/data/fvp-logs and writes the ``--dump`` file it is asked for. It exists only to exercise
our process handling and checks; nothing it prints is ever shown to a user as a measurement.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ethos_kws.backends.fvp import run as fvp_backend  # running and checking one FVP process
from ethos_kws.backends.fvp.command import FvpCommand, build_argv
from ethos_kws.backends.fvp.process import run_process
from ethos_kws.backends.fvp.targets import target_for
from ethos_kws.errors import BackendError, BackendUnavailable

DOUBLE_NAME = "fake_fvp_test_double.py"
DOUBLE_SOURCE = '''#!{python}
"""TEST DOUBLE standing in for a Corstone FVP in ethos-kws tests. Not an FVP; never a result."""
import json, os, re, signal, subprocess, sys, time
from pathlib import Path

here = Path(__file__).resolve().parent
cfg = json.loads((here / "fake_fvp_test_double.json").read_text())
argv = sys.argv[1:]
if argv == ["--version"]:
    print(cfg.get("version_text", ""))
    sys.exit(0)

(here / "argv.json").write_text(json.dumps(argv))


def after(flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]

instance, dump_path, dump_size = re.fullmatch(r"([\\w.]+)=(.+)@Memory:0x93000000,(\\d+)", after("--dump")[0]).groups()
(here / "dump_instance.txt").write_text(instance)
ifm = next(d for d in after("--data") if d.endswith("@0x92000000")).rsplit("@", 1)[0]
ifm_bytes = Path(ifm).read_bytes()
(here / "ifm_seen.bin").write_bytes(ifm_bytes)
text = cfg["log"].replace("{{IFM_BYTES}}", str(len(ifm_bytes))).replace("{{OFM_BYTES}}", dump_size)
sys.stdout.write(text)
sys.stdout.flush()
mode = cfg.get("mode", "ok")
if mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (here / "pids.json").write_text(json.dumps([os.getpid(), child.pid]))
    time.sleep(600)
if mode == "crash":
    os.kill(os.getpid(), signal.SIGSEGV)
if "dump_hex" in cfg:
    Path(dump_path).write_bytes(bytes.fromhex(cfg["dump_hex"]))
sys.exit(cfg.get("exit_code", 0))
'''

IFM_LINE = "INFO - 1 input tensor/s populated with {{IFM_BYTES}} bytes with data read from 0x92000000\n"
OFM_LINE = "INFO - 1 output tensor/s worth {{OFM_BYTES}} bytes copied to 0x93000000\n"


def fixture_body(fvp_logs: Path, name: str) -> str:
    lines = (fvp_logs / name).read_text().splitlines()
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(l for l in lines if not l.startswith("# ")) + "\n"


def success_log(fvp_logs: Path, counters: str = "mlek_21.11_kws_dscnn_corstone300_u55.txt") -> str:
    """A whole run as the runner prints it, stitched from recorded pieces (banner, counters, stat)."""
    stat_block = fixture_body(fvp_logs, "fvp_stat_corstone300_tflm_mobilenet_tail.txt")
    return (
        fixture_body(fvp_logs, "mlek_startup_banner_corstone300_u55.txt")
        + IFM_LINE
        + fixture_body(fvp_logs, counters)
        + OFM_LINE
        + stat_block
    )


class FakeFvp:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / DOUBLE_NAME
        self.path.write_text(DOUBLE_SOURCE.replace("{python}", sys.executable))
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.runner = root / "runner_test_double.axf"
        self.runner.write_bytes(b"\x7fELF test double, never executed")
        self.configure()

    def configure(self, **cfg):
        cfg.setdefault("version_text", "Fast Models [11.24.13 (Nov 29 2023)]\nCopyright 2000-2023 ARM Limited.")
        cfg.setdefault("log", "")
        (self.root / "fake_fvp_test_double.json").write_text(json.dumps(cfg))

    def argv(self) -> list[str]:
        return json.loads((self.root / "argv.json").read_text())

    def ifm_seen(self) -> bytes:
        return (self.root / "ifm_seen.bin").read_bytes()

    def pids(self) -> list[int]:
        return json.loads((self.root / "pids.json").read_text())

    def dump_instance(self) -> str:
        return (self.root / "dump_instance.txt").read_text()


@pytest.fixture
def fake(tmp_path) -> FakeFvp:
    return FakeFvp(tmp_path / "test-double")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for init to reap it is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _cmd(fake: FakeFvp, tmp_path: Path, accel="u55-128", ofm_bytes=12, ifm=b"\x01" * 490) -> FvpCommand:
    target, macs = target_for(accel)
    model = tmp_path / "model_vela.tflite"
    model.write_bytes(b"not read by the test double")
    ifm_path = tmp_path / "ifm.bin"
    ifm_path.write_bytes(ifm)
    return FvpCommand(target, fake.path, fake.runner, model, ifm_path, tmp_path / "ofm.bin",
                      ofm_bytes, macs, timelimit_s=60)  # fmt: skip


def _run(fake, tmp_path, **kw):
    cmd = _cmd(fake, tmp_path, **kw)
    return fvp_backend.run_inference(cmd, ifm_bytes=cmd.ifm.stat().st_size, timeout_s=60)


# ---- process handling -------------------------------------------------------------------------


def test_success_with_dump(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs), dump_hex=bytes(range(12)).hex())
    run = _run(fake, tmp_path)
    assert run.outcome.returncode == 0 and not run.outcome.timed_out
    assert run.ofm == bytes(range(12))
    assert run.counters == fvp_backend.NpuCounters(680611, 561, 681172, 217385, 82607, 59608, "mlek-text-2021")
    assert run.log.stat.simulated_time_s == 2.958458
    assert fake.argv() == build_argv(_cmd(fake, tmp_path))[1:]
    assert fake.ifm_seen() == b"\x01" * 490


def test_success_with_mlia_metrics(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs, "mlia_runner_metrics_b64_fixture.txt"), dump_hex="00" * 12)
    run = _run(fake, tmp_path)
    assert run.counters == fvp_backend.NpuCounters(1, 2, 3, 4, 5, 6, "mlia-metrics")


def test_crash(fake, tmp_path, fvp_logs):
    fake.configure(log="INFO - Running inference\n", mode="crash")
    with pytest.raises(BackendError, match=r"exited with code -11: INFO - Running inference"):
        _run(fake, tmp_path)


def test_nonzero_exit_is_a_failure_even_with_counters(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs), dump_hex="00" * 12, exit_code=3)
    with pytest.raises(BackendError, match="exited with code 3"):
        _run(fake, tmp_path)


def test_hang_is_killed_with_its_whole_group(fake, tmp_path):
    fake.configure(log="INFO - Running inference\n", mode="hang")
    start = time.monotonic()
    outcome = run_process(build_argv(_cmd(fake, tmp_path)), timeout_s=2.0)
    assert outcome.timed_out and outcome.returncode is None
    assert "Running inference" in outcome.output
    assert time.monotonic() - start < 15
    pids = fake.pids()
    assert pids[0] == outcome.pid
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "an FVP process or its child outlived the timeout"


def test_hang_through_the_backend(fake, tmp_path, monkeypatch):
    fake.configure(log="", mode="hang")
    monkeypatch.setattr(fvp_backend, "HOST_TIMEOUT_GRACE_S", 0.0)
    cmd = _cmd(fake, tmp_path)
    with pytest.raises(BackendError, match=r"did not finish within 1.5 s.*process group"):
        fvp_backend.run_inference(cmd, ifm_bytes=490, timeout_s=1.5)
    assert not any(_alive(p) for p in fake.pids())


def test_exit_zero_with_an_error_line(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs).replace(OFM_LINE, "ERROR - Inference failed.\n")
    fake.configure(log=log, dump_hex="00" * 12, exit_code=0)
    with pytest.raises(BackendError, match="ERROR - Inference failed."):
        _run(fake, tmp_path)


def test_mac_mismatch(fake, tmp_path, fvp_logs):
    fake.configure(log=fixture_body(fvp_logs, "mlek_npu_config_mismatch_error.txt"), exit_code=0)
    with pytest.raises(BackendError, match="emulates 256 MACs/cycle but the model was compiled for 128"):
        _run(fake, tmp_path)


def test_runner_banner_with_other_macs(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs).replace("MACs/cc:    128", "MACs/cc:    256")
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="256 MACs/cc but ethosu.num_macs=128"):
        _run(fake, tmp_path)


def test_missing_dump(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs))  # no dump_hex: the file is never written
    with pytest.raises(BackendError, match="wrote no output dump"):
        _run(fake, tmp_path)


def test_short_dump(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs), dump_hex="00" * 11)
    with pytest.raises(BackendError, match="11 bytes, expected 12"):
        _run(fake, tmp_path)


def test_log_reports_other_output_size(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs).replace("{{OFM_BYTES}}", "24")
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="copied 24 output bytes but the model's outputs are 12"):
        _run(fake, tmp_path)


def test_input_not_read_means_random_data(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs).replace(IFM_LINE, ""), dump_hex="00" * 12)
    with pytest.raises(BackendError, match="random data"):
        _run(fake, tmp_path)


def test_total_below_active(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs).replace("NPU TOTAL cycles: 681172", "NPU TOTAL cycles: 680000")
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match=r"NPU TOTAL \(680000\) < NPU ACTIVE \(680611\)"):
        _run(fake, tmp_path)


def test_counters_missing(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs, "mlek_21.03_kws_dscnn_old_format.txt")
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="lacks NPU TOTAL"):
        _run(fake, tmp_path)


def test_no_counters_at_all(fake, tmp_path, fvp_logs):
    log = IFM_LINE + fixture_body(fvp_logs, "fvp_stat_corstone300_tflm_mobilenet_tail.txt")
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="no PMU counters.*timelimit of 60 s"):
        _run(fake, tmp_path)


def test_fvp_that_cannot_start_is_unavailable(fake, tmp_path, fvp_logs):
    fake.configure(log=fixture_body(fvp_logs, "fvp_error_missing_libpython39.txt"), exit_code=127)
    with pytest.raises(BackendUnavailable, match="libpython3.9.*PYTHONHOME.*fvp doctor"):
        _run(fake, tmp_path)


def test_failure_keeps_the_console_log(fake, tmp_path, fvp_logs):
    fake.configure(log=fixture_body(fvp_logs, "mlek_npu_config_mismatch_error.txt"))
    with pytest.raises(BackendError) as e:
        _run(fake, tmp_path)
    saved = Path(str(e.value).rsplit("console log: ", 1)[1].rstrip(")"))
    assert "NPU config mismatch" in saved.read_text()


# ---- the whole backend: real Vela compile, test-double FVP ---------------------------------------


def test_measure_end_to_end(fake, tmp_path, fvp_logs, int8io_model):
    from ethos_kws.backends.fvp import measure
    from ethos_kws.vela import compile_model

    dump = np.arange(-6, 6, dtype=np.int8)
    fake.configure(log=success_log(fvp_logs), dump_hex=dump.tobytes().hex())
    x = (np.arange(490, dtype=np.int64) % 256 - 128).astype(np.int8).reshape(1, 490)
    m = measure(int8io_model, "u55-128", fvp=fake.path, runner=fake.runner, inputs=[x])
    assert (m.npu_active_cycles, m.npu_idle_cycles, m.npu_total_cycles) == (680611, 561, 681172)
    assert (m.axi0_read_bytes, m.axi0_write_bytes, m.axi1_read_bytes) == (217385 * 8, 82607 * 8, 59608 * 8)
    assert m.inference_time_ms == pytest.approx(681172 / 500e6 * 1e3)
    assert m.memory_mode == "Shared_Sram" and m.system_config == "Ethos_U55_High_End_Embedded"
    assert m.fvp_version == "11.24.13" and m.fvp_source == "--fvp"
    assert m.runner_source == "--runner" and m.vela_version == "5.2.0"
    assert m.fvp_simulated_time_s == 2.958458
    np.testing.assert_array_equal(m.outputs[0].data, dump.reshape(1, 12))
    assert fake.ifm_seen() == x.tobytes()
    compiled = compile_model(int8io_model, "u55-128", memory_mode="Shared_Sram")
    assert m.compiled_model == compiled.compiled_model
    assert m.vela_over_fvp_cycles == pytest.approx(compiled.cycles_npu / 680611)
    assert f"{compiled.compiled_model}@0x90000000" in fake.argv()
    assert "ethosu.num_macs=128" in fake.argv()
    d = m.to_dict()
    assert d["npu_total_cycles"] == 681172 and d["outputs"][0]["data"] == dump.tolist()
    json.dumps(d)


def test_u65_uses_the_384k_mode_and_16_byte_beats(fake, tmp_path, fvp_logs, int8io_model):
    from ethos_kws.backends import create_backend

    log = success_log(fvp_logs).replace("MACs/cc:    128", "MACs/cc:    256")
    fake.configure(log=log, dump_hex="00" * 12)
    b = create_backend("fvp", int8io_model, accel="u65-256", fvp=str(fake.path),
                       runner=str(fake.runner))  # fmt: skip
    assert b.compiled.memory_mode == "Dedicated_Sram_384KB"
    result = b.run([np.zeros((1, 490), np.int8)])
    fvp = result.extra["fvp"]
    assert fvp["axi0_read_bytes"] == 217385 * 16 and fvp["memory_mode"] == "Dedicated_Sram_384KB"
    # NPU time, not the host's: Ethos_U65_High_End runs at 1 GHz
    assert result.inference_time_ms == pytest.approx(681172 / 1e9 * 1e3)
    assert result.inference_time_source == "fvp" and result.host_ms is not None
    assert "ethosu.num_macs=256" in fake.argv()
    assert result.to_dict()["backend"] == "fvp"


def test_bad_inputs_are_user_errors(fake, tmp_path, fvp_logs, int8io_model):
    from ethos_kws.backends.fvp import make_backend
    from ethos_kws.errors import InputDataError

    b = make_backend(int8io_model, accel="u55-128", fvp=fake.path, runner=fake.runner)
    with pytest.raises(InputDataError, match="shape"):
        b.run([np.zeros((1, 491), np.int8)])  # the element count decides, as on every backend
    with pytest.raises(InputDataError, match="int8"):
        b.run([np.zeros((1, 490), np.float32)])


def test_other_memory_mode_is_refused(fake, int8io_model):
    from ethos_kws.backends.fvp import make_backend
    from ethos_kws.errors import UserError

    with pytest.raises(UserError, match="needs Vela memory mode 'Shared_Sram'"):
        make_backend(int8io_model, accel="u55-128", memory_mode="Sram_Only", fvp=fake.path,
                     runner=fake.runner)  # fmt: skip


# ---- blobs ------------------------------------------------------------------------------------


def test_input_blob_is_little_endian_in_input_order():
    from ethos_kws.backends.base import TensorSpec

    specs = [TensorSpec("a", (2,), "int16"), TensorSpec("b", (1, 3), "int8")]
    blob = fvp_backend.input_blob([np.array([1, -2], np.int16), np.array([[3, 4, -5]], np.int8)], specs)
    assert blob == bytes([0x01, 0x00, 0xFE, 0xFF, 0x03, 0x04, 0xFB])


def test_split_outputs_in_output_order():
    from ethos_kws.backends.base import TensorSpec

    specs = [TensorSpec("x", (1, 2), "int8"), TensorSpec("y", (1,), "int32")]
    out = fvp_backend.split_outputs(bytes([0xFF, 0x02, 0x01, 0x00, 0x00, 0x80]), specs)
    assert out[0].data.tolist() == [[-1, 2]] and out[1].data.tolist() == [-(2**31) + 1]
    with pytest.raises(BackendError, match="need 6"):
        fvp_backend.split_outputs(b"\x00" * 5, specs)


def test_two_core_config_may_report_macs_per_core(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs).replace("MACs/cc:    128", "MACs/cc:    256")
    fake.configure(log=log, dump_hex="00" * 12)
    cmd = _cmd(fake, tmp_path, accel="u65-512")
    run = fvp_backend.run_inference(cmd, ifm_bytes=490, timeout_s=60, macs_per_core=256)
    assert run.counters.total_cycles == 681172
    with pytest.raises(BackendError, match="256 MACs/cc but ethosu.num_macs=512"):
        fvp_backend.run_inference(cmd, ifm_bytes=490, timeout_s=60)


def test_runner_with_another_memory_map(fake, tmp_path, fvp_logs):
    log = success_log(fvp_logs).replace("copied to 0x93000000", "copied to 0x70000000")
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="other addresses"):
        _run(fake, tmp_path)


def test_negative_counter(fake, tmp_path, fvp_logs):
    import base64

    doc = [{"profiling_group": "Inference", "count": 1, "samples": [
        {"name": n, "value": [v]} for n, v in [
            ("NPU ACTIVE", 10), ("NPU IDLE", -1), ("NPU TOTAL", 10),
            ("NPU AXI0_RD_DATA_BEAT_RECEIVED", 1), ("NPU AXI0_WR_DATA_BEAT_WRITTEN", 1),
            ("NPU AXI1_RD_DATA_BEAT_RECEIVED", 1)]]}]  # fmt: skip
    metrics = "<metrics>" + base64.b64encode(json.dumps(doc).encode()).decode() + "</metrics>\n"
    fake.configure(log=IFM_LINE + metrics + OFM_LINE, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="negative PMU counter.*NPU IDLE"):
        _run(fake, tmp_path)


# ---- Corstone-320 / Ethos-U85 through the same test double ----------------------------------------

U85_COUNTERS = "mlek_new_format_u85.txt"


def u85_log(fvp_logs: Path, macs: int = 256) -> str:
    """A U85 run: the recorded banner with the U85 size, the real U85 profile block, the stat tail."""
    return success_log(fvp_logs, U85_COUNTERS).replace("MACs/cc:    128", f"MACs/cc:    {macs}")


@pytest.mark.parametrize("accel", ["u85-128", "u85-256", "u85-512", "u85-1024", "u85-2048"])
def test_u85_run_reads_sram_and_ext_counters(fake, tmp_path, fvp_logs, accel):
    macs = int(accel.split("-")[1])
    fake.configure(log=u85_log(fvp_logs, macs), dump_hex="00" * 12)
    run = _run(fake, tmp_path, accel=accel)
    # axi0 = the SRAM port, axi1 = the external port (Vela's axi0_port=Sram / axi1_port=Dram)
    assert run.counters == fvp_backend.NpuCounters(48560, 526, 49086, 143, 135, 7838, "mlek-text")
    argv = fake.argv()
    assert argv == build_argv(_cmd(fake, tmp_path, accel=accel))[1:]
    assert f"mps4_board.subsystem.ethosu.num_macs={macs}" in argv
    assert fake.dump_instance() == "mps4_board.subsystem.cpu0"


def test_u85_run_without_ext_counters_fails(fake, tmp_path, fvp_logs):
    log = "".join(l for l in u85_log(fvp_logs).splitlines(keepends=True) if "EXT_" not in l)
    fake.configure(log=log, dump_hex="00" * 12)
    with pytest.raises(BackendError, match="lacks NPU EXT_RD_DATA_BEAT_RECEIVED, NPU EXT_WR_DATA_BEAT_WRITTEN"):
        _run(fake, tmp_path, accel="u85-256")


def test_u55_counters_on_a_u85_run_are_not_taken(fake, tmp_path, fvp_logs):
    fake.configure(log=success_log(fvp_logs).replace("MACs/cc:    128", "MACs/cc:    256"), dump_hex="00" * 12)
    with pytest.raises(BackendError, match="lacks NPU SRAM_RD_DATA_BEAT_RECEIVED"):
        _run(fake, tmp_path, accel="u85-256")


def test_u85_axi_port_mismatch(fake, tmp_path, fvp_logs):
    line = "E: ethosu_driver.c:410: NPU config mismatch. npu.num_axi_sram=2, optimizer.num_axi_sram=4\n"
    fake.configure(log=line + "ERROR - Invoke failed.\n")
    with pytest.raises(BackendError, match="2 SRAM AXI port.*compiled for 4.*Sram_ports_used"):
        _run(fake, tmp_path, accel="u85-256")


def test_u85_end_to_end(fake, tmp_path, fvp_logs, int8io_model):
    from ethos_kws.backends import create_backend
    from ethos_kws.vela import compile_model

    fake.configure(log=u85_log(fvp_logs), dump_hex="00" * 12)
    b = create_backend("fvp", int8io_model, accel="u85-256", fvp=str(fake.path), runner=str(fake.runner))
    assert b.target.platform == "corstone-320"
    assert (b.compiled.system_config, b.compiled.memory_mode) == ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB")
    result = b.run([np.zeros((1, 490), np.int8)])
    fvp = result.extra["fvp"]
    assert fvp["platform"] == "corstone-320" and fvp["num_macs"] == 256
    assert (fvp["axi0_read_bytes"], fvp["axi0_write_bytes"], fvp["axi1_read_bytes"]) == (143 * 16, 135 * 16, 7838 * 16)
    assert result.inference_time_ms == pytest.approx(49086 / 1e9 * 1e3)  # NPU time; Ethos_U85_SYS_DRAM_Mid: 1 GHz
    compiled = compile_model(int8io_model, "u85-256", memory_mode="Dedicated_Sram_384KB")
    assert fvp["vela_over_fvp_cycles"] == pytest.approx(compiled.cycles_npu / 48560)
    assert f"{compiled.compiled_model}@0x90000000" in fake.argv()


def test_sweep_measure_and_run_feed_the_same_seeded_input(fake, int8io_model, monkeypatch):
    """`sweep --measure fvp` (measurement.measure) and `run --backend fvp --seed 0` use one
    generator: inputs.random_inputs over the quantized range (issue 9 item 8)."""
    from ethos_kws.backends.fvp import backend as fvp_be
    from ethos_kws.backends.fvp import measurement
    from ethos_kws.inputs import quantized_input_specs, random_inputs

    seen = []
    monkeypatch.setattr(fvp_be.FvpBackend, "measure", lambda self, inputs: seen.append(inputs))
    measurement.measure(int8io_model, "u55-128", fvp=fake.path, runner=fake.runner, seed=0)
    b = fvp_be.make_backend(int8io_model, fvp=fake.path, runner=fake.runner)
    specs = list(b.input_specs)
    expected = random_inputs(specs, 0, quantized_input_specs(int8io_model, specs))  # what `run` feeds
    assert len(seen) == 1 and all(np.array_equal(x, y) for x, y in zip(seen[0], expected))
    assert not hasattr(fvp_be, "seeded_inputs") and not hasattr(measurement, "seeded_inputs")
