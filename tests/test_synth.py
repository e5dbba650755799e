"""The synthetic model builder: valid TFLite for LiteRT and Vela, quantization that carries
information, the float reference agreeing with LiteRT, clustering and reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ethos_kws.cli import main as cli_main
from ethos_kws.synth import (
    ARCHS,
    SINGLE_OP_CASES,
    SynthOptionError,
    build_model,
    quant,
    reference,
    resolve_options,
    write_model,
)
from ethos_kws.tflite import load_tflite, parse_tflite
from ethos_kws.vela import compile_model

VECTORS = 8


def run_litert(data: bytes, vectors: int = VECTORS, seed: int = 1):
    """Random int8 inputs through LiteRT's reference kernels: (inputs per vector, outputs)."""
    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    ins, outs = [], []
    for _ in range(vectors):
        x = [rng.integers(-128, 128, d["shape"]).astype(np.int8) for d in it.get_input_details()]
        for d, v in zip(it.get_input_details(), x):
            it.set_tensor(d["index"], v)
        it.invoke()
        ins.append(x)
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    return ins, np.stack(outs)


def assert_informative(out: np.ndarray) -> None:
    """Outputs change with the input and are not stuck at the ends of the int8 range."""
    assert out.dtype == np.int8
    assert len(np.unique(out)) >= 16, "output barely uses its int8 range"
    assert float(out.astype(np.float64).std(axis=0).mean()) > 2.0, "output hardly depends on the input"
    assert np.mean(out == 127) < 0.1, "output saturates"


@pytest.mark.parametrize("case", SINGLE_OP_CASES, ids=lambda c: c.id)
def test_single_op_runs_in_litert_with_informative_output(case):
    data = build_model(case.arch, **case.build_kwargs())
    _, out = run_litert(data)
    assert_informative(out)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_compiles_fully_onto_the_npu(arch, tmp_path):
    path = write_model(tmp_path / f"{arch}.tflite", arch, seed=0, clusters=16 if arch.startswith("ds") else None)
    for legacy in (False, True):
        result = compile_model(path, "u55-128", legacy_core=legacy)
        assert result.cpu_ops == 0, f"{arch} leaves {result.cpu_op_names} on the CPU (legacy={legacy})"
        compiled = load_tflite(result.compiled_model).operators()
        assert [(o.opcode, o.custom_code) for o in compiled] == [("CUSTOM", "ethos-u")]


@pytest.mark.parametrize("case", [c for c in SINGLE_OP_CASES if c.options], ids=lambda c: c.id)
def test_matrix_cases_compile_fully_onto_the_npu(case, tmp_path):
    path = write_model(tmp_path / "m.tflite", case.arch, **case.build_kwargs())
    compiled = load_tflite(compile_model(path, "u65-256").compiled_model).operators()
    assert [(o.opcode, o.custom_code) for o in compiled] == [("CUSTOM", "ethos-u")]


def _float_reference(m, arch, x_q):
    """Recompute the single op in float from the file's own weights and quantization."""
    op = m.operators()[0]
    x_spec = m.tensor_spec(op.inputs[0])
    x = x_spec.dequantize(x_q).astype(np.float64)
    opts = resolve_options(arch, {})
    if arch in ("conv2d", "depthwise", "fc"):
        w_t = m.tensor(op.inputs[1]).Quantization()
        w_scales = w_t.ScaleAsNumpy().astype(np.float64)
        w_q = m.tensor_data(op.inputs[1]).astype(np.float64)
        axis = {"conv2d": 0, "depthwise": 3, "fc": 0}[arch]
        shape = [1] * w_q.ndim
        shape[axis] = -1
        w = w_q * (w_scales.reshape(shape) if w_scales.size > 1 else w_scales[0])
        b_scales = m.tensor(op.inputs[2]).Quantization().ScaleAsNumpy().astype(np.float64)
        b = m.tensor_data(op.inputs[2]) * b_scales
        if arch == "conv2d":
            y = reference.conv2d(x, w, b, opts["stride"], opts["dilation"], opts["padding"])
        elif arch == "depthwise":
            y = reference.depthwise_conv2d(x, w, b, opts["stride"], opts["dilation"], opts["padding"])
        else:
            y = reference.fully_connected(x, w, b)
        y = reference.ACTIVATIONS[opts["activation"]](y)
    elif arch == "avgpool":
        y = reference.avg_pool(x, opts["filter"], opts["stride"], opts["padding"])
    else:
        y = reference.max_pool(x, opts["filter"], opts["stride"], opts["padding"])
    o = m.tensor_spec(op.outputs[0])
    return np.clip(np.round(y / o.scale) + o.zero_point, -128, 127)


@pytest.mark.parametrize("arch", ["conv2d", "depthwise", "avgpool", "maxpool", "fc"])
def test_float_reference_matches_litert(arch):
    """The calibration reference follows TFLite's padding/stride/bias conventions (within
    rounding), so the chosen ranges are the ranges the int8 model really produces."""
    data = build_model(arch, seed=5)
    m = parse_tflite(data)
    ins, out = run_litert(data, vectors=4)
    for x, y in zip(ins, out):
        expect = _float_reference(m, arch, x[0][None] if x[0].ndim == 3 else x[0])
        diff = np.abs(expect.reshape(y.shape) - y.astype(np.float64))
        assert diff.max() <= 1, f"{arch}: reference and LiteRT differ by {diff.max()} LSB"


