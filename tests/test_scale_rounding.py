"""Item 7 of issue 11: FC scale rounding is the compiler's, named with the layer."""

from __future__ import annotations

import numpy as np
from ethosu.vela.scaling import quantise_scale

from ethos_kws.scale_rounding import diagnose, fc_scale_rounding
from ethos_kws.synth import write_model
from ethos_kws.tflite import load_tflite


def test_fc_layers_whose_scales_round_differently_are_named(tmp_path):
    path = write_model(tmp_path / "fc.tflite", "fc", per_channel=True, units=37)
    found = fc_scale_rounding(path)
    assert len(found) == 1 and found[0].layer == "fully_connected" and found[0].op_index == 0
    # recomputed independently: float32 product (Vela) vs double product (TFLite Micro)
    m = load_tflite(path)
    op = m.operators()[0]
    s_in = m.tensor(op.inputs[0]).Quantization().ScaleAsNumpy()[0]
    s_w = m.tensor(op.inputs[1]).Quantization().ScaleAsNumpy()
    s_out = m.tensor(op.outputs[0]).Quantization().ScaleAsNumpy()[0]
    differ = [c for c, w in enumerate(s_w)
              if quantise_scale(np.double(np.float32(s_in) * np.float32(w)) / np.double(s_out))
              != quantise_scale(np.double(s_in) * np.double(w) / np.double(s_out))]
    assert list(found[0].channels) == differ and differ


def test_diagnosis_only_for_one_lsb_on_models_with_such_layers(tmp_path):
    fc = write_model(tmp_path / "fc.tflite", "fc", per_channel=True, units=37)
    conv = write_model(tmp_path / "conv.tflite", "conv2d")
    assert "compiler scale rounding" in diagnose(fc, 1.0) and "'fully_connected'" in diagnose(fc, 1.0)
    assert diagnose(fc, 2.0) is None and diagnose(fc, 0.0) is None
    assert diagnose(conv, 1.0) is None
