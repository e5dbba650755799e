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
    # the CPU oracle's kernels: "tflm" (TFLite Micro) unless it lacks the operator or is known to
    # disagree with TFLite's reference kernels for it (``ORACLE_NOTES``), then "ref" (LiteRT)
    oracle: str = "tflm"


# why a case uses LiteRT's reference kernels instead of TFLite Micro
ORACLE_NOTES = {
    "relu_n1_to_1": "TFLite Micro has no RELU_N1_TO_1 kernel",
    "relu_0_to_1": "TFLite Micro has no RELU_0_TO_1 kernel",
    "exp_int8": "TFLite Micro's EXP is float only",
    "log_int8": "TFLite Micro's LOG is float only",
    "hard_swish": "TFLite Micro has no int8 HARD_SWISH kernel",
    "relu6": "TFLite Micro's int8/int16 RELU6 clamps in the input's quantization and ignores the "
             "output's (LiteRT requantizes, as Vela does)",
    "transpose_int32": "TFLite Micro's TRANSPOSE fails on int32 tensors",
    "mul_int16": "TFLite Micro's int16 MUL rounds 1 element in 240 one LSB away from LiteRT's "
                 "reference, which npu-sim (Vela's OFM_SCALE) matches",
}


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


def streaming_kws(seed: int = 0, *, coefficients: int = 8, frames: int = 1, in_scale: float = 0.05,
                  in_zp: int = 3) -> bytes:
    """A streaming KWS layer as TFLite's streaming converters write it: a resource variable
    holds the last T-1 frames (zeroed by a CALL_ONCE initialiser); each invocation reads it,
    appends its ``frames`` new frames of ``coefficients`` values, stores the newest T-1 frames
    back and convolves the window of T-1+frames frames into 12 scores."""
    rng = np.random.default_rng(seed)
    T, C, OUT = 5, coefficients, 12
    W = T - 1 + frames  # frames in the window the convolution sees
    g = GraphBuilder()
    g.subgraph("init")
    h0 = g.tensor("init/handle", (), "resource")
    zeros = g.const("init/zeros", np.full((1, T - 1, 1, C), in_zp, np.int8), "int8", in_scale, in_zp)
    g.op("VAR_HANDLE", [], [h0], sharedName="frames")
    g.op("ASSIGN_VARIABLE", [h0, zeros], [])
    g.use(0)
    x = g.activation("frame", (1, frames, 1, C), "int8", in_scale, in_zp)
    h = g.tensor("handle", (), "resource")
    state = g.activation("state", (1, T - 1, 1, C), "int8", in_scale, in_zp)
    win = g.activation("window", (1, W, 1, C), "int8", in_scale, in_zp)
    new_state = g.activation("new_state", (1, T - 1, 1, C), "int8", in_scale, in_zp)
    begin = g.const("begin", [0, frames, 0, 0], "int32")
    end = g.const("end", [1, W, 1, C], "int32")
    strides = g.const("strides", [1, 1, 1, 1], "int32")
    w, w_scale, bias, b_scale = _conv_weights(rng, OUT, W, 1, C, in_scale)
    wt = g.const("conv/weights", w, "int8", w_scale, 0)
    bt = g.const("conv/bias", bias, "int32", b_scale, 0)
    y = g.activation("scores", (1, 1, 1, OUT), "int8", lo_hi=(-40, 40))
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


SHAPE = (1, 6, 5, 8)


def _graph(dtype: str, n_inputs: int, in_range, shape=SHAPE, same_quant=False):
    g = GraphBuilder()
    xs = []
    for i in range(n_inputs):
        lo, hi = in_range
        if not same_quant:  # operands of different quantization exercise the rescaling
            lo, hi = lo * (1 + 0.3 * i), hi * (1 + 0.5 * i)
        xs.append(g.activation(f"x{i}", shape, dtype, lo_hi=(lo, hi)))
    return g, xs


def _finish(g: GraphBuilder, xs, ys, what: str) -> bytes:
    g.inputs, g.outputs = list(xs), list(ys)
    return g.to_bytes(f"ethos-kws synth op {what}")