def test_ds_cnn_outputs_depend_on_input():
    data = build_model("ds-cnn-s", seed=0)
    _, out = run_litert(data, vectors=16)
    top1 = out.reshape(len(out), -1).argmax(axis=1)
    assert len(set(top1.tolist())) >= 2, "every input gives the same class"
    assert float(out.astype(np.float64).std(axis=0).mean()) > 2.0


def test_ds_cnn_l_has_the_ml_zoo_model_structure(int8io_model):
    real = load_tflite(int8io_model)
    synth = parse_tflite(build_model("ds-cnn-l", clusters=32, seed=0))

    def signature(m):
        return [(o.opcode, [m.tensor_spec(t).shape for t in o.inputs], [m.tensor_spec(t).shape for t in o.outputs])
                for o in m.operators()]

    assert signature(synth) == signature(real)
    for a, b in ((synth.input_specs[0], real.input_specs[0]), (synth.output_specs[0], real.output_specs[0])):
        assert (a.shape, a.dtype, a.zero_point) == (b.shape, b.dtype, b.zero_point)
        assert a.scale == pytest.approx(b.scale, rel=1e-6)


@pytest.mark.parametrize("arch,k", [("ds-cnn-l", 32), ("ds-cnn-s", 8)])
def test_clusters_bound_unique_weight_values(arch, k):
    m = parse_tflite(build_model(arch, clusters=k, seed=2))
    kernels = [o for o in m.operators() if o.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert len(kernels) >= 3
    for o in kernels:
        n = len(np.unique(m.tensor_data(o.inputs[1])))
        assert 2 <= n <= k, f"{o.opcode} #{o.index}: {n} unique int8 values for {k} clusters"
    conv = m.tensor(kernels[0].inputs[1]).Quantization().ScaleAsNumpy()
    assert len(np.unique(conv)) > 1, "clustering must keep per-channel scales"


def test_unclustered_weights_use_many_values():
    m = parse_tflite(build_model("ds-cnn-s", seed=0))
    conv = next(o for o in m.operators() if o.opcode == "CONV_2D")
    assert len(np.unique(m.tensor_data(conv.inputs[1]))) > 100


def test_build_is_reproducible_and_seeded():
    a = build_model("ds-cnn-s", seed=4, clusters=16)
    assert a == build_model("ds-cnn-s", seed=4, clusters=16)
    assert a != build_model("ds-cnn-s", seed=5, clusters=16)
    assert build_model("conv2d", seed=1) != build_model("conv2d", seed=1, stride=2)


def test_quantize_weights_per_channel_is_symmetric():
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 2)) * np.array([1, 10, 0.1, 3]).reshape(4, 1, 1, 1)
    q, scales = quant.quantize_weights(w, axis=0)
    assert q.dtype == np.int8 and scales.shape == (4,)
    assert (np.abs(q).reshape(4, -1).max(axis=1) == 127).all()
    np.testing.assert_allclose(quant.dequantize_weights(q, scales, 0), w, atol=scales.max() / 2 + 1e-9)


@pytest.mark.parametrize("arch,opts,fragment", [
    ("nope", {}, "unknown architecture"),
    ("fc", {"kernel": 3}, "does not apply to fc"),
    ("conv2d", {"padding": "full"}, "padding"),
    ("conv2d", {"input_shape": (1, 3, 3, 1), "kernel": 5, "padding": "valid"}, "does not fit"),
    ("reshape", {"new_shape": (1, 7)}, "does not hold"),
    ("add", {"other_shape": (1, 2, 2, 3)}, "does not broadcast"),
    ("conv2d", {"stride": (0, 1)}, "positive"),
])
def test_bad_options_raise_user_errors(arch, opts, fragment):
    with pytest.raises(SynthOptionError, match=fragment):
        build_model(arch, **opts)


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"clusters": 0}, {"clusters": 300}])
def test_bad_seed_or_clusters(kwargs):
    with pytest.raises(SynthOptionError):
        build_model("fc", **kwargs)


def test_cli_synth_is_byte_reproducible(tmp_path, capsys):
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    for out in (a, b):
        assert cli_main(["model", "synth", "--arch", "ds-cnn-l", "--clusters", "32", "--seed", "0",
                         "--out", str(out)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() == build_model("ds-cnn-l", clusters=32, seed=0)
    assert "ds-cnn-l" in capsys.readouterr().out


def test_cli_synth_shape_options_and_json(tmp_path, capsys):
    import json

    out = tmp_path / "c.tflite"
    rc = cli_main(["model", "synth", "--arch", "conv2d", "--input-shape", "1x9x8x3", "--out-channels", "17",
                   "--kernel", "5x3", "--stride", "2", "--dilation", "1x2", "--padding", "valid",
                   "--activation", "relu6", "--out", str(out), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["operators"] == ["CONV_2D"] and doc["outputs"][0]["shape"] == [1, 3, 2, 17]
    assert doc["options"]["kernel"] == [5, 3]
    assert load_tflite(out).sha256 == doc["sha256"]


@pytest.mark.parametrize("argv", [
    ["--arch", "fc", "--kernel", "3"],
    ["--arch", "conv2d", "--kernel", "3x"],
    ["--arch", "conv2d", "--input-shape", "2x4x4x1"],
])
def test_cli_synth_bad_input_exits_2(tmp_path, capsys, argv):
    assert cli_main(["model", "synth", *argv, "--out", str(tmp_path / "x.tflite")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ethos-kws: error:") and "Traceback" not in err
    assert not (tmp_path / "x.tflite").exists()
