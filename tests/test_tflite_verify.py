"""The flatbuffer verifier on what converters write: a model with a signature (every LiteRT
converter output has one, e.g. TFLite Micro's hello_world_int8.tflite) loads."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from ethos_kws.errors import ModelError
from ethos_kws.synth.graph import GraphBuilder, pack_model
from ethos_kws.tflite import load_tflite


def _model_with_signature(tensor_index: int | None = None) -> bytes:
    g = GraphBuilder()
    x = g.activation("x", (1, 4), "int8", scale=0.1, zero_point=0)
    y = g.activation("y", (1, 4), "int8", scale=0.1, zero_point=0)
    g.op("RELU", [x], [y])
    g.inputs, g.outputs = [x], [y]
    m = g.model("signature test")
    sig = fb.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.inputs, sig.outputs = [fb.TensorMapT(), fb.TensorMapT()][:1], [fb.TensorMapT()]
    sig.inputs[0].name, sig.inputs[0].tensorIndex = "x", x if tensor_index is None else tensor_index
    sig.outputs[0].name, sig.outputs[0].tensorIndex = "y", y
    m.signatureDefs = [sig]
    return pack_model(m)


def test_a_model_with_a_signature_loads(tmp_path):
    p = tmp_path / "sig.tflite"
    p.write_bytes(_model_with_signature())
    model = load_tflite(p)
    assert [s.name for s in model.input_specs] == ["x"]


def test_a_truncated_signature_is_one_clear_error(tmp_path):
    data = bytearray(_model_with_signature())
    i = data.find(b"serving_default")
    data[i - 4:i] = (1 << 30).to_bytes(4, "little")  # the key's length runs past the file
    p = tmp_path / "bad.tflite"
    p.write_bytes(bytes(data))
    with pytest.raises(ModelError):
        load_tflite(p)


def _model_with_per_axis_const(shape, axis: int) -> bytes:
    g = GraphBuilder()
    x = g.activation("x", (1, 4), "int8", scale=0.1, zero_point=0)
    y = g.activation("y", (1, 4), "int8", scale=0.1, zero_point=0)
    g.const("c", np.zeros(shape, np.int32), "int32", scale=[0.1, 0.2, 0.3, 0.4], zero_point=0, axis=axis)
    g.op("RELU", [x], [y])
    g.inputs, g.outputs = [x], [y]
    return g.to_bytes("per-axis const")


def test_old_converters_bias_quantized_dimension_is_accepted(tmp_path):
    """Old converters wrote the weights' quantized dimension (3) on 1-D biases (TFLite Micro's
    person_detect.tflite); a 1-D tensor's scales can only run along its one axis."""
    p = tmp_path / "bias.tflite"
    p.write_bytes(_model_with_per_axis_const((4,), axis=3))
    load_tflite(p)


@pytest.mark.parametrize("shape, axis", [((4, 2), 3), ((2, 4), 0), ((3,), 0)])
def test_per_axis_scales_off_their_dimension_are_refused(tmp_path, shape, axis):
    p = tmp_path / "bad.tflite"
    p.write_bytes(_model_with_per_axis_const(shape, axis))
    with pytest.raises(ModelError, match="4 scales for quantized dimension"):
        load_tflite(p)
