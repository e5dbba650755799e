"""Roofline: per-layer bytes add up to Vela's totals, the roofs are the ini's bandwidths, flash-bound
layers sit on the flash roof, and the floors explain why u55-256 runs 5.3x off its compute bound."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from ethos_kws.accel import ACCELERATORS
from ethos_kws.report import load_results, write_report
from ethos_kws.report.roofline import ini_bytes_per_cycle, layer_points, network_floors, roofs, summary_rows
from ethos_kws.sweeps import sweep


@pytest.fixture(scope="module")
def run(tmp_path_factory, int8io_model):
    out = tmp_path_factory.mktemp("roofline") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        sweep(int8io_model, accels="all", out_dir=out)
    return out


def _summary(run, accel):
    [path] = (run / accel).glob("*_summary_*.csv")
    with path.open(newline="") as f:
        return next(csv.DictReader(f))


def test_layer_bytes_add_up_to_velas_totals(run):
    doc = load_results(run)
    assert [r["accel"] for r in doc.results] == list(ACCELERATORS)
    for r in doc.results:
        s = _summary(run, r["accel"])
        for memory in ("sram", "dram", "on_chip_flash", "off_chip_flash"):
            ours = sum(x[f"{memory}_read_bytes"] + x[f"{memory}_write_bytes"] for x in r["layers"])
            assert ours == int(s[f"{memory}_total_bytes"]), (r["accel"], memory)


def test_roofs_are_the_ini_bandwidths(run):
    for r in load_results(run).results:
        ini = ini_bytes_per_cycle(r)
        assert roofs(r) and all(ini[m] == pytest.approx(bw) for m, bw in roofs(r).items()), r["accel"]
    u55 = next(r for r in load_results(run).results if r["accel"] == "u55-256")
    assert roofs(u55) == {"sram": 8.0, "off_chip_flash": 1.0}  # 64-bit AXI, flash at 1/8 clock


def test_flash_bound_layers_sit_on_the_flash_roof(run):
    found = 0
    for r in load_results(run).results:
        bw = roofs(r).get("off_chip_flash")
        for p in layer_points(r):
            if p["bound_by"] == "off-chip flash":
                roof = bw * p["intensity_by_memory"]["off_chip_flash"]
                assert p["achieved_macs_per_cycle"] == pytest.approx(roof, rel=1e-3)
                found += 1
    assert found >= 5


def test_u55_256_runs_5_3x_off_compute_because_of_flash(run):
    rows = {row["config"]: row for row in summary_rows(load_results(run))}
    u = rows["u55-256"]
    assert u["over_compute"] == pytest.approx(5.34, abs=0.01)
    assert u["bound"] == "off-chip flash" and u["largest_floor"] == "off-chip flash"
    f = network_floors(next(r for r in load_results(run).results if r["accel"] == "u55-256"))
    assert f["floors"]["off-chip flash"] == f["bytes"]["off-chip flash"] == 483_888  # 1 B/cycle
    assert "5.3× its compute floor" in u["explanation"] and "off-chip flash" in u["explanation"]
    assert rows["u55-32"]["bound"] == "compute" and rows["u65-512"]["bound"] == "DRAM"


def test_report_has_roofline_section_and_plot(run, tmp_path):
    dest = write_report(run, tmp_path / "r")
    md = (dest / "report.md").read_text()
    assert "## Roofline: compute and memory bounds" in md and "![Roofline per configuration](roofline.png)" in md
    with Image.open(io.BytesIO((dest / "roofline.png").read_bytes())) as im:
        im.load()
        assert im.width > 800


def test_legacy_core_has_no_bytes_and_no_floors_guessed(int8io_model):
    from ethos_kws.vela import compile_model

    r = compile_model(int8io_model, "u55-64", legacy_core=True).to_dict()
    assert sum(x["cycles"] for x in r["layers"]) == r["cycles_total"]
    assert all(x["sram_read_bytes"] is None for x in r["layers"])
    assert layer_points(r) == [] and set(network_floors(r)["floors"]) == {"compute"}
