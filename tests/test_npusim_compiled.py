"""Models compiled elsewhere run on the configuration of their COP1 header; --accel that disagrees
is an error; parity against such a model needs the original (--reference)."""

from __future__ import annotations

import shutil

import pytest

from ethos_kws.backends import create_backend
from ethos_kws.backends.npusim.backend import compile_with_vela
from ethos_kws.cli import main
from ethos_kws.errors import AcceleratorError, UserError
from ethos_kws.parity import run_parity
from ethos_kws.synth import write_model
from ethos_kws.synth.opcases import random_inputs


@pytest.fixture(scope="module")
def vendor_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("elsewhere")
    original = write_model(root / "conv.tflite", "conv2d", seed=3)
    compiled = compile_with_vela(original, "u65-512", root / "out")
    vendor = root / "vendor_vela.tflite"  # as a vendor's toolchain hands it over
    shutil.copyfile(compiled, vendor)
    return original, vendor


def test_runs_on_the_header_configuration(vendor_model):
    _, vendor = vendor_model
    b = create_backend("npu-sim", vendor)
    assert b.run(random_inputs(b.input_specs, 1, 0)[0]).extra["accel"] == "u65-512"
    assert create_backend("npu-sim", vendor, accel="ethos-u65-512") is not None  # agreeing spelling


def test_disagreeing_accel_is_an_error(vendor_model, capsys):
    _, vendor = vendor_model
    with pytest.raises(AcceleratorError, match="compiled for u65-512"):
        create_backend("npu-sim", vendor, accel="u55-128")
    assert main(["run", "--backend", "npu-sim", "--model", str(vendor), "--accel", "u55-128"]) == 2
    assert "compiled for u65-512" in capsys.readouterr().err


def test_parity_needs_the_original(vendor_model):
    original, vendor = vendor_model
    with pytest.raises(UserError, match="--reference"):
        run_parity(vendor, "all", vectors=2)
    report = run_parity(vendor, "all", vectors=3, reference=original)
    assert [r.accel for r in report.results] == ["u65-512"] and report.passed
    assert report.model["reference"] == str(original)
    with pytest.raises(AcceleratorError):
        run_parity(vendor, "u55-64", vectors=2, reference=original)
    with pytest.raises(UserError, match="not"):
        run_parity(original, "u55-64", vectors=2, reference=original)
