"""Vela adapter, cache and sweep — Vela runs for real, in-process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import ethos_kws
from ethos_kws import vela as vela_mod
from ethos_kws.accel import ACCELERATORS, get_accelerator, parse_accelerator_list
from ethos_kws.cli import main
from ethos_kws.errors import AcceleratorError, CompileError
from ethos_kws.vela import compile_cache_dir, compile_model, make_spec

CONTRACT = (
    "accel system_config memory_mode optimise core_clock_hz cycles_npu cycles_total inference_time_ms "
    "inferences_per_second sram_bytes flash_bytes dram_bytes npu_ops cpu_ops macs mac_utilization "
    "encoded_weights_bytes original_weights_bytes vela_version model_sha256 compiled_model layers"
).split()


def test_accelerator_names():
    assert [a.name for a in parse_accelerator_list("all")] == list(ACCELERATORS)
    assert get_accelerator("ethos-u55-128") is get_accelerator("u55-128")
    assert get_accelerator("Ethos-U65-512").cores == 2
    with pytest.raises(AcceleratorError, match="unknown accelerator 'u55-100'.*u55-32"):
        get_accelerator("u55-100")


def test_defaults_and_overrides(int8io_model):
    s = make_spec(int8io_model, "u55-128")
    assert (s.system_config, s.memory_mode) == ("Ethos_U55_High_End_Embedded", "Shared_Sram")
    s = make_spec(int8io_model, "u65-256")
    assert (s.system_config, s.memory_mode) == ("Ethos_U65_High_End", "Dedicated_Sram")
    s = make_spec(int8io_model, "u55-64", system_config="Ethos_U55_Deep_Embedded", memory_mode="Sram_Only")
    assert (s.system_config, s.memory_mode) == ("Ethos_U55_Deep_Embedded", "Sram_Only")
    with pytest.raises(AcceleratorError, match="unknown system config"):
        make_spec(int8io_model, "u55-64", system_config="Nope")
    with pytest.raises(AcceleratorError, match="unknown memory mode"):
        make_spec(int8io_model, "u55-64", memory_mode="Nope")
    with pytest.raises(AcceleratorError, match="DRAM"):
        make_spec(int8io_model, "u55-64", system_config="Ethos_U65_High_End")


def test_compile_contract_and_units(int8io_model, tmp_path):
    r = compile_model(int8io_model, "u55-128", out_dir=tmp_path / "out")
    d = r.to_dict()
    assert set(CONTRACT) <= set(d)
    assert r.cpu_ops == 0 and r.npu_ops > 0 and r.vela_version == "5.2.0"
    assert r.core_clock_hz == 500e6
    # time follows from cycles at the core clock; bytes are whole KiB multiples of Vela's figures
    assert r.inference_time_ms == pytest.approx(r.cycles_total / r.core_clock_hz * 1e3, rel=1e-6)
    assert r.mac_utilization == pytest.approx(r.macs / (r.cycles_total * 128))
    summary = next((tmp_path / "out").glob("*_summary_*.csv"))
    row = next(csv.DictReader(summary.open()))
    assert r.sram_bytes == round(float(row["sram_memory_used"]) * 1024)
    assert r.flash_bytes == round(float(row["off_chip_flash_memory_used"]) * 1024) and r.dram_bytes == 0
    assert Path(r.compiled_model).parent == (tmp_path / "out").resolve()
    assert json.loads((tmp_path / "out" / "compile.json").read_text())["cycles_total"] == r.cycles_total
    assert (tmp_path / "out" / "vela_output.txt").read_text().count("NPU operators") == 1
    assert sum(layer.macs for layer in r.layers) == pytest.approx(r.macs, rel=0.01)


def test_float_io_model_reports_two_cpu_ops(float_io_model):
    r = compile_model(float_io_model, "u55-128")
    assert r.cpu_ops == 2 and set(r.cpu_op_names) == {"QUANTIZE", "DEQUANTIZE"}


def test_u65_uses_dram_not_flash(int8io_model):
    r = compile_model(int8io_model, "u65-512")
    assert r.memory_mode == "Dedicated_Sram" and r.flash_bytes == 0 and r.dram_bytes > 0
    assert r.core_clock_hz == 1e9


def test_cache_key_covers_every_input(int8io_model, tmp_path, monkeypatch):
    base = make_spec(int8io_model, "u55-128")
    variants = [
        make_spec(int8io_model, "u55-256"),
        make_spec(int8io_model, "u55-128", optimise="Size"),
        make_spec(int8io_model, "u55-128", memory_mode="Sram_Only"),
        make_spec(int8io_model, "u55-128", system_config="Ethos_U55_Deep_Embedded"),
        make_spec(int8io_model, "u55-128", arena_cache_size=65536),
        make_spec(int8io_model, "u55-128", legacy_core=True),
    ]
    base_key = base.cache_key()
    keys = {base_key} | {v.cache_key() for v in variants}
    assert len(keys) == 1 + len(variants)
    monkeypatch.setattr(vela_mod, "vela_version", lambda: "9.9.9")
    assert base.cache_key() != base_key
    monkeypatch.undo()
    ini = tmp_path / "ethos_kws.ini"
    ini.write_text(vela_mod.vela_ini_path().read_text() + "\n; edited\n")
    monkeypatch.setattr(vela_mod, "vela_ini_path", lambda: ini)
    assert base.cache_key() != base_key


def test_cache_reuses_and_failed_compile_leaves_nothing(int8io_model, monkeypatch):
    r1 = compile_model(int8io_model, "u55-64")
    calls = []
    monkeypatch.setattr(vela_mod, "run_vela_contained", lambda argv, log_path, what: calls.append(argv) or "")
    r2 = compile_model(int8io_model, "u55-64")
    assert calls == [] and r2.cycles_total == r1.cycles_total
    # a compile that fails half way leaves no cache entry behind
    before = set(compile_cache_dir().iterdir())

    def boom(argv, log_path, what):
        (Path(argv[argv.index("--output-dir") + 1]) / "partial.tflite").write_bytes(b"x")
        raise CompileError("Vela failed: simulated")

    monkeypatch.setattr(vela_mod, "run_vela_contained", boom)
    with pytest.raises(CompileError):
        compile_model(int8io_model, "u55-32", optimise="Size")
    assert set(compile_cache_dir().iterdir()) == before


def test_vela_refusal_is_a_clear_error(tmp_path):
    from ethos_kws.vela import run_vela

    with pytest.raises(CompileError, match="Vela failed"):
        run_vela([str(tmp_path / "missing.tflite"), "--output-dir", str(tmp_path)])


def test_sweep_eleven_rows_cycles_fall_with_macs(int8io_model, tmp_path):
    s = ethos_kws.sweep(int8io_model, accels="all", out_dir=tmp_path / "run")
    assert [r.accel for r in s.results] == list(ACCELERATORS)
    assert all(r.cpu_ops == 0 for r in s.results)
    u55 = [r.cycles_total for r in s.results if r.accel.startswith("u55")]
    assert u55 == sorted(u55, reverse=True) and len(set(u55)) == 4
    u85 = [r.cycles_total for r in s.results if r.accel.startswith("u85")]
    assert u85 == sorted(u85, reverse=True) and len(set(u85)) == 5
    df = s.to_dataframe()
    assert len(df) == 11 and list(df["accel"]) == list(ACCELERATORS)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["model"]["sha256"] == s.model.sha256 and len(doc["results"]) == 11
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert [int(r["cycles_total"]) for r in rows] == [r.cycles_total for r in s.results]
    for r in s.results:
        assert Path(r.compiled_model).is_file() and Path(r.compiled_model).parent.name == r.accel


def test_interrupted_sweep_resumes(int8io_model, monkeypatch, tmp_path):
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / "own-cache"))  # nothing from other tests
    ethos_kws.sweep(int8io_model, accels="u55-32,u65-256", optimise="Size", jobs=1)
    compiled = []
    real = vela_mod.run_vela_contained
    monkeypatch.setattr(vela_mod, "run_vela_contained", lambda argv, *a: compiled.append(argv[2]) or real(argv, *a))
    s = ethos_kws.sweep(int8io_model, accels="u55,u65", optimise="Size", jobs=1)
    assert len(s.results) == 6
    assert sorted(compiled) == ["ethos-u55-128", "ethos-u55-256", "ethos-u55-64", "ethos-u65-512"]


def test_sweep_cli_json_and_table(int8io_model, tmp_path, capsys):
    assert main(["sweep", "--model", str(int8io_model), "--accel", "u55-128,u65-512", "--out", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["accel"] for r in doc["results"]] == ["u55-128", "u65-512"]
    assert main(["sweep", "--model", str(int8io_model), "--accel", "u55-128", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "u55-128" in out and "cycles" in out and "derived" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compile", "--accel", "u55-100"], "unknown accelerator"),
        (["sweep", "--accel", "u55-128,x"], "unknown accelerator 'x'"),
        (["compile", "--accel", "u55-128", "--system-config", "Nope"], "unknown system config"),
        (["compile", "--accel", "u55-128", "--memory-mode", "Nope"], "unknown memory mode"),
        (["compile", "--accel", "u55-128", "--arena-cache-size", "-5"], "positive"),
    ],
)
def test_bad_flags_exit_2(argv, message, int8io_model, capsys):
    rc = main(argv + ["--model", str(int8io_model)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_stray_argument_one_line(capsys):
    """A stray positional is reported by the top-level parser: one line, the program named once."""
    with pytest.raises(SystemExit) as e:
        main(["compile", "--accel", "u55-128", "stray.tflite"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("ethos-kws: error: unrecognized arguments: stray.tflite (see ethos-kws --help)"), err


def test_configs_lists_clocks(capsys):
    assert main(["configs", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    clocks = {s["name"]: s["core_clock_hz"] for s in doc["system_configs"]}
    assert clocks["Ethos_U55_High_End_Embedded"] == 500e6 and clocks["Ethos_U65_High_End"] == 1e9
    assert {m["name"] for m in doc["memory_modes"]} >= {"Shared_Sram", "Dedicated_Sram", "Sram_Only"}
    assert [a["accel"] for a in doc["accelerators"]] == list(ACCELERATORS)
    assert main(["configs"]) == 0
    assert "500 MHz" in capsys.readouterr().out


def test_compile_cli_summary(int8io_model, tmp_path, capsys):
    assert main(["compile", "--accel", "ethos-u55-128", "--model", str(int8io_model), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cycles" in out and "ms" in out and (tmp_path / "compile.json").is_file()


def test_offline_sweep_uses_labelled_synthetic_stand_in(tmp_path, capsys):
    """No --model, no $ETHOS_KWS_MODEL, nothing cached, downloads fail: the main job still runs."""
    rc = main(["sweep", "--accel", "u55-128,u65-512", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "SYNTHETIC STAND-IN" in captured.err and "--model" in captured.err
    assert "SYNTHETIC STAND-IN" in captured.out
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["model"]["provenance"] == "synthetic stand-in"
    assert all(r["model_provenance"] == "synthetic stand-in" for r in doc["results"])
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {r["model_provenance"] for r in rows} == {"synthetic stand-in"}
    # the stand-in is clustered to 32 values per kernel, like the real target
    assert all(w["unique_values"] <= 32 for w in doc["model"]["weights"])


def test_arena_cache_size_in_bytes(int8io_model):
    r = compile_model(int8io_model, "u65-256", memory_mode="Dedicated_Sram_384KB")
    assert r.arena_cache_size_bytes == 384 * 1024  # Vela's CSV says 384 here (KiB)
    assert compile_model(int8io_model, "u65-256", arena_cache_size=200_000).arena_cache_size_bytes == 200_000


def test_cpu_only_model_has_no_rate_and_caches_cleanly(tmp_path, capsys):
    """A float model Vela places wholly on the CPU: Vela's summary CSV says inferences_per_second
    = nan (no NPU time). The result says None, the cache entry is reused without a "corrupt"
    warning, and `compile` prints no nan."""
    import numpy as np

    from ethos_kws.synth.flatbuf import Graph, OpDef, TensorDef, serialize

    g = Graph()
    a = g.add_tensor(TensorDef("a", (1, 4), "float32"))
    b = g.add_tensor(TensorDef("b", (1, 4), "float32", data=np.arange(4, dtype=np.float32).reshape(1, 4)))
    y = g.add_tensor(TensorDef("y", (1, 4), "float32"))
    g.add_op(OpDef("ADD", (a, b), (y,)))
    g.inputs, g.outputs = [a], [y]
    model = tmp_path / "float_add.tflite"
    model.write_bytes(serialize(g))
    problems: list[str] = []
    r1 = compile_model(model, "u55-128")
    assert r1.npu_ops == 0 and r1.inference_time_ms == 0 and r1.inferences_per_second is None
    assert vela_mod.cached_result(make_spec(model, "u55-128"), problems) is not None and problems == []
    assert main(["compile", "--accel", "u55-128", "--model", str(model), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert "nan" not in out.out and "no NPU time" in out.out and "corrupt" not in out.err
