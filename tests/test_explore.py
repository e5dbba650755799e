"""Issue 12 item 3 and 5: ``ethos-kws explore``, its Pareto front, budget and bad input."""

from __future__ import annotations

import csv
import json

import pytest

import ethos_kws.vela as vela_mod
from ethos_kws.cli import main
from ethos_kws.errors import UserError
from ethos_kws.explore import (
    EXPLORE_CSV_COLUMNS,
    ExploreResult,
    explore,
    pareto_flags,
    parse_axes,
    parse_budget,
    parse_size,
)


def test_pareto_flags_keep_exactly_the_non_dominated():
    costs = [(1, 5), (2, 2), (5, 1), (3, 3), (2, 2), None, (1, 6)]
    assert pareto_flags(costs) == [True, True, True, False, True, False, False]


@pytest.mark.parametrize("text, value", [("65536", 65536), ("64KiB", 65536), ("1MiB", 1 << 20), ("64 kib", 65536),
                                         ("1.5KiB", 1536)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "64 GiB", "-1", "0", "x", "0.3"])
def test_bad_sizes(text):
    with pytest.raises(UserError):
        parse_size(text)


def test_budgets():
    assert parse_budget("2", "--max-time-ms", "ms") == 2.0 and parse_budget("2ms", "--max-time-ms", "ms") == 2.0
    for bad in ("-1", "2s", "fast", "64MiB"):
        with pytest.raises(UserError):
            parse_budget(bad, "--max-sram-kib", "KiB")


@pytest.fixture(scope="module")
def dscnn_explore(tmp_path_factory, request):
    model = request.getfixturevalue("int8io_model")
    out = tmp_path_factory.mktemp("explore") / "out"
    axes = parse_axes(accel="u55-64,u55-128", memory_mode="Shared_Sram,Dedicated_Sram", optimise="Performance,Size")
    with pytest.MonkeyPatch.context() as mp:  # the cache conftest gives every test (module scope runs first)
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield explore(model, axes, max_time_ms=3.0, max_sram_kib=64, out_dir=out, jobs=2)


@pytest.fixture(scope="module")
def int8io_model(shared_data):
    return shared_data / "models" / "ds_cnn_l_int8io.tflite"


def test_dscnn_size_against_performance_on_u55_128(dscnn_explore):
    by = {(p.accel, p.memory_mode, p.optimise): p for p in dscnn_explore.points}
    size, perf = by["u55-128", "Shared_Sram", "Size"].result, by["u55-128", "Shared_Sram", "Performance"].result
    assert 35_000 < size.sram_bytes < 39_000 and 1.2e6 < size.cycles_total < 1.35e6
    assert 108_000 < perf.sram_bytes < 116_000 and 0.63e6 < perf.cycles_total < 0.71e6
    assert by["u55-128", "Shared_Sram", "Size"].pareto and by["u55-128", "Shared_Sram", "Performance"].pareto
    # U55 cannot put its arena on AXI1 (flash): failed points, kept, with the reason and setting
    failed = by["u55-128", "Dedicated_Sram", "Size"]
    assert failed.status == "failed" and "Dedicated_Sram" in failed.error and "arena_mem_area" in failed.error


def test_budget_lists_cheapest_first(dscnn_explore):
    chosen = dscnn_explore.within_budget()
    assert chosen and all(p.result.inference_time_ms <= 3.0 and p.result.sram_bytes <= 64 * 1024 for p in chosen)
    keys = [(p.result.macs_per_cycle, p.result.sram_bytes) for p in chosen]
    assert keys == sorted(keys)
    others = [p for p in dscnn_explore.ok() if p not in chosen]
    assert all(p.meets_budget is False for p in others)


def test_files_hold_every_point(dscnn_explore):
    out = dscnn_explore.out_dir
    doc = json.load(open(f"{out}/explore.json"))
    assert doc["schema_version"] >= 1 and doc["kind"] == "explore"
    again = ExploreResult.from_dict(doc)
    assert [p.status for p in again.points] == [p.status for p in dscnn_explore.points]
    with open(f"{out}/explore.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and tuple(rows[0]) == EXPLORE_CSV_COLUMNS
    assert {r["status"] for r in rows} == {"ok", "failed"}
    assert all(r["error"] and not r["cycles_total"] for r in rows if r["status"] == "failed")
    assert all(r["cycles_total"] and r["vela_ini_sha256"] for r in rows if r["status"] == "ok")


def test_a_rerun_compiles_nothing(dscnn_explore, int8io_model, monkeypatch):
    def no_vela(*a, **k):
        raise AssertionError("Vela ran on a cached point")

    monkeypatch.setattr(vela_mod, "_run_vela_into_cache", no_vela)
    axes = parse_axes(accel="u55-64,u55-128", memory_mode="Shared_Sram,Dedicated_Sram", optimise="Performance,Size")
    again = explore(int8io_model, axes, jobs=1)
    assert [p.result.cycles_total if p.result else None for p in again.points] == \
        [p.result.cycles_total if p.result else None for p in dscnn_explore.points]


def test_cli_budget_nobody_meets_is_exit_1(int8io_model, tmp_path, capsys):
    rc = main(["explore", str(int8io_model), "--accel", "u55-128", "--optimise", "Size,Performance",
               "--max-time-ms", "0.01", "--out", str(tmp_path / "e")])
    out = capsys.readouterr().out
    assert rc == 1 and "no point meets time <= 0.01 ms" in out and "Pareto front" in out


@pytest.mark.parametrize("argv, match", [
    (["--optimise", ","], "names no value"),
    (["--accel", "u55-999"], "unknown accelerator"),
    (["--memory-mode", "Nope"], "unknown memory mode"),
    (["--system-config", "Nope"], "unknown system config"),
    (["--tensor-allocator", "Best"], "unknown --tensor-allocator"),
    (["--arena-cache-size", "64GB!"], "is not a size"),
    (["--max-sram-kib", "-5"], "must not be negative"),
    (["--max-time-ms", "3s"], "the unit of this flag is ms"),
    (["--arena-cache-size", ",".join(str(1024 * (i + 1)) for i in range(500)), "--optimise", "Size,Performance"],
     "over 10,000"),
])
def test_bad_input_is_one_line_exit_2(int8io_model, tmp_path, capsys, argv, match):
    out = tmp_path / "e"
    assert main(["explore", str(int8io_model), *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not out.exists()


def test_report_draws_the_exploration_page(dscnn_explore, tmp_path, capsys):
    dest = tmp_path / "rep"
    assert main(["report", str(dscnn_explore.out_dir), "--out", str(dest)]) == 0
    md = (dest / "report.md").read_text()
    html = (dest / "index.html").read_text()
    assert "## Pareto front" in md and "## Budget" in md and "failed point" in md
    assert "u55-128 / Shared\\_Sram / Size" in md  # a front row, through the one renderer's escaping
    assert (dest / "explore_sram_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    assert "Pareto front" in html and "explore_sram_vs_time.png" in html or "data:image/png" in html
    assert (dest / "explore.json").is_file() and (dest / "explore.csv").is_file()
