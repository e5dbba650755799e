"""Single-operator and small recurrent/stateful test models for every operator Vela can put on the
NPU, int8 and int16 where Vela supports them, built with ``graph.GraphBuilder``.

``OP_CASES`` maps a case id to ``OpCase(tflite_ops, build)``: ``build(seed) -> bytes``.
``tflite_ops`` names the TFLite operators the case exercises, so the matrix test can check that
every operator on Vela's supported-operator list has at least one case. Quantization is explicit
(ranges chosen so the outputs use their range); weights come from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .graph import GraphBuilder, qparams

ACT = {"none": 0, "relu": 1, "relu6": 3}


@dataclass(frozen=True)
class OpCase:
    tflite_ops: tuple[str, ...]
    build: Callable[[int], bytes]
    stateful: bool = False  # carries state between invocations: compare a sequence of steps


def _unary(opcode: str, dtype: str, in_range, out_range, shape=(1, 6, 5, 8), **options):
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        x = g.activation("x", shape, dtype, lo_hi=in_range)
        y = g.activation("y", shape, dtype, lo_hi=out_range)
        g.op(opcode, [x], [y], **options)
        g.inputs, g.outputs = [x], [y]
        return g.to_bytes(f"ethos-kws synth op {opcode} {dtype}")
    return build


def _fixed_out(opcode: str, dtype: str, in_range, out_q, shape=(1, 6, 5, 8)):
    """Operators whose output quantization TFLite fixes (LOGISTIC, TANH)."""
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        x = g.activation("x", shape, dtype, lo_hi=in_range)
        y = g.activation("y", shape, dtype, scale=out_q[0], zero_point=out_q[1])
        g.op(opcode, [x], [y])
        g.inputs, g.outputs = [x], [y]
        return g.to_bytes(f"ethos-kws synth op {opcode} {dtype}")
    return build


def _conv_weights(rng, out_c, kh, kw, in_c, in_scale):
    w = rng.integers(-127, 128, (out_c, kh, kw, in_c)).astype(np.int8)
    w_scale = rng.uniform(0.002, 0.01, out_c).astype(np.float32)
    bias = rng.integers(-2000, 2000, out_c).astype(np.int32)
    b_scale = (w_scale * np.float32(in_scale)).astype(np.float32)
    return w, w_scale, bias, b_scale


def _streaming_kws(seed: int) -> bytes:
    """A streaming KWS layer as TFLite's streaming converters write it: a resource variable
    holds the last T-1 frames (zeroed by a CALL_ONCE initialiser); each invocation reads it,
    appends the new frame, stores the newest T-1 frames back and convolves the window."""
    rng = np.random.default_rng(seed)
    T, C, OUT = 5, 8, 12
    g = GraphBuilder()
    in_scale, in_zp = 0.05, 3
    g.subgraph("init")
    h0 = g.tensor("init/handle", (), "resource")
    zeros = g.const("init/zeros", np.full((1, T - 1, 1, C), in_zp, np.int8), "int8", in_scale, in_zp)
    g.op("VAR_HANDLE", [], [h0], sharedName="frames")
    g.op("ASSIGN_VARIABLE", [h0, zeros], [])
    g.use(0)
    x = g.activation("frame", (1, 1, 1, C), "int8", in_scale, in_zp)
    h = g.tensor("handle", (), "resource")
    state = g.activation("state", (1, T - 1, 1, C), "int8", in_scale, in_zp)
    win = g.activation("window", (1, T, 1, C), "int8", in_scale, in_zp)
    new_state = g.activation("new_state", (1, T - 1, 1, C), "int8", in_scale, in_zp)
    begin = g.const("begin", [0, 1, 0, 0], "int32")
    end = g.const("end", [1, T, 1, C], "int32")
    strides = g.const("strides", [1, 1, 1, 1], "int32")
    w, w_scale, bias, b_scale = _conv_weights(rng, OUT, T, 1, C, in_scale)
    wt = g.const("conv/weights", w, "int8", w_scale, 0)
    bt = g.const("conv/bias", bias, "int32", b_scale, 0)
    y = g.activation("scores", (1, 1, 1, OUT), "int8", lo_hi=(-6, 6))
    g.op("CALL_ONCE", [], [], initSubgraphIndex=1)
    g.op("VAR_HANDLE", [], [h], sharedName="frames")
    g.op("READ_VARIABLE", [h], [state])
    g.op("CONCATENATION", [state, x], [win], axis=1)
    g.op("STRIDED_SLICE", [win, begin, end, strides], [new_state])
    g.op("ASSIGN_VARIABLE", [h, new_state], [])
    g.op("CONV_2D", [win, wt, bt], [y], version=3, padding=1, strideH=1, strideW=1)
    g.inputs, g.outputs = [x], [y]
    return g.to_bytes("ethos-kws synth streaming KWS layer (resource variable, CALL_ONCE)")


def _svdf(seed: int) -> bytes:
    """int8 SVDF (TFLite's integer SVDF: int16 time weights and activation state), the layer of
    streaming KWS models; Vela leaves it on the CPU. Its state is a variable tensor."""
    rng = np.random.default_rng(seed)
    n_in, filters, memory, rank = 16, 8, 6, 1
    units = filters // rank
    g = GraphBuilder()
    x = g.activation("x", (1, n_in), "int8", 0.04, -2)
    wf = g.const("weights_feature", rng.integers(-127, 128, (filters, n_in)), "int8", 0.01, 0)
    st_scale, wt_scale = 0.005, 1.0 / 32768
    wt = g.const("weights_time", rng.integers(-32767, 32768, (filters, memory)), "int16", wt_scale, 0)
    b = g.const("bias", rng.integers(-500, 500, units), "int32", st_scale * wt_scale, 0)
    st = g.activation("activation_state", (1, filters * memory), "int16", st_scale, 0, variable=True)
    y = g.activation("svdf", (1, units), "int8", lo_hi=(0.0, 24.0))
    g.op("SVDF", [x, wf, wt, b, st], [y], rank=rank, fusedActivationFunction=1)  # int8 SVDF: ReLU only
    # a classifier on the NPU after the CPU's SVDF: the hybrid graph of SVDF KWS models
    y_scale = float(g.subgraphs[0].tensors[y].quantization.scale[0])
    w, w_scale, bias, b_scale = _conv_weights(rng, 6, 1, 1, units, y_scale)
    fw = g.const("fc/weights", w.reshape(6, units), "int8", w_scale[:1], 0)
    fb_ = g.const("fc/bias", bias, "int32", b_scale[:1], 0)
    z = g.activation("scores", (1, 6), "int8", lo_hi=(-60.0, 60.0))
    g.op("FULLY_CONNECTED", [y, fw, fb_], [z], version=4)
    g.inputs, g.outputs = [x], [z]
    return g.to_bytes("ethos-kws synth SVDF int8 + FULLY_CONNECTED")


OP_CASES: dict[str, OpCase] = {
    "streaming_kws": OpCase(("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE",
                             "CONCATENATION", "STRIDED_SLICE", "CONV_2D"), _streaming_kws, stateful=True),
    "svdf_int8": OpCase(("SVDF",), _svdf, stateful=True),
    # int16 LEAKY_RELU with equal IFM/OFM scales: Vela's native LRELU, alpha in OFM_SCALE
    "leaky_relu_int16": OpCase(("LEAKY_RELU",), _unary("LEAKY_RELU", "int16", (-8, 8), (-8, 8), alpha=0.2)),
    # different scales: MUL by alpha + MAX
    "leaky_relu_int16_rescaled": OpCase(("LEAKY_RELU",), _unary("LEAKY_RELU", "int16", (-8, 8), (-2, 4),
                                                                 alpha=0.3)),
    "leaky_relu_int8": OpCase(("LEAKY_RELU",), _unary("LEAKY_RELU", "int8", (-8, 7), (-1.6, 7), alpha=0.2)),
}


def build_case(name: str, seed: int = 0) -> bytes:
    return OP_CASES[name].build(seed)


def random_inputs(specs, count: int, seed: int) -> list[list[np.ndarray]]:
    """Random integer inputs over each input's whole range."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        item = []
        for s in specs:
            dt = np.dtype(s.dtype)
            if dt.kind in "iu":
                info = np.iinfo(dt)
                item.append(rng.integers(info.min, int(info.max) + 1, s.shape, dtype=dt))
            else:
                item.append(rng.standard_normal(s.shape).astype(dt))
        out.append(item)
    return out
