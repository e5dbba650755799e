"""Issue 10, item 1: Vela never takes ethos-kws down; a truncated model is a clear error everywhere."""

from __future__ import annotations

import pytest
from advcli import cli, leftovers
from ethosu.vela.tflite.Model import Model
from hostile_files import flip_bit, truncated

from ethos_kws.errors import CompileError, ModelError
from ethos_kws.sweeps import compile_all
from ethos_kws.tflite import parse_tflite
from ethos_kws.vela import compile_cache_dir, make_spec, run_vela_contained


def vela_crasher(data: bytes) -> bytes:
    """A model that makes Vela 5.2.0's C++ core die by SIGSEGV: one bit of the vtable offset of
    operator 12's options table flipped ("Buffer contents inconsistent with generated schema",
    then the crash). ethos-kws' verifier refuses it, so only a direct Vela call meets it."""
    opts = Model.GetRootAs(data, 0).Subgraphs(0).Operators(12).BuiltinOptions()
    return flip_bit(data, opts.Pos + 1, 4)


@pytest.fixture
def crasher(int8io_model, tmp_path):
    p = tmp_path / "crasher.tflite"
    p.write_bytes(vela_crasher(int8io_model.read_bytes()))
    return p


def test_verifier_refuses_the_crasher_before_vela(crasher):
    with pytest.raises(ModelError, match="options of operator 12"):
        parse_tflite(crasher.read_bytes(), crasher)


def test_vela_crash_is_contained_and_named(crasher, int8io_model, tmp_path):
    spec = make_spec(crasher, "u55-128", model_sha256="0" * 64)  # skip our verifier on purpose
    log = tmp_path / "out" / "vela_output.txt"
    log.parent.mkdir()
    with pytest.raises(CompileError, match=r"Vela crashed \(signal 11, SIGSEGV\) compiling crasher.tflite for u55-128"):
        run_vela_contained(spec.vela_argv(tmp_path / "out"), log, "crasher.tflite for u55-128")
    # the worker is recreated: the next compile works in this same process
    good = make_spec(int8io_model, "u55-128")
    assert run_vela_contained(good.vela_argv(tmp_path / "good"), tmp_path / "good.txt", "good")


def test_sweep_keeps_the_other_rows_when_vela_crashes(crasher, int8io_model):
    specs = [make_spec(crasher, "u55-64", model_sha256="1" * 64), make_spec(int8io_model, "u55-256"),
             make_spec(crasher, "u65-256", model_sha256="1" * 64)]
    errors: dict = {}
    results = compile_all(specs, jobs=2, errors=errors)  # a BrokenProcessPool never escapes
    assert [r.accel for r in results] == ["u55-256"]
    assert sorted(errors) == [0, 2] and all("Vela crashed (signal 11" in str(e) for e in errors.values())
    assert not leftovers(compile_cache_dir())


@pytest.mark.parametrize("command", [
    ["model", "info", "{m}"], ["model", "info", "--no-compile", "{m}"], ["run", "--model", "{m}"],
    ["run", "--backend", "npu-sim", "--model", "{m}"], ["disasm", "{m}"],
    ["vectors", "--model", "{m}", "--count", "2", "--out", "{d}/v"],
    ["parity", "--model", "{m}", "--accel", "u55-128", "--vectors", "2"],
    ["classify", "{clip}", "--model", "{m}"], ["sweep", "--model", "{m}", "--jobs", "2", "--out", "{d}/s"],
    ["compile", "--accel", "u55-128", "--model", "{m}", "--out", "{d}/c"],
])
def test_truncated_model_is_one_clear_line_everywhere(command, int8io_model, audio_dir, tmp_path):
    m = tmp_path / "trunc.tflite"
    m.write_bytes(truncated(int8io_model.read_bytes()))
    clip = next(audio_dir.glob("*.wav"))
    args = [a.format(m=m, d=tmp_path, clip=clip) for a in command]
    cli(*args, rc=2, clean=(tmp_path,), match="corrupt TFLite file")
