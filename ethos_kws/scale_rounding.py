"""A parity difference that is the compiler's, not the simulator's: FULLY_CONNECTED scales.

Vela (``weight_compressor``: "TensorFlow Lite casts the scales slightly differently ... for
FullyConnected operators") computes an FC's per-channel rescale as the float32 product
``ifm_scale * weight_scale`` converted to double, then divided by the OFM scale; TFLite Micro
computes the product in double. When the two products quantise to different (multiplier, shift)
pairs, the NPU — real hardware as well as npu-sim, which executes Vela's scale stream — can differ
from TFLite Micro by 1 LSB on that channel. ``fc_scale_rounding`` recomputes every FC layer's
scales both ways and names the layers and channels where they differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from ethosu.vela.scaling import quantise_scale

from .tflite import load_tflite


@dataclass(frozen=True)
class FcScaleDifference:
    layer: str  # the FC's output tensor name
    op_index: int
    channels: tuple[int, ...]

    def describe(self) -> str:
        shown = ", ".join(map(str, self.channels[:8])) + (" ..." if len(self.channels) > 8 else "")
        return f"FULLY_CONNECTED {self.layer!r} (operator {self.op_index}, channel {shown})"


def _scales(model, index: int) -> np.ndarray | None:
    q = model.tensor(index).Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    return q.ScaleAsNumpy().astype(np.float32)


def fc_scale_rounding(model_path: str | os.PathLike) -> list[FcScaleDifference]:
    """FULLY_CONNECTED layers of the original model whose rescale Vela quantises differently
    from TFLite Micro (float32 vs double product of the input and weight scales)."""
    model = load_tflite(model_path)
    found = []
    for op in model.operators():
        if op.opcode != "FULLY_CONNECTED" or len(op.inputs) < 2 or not op.outputs:
            continue
        s_in, s_w, s_out = _scales(model, op.inputs[0]), _scales(model, op.inputs[1]), _scales(model, op.outputs[0])
        if s_in is None or s_w is None or s_out is None:
            continue
        channels = []
        for c, w in enumerate(s_w):
            vela = quantise_scale(np.double(s_in[0] * w) / np.double(s_out[0]))
            tflm = quantise_scale(np.double(s_in[0]) * np.double(w) / np.double(s_out[0]))
            if vela != tflm:
                channels.append(c)
        if channels:
            name = model.tensor_spec(op.outputs[0]).name
            found.append(FcScaleDifference(name, op.index, tuple(channels)))
    return found


def diagnose(model_path: str | os.PathLike, max_abs_diff_lsb: float | None) -> str | None:
    """A one-line classification of a parity difference, or None when none applies: 1-LSB
    differences on a model with FC layers whose scales the compiler rounds differently."""
    if not max_abs_diff_lsb or max_abs_diff_lsb > 1:
        return None
    layers = fc_scale_rounding(model_path)
    if not layers:
        return None
    return ("consistent with compiler scale rounding: Vela computes the scale of "
            + "; ".join(d.describe() for d in layers)
            + " as a float32 product, TFLite Micro in double (real hardware shares this difference)")