def _binary(opcode: str, dtype: str, in_range, out_range, same_quant=False, other_shape=None, **options):
    def build(seed: int) -> bytes:
        g, (a,) = _graph(dtype, 1, in_range)
        lo, hi = in_range
        b = g.activation("x1", other_shape or SHAPE, dtype,
                         lo_hi=(lo, hi) if same_quant else (lo * 1.3, hi * 1.5))
        out_shape = (1,) + tuple(np.broadcast_shapes(SHAPE[1:], (other_shape or SHAPE)[1:]))
        y = g.activation("y", out_shape, dtype, lo_hi=out_range)
        g.op(opcode, [a, b], [y], **options)
        return _finish(g, [a, b], [y], f"{opcode} {dtype}")
    return build


def _with_consts(opcode: str, dtype: str, in_range, out_shape, out_range, consts, shape=SHAPE,
                 consts_first=False, out_dtype=None, same_quant=True, outputs=1, **options):
    """One operator whose extra inputs are int32 constants (axes, paddings, sizes...)."""
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        x = g.activation("x", shape, dtype, lo_hi=in_range)
        cs = [g.const(f"c{i}", np.asarray(c, np.int32), "int32") for i, c in enumerate(consts)]
        od = out_dtype or dtype
        xq = g.subgraphs[0].tensors[x].quantization
        ys = []
        for k in range(outputs):
            shp = out_shape[k] if outputs > 1 else out_shape
            if od == dtype and same_quant:
                ys.append(g.activation(f"y{k}", shp, od, scale=xq.scale[0], zero_point=xq.zeroPoint[0]))
            else:
                ys.append(g.activation(f"y{k}", shp, od, lo_hi=out_range))
        g.op(opcode, (cs + [x]) if consts_first else ([x] + cs), ys, **options)
        return _finish(g, [x], ys, f"{opcode} {dtype}")
    return build


def _concat(dtype: str):
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        a = g.activation("a", (1, 6, 5, 8), dtype, lo_hi=(-4, 4))
        q = g.subgraphs[0].tensors[a].quantization
        b = g.activation("b", (1, 6, 5, 5), dtype, scale=q.scale[0], zero_point=q.zeroPoint[0])
        y = g.activation("y", (1, 6, 5, 13), dtype, scale=q.scale[0], zero_point=q.zeroPoint[0])
        g.op("CONCATENATION", [a, b], [y], axis=3)
        return _finish(g, [a, b], [y], f"CONCATENATION {dtype}")
    return build


def _int32(opcode: str, out_shape, consts=(), second=None, **options):
    """One operator on unquantized int32 tensors (as signal front ends compute them): an int32
    CONCATENATION, TRANSPOSE or DIV, which U85 runs as regor's NullPool (POOL NONE loading the
    accumulators from IFM2) or as an int32 ELEMENTWISE DIV. ``second``: a second input shape
    (a model input), or a constant array (a divisor)."""
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        x = g.activation("x", SHAPE, "int32")
        xs, ins = [x], [x]
        if isinstance(second, tuple):
            xs.append(g.activation("x1", second, "int32"))
            ins.append(xs[-1])
        elif second is not None:
            ins.append(g.const("divisor", np.asarray(second, np.int32), "int32"))
        ins += [g.const(f"c{i}", np.asarray(c, np.int32), "int32") for i, c in enumerate(consts)]
        y = g.activation("y", out_shape, "int32")
        g.op(opcode, ins, [y], **options)
        return _finish(g, xs, [y], f"{opcode} int32")
    return build


def _pack():
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        a = g.activation("a", (1, 6, 8), "int8", lo_hi=(-4, 4))
        q = g.subgraphs[0].tensors[a].quantization
        b = g.activation("b", (1, 6, 8), "int8", scale=q.scale[0], zero_point=q.zeroPoint[0])
        y = g.activation("y", (1, 2, 6, 8), "int8", scale=q.scale[0], zero_point=q.zeroPoint[0])
        g.op("PACK", [a, b], [y], valuesCount=2, axis=1)
        return _finish(g, [a, b], [y], "PACK int8")
    return build


