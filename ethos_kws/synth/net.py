"""Build an int8 network layer by layer while calibrating its quantization on random inputs.

Each layer method computes a float reference of the layer (``reference``) on a calibration batch
that went through the quantized layers before it (fake quantization), and sets the output scale
and zero point from the range actually reached. So every output uses its int8 range: neither
saturated nor constant. Weights are drawn from the builder's seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import quant, reference
from .flatbuf import Graph, OpDef, TensorDef, serialize

ACTIVATION_CODES = {"none": 0, "relu": 1, "relu6": 3}  # ActivationFunctionType
PADDING_CODES = {"same": 0, "valid": 1}  # Padding
CALIBRATION_VECTORS = 16
BIAS_SPREAD = 0.5  # bias std relative to the channel's accumulator std: ReLUs stay half open


@dataclass(frozen=True)
class Act:
    """An activation tensor: graph index, quantization and its calibration values (float)."""

    index: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    calib: np.ndarray  # (CALIBRATION_VECTORS, *shape[1:]) dequantized values


class NetBuilder:
    def __init__(self, seed: int, clusters: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.clusters = clusters
        self.graph = Graph()
        self._names: dict[str, int] = {}

    # ---- plumbing ---------------------------------------------------------------------------------

    def _name(self, base: str) -> str:
        """Unique tensor names: a layer's first use of ``conv2d`` is "conv2d", then "conv2d_1"."""
        layer, _, rest = base.partition("/")
        if rest:  # a layer's constant: named after the layer tensor created next
            n = self._names.get(layer, 0)
            return f"{layer if n == 0 else f'{layer}_{n}'}/{rest}"
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def _act(self, name: str, shape, values: np.ndarray, lo_hi=None, qparams=None) -> Act:
        """New activation tensor whose quantization covers ``values`` (or given ``qparams``)."""
        if qparams is None:
            lo, hi = lo_hi if lo_hi is not None else (float(values.min()), float(values.max()))
            qparams = quant.activation_qparams(lo, hi)
        scale, zp = qparams
        idx = self.graph.add_tensor(TensorDef(self._name(name), tuple(shape), "int8", (scale,), (zp,)))
        return Act(idx, tuple(shape), scale, zp, quant.fake_quantize(values, scale, zp))

    def _const(self, name: str, data: np.ndarray, scales=None, zps=None, axis: int = 0) -> int:
        dtype = str(data.dtype)
        scale = tuple(float(s) for s in scales) if scales is not None else None
        zp = tuple(int(z) for z in zps) if zps is not None else ((0,) * len(scale) if scale else None)
        return self.graph.add_tensor(TensorDef(self._name(name), tuple(data.shape), dtype, scale, zp, axis, data))

    def _weights(self, name: str, w: np.ndarray, axis: int | None):
        """Quantize (and optionally cluster) ``w``; return tensor index, dequantized w, scales."""
        q, scales = quant.quantize_weights(w, axis, self.clusters)
        idx = self._const(name, q, scales, axis=axis or 0)
        return idx, quant.dequantize_weights(q, scales, axis), scales

    def _bias(self, name: str, acc: np.ndarray, in_scale: float, w_scales: np.ndarray, centre=0.0):
        """int32 bias with scale in_scale * w_scale: ``centre`` plus a random offset relative to
        the accumulator's spread."""
        channels = acc.shape[-1]
        spread = acc.reshape(-1, channels).std(axis=0) + 1e-9
        b = centre + self.rng.normal(0.0, BIAS_SPREAD, channels) * spread
        # one scale per weight scale: a per-tensor FC needs a per-tensor bias
        b_scales = np.array([float(np.float32(in_scale * s)) for s in w_scales])
        q = np.round(b / b_scales).astype(np.int32)
        idx = self._const(name, q, b_scales)
        return idx, q * b_scales

    def _output_range(self, y: np.ndarray, activation: str) -> tuple[float, float]:
        y = reference.ACTIVATIONS[activation](y)
        return float(y.min()), float(y.max())

    # ---- layers -----------------------------------------------------------------------------------

    def input(self, shape, scale: float | None = None, zero_point: int | None = None) -> Act:
        """Model input; random int8 calibration data over the whole int8 range."""
        if scale is None:
            scale = quant.round_scale(float(self.rng.uniform(0.01, 0.1)))
        if zero_point is None:
            zero_point = int(self.rng.integers(-32, 33))
        q = self.rng.integers(-128, 128, (CALIBRATION_VECTORS,) + tuple(shape[1:]))
        idx = self.graph.add_tensor(TensorDef(self._name("input"), tuple(shape), "int8", (scale,), (zero_point,)))
        self.graph.inputs.append(idx)
        return Act(idx, tuple(shape), scale, zero_point, quant.dequantize(q, scale, zero_point))

    def output(self, *acts: Act) -> None:
        self.graph.outputs.extend(a.index for a in acts)

    def _biased_output(self, name: str, x: Act, acc, w_scales, activation: str):
        """The int32 bias and the activated, calibrated output shared by CONV and DEPTHWISE."""
        b_idx, b_deq = self._bias(f"{name}/bias", acc, x.scale, w_scales)
        y = acc + b_deq
        out = self._act(name, (1, *y.shape[1:]), reference.ACTIVATIONS[activation](y),
                        self._output_range(y, activation))
        return b_idx, out

    def conv2d(self, x: Act, out_channels: int, kernel=(3, 3), stride=(1, 1), dilation=(1, 1),
               padding="same", activation="relu", name="conv2d") -> Act:
        cin = x.shape[3]
        gain = self.rng.uniform(0.5, 2.0, (out_channels, 1, 1, 1))  # distinct per-channel scales
        w = self.rng.normal(0.0, 1.0, (out_channels, *kernel, cin)) * gain / np.sqrt(kernel[0] * kernel[1] * cin)
        w_idx, w_deq, w_scales = self._weights(f"{name}/weights", w, axis=0)
        acc = reference.conv2d(x.calib, w_deq, 0.0, stride, dilation, padding)
        b_idx, out = self._biased_output(name, x, acc, w_scales, activation)
        self.graph.add_op(OpDef("CONV_2D", (x.index, w_idx, b_idx), (out.index,), {
            "Padding": PADDING_CODES[padding], "StrideH": stride[0], "StrideW": stride[1],
            "DilationHFactor": dilation[0], "DilationWFactor": dilation[1],
            "FusedActivationFunction": ACTIVATION_CODES[activation]}))
        return out

    def depthwise_conv2d(self, x: Act, kernel=(3, 3), stride=(1, 1), dilation=(1, 1), padding="same",
                         activation="relu", name="depthwise_conv2d") -> Act:
        c = x.shape[3]
        gain = self.rng.uniform(0.5, 2.0, (1, 1, 1, c))
        w = self.rng.normal(0.0, 1.0, (1, *kernel, c)) * gain / np.sqrt(kernel[0] * kernel[1])
        w_idx, w_deq, w_scales = self._weights(f"{name}/weights", w, axis=3)
        acc = reference.depthwise_conv2d(x.calib, w_deq, 0.0, stride, dilation, padding)
        b_idx, out = self._biased_output(name, x, acc, w_scales, activation)
        self.graph.add_op(OpDef("DEPTHWISE_CONV_2D", (x.index, w_idx, b_idx), (out.index,), {
            "Padding": PADDING_CODES[padding], "StrideH": stride[0], "StrideW": stride[1],
            "DilationHFactor": dilation[0], "DilationWFactor": dilation[1], "DepthMultiplier": 1,
            "FusedActivationFunction": ACTIVATION_CODES[activation]}))
        return out

    def pool(self, x: Act, kind: str, filter=(2, 2), stride=(2, 2), padding="valid",
             activation="none", name=None) -> Act:
        """AVERAGE_POOL_2D / MAX_POOL_2D ("avg"/"max"); TFLite wants the input's quantization."""
        fn, opcode = {"avg": (reference.avg_pool, "AVERAGE_POOL_2D"),
                      "max": (reference.max_pool, "MAX_POOL_2D")}[kind]
        y = reference.ACTIVATIONS[activation](fn(x.calib, filter, stride, padding))
        out = self._act(name or f"{kind}_pool", (1, *y.shape[1:]), y, qparams=(x.scale, x.zero_point))
        self.graph.add_op(OpDef(opcode, (x.index,), (out.index,), {
            "Padding": PADDING_CODES[padding], "StrideH": stride[0], "StrideW": stride[1],
            "FilterHeight": filter[0], "FilterWidth": filter[1],
            "FusedActivationFunction": ACTIVATION_CODES[activation]}))
        return out

    def fully_connected(self, x: Act, units: int, activation="none", per_channel=False,
                        logit_std: float | None = None, name="fully_connected") -> Act:
        """``logit_std``: scale the weights so the outputs vary by that much from one input to the
        next, and centre them with the bias (classifier logits feeding a softmax)."""
        n_in = int(np.prod(x.shape[1:]))
        feats = x.calib.reshape(len(x.calib), -1)
        w = self.rng.normal(0.0, 1.0, (units, n_in)) / np.sqrt(n_in)
        if logit_std is not None:
            spread = float(((feats - feats.mean(axis=0)) @ w.T).std())
            w *= logit_std / (spread + 1e-9)
        axis = 0 if per_channel else None
        w_idx, w_deq, w_scales = self._weights(f"{name}/weights", w, axis=axis)
        acc = reference.fully_connected(x.calib, w_deq, 0.0)
        centre = -acc.mean(axis=0) if logit_std is not None else 0.0
        b_idx, b_deq = self._bias(f"{name}/bias", acc, x.scale, w_scales, centre)
        y = acc + b_deq
        out = self._act(name, (1, units), reference.ACTIVATIONS[activation](y), self._output_range(y, activation))
        self.graph.add_op(OpDef("FULLY_CONNECTED", (x.index, w_idx, b_idx), (out.index,), {
            "FusedActivationFunction": ACTIVATION_CODES[activation], "KeepNumDims": False}))
        return out

    def softmax(self, x: Act, beta: float = 1.0, name="softmax") -> Act:
        y = reference.softmax(x.calib, beta)
        out = self._act(name, x.shape, y, qparams=(1.0 / 256.0, -128))  # TFLite's fixed int8 output
        self.graph.add_op(OpDef("SOFTMAX", (x.index,), (out.index,), {"Beta": beta}))
        return out

    def elementwise(self, kind: str, a: Act, b: Act, activation="none", name=None) -> Act:
        """ADD / MUL of two activations ("add"/"mul"), NumPy broadcasting as TFLite does."""
        fn, opcode = {"add": (np.add, "ADD"), "mul": (np.multiply, "MUL")}[kind]
        y = fn(a.calib, b.calib)
        shape = (1, *np.broadcast_shapes(a.shape[1:], b.shape[1:]))
        out = self._act(name or kind, shape, reference.ACTIVATIONS[activation](y), self._output_range(y, activation))
        self.graph.add_op(OpDef(opcode, (a.index, b.index), (out.index,),
                                {"FusedActivationFunction": ACTIVATION_CODES[activation]}))
        return out

    def reshape(self, x: Act, shape, name="reshape") -> Act:
        shape = tuple(int(s) for s in shape)
        shape_idx = self._const(f"{name}/shape", np.array(shape, dtype=np.int32))
        y = x.calib.reshape((len(x.calib), *shape[1:]))
        out = self._act(name, shape, y, qparams=(x.scale, x.zero_point))
        self.graph.add_op(OpDef("RESHAPE", (x.index, shape_idx), (out.index,)))
        return out

    def to_bytes(self, description: str) -> bytes:
        return serialize(self.graph, description=description)
