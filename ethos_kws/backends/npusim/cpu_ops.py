"""The few CPU-side operators a Vela model may keep outside the NPU, executed in numpy."""

from __future__ import annotations

import numpy as np

from ...errors import ModelError
from ...tflite import TfliteModel, numpy_dtype


def _quant(model: TfliteModel, index: int) -> tuple[float, int]:
    spec = model.tensor_spec(index)
    if spec.scale is None:
        raise ModelError(f"tensor {spec.name!r} has no quantization parameters")
    return spec.scale, int(spec.zero_point or 0)


def quantize(model: TfliteModel, op, x: np.ndarray) -> np.ndarray:
    """TFLite reference AffineQuantize: round(x / scale) half away from zero, + zero point."""
    out_dtype = numpy_dtype(model.tensor(op.outputs[0]).Type())
    scale, zp = _quant(model, op.outputs[0])
    if x.dtype.kind != "f":
        raise ModelError("QUANTIZE between integer types is not supported by npu-sim")
    r = x.astype(np.float32) / np.float32(scale)
    q = np.sign(r) * np.floor(np.abs(r) + np.float32(0.5))
    info = np.iinfo(out_dtype)
    return np.clip(q.astype(np.int64) + zp, info.min, info.max).astype(out_dtype)


def dequantize(model: TfliteModel, op, x: np.ndarray) -> np.ndarray:
    scale, zp = _quant(model, op.inputs[0])
    return (np.float64(scale) * (x.astype(np.int64) - zp)).astype(np.float32)


CPU_OPS = {"QUANTIZE": quantize, "DEQUANTIZE": dequantize}