def _conv(dtype: str, transpose=False, shape_input=False):
    """CONV_2D (int16x8: int16 activations, int8 weights, int64 bias) or TRANSPOSE_CONV
    (``shape_input``: its output_shape a model input, as streaming converters leave it; the output
    tensor's static shape is what runs)."""
    def build(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        g = GraphBuilder()
        shape = (1, 6, 5, 4) if transpose else SHAPE
        x = g.activation("x", shape, dtype, lo_hi=(-4, 4))
        in_scale = float(g.subgraphs[0].tensors[x].quantization.scale[0])
        w, w_scale, bias, b_scale = _conv_weights(rng, 6, 3, 3, shape[3], in_scale)
        wt = g.const("weights", w, "int8", w_scale, 0)
        bdt = "int64" if dtype == "int16" else "int32"
        bt = g.const("bias", bias, bdt, b_scale, 0)
        if transpose:
            out_shape = (1, 12, 10, 6)
            y = g.activation("y", out_shape, dtype, lo_hi=(-3, 3))
            if shape_input:
                os_ = g.activation("output_shape", (4,), "int32")
            else:
                os_ = g.const("output_shape", np.array(out_shape, np.int32), "int32")
            g.op("TRANSPOSE_CONV", [os_, wt, x, bt], [y], version=3, padding=0, strideH=2, strideW=2)
            return _finish(g, [os_, x] if shape_input else [x], [y], f"TRANSPOSE_CONV {dtype}")
        y = g.activation("y", (1, 6, 5, 6), dtype, lo_hi=(-3, 3))
        g.op("CONV_2D", [x, wt, bt], [y], version=3, padding=0, strideH=1, strideW=1)
        return _finish(g, [x], [y], f"CONV_2D {dtype}")
    return build


def _fc16(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.activation("x", (1, 40), "int16", lo_hi=(-4, 4))
    in_scale = float(g.subgraphs[0].tensors[x].quantization.scale[0])
    w, w_scale, bias, b_scale = _conv_weights(rng, 12, 1, 1, 40, in_scale)
    wt = g.const("weights", w.reshape(12, 40), "int8", w_scale[:1], 0)
    bt = g.const("bias", bias, "int64", b_scale[:1], 0)
    y = g.activation("y", (1, 12), "int16", lo_hi=(-2, 2))
    g.op("FULLY_CONNECTED", [x, wt, bt], [y], version=4)
    return _finish(g, [x], [y], "FULLY_CONNECTED int16")


def _fwd(kind: str, levels: int | None, dtype: str, n_in: int, out_c: int):
    """A FULLY_CONNECTED or CONV_2D whose weights the standard decoder would be slow on: uniform
    over -127..127 (incompressible, few zeros), or ``levels`` distinct values. Vela 5.2 then
    encodes them for U85's fast weight decoder (WEIGHT_FORMAT FWD): raw 8-bit fields, or a 16- or
    4-entry LUT for 16 or 4 levels (fewer than 16 distinct values also halve its decode time)."""
    def build(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        g = GraphBuilder()
        conv = kind == "conv"
        shape, k = ((1, 6, 5, n_in), 3) if conv else ((1, n_in), 1)
        x = g.activation("x", shape, dtype, lo_hi=(-4, 4))
        in_scale = float(g.subgraphs[0].tensors[x].quantization.scale[0])
        w, w_scale, bias, b_scale = _conv_weights(rng, out_c, k, k, shape[-1], in_scale)
        if levels is not None:
            w = rng.choice(np.linspace(-127, 127, levels).round().astype(np.int8), w.shape)
        w_scale = w_scale / (4 if conv else 2)  # keep the outputs inside their range
        b_scale = (w_scale * np.float32(in_scale)).astype(np.float32)
        wide = dtype == "int16"
        per_tensor = wide or not conv
        wt = g.const("weights", w if conv else w.reshape(out_c, -1), "int8",
                     w_scale[:1] if per_tensor else w_scale, 0)
        bt = g.const("bias", bias, "int64" if wide else "int32", b_scale[:1] if per_tensor else b_scale, 0)
        if conv:
            y = g.activation("y", (1, 6, 5, out_c), dtype, lo_hi=(-3, 3))
            g.op("CONV_2D", [x, wt, bt], [y], version=3, padding=0, strideH=1, strideW=1)
        else:
            y = g.activation("y", (1, out_c), dtype, lo_hi=(-3, 3))
            g.op("FULLY_CONNECTED", [x, wt, bt], [y], version=4 if wide else 1)
        return _finish(g, [x], [y], f"{kind} {dtype} with {levels or 'uniform'} weight levels (FWD)")
    return build


def _pool16(opcode: str):
    def build(seed: int) -> bytes:
        g = GraphBuilder()
        x = g.activation("x", SHAPE, "int16", lo_hi=(-4, 4))
        q = g.subgraphs[0].tensors[x].quantization
        y = g.activation("y", (1, 3, 3, 8), "int16", scale=q.scale[0], zero_point=0)
        g.op(opcode, [x], [y], padding=0, strideH=2, strideW=2, filterHeight=2, filterWidth=2)
        return _finish(g, [x], [y], f"{opcode} int16")
    return build


def _softmax16(seed: int) -> bytes:
    g = GraphBuilder()
    x = g.activation("x", (1, 12), "int16", lo_hi=(-8, 8))
    y = g.activation("y", (1, 12), "int16", scale=1.0 / 32768, zero_point=0)
    g.op("SOFTMAX", [x], [y], beta=1.0)
    return _finish(g, [x], [y], "SOFTMAX int16")


def _lstm(seed: int) -> bytes:
    """int8 UNIDIRECTIONAL_SEQUENCE_LSTM (TFLite's 8x8->16 integer LSTM: int8 activations and
    weights, int16 cell state, no CIFG/peephole/projection/layer norm, as Vela requires), batch
    major, 6 time steps; output and cell states are variable tensors carried between calls."""
    rng = np.random.default_rng(seed)
    T, n_in, n_cell = 6, 8, 8
    g = GraphBuilder()
    in_scale, in_zp = 0.03, -5
    x = g.activation("x", (1, T, n_in), "int8", in_scale, in_zp)
    h_scale, h_zp = 1.0 / 128, 0  # the hidden state is tanh * sigmoid: within (-1, 1)
    ins = [x]
    w_scale = 0.004
    for gate in ("input", "forget", "cell", "output"):
        ins.append(g.const(f"{gate}_w", rng.integers(-127, 128, (n_cell, n_in)), "int8", w_scale, 0))
    for gate in ("input", "forget", "cell", "output"):
        ins.append(g.const(f"{gate}_rw", rng.integers(-127, 128, (n_cell, n_cell)), "int8", w_scale * 2, 0))
    ins += [-1, -1, -1]  # no peephole
    for gate in ("input", "forget", "cell", "output"):
        ins.append(g.const(f"{gate}_b", rng.integers(-3000, 3000, n_cell), "int32", in_scale * w_scale, 0))
    ins += [-1, -1]  # no projection
    ins.append(g.activation("output_state", (1, n_cell), "int8", h_scale, h_zp, variable=True))
    ins.append(g.activation("cell_state", (1, n_cell), "int16", 2.0 ** -11, 0, variable=True))
    ins += [-1, -1, -1, -1]  # no layer norm
    y = g.activation("y", (1, T, n_cell), "int8", h_scale, h_zp)
    # TFLite Micro wants intermediates without storage (shape [0]); only their scales matter
    inter = [g.activation(f"intermediate_{i}", (0,), "int16", 2.0 ** -12, 0) for i in range(4)]
    inter.append(g.activation("intermediate_hidden", (0,), "int8", h_scale, h_zp))
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], fusedActivationFunction=4, cellClip=0.0,
         projClip=0.0, timeMajor=False)
    g.subgraphs[0].operators[-1].intermediates = inter
    return _finish(g, [x], [y], "UNIDIRECTIONAL_SEQUENCE_LSTM int8")


def gru_kws(seed: int = 0, *, features: int = 10, units: int = 16) -> bytes:
    """A GRU-style streaming KWS cell as converters unroll a GRU: the hidden state h lives in a
    resource variable (zeroed by a CALL_ONCE initialiser) and each invocation computes
        z = sigmoid(W_z [x, h]),  r = sigmoid(W_r [x, h]),  n = tanh(W_n [x, r * h]),
        h' = n + z * (h - n)
    with FULLY_CONNECTED, LOGISTIC, TANH, MUL, SUB, ADD and CONCATENATION on the NPU and the
    variable ops on the CPU, then scores = W_o h'. x and h share one quantization (1/128, 0) so
    the concatenations need no requantization (TFLite Micro requires it)."""
    rng = np.random.default_rng(seed)
    F, U, OUT = features, units, 12
    hq = (1.0 / 128, 0)
    g = GraphBuilder()
    g.subgraph("init")
    h0 = g.tensor("init/handle", (), "resource")
    zeros = g.const("init/zeros", np.zeros((1, U), np.int8), "int8", *hq)
    g.op("VAR_HANDLE", [], [h0], sharedName="gru_h")
    g.op("ASSIGN_VARIABLE", [h0, zeros], [])
    g.use(0)
    x = g.activation("x", (1, F), "int8", *hq)
    handle = g.tensor("handle", (), "resource")
    h = g.activation("h", (1, U), "int8", *hq)

    def fc(name: str, inp: int, n_in: int, n_out: int, lo_hi) -> int:
        w = g.const(f"{name}/weights", rng.integers(-127, 128, (n_out, n_in)), "int8",
                    [float(rng.uniform(0.004, 0.012))], 0)
        w_scale = float(g.subgraphs[0].tensors[w].quantization.scale[0])
        b = g.const(f"{name}/bias", rng.integers(-3000, 3000, n_out), "int32", [w_scale * hq[0]], 0)
        y = g.activation(name, (1, n_out), "int8", lo_hi=lo_hi)
        g.op("FULLY_CONNECTED", [inp, w, b], [y], version=4)
        return y

    g.op("CALL_ONCE", [], [], initSubgraphIndex=1)
    g.op("VAR_HANDLE", [], [handle], sharedName="gru_h")
    g.op("READ_VARIABLE", [handle], [h])
    xh = g.activation("xh", (1, F + U), "int8", *hq)
    g.op("CONCATENATION", [x, h], [xh], axis=1)
    gates = {}
    for gate in ("z", "r"):
        pre = fc(f"{gate}/pre", xh, F + U, U, (-6.0, 6.0))
        gates[gate] = g.activation(gate, (1, U), "int8", 1.0 / 256, -128)
        g.op("LOGISTIC", [pre], [gates[gate]])
    rh = g.activation("r_h", (1, U), "int8", *hq)
    g.op("MUL", [gates["r"], h], [rh])
    xrh = g.activation("x_rh", (1, F + U), "int8", *hq)
    g.op("CONCATENATION", [x, rh], [xrh], axis=1)
    n_pre = fc("n/pre", xrh, F + U, U, (-3.0, 3.0))
    n = g.activation("n", (1, U), "int8", *hq)
    g.op("TANH", [n_pre], [n])
    d = g.activation("h_minus_n", (1, U), "int8", lo_hi=(-2.0, 2.0))
    g.op("SUB", [h, n], [d])
    zd = g.activation("z_d", (1, U), "int8", lo_hi=(-2.0, 2.0))
    g.op("MUL", [gates["z"], d], [zd])
    h_new = g.activation("h_new", (1, U), "int8", *hq)
    g.op("ADD", [n, zd], [h_new])
    g.op("ASSIGN_VARIABLE", [handle, h_new], [])
    y = fc("scores", h_new, U, OUT, (-20.0, 20.0))
    g.inputs, g.outputs = [x], [y]
    return g.to_bytes("ethos-kws synth GRU-style streaming KWS cell (resource variable, CALL_ONCE)")


OP_CASES: dict[str, OpCase] = {
    "gru_kws": OpCase(("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "CONCATENATION",
                       "FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL", "SUB", "ADD"), gru_kws, stateful=True),
    "lstm_int8": OpCase(("UNIDIRECTIONAL_SEQUENCE_LSTM",), _lstm, stateful=True),
    "streaming_kws": OpCase(("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE",
                             "CONCATENATION", "STRIDED_SLICE", "CONV_2D"), streaming_kws, stateful=True),
    "svdf_int8": OpCase(("SVDF", "FULLY_CONNECTED"), _svdf, stateful=True),
    # int16 LEAKY_RELU with equal IFM/OFM scales: Vela's native LRELU, alpha in OFM_SCALE
    "leaky_relu_int16": OpCase(("LEAKY_RELU",), _unary("LEAKY_RELU", "int16", (-8, 8), (-8, 8), alpha=0.2)),
    # different scales: MUL by alpha + MAX
    "leaky_relu_int16_rescaled": OpCase(("LEAKY_RELU",), _unary("LEAKY_RELU", "int16", (-8, 8), (-2, 4),
                                                                 alpha=0.3)),
    "leaky_relu_int8": OpCase(("LEAKY_RELU",), _unary("LEAKY_RELU", "int8", (-8, 7), (-1.6, 7), alpha=0.2)),
    **{f"{op.lower()}_{dt}": OpCase((op,), _unary(op, dt, rin, rout))
       for op, rin, rout in (("ABS", (-4, 4), (0, 4)), ("RELU", (-4, 4), (0, 4)), ("RELU6", (-8, 8), (0, 6)),
                             ("QUANTIZE", (-4, 4), (-2, 6)))
       for dt in ("int8", "int16")},
    # int8 only: neither TFLite Micro nor LiteRT has an int16 kernel to compare with
    **{f"{op.lower()}_int8": OpCase((op,), _unary(op, "int8", rin, rout))
       for op, rin, rout in (("RELU_N1_TO_1", (-2, 2), (-1, 1)), ("RELU_0_TO_1", (-2, 2), (0, 1)),
                             ("HARD_SWISH", (-4, 4), (-0.4, 4)))},
    "exp_int8": OpCase(("EXP",), _unary("EXP", "int8", (-4, 1), (0, 2.72))),
    "rsqrt_int8": OpCase(("RSQRT",), _unary("RSQRT", "int8", (0, 4), (0, 8))),
    "log_int8": OpCase(("LOG",), _unary("LOG", "int8", (0, 4), (-5, 1.4))),
    "logistic_int8": OpCase(("LOGISTIC",), _fixed_out("LOGISTIC", "int8", (-8, 8), (1 / 256, -128))),
    "tanh_int8": OpCase(("TANH",), _fixed_out("TANH", "int8", (-4, 4), (1 / 128, 0))),
    "logistic_int16": OpCase(("LOGISTIC",), _fixed_out("LOGISTIC", "int16", (-8, 8), (1 / 32768, 0))),
    "tanh_int16": OpCase(("TANH",), _fixed_out("TANH", "int16", (-4, 4), (1 / 32768, 0))),
    **{f"{op.lower()}_{dt}": OpCase((op,), _binary(op, dt, (-4, 4), rout))
       for op, rout in (("ADD", (-11, 11)), ("SUB", (-11, 11)), ("MUL", (-20, 20)),
                        ("MAXIMUM", (-6, 6)), ("MINIMUM", (-6, 6)))
       for dt in ("int8", "int16")},
    "squared_difference_int8": OpCase(("SQUARED_DIFFERENCE",), _binary("SQUARED_DIFFERENCE", "int8", (-4, 4), (0, 60))),
    "add_broadcast_int8": OpCase(("ADD",), _binary("ADD", "int8", (-4, 4), (-11, 11), other_shape=(1, 1, 1, 8))),
    "prelu_int8": OpCase(("PRELU",), _binary("PRELU", "int8", (-4, 4), (-4, 4), other_shape=(1, 1, 1, 8))),
    "concatenation_int8": OpCase(("CONCATENATION",), _concat("int8")),
    "concatenation_int16": OpCase(("CONCATENATION",), _concat("int16")),
    "pack_int8": OpCase(("PACK",), _pack()),
    "unpack_int8": OpCase(("UNPACK",), _with_consts("UNPACK", "int8", (-4, 4), [(1, 5, 8)] * 6, None, [],
                                                    shape=(1, 6, 5, 8)[1:], outputs=6, num=6, axis=0)),
    "split_int8": OpCase(("SPLIT",), _with_consts("SPLIT", "int8", (-4, 4), [(1, 6, 5, 4)] * 2, None, [3],
                                                  consts_first=True, outputs=2, numSplits=2)),
    "split_v_int8": OpCase(("SPLIT_V",), _with_consts("SPLIT_V", "int8", (-4, 4), [(1, 6, 5, 3), (1, 6, 5, 5)],
                                                      None, [[3, 5], 3], outputs=2, numSplits=2)),
    "slice_int8": OpCase(("SLICE",), _with_consts("SLICE", "int8", (-4, 4), (1, 3, 4, 5), None,
                                                  [[0, 1, 1, 2], [1, 3, 4, 5]])),
    "strided_slice_int8": OpCase(("STRIDED_SLICE",), _with_consts(
        "STRIDED_SLICE", "int8", (-4, 4), (1, 3, 2, 8), None, [[0, 0, 1, 0], [1, 6, 5, 8], [1, 2, 2, 1]])),
    "transpose_int8": OpCase(("TRANSPOSE",), _with_consts("TRANSPOSE", "int8", (-4, 4), (1, 5, 6, 8), None,
                                                          [[0, 2, 1, 3]])),
    # the 3-cycles tell the two readings of the U85 OFM transpose field apart
    **{f"transpose_{name}_int8": OpCase(("TRANSPOSE",), _with_consts("TRANSPOSE", "int8", (-4, 4), shape, None, [perm]))
       for name, perm, shape in (("hcw", [0, 1, 3, 2], (1, 6, 8, 5)), ("wch", [0, 2, 3, 1], (1, 5, 8, 6)),
                                 ("cwh", [0, 3, 2, 1], (1, 8, 5, 6)))},
    "pad_int8": OpCase(("PAD",), _with_consts("PAD", "int8", (-4, 4), (1, 8, 8, 8), None,
                                              [[[0, 0], [1, 1], [2, 1], [0, 0]]])),
    "mirror_pad_int8": OpCase(("MIRROR_PAD",), _with_consts("MIRROR_PAD", "int8", (-4, 4), (1, 8, 7, 8), None,
                                                            [[[0, 0], [1, 1], [1, 1], [0, 0]]], mode=0)),
    "mean_int8": OpCase(("MEAN",), _with_consts("MEAN", "int8", (-4, 4), (1, 1, 1, 8), (-2, 2), [[1, 2]],
                                                same_quant=False, keepDims=True)),
    "arg_max_int8": OpCase(("ARG_MAX",), _with_consts("ARG_MAX", "int8", (-4, 4), (1, 6, 5), None, [3],
                                                      out_dtype="int32", outputType=2)),
    "resize_nearest_int8": OpCase(("RESIZE_NEAREST_NEIGHBOR",), _with_consts(
        "RESIZE_NEAREST_NEIGHBOR", "int8", (-4, 4), (1, 12, 10, 8), None, [[12, 10]])),
    "resize_bilinear_int8": OpCase(("RESIZE_BILINEAR",), _with_consts(
        "RESIZE_BILINEAR", "int8", (-4, 4), (1, 12, 10, 8), None, [[12, 10]], halfPixelCenters=True)),
    # U85's NPU_OP_RESIZE: align-corners and half-pixel variants, and 6 -> 9 with and without
    # half-pixel centres (Regor emits the same stream for both: see test_npusim_u85)
    "resize_bilinear_align_corners_int8": OpCase(("RESIZE_BILINEAR",), _with_consts(
        "RESIZE_BILINEAR", "int8", (-4, 4), (1, 11, 9, 8), None, [[11, 9]], alignCorners=True)),
    "resize_nearest_align_corners_int8": OpCase(("RESIZE_NEAREST_NEIGHBOR",), _with_consts(
        "RESIZE_NEAREST_NEIGHBOR", "int8", (-4, 4), (1, 11, 9, 8), None, [[11, 9]], alignCorners=True)),
    "resize_nearest_half_pixel_int8": OpCase(("RESIZE_NEAREST_NEIGHBOR",), _with_consts(
        "RESIZE_NEAREST_NEIGHBOR", "int8", (-4, 4), (1, 12, 10, 8), None, [[12, 10]], halfPixelCenters=True)),
    "resize_nearest_6_to_9_int8": OpCase(("RESIZE_NEAREST_NEIGHBOR",), _with_consts(
        "RESIZE_NEAREST_NEIGHBOR", "int8", (-4, 4), (1, 9, 7, 8), None, [[9, 7]])),
    "resize_nearest_6_to_9_half_pixel_int8": OpCase(("RESIZE_NEAREST_NEIGHBOR",), _with_consts(
        "RESIZE_NEAREST_NEIGHBOR", "int8", (-4, 4), (1, 9, 7, 8), None, [[9, 7]], halfPixelCenters=True)),
    "resize_bilinear_4x_half_pixel_int8": OpCase(("RESIZE_BILINEAR",), _with_consts(
        "RESIZE_BILINEAR", "int8", (-4, 4), (1, 24, 20, 8), None, [[24, 20]], halfPixelCenters=True)),
    "squeeze_int8": OpCase(("SQUEEZE",), _with_consts("SQUEEZE", "int8", (-4, 4), (1, 5, 8), None, [],
                                                      shape=(1, 1, 5, 8), squeezeDims=[1])),
    "expand_dims_int8": OpCase(("EXPAND_DIMS",), _with_consts("EXPAND_DIMS", "int8", (-4, 4), (1, 1, 5, 8),
                                                              None, [1], shape=(1, 5, 8))),
    "shape_int8": OpCase(("SHAPE",), _with_consts("SHAPE", "int8", (-4, 4), (4,), None, [], out_dtype="int32",
                                                  outType=2)),
    "conv2d_int16": OpCase(("CONV_2D",), _conv("int16")),
    "transpose_conv_int8": OpCase(("TRANSPOSE_CONV",), _conv("int8", transpose=True)),
    # Regor passes the output_shape input to the U85 ethos-u op outside the arena (offset -1)
    "transpose_conv_shape_input_int8": OpCase(("TRANSPOSE_CONV",), _conv("int8", transpose=True,
                                                                        shape_input=True)),
    "fully_connected_int16": OpCase(("FULLY_CONNECTED",), _fc16),
    "average_pool_int16": OpCase(("AVERAGE_POOL_2D",), _pool16("AVERAGE_POOL_2D")),
    "max_pool_int16": OpCase(("MAX_POOL_2D",), _pool16("MAX_POOL_2D")),
    "softmax_int16": OpCase(("SOFTMAX",), _softmax16),
    # int32 tensors: U85 NullPool (POOL NONE) and int32 DIV
    "concatenation_int32": OpCase(("CONCATENATION",), _int32("CONCATENATION", (1, 6, 5, 13), second=(1, 6, 5, 5),
                                                             axis=3)),
    "transpose_int32": OpCase(("TRANSPOSE",), _int32("TRANSPOSE", (1, 5, 6, 8), consts=[[0, 2, 1, 3]])),
    "div_int32": OpCase(("DIV",), _int32("DIV", SHAPE, second=np.array([-7, 3, 1000, -1, 2, 65536, -300, 5]).reshape(1, 1, 1, 8))),
    "div_scalar_int32": OpCase(("DIV",), _int32("DIV", SHAPE, second=np.array([666]))),
    # U85 fast-weight-decoder streams (Vela picks FWD on U85-128...512 for these weights)
    "conv2d_fwd_raw_int8": OpCase(("CONV_2D",), _fwd("conv", None, "int8", 32, 16)),
    "conv2d_fwd_raw_int16": OpCase(("CONV_2D",), _fwd("conv", None, "int16", 32, 16)),
    "fully_connected_fwd_lut2_int8": OpCase(("FULLY_CONNECTED",), _fwd("fc", 4, "int8", 256, 128)),
    "fully_connected_fwd_lut4_int8": OpCase(("FULLY_CONNECTED",), _fwd("fc", 16, "int8", 256, 128)),
}


for _name in list(OP_CASES):
    if any(_name.startswith(k) for k in ORACLE_NOTES):
        OP_CASES[_name] = OpCase(OP_CASES[_name].tflite_ops, OP_CASES[_name].build, OP_CASES[_name].stateful, "ref")


def oracle_note(name: str) -> str | None:
    return next((v for k, v in ORACLE_NOTES.items() if name.startswith(k)), None)


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
