"""Elementwise and LUT activations beyond the synth builder's op list (SUB, MAXIMUM, MINIMUM, ABS,
LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, RELU, RELU6) and ADD/SUB/MUL with random quantization,
broadcasts and swapped operands, against LiteRT's reference kernels."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.synth import flatbuf as fb

# TFLite operator -> (options table, int8 operator version), added to the builder's table here
EXTRA_KINDS = {
    "SUB": fb.OpKind("SubOptions", 2), "MAXIMUM": fb.OpKind(None, 2), "MINIMUM": fb.OpKind(None, 2),
    "ABS": fb.OpKind(None, 2), "LEAKY_RELU": fb.OpKind("LeakyReluOptions", 2),
    "LOGISTIC": fb.OpKind(None, 2), "TANH": fb.OpKind(None, 2), "HARD_SWISH": fb.OpKind(None, 1),
    "RELU": fb.OpKind(None, 2), "RELU6": fb.OpKind(None, 2),
}
FULL = (1, 4, 3, 21)
IN_Q = ((0.05, 3), (0.08, -7))
UNARY = {
    "ABS": ({}, (0.06, -2)),
    "LEAKY_RELU": ({"Alpha": 0.2}, (0.06, -2)),
    "LOGISTIC": ({}, (1 / 256, -128)),
    "TANH": ({}, (1 / 128, 0)),
    "HARD_SWISH": ({}, (0.06, -2)),
    "RELU": ({}, (0.05, -128)),
    "RELU6": ({}, (0.05, -128)),
}


@pytest.fixture(autouse=True)
def _extra_op_kinds(monkeypatch):
    for name, kind in EXTRA_KINDS.items():
        monkeypatch.setitem(fb.OP_KINDS, name, kind)


def _model(path, op, shapes, in_q, out_q, opts=None):
    g = fb.Graph()
    ins = [g.add_tensor(fb.TensorDef(f"in{i}", s, "int8", (q[0],), (q[1],)))
           for i, (s, q) in enumerate(zip(shapes, in_q))]
    out = g.add_tensor(fb.TensorDef("out", FULL, "int8", (out_q[0],), (out_q[1],)))
    g.add_op(fb.OpDef(op, tuple(ins), (out,), opts or {}))
    g.inputs, g.outputs = ins, [out]
    path.write_bytes(fb.serialize(g))
    return path


def _check(model, tmp_path, rng, accels=("u55-128", "u65-512"), vectors=6):
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    details = it.get_input_details()
    inputs = [[rng.integers(-128, 128, d["shape"], dtype=np.int8) for d in details] for _ in range(vectors)]
    expected = []
    for item in inputs:
        for d, x in zip(details, item):
            it.set_tensor(d["index"], x)
        it.invoke()
        expected.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    for acc in accels:
        for legacy in (False, True):
            backend = NpuSimBackend(compile_with_vela(model, acc, tmp_path / f"{acc}-{legacy}", legacy_core=legacy))
            assert backend.step_names == ["ethos-u"], "op did not go to the NPU"
            for got, exp in zip(backend.run_batch(inputs), expected):
                np.testing.assert_array_equal(got[0].reshape(exp.shape), exp, err_msg=f"{acc} legacy={legacy}")


@pytest.mark.parametrize("op", UNARY)
def test_unary(op, tmp_path):
    opts, out_q = UNARY[op]
    _check(_model(tmp_path / f"{op}.tflite", op, [FULL], IN_Q, out_q, opts), tmp_path, np.random.default_rng(1))


@pytest.mark.parametrize("seed", range(10))
def test_binary_random_quantization(seed, tmp_path):
    rng = np.random.default_rng(100 + seed)
    op = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")[seed % 5]
    other = [FULL, (1, 1, 1, 21), (1, 4, 3, 1), (1, 1, 1, 1)][seed % 4]
    shapes = [FULL, other] if seed % 3 else [other, FULL]  # a broadcast first operand swaps them
    if op in ("MAXIMUM", "MINIMUM"):
        q = (float(rng.uniform(0.01, 0.2)), int(rng.integers(-20, 20)))
        in_q, out_q, opts = [q, q], q, {}
    else:
        in_q = [(float(rng.uniform(0.005, 0.3)), int(rng.integers(-128, 128))) for _ in range(2)]
        out_q = (float(rng.uniform(0.01, 0.5)), int(rng.integers(-128, 128)))
        opts = {"FusedActivationFunction": seed % 2}  # NONE or RELU
    _check(_model(tmp_path / "m.tflite", op, shapes, in_q, out_q, opts), tmp_path, rng)
