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


OP_CASES: dict[str, OpCase] = {
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
