"""Ethos-U85 in the accelerator table, Vela's own ini, sweeps equal to the `vela` CLI, and the
npu-sim gate for a family the simulator does not execute yet."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ethos_kws
from ethos_kws.accel import (
    ACCELERATORS,
    families,
    get_system_config,
    memory_modes,
    parse_accelerator_list,
    system_configs,
    vela_ini_path,
)
from ethos_kws.backends.npusim.families import SIMULATED
from ethos_kws.errors import AcceleratorError
from ethos_kws.vela import compile_model

U85 = ["u85-128", "u85-256", "u85-512", "u85-1024", "u85-2048"]
KIB = 1024


def test_eleven_accelerators_and_three_families():
    assert len(ACCELERATORS) == 11 and families() == ("u55", "u65", "u85")
    assert [a.name for a in parse_accelerator_list("all")] == list(ACCELERATORS)
    assert [a.name for a in parse_accelerator_list("u85")] == U85
    assert [a.name for a in parse_accelerator_list("u55,u85-256")] == [
        "u55-32", "u55-64", "u55-128", "u55-256", "u85-256"]  # fmt: skip
    for name in U85:
        acc = ACCELERATORS[name]
        assert acc.vela_config == f"ethos-{name}" and acc.npu == "U85" and acc.cores == 1
        assert acc.macs_per_cycle == int(name.split("-")[1]) and acc.axi_bytes_per_beat == 16


def test_the_ini_is_the_one_inside_the_installed_vela():
    import ethosu

    ini = vela_ini_path()
    assert ini == Path(ethosu.__path__[0]) / "config_files" / "Arm" / "vela.ini"
    assert not (Path(__file__).parent.parent / "vela_configs").exists()  # no copy of our own
    for acc in ACCELERATORS.values():  # every default exists in Vela's ini
        get_system_config(acc.default_system_config)
        assert acc.default_memory_mode in memory_modes()


def test_u85_memory_ports_are_read_from_the_ini():
    mid, high = system_configs()["Ethos_U85_SYS_DRAM_Mid"], system_configs()["Ethos_U85_SYS_DRAM_High"]
    assert (mid.axi0_port, mid.axi0_ports_used, mid.axi1_port, mid.axi1_ports_used) == ("Sram", 2, "Dram", 1)
    assert (high.axi0_ports_used, high.axi1_ports_used) == (4, 2) and high.core_clock_hz == 1e9
    assert system_configs()["Ethos_U65_High_End"].axi0_ports_used == 1  # absent = one port


def test_defaults_match_mlia_target_profiles_where_they_agree():
    """MLIA's memory modes match everywhere; for U85 it picks a system config per size (Low for
    128, Mid for 256/512, High for 1024/2048) while ethos-kws keeps one system (Mid, Vela's own
    U85 default) so the five sizes are compared on the same memories."""
    import mlia

    profiles = Path(mlia.__file__).parent / "resources" / "target_profiles"
    seen = 0
    for path in sorted(profiles.glob("ethos-u*.toml")):
        config = tomllib.loads(path.read_text())["config"]
        acc = ACCELERATORS[path.stem.removeprefix("ethos-")]
        assert config["memory_mode"] == acc.default_memory_mode, path.name
        if acc.npu != "U85" or acc.name in ("u85-256", "u85-512"):
            assert config["system_config"] == acc.default_system_config, path.name
        assert config["system_config"] in system_configs()
        seen += 1
    assert seen == 9


def test_u55_on_a_dram_system_config_is_refused_per_row(int8io_model):
    with pytest.raises(AcceleratorError, match=r"u55-128 \(Ethos-U55\) cannot use"):
        compile_model(int8io_model, "u55-128", system_config="Ethos_U85_SYS_DRAM_Mid")


def _vela_cli(model: Path, acc: str, system_config: str, memory_mode: str, out: Path) -> dict:
    vela = shutil.which("vela", path=str(Path(sys.executable).parent)) or shutil.which("vela")
    assert vela, "the vela CLI of the installed ethos-u-vela is missing"
    subprocess.run(
        [vela, str(model), "--accelerator-config", f"ethos-{acc}", "--config", str(vela_ini_path()),
         "--system-config", system_config, "--memory-mode", memory_mode, "--output-dir", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (summary,) = out.glob("*_summary_*.csv")
    with summary.open(newline="") as f:
        return next(csv.DictReader(f))


@pytest.mark.parametrize("acc", ["u85-128", "u85-512", "u85-2048"])
def test_sweep_rows_equal_the_vela_cli(int8io_model, tmp_path, acc):
    """The same ini, system config and memory mode as ethos-kws uses, through Vela's own CLI."""
    row = next(r for r in ethos_kws.sweep(int8io_model, accels="u85").to_dict()["results"]
               if r["accel"] == acc)
    assert (row["system_config"], row["memory_mode"]) == ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram")
    cli = _vela_cli(int8io_model, acc, row["system_config"], row["memory_mode"], tmp_path)
    assert row["cycles_total"] == round(float(cli["cycles_total"]))
    assert row["cycles_npu"] == round(float(cli["cycles_npu"]))
    assert row["sram_bytes"] == round(float(cli["sram_memory_used"]) * KIB)
    assert row["dram_bytes"] == round(float(cli["dram_memory_used"]) * KIB)
    assert row["core_clock_hz"] == 1e9 and row["npu_ops"] > 0 and row["cpu_ops"] == 0


def test_u85_cycles_fall_with_macs_then_flatten(int8io_model):
    rows = {r.accel: r for r in ethos_kws.sweep(int8io_model, accels="u85").results}
    cycles = [rows[a].cycles_total for a in U85]
    assert cycles == sorted(cycles, reverse=True) and len(set(cycles)) == 5
    # doubling the MACs buys >= 30% up to 1024, then under 5%: DRAM-bound layers set the floor
    gains = [1 - b / a for a, b in zip(cycles, cycles[1:])]
    assert all(g > 0.30 for g in gains[:3]) and gains[3] < 0.05, gains


# ---- npu-sim gate -----------------------------------------------------------------------------


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ethos_kws", *argv], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize("argv", [
    ("run", "--backend", "npu-sim", "--accel", "u85-256"),
    ("parity", "--accel", "u85-256", "--vectors", "2"),
    ("parity", "--accel", "all", "--vectors", "2"),
], ids=["run", "parity", "parity-all"])  # fmt: skip
def test_npusim_refuses_u85_with_one_line(int8io_model, argv):
    assert SIMULATED == {"U55": True, "U65": True, "U85": False}  # flip U85 when it is simulated
    p = _cli(*argv, "--model", str(int8io_model))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert "does not simulate the Ethos-U85 command stream yet" in lines[0] and "u85-" in lines[0]


def test_npusim_refuses_a_u85_vela_model(int8io_model, tmp_path):
    from ethos_kws.backends import create_backend
    from ethos_kws.backends.npusim.families import NotSimulated

    compiled = compile_model(int8io_model, "u85-256", out_dir=tmp_path / "u85").compiled_model
    with pytest.raises(NotSimulated, match="compiled for Ethos-U85"):
        create_backend("npu-sim", compiled)
