"""``ethos-kws vectors``: ML-zoo layout, reproducibility, reference outputs, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ethos_kws.backends.cpu import CpuBackend
from ethos_kws.cli import main
from ethos_kws.errors import UserError
from ethos_kws.vectors import write_vectors


def _tree(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_layout_contents_and_reference_outputs(tmp_path, int8io_model, audio_dir, capsys):
    out = tmp_path / "vec"
    rc = main(["vectors", "--model", str(int8io_model), "--count", "3", "--seed", "7",
               "--audio", str(audio_dir), "--out", str(out), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    clips = sorted(audio_dir.glob("*.wav"))
    n = 3 + len(clips)
    assert doc["count"] == n and doc["input_dirs"] == ["input_int8"] and doc["output_dirs"] == ["Identity_int8"]
    ins = sorted((out / "testing_input" / "input_int8").iterdir(), key=lambda p: int(p.stem))
    outs = sorted((out / "testing_output" / "Identity_int8").iterdir(), key=lambda p: int(p.stem))
    assert [p.name for p in ins] == [f"{i}.npy" for i in range(n)] == [p.name for p in outs]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vectors"][3] == {"index": 3, "source": "clip", "clip": clips[0].name}
    assert manifest["schema_version"] == 1
    assert manifest["kernels"] == "tflm" and manifest["runtime"].startswith("tflm")  # parity's oracle
    ref = CpuBackend(int8io_model, "tflm")
    random_values = []
    for i, (pi, po) in enumerate(zip(ins, outs)):
        x, y = np.load(pi), np.load(po)
        assert x.dtype == np.int8 and x.shape == (1, 490) and y.dtype == np.int8 and y.shape == (1, 12)
        assert np.array_equal(ref.run([x]).outputs[0].data, y), i
        if i < 3:
            random_values.append(x)
    allv = np.concatenate(random_values).reshape(-1)
    assert allv.min() == -128 and allv.max() == 127  # uniform over the whole int8 range
    assert len(np.unique(allv)) > 250
    # the clip vectors are the quantized MFCCs: the model recognises them
    yes = [i for i, v in enumerate(manifest["vectors"]) if v.get("clip") == "yes_tflm.wav"][0]
    assert int(np.argmax(np.load(outs[yes]))) == 2  # "yes"


def test_reproducible_and_independent_of_count(tmp_path, int8io_model):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_vectors(int8io_model, a, count=3, seed=1)
    write_vectors(int8io_model, b, count=3, seed=1)
    write_vectors(int8io_model, c, count=2, seed=1)
    ta, tc = _tree(a), _tree(c)
    assert ta == _tree(b)
    for k in ("testing_input/input_int8/0.npy", "testing_input/input_int8/1.npy"):
        assert ta[k] == tc[k]
    write_vectors(int8io_model, a, count=3, seed=2)  # replacing our own vectors is allowed
    assert _tree(a)["testing_input/input_int8/0.npy"] != ta["testing_input/input_int8/0.npy"]


def test_float_model_vectors_use_the_quantize_op_levels(tmp_path, float_io_model):
    vs = write_vectors(float_io_model, tmp_path / "v", count=2, seed=0)
    assert vs.input_dirs == ("input",) and vs.output_dirs == ("Identity",)  # ML-zoo's names
    x = np.load(tmp_path / "v" / "testing_input" / "input" / "0.npy")
    assert x.dtype == np.float32
    levels = x / 1.0809113 + 101
    assert np.allclose(levels, np.round(levels), atol=1e-3)


def test_refuses_foreign_directory_and_bad_arguments(tmp_path, int8io_model, capsys):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="does not hold ethos-kws vectors"):
        write_vectors(int8io_model, foreign, count=1, seed=0)
    assert (foreign / "thesis.tex").read_text() == "precious"
    assert main(["vectors", "--model", str(int8io_model), "--count", "-1", "--out", str(tmp_path / "x")]) == 2
    assert main(["vectors", "--model", str(int8io_model), "--count", "1", "--audio",
                 str(tmp_path / "nodir"), "--out", str(tmp_path / "x")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_vectors_write_what_parity_compares_against(tmp_path, int8io_model):
    """Vector 32 of seed 0 puts a DS-CNN-L logit on a rounding tie where LiteRT's FC rounds once and
    TFLM and the NPU twice: the written reference must be what the NPU produces (issue 9)."""
    from ethos_kws.backends import create_backend
    from ethos_kws.parity import DEFAULT_ORACLE
    from ethos_kws.vectors import write_vectors

    vs = write_vectors(int8io_model, tmp_path / "v", count=33, seed=0)
    assert vs.kernels == DEFAULT_ORACLE
    x = np.load(tmp_path / "v" / "testing_input" / "input_int8" / "32.npy")
    y = np.load(tmp_path / "v" / "testing_output" / "Identity_int8" / "32.npy")
    npu = create_backend("npu-sim", int8io_model, accel="u55-128").run([x]).outputs[0].data
    assert np.array_equal(npu, y)
    litert = CpuBackend(int8io_model, "ref").run([x]).outputs[0].data
    assert not np.array_equal(litert, y)  # the tie is real: the old default wrote another output
