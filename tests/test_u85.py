"""Ethos-U85 in the accelerator table, Vela's own ini, sweeps equal to the `vela` CLI, and the
npu-sim gate (U85 is simulated since issue 15)."""

from __future__ import annotations

import csv
import json
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
    for name, cores in zip(U85, (1, 1, 2, 4, 4)):  # regor's ethos_u85.cpp accelerator configs
        acc = ACCELERATORS[name]
        assert acc.vela_config == f"ethos-{name}" and acc.npu == "U85" and acc.cores == cores
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


def test_npusim_runs_u85(int8io_model):
    assert SIMULATED == {"U55": True, "U65": True, "U85": True}
    p = _cli("run", "--backend", "npu-sim", "--accel", "u85-256", "--model", str(int8io_model), "--json")
    assert p.returncode == 0, p.stderr


def test_parity_all_covers_eleven_configurations(int8io_model):
    """Issue 15: `parity --accel all` covers eleven configurations, U85 on npu-sim's U85 part."""
    p = _cli("parity", "--accel", "all", "--vectors", "2", "--model", str(int8io_model), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    text = json.dumps(doc)
    assert all(name in text for name in ACCELERATORS), [n for n in ACCELERATORS if n not in text]


def test_npusim_backend_runs_a_u85_vela_model(int8io_model, tmp_path):
    from ethos_kws.backends import create_backend

    compiled = compile_model(int8io_model, "u85-256", out_dir=tmp_path / "u85").compiled_model
    backend = create_backend("npu-sim", compiled)
    assert backend.executors[0].config.name == "u85-256"


# ---- report: eleven bars grouped by family, where the U85 curve flattens -----------------------


def test_plots_group_and_colour_by_family(int8io_model):
    from ethos_kws.report.plots import FAMILY_COLORS, FAMILY_GAP, _family_colors, _family_x

    rows = ethos_kws.sweep(int8io_model, accels="all").to_dict()["results"]
    xs, colors = _family_x(rows), _family_colors(rows)
    assert len(xs) == 11 and colors.count(FAMILY_COLORS["u85"]) == 5 and len(set(colors)) == 3
    gaps = [round(b - a, 6) for a, b in zip(xs, xs[1:])]
    assert gaps == [1, 1, 1, 1 + FAMILY_GAP, 1, 1 + FAMILY_GAP, 1, 1, 1, 1]


def test_scaling_finds_where_a_curve_flattens():
    from ethos_kws.report.scaling import describe, family_scaling

    def row(accel, macs, cycles, layers):
        return {"accel": accel, "macs_per_cycle": macs, "cycles_total": cycles, "system_config": "S",
                "memory_mode": "M", "optimise": "Performance", "compiler": "regor",
                "layers": [{"name": n, "op": "Conv2D", "cycles": c} for n, c in layers.items()]}

    rows = [row("u85-128", 128, 1000, {"a": 800, "b": 200}), row("u85-256", 256, 600, {"a": 400, "b": 200}),
            row("u85-512", 512, 580, {"a": 390, "b": 195}), row("u55-32", 32, 9, {})]
    (curve,) = family_scaling(rows)  # two U55/U65 sizes or fewer: no curve
    assert curve.family == "u85" and [round(s.gain, 3) for s in curve.steps] == [0.4, 0.033]
    assert curve.flattens_at == "u85-256" and (curve.stuck_layers, curve.layers) == (2, 2)
    assert "flattens at u85-256: u85-512 is only 3.3% faster" in describe(curve)
    assert curve.bounds == {}  # results without Vela's per-layer bound: no claim about why
    for r, kinds in zip(rows, (("compute", "DRAM"),) * 3):
        for layer, kind in zip(r["layers"], kinds):
            layer.update(bound_by=kind, mac_utilization=0.5 if r["accel"] == "u85-256" else 0.25)
    (curve,) = family_scaling(rows)
    assert curve.bounds["compute"].stuck_layers == 1 and curve.bounds["DRAM"].stuck_layers == 1
    text = describe(curve)
    assert "1 compute-bound (67% of the cycles), whose MAC utilization falls from 50% to 25%" in text
    assert "1 DRAM-bound (34% of the cycles): their DRAM traffic does not shrink" in text
    rows[2]["system_config"] = "other"  # another system is another curve
    assert family_scaling(rows) == []


def test_report_states_where_ds_cnn_l_flattens_on_u85(int8io_model, tmp_path):
    from ethos_kws.report import write_report

    out = write_report(ethos_kws.sweep(int8io_model, accels="all").to_dict(), tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "## Scaling with MACs" in md
    assert "The curve flattens at u85-1024: u85-2048 is only 3.1% faster (111,643 to 108,162 cycles)" in md
    # why, from the per-layer bound: DRAM-bound layers whose traffic stays, compute-bound ones
    # whose utilization halves on the wider array
    assert "DRAM-bound (34% of the cycles): their DRAM traffic does not shrink with more MACs" in md
    assert "compute-bound (49% of the cycles), whose MAC utilization falls from 44% to 23%" in md
    assert "by bound: DRAM 51%, compute 49%." in md


def test_an_explicit_system_config_applies_to_every_row_or_fails_it(int8io_model):
    # issue 12 item 2: no silent substitution of a row's default system config
    result = ethos_kws.sweep(int8io_model, accels="u55-128,u65-256,u85-256", system_config="Ethos_U85_SYS_DRAM_High")
    rows = {r.accel: r for r in result.results}
    assert rows["u85-256"].system_config == rows["u65-256"].system_config == "Ethos_U85_SYS_DRAM_High"
    assert "u55-128" not in rows
    (failed,) = result.extra["failed"]
    assert failed["accel"] == "u55-128" and "Ethos_U85_SYS_DRAM_High" in failed["error"]


def test_a_system_config_no_row_can_use_is_refused(int8io_model):
    with pytest.raises(AcceleratorError, match=r"Ethos_U85_SYS_DRAM_Mid.*u55-32 \(Ethos-U55\) cannot use"):
        ethos_kws.sweep(int8io_model, accels="u55", system_config="Ethos_U85_SYS_DRAM_Mid")


def test_configs_lists_eleven_accelerators_and_u85_ports(capsys):
    from ethos_kws.cli import main

    assert main(["configs", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert [a["accel"] for a in doc["accelerators"]] == list(ACCELERATORS) and len(doc["accelerators"]) == 11
    assert doc["vela_ini"] == str(vela_ini_path())
    high = next(s for s in doc["system_configs"] if s["name"] == "Ethos_U85_SYS_DRAM_High")
    assert (high["axi0_ports_used"], high["axi1_ports_used"]) == (4, 2)
    assert main(["configs"]) == 0
    text = capsys.readouterr().out
    assert "u85-2048 ethos-u85-2048  2048 MACs/cycle" in text and "AXI0=Sram (4 ports)" in text
