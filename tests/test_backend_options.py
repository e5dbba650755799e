"""Issue 9 item 2: backends declare their options; unknown ones are errors; one input rule."""

from __future__ import annotations

import numpy as np
import pytest

from ethos_kws.backends import backend_options, create_backend
from ethos_kws.backends.base import TensorSpec, check_inputs
from ethos_kws.cli import main
from ethos_kws.errors import InputDataError, UserError


def test_each_backend_declares_its_options():
    assert backend_options("cpu") == ("kernels", "threads", "labels")
    assert set(backend_options("npu-sim")) >= {"accel", "legacy_core", "system_config", "memory_mode"}
    assert set(backend_options("fvp")) >= {"accel", "platform", "fvp", "runner", "timeout_s",
                                             "system_config", "memory_mode", "legacy_core"}
    assert "kernels" not in backend_options("npu-sim")


def test_misspelt_option_is_refused_before_any_compile(int8io_model, monkeypatch):
    import ethos_kws.vela as vela

    def no_compile(*a, **k):  # the check must come first: a typo never costs a Vela compile
        raise AssertionError("compiled despite an unknown option")

    monkeypatch.setattr(vela, "compile_model", no_compile)
    with pytest.raises(UserError, match=r"backend 'npu-sim' has no option 'acell' \(did you mean 'accel'\?\); "
                                        r"it accepts: accel, "):
        create_backend("npu-sim", int8io_model, acell="u65-512")
    with pytest.raises(UserError, match="backend 'fvp' has no option 'kernels'"):
        create_backend("fvp", int8io_model, kernels="tflm")


def test_cli_says_which_flags_do_not_apply(int8io_model, capsys):
    rc = main(["run", "--model", str(int8io_model), "--backend", "cpu", "--accel", "u55-64",
               "--platform", "corstone-310", "--json"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "--accel, --platform do not apply to --backend cpu; ignored" in err


SPECS = [TensorSpec("x", (1, 2, 3), "int8")]


def test_one_input_rule_for_every_backend():
    flat = np.arange(6, dtype=np.int8)
    (out,) = check_inputs([flat], SPECS)
    assert out.shape == (1, 2, 3) and out.flags.c_contiguous
    with pytest.raises(InputDataError, match="must be int8, got int16"):
        check_inputs([flat.astype(np.int16)], SPECS)
    with pytest.raises(InputDataError, match=r"must have shape \[1, 2, 3\] \(6 elements\), got \[7\]"):
        check_inputs([np.zeros(7, np.int8)], SPECS)
    with pytest.raises(InputDataError, match="has 1 input"):
        check_inputs([flat, flat], SPECS)


def test_fvp_input_blob_follows_the_same_rule():
    from ethos_kws.backends.fvp.backend import input_blob

    assert input_blob([np.arange(6, dtype=np.int8)], SPECS) == bytes(range(6))


def test_cpu_and_npusim_accept_the_same_shapes(int8io_model):
    cpu = create_backend("cpu", int8io_model)
    sim = create_backend("npu-sim", int8io_model, accel="u55-128")
    spec = cpu.input_specs[0]
    x = np.zeros(spec.elements, dtype=spec.dtype)  # flat: right element count, other shape
    assert cpu.run([x]).outputs[0].data.shape == sim.run([x]).outputs[0].data.shape


def test_tensorspec_lives_in_tflite_and_round_trips():
    from ethos_kws import tflite

    assert TensorSpec is tflite.TensorSpec
    s = TensorSpec("y", (1, 12), "int8", 1 / 256, -128)
    assert TensorSpec.from_dict(s.to_dict()) == s


def test_top_has_one_shape_in_run_and_classify(int8io_model, audio_dir, capsys):
    import json

    clip = str(audio_dir / "stop_mlek.wav")
    assert main(["run", "--model", str(int8io_model), "--input", clip, "--json"]) == 0
    run_top = json.loads(capsys.readouterr().out)["top"]
    assert main(["classify", clip, "--model", str(int8io_model), "--json"]) == 0
    classify_top = json.loads(capsys.readouterr().out)["top"]
    assert run_top == classify_top and set(run_top[0]) == {"index", "label", "score"}


def test_deprecated_spellings_still_work(int8io_model, capsys):
    from ethos_kws.cli import build_parser

    args = build_parser().parse_args(["parity", "--vectors", "7", "--accelerator-config", "u55-64",
                                      "--output-dir", "x"])
    assert args.count == 7 and args.accel == "u55-64" and args.out == "x"
    assert "--vectors is deprecated; use --count" in capsys.readouterr().err
    args = build_parser().parse_args(["run", "--timeout", "5"])
    assert args.fvp_timeout == 5.0


def test_help_and_readme_agree():
    from pathlib import Path

    from ethos_kws.cli import COMMANDS, DESCRIPTION, build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    names = [c.__name__.rsplit(".", 1)[1].removesuffix("_cmd") for c in COMMANDS]
    names = [n if n != "synth" else "model" for n in names]
    for name in names:
        assert f"`ethos-kws {name}" in readme, name
    helps = build_parser().format_help()
    for name in names:
        assert f"    {name} " in helps, name
    # the oracle the README names is the one --help names
    assert "TFLite Micro" in DESCRIPTION and "**TFLite Micro's reference kernels**" in readme
    assert "LiteRT reference kernels" not in DESCRIPTION.split("Typical session:")[1]


def test_commands_are_imported_directly_and_library_logic_left_the_cli():
    import inspect

    import ethos_kws.cli as cli
    from ethos_kws.cli import check_cmd
    from ethos_kws.report import check

    src = inspect.getsource(cli)
    assert "importlib" not in src and "ModuleNotFoundError" not in src  # no silent command loss
    assert not hasattr(check_cmd, "current_by_compiling") and callable(check.current_by_compiling)
