"""Issue 12 item 1: the user's own Vela ini (``--config my_soc.ini``)."""

from __future__ import annotations

import hashlib
import json

import pytest

from ethos_kws.cli import main
from ethos_kws.errors import UserError
from ethos_kws.vela import compile_model, make_spec
from ethos_kws.vela_ini import load_user_ini

MY_SOC = """\
; a slower U55 SoC: 250 MHz, flash on AXI1
[System_Config.My_SoC]
core_clock=250e6
axi0_port=Sram
axi1_port=OffChipFlash
Sram_clock_scale=1.0
Sram_burst_length=32
Sram_read_latency=32
Sram_write_latency=32
OffChipFlash_clock_scale=0.125
OffChipFlash_burst_length=128
OffChipFlash_read_latency=64
OffChipFlash_write_latency=64

[System_Config.My_Fast_SoC]
inherit=System_Config.My_SoC
core_clock=1e9

[Memory_Mode.My_Shared]
const_mem_area=Axi1
arena_mem_area=Axi0
cache_mem_area=Axi0
"""


@pytest.fixture
def soc_ini(tmp_path):
    path = tmp_path / "my_soc.ini"
    path.write_text(MY_SOC)
    return path


def test_configs_lists_the_users_sections_beside_velas(soc_ini, capsys):
    assert main(["configs", "--config", str(soc_ini), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    clocks = {s["name"]: s["core_clock_hz"] for s in doc["system_configs"]}
    assert clocks["My_SoC"] == 250e6 and clocks["My_Fast_SoC"] == 1e9  # inherit followed
    assert "Ethos_U55_High_End_Embedded" in clocks  # Vela's own stay
    assert "My_Shared" in {m["name"] for m in doc["memory_modes"]}
    assert doc["user_ini_sha256"] == hashlib.sha256(soc_ini.read_bytes()).hexdigest()


def test_a_compile_with_the_users_soc_carries_its_clock_and_sha(int8io_model, soc_ini):
    ini = load_user_ini(soc_ini)
    slow = compile_model(int8io_model, "u55-128", system_config="My_SoC", memory_mode="My_Shared", user_ini=ini)
    fast = compile_model(int8io_model, "u55-128", system_config="My_Fast_SoC", memory_mode="My_Shared", user_ini=ini)
    assert slow.core_clock_hz == 250e6 and fast.core_clock_hz == 1e9
    assert slow.vela_ini_sha256 == hashlib.sha256(soc_ini.read_bytes()).hexdigest()
    assert slow.vela_ini == str(soc_ini.resolve())
    assert (slow.axi0_port, slow.axi1_port) == ("Sram", "OffChipFlash")
    assert slow.axi1_bytes_per_cycle is not None and slow.axi1_bytes_per_cycle < slow.axi0_bytes_per_cycle
    # the same cycles at a quarter of the clock: four times the time
    assert slow.inference_time_ms == pytest.approx(slow.cycles_total / 250e6 * 1e3, rel=1e-6)
    # the ini's content is in the key: an edited ini is another compile
    key = make_spec(int8io_model, "u55-128", system_config="My_SoC", user_ini=ini).cache_key()
    soc_ini.write_text(MY_SOC.replace("core_clock=250e6", "core_clock=200e6", 1))
    edited = make_spec(int8io_model, "u55-128", system_config="My_SoC", user_ini=load_user_ini(soc_ini))
    assert edited.cache_key() != key
    assert make_spec(int8io_model, "u55-128").cache_key() != key


@pytest.mark.parametrize("text, match", [
    (None, "no such file"),
    ("[System_Config.X\ncore_clock=1", "not a valid ini file"),
    ("[Whatever]\nx=1\n", r"unknown section \[Whatever\]"),
    ("[System_Config.X]\ncore_clock=fast\n", r"\[System_Config.X\] core_clock = 'fast': expected a number"),
    ("[System_Config.X]\naxi1_port=Flash\n", r"\[System_Config.X\] axi1_port = 'Flash'"),
    ("[Memory_Mode.M]\narena_mem_area=Axi2\n", r"\[Memory_Mode.M\] arena_mem_area = 'Axi2': expected Axi0 or Axi1"),
])
def test_a_bad_ini_is_one_line_naming_file_section_and_key(tmp_path, capsys, text, match):
    path = tmp_path / "bad.ini"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_user_ini(path)
    assert main(["configs", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err


def test_unknown_section_and_a_mode_that_does_not_fit_exit_2(int8io_model, soc_ini, tmp_path, capsys):
    out = str(tmp_path / "c")
    assert main(["compile", "--model", str(int8io_model), "--accel", "u55-128", "--config", str(soc_ini),
                 "--system-config", "Nope", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "unknown system config 'Nope'" in err and str(soc_ini.resolve()) in err
    # Dedicated_Sram puts the arena on AXI1, flash on this SoC: Vela refuses, and so do we, first
    assert main(["compile", "--model", str(int8io_model), "--accel", "u55-128", "--config", str(soc_ini),
                 "--system-config", "My_SoC", "--memory-mode", "Dedicated_Sram", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "arena_mem_area in OffChipFlash" in err and "My_SoC" in err and err.count("\n") == 1


def test_sweep_and_run_take_the_users_soc(soc_ini, tmp_path, capsys):
    from ethos_kws.synth import write_model

    model = tmp_path / "tiny.tflite"
    write_model(model, "conv2d", seed=1)
    out = tmp_path / "sw"
    assert main(["sweep", "--model", str(model), "--accel", "u55-64,u55-128", "--config", str(soc_ini),
                 "--system-config", "My_SoC", "--memory-mode", "My_Shared", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert {r["system_config"] for r in rows} == {"My_SoC"} and {r["core_clock_hz"] for r in rows} == {250e6}
    assert (out / "results.csv").read_text().count("My_SoC") >= 2
    assert main(["run", "--backend", "npu-sim", "--model", str(model), "--accel", "u55-128", "--config",
                 str(soc_ini), "--system-config", "My_SoC", "--memory-mode", "My_Shared", "--json"]) == 0
    capsys.readouterr()


def test_sweep_never_substitutes_a_system_config(int8io_model, tmp_path, capsys):
    # issue 12 item 2: the U55 row cannot take a DRAM system config: a failed row, named; the U65 row stands
    out = tmp_path / "sw"
    rc = main(["sweep", "--model", str(int8io_model), "--accel", "u55-128,u65-256", "--system-config",
               "Ethos_U65_Mid_End", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "u65-256" in captured.out and "Ethos_U65_Mid_End" in captured.out
    assert "Ethos_U55_High_End_Embedded" not in captured.out
    assert "u55-128" in captured.err and "Ethos_U65_Mid_End" in captured.err and captured.err.count("\n") == 1
    doc = json.loads((out / "results.json").read_text())
    assert [r["accel"] for r in doc["results"]] == ["u65-256"]
    assert doc["failed"][0]["accel"] == "u55-128"
