"""Generated single-op models and DS-CNN S/M x six accelerators x both Vela compilers against
LiteRT's reference kernels on the original model: 0 mismatching output values."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ethos_kws.accel import ACCELERATORS as ALL_ACCELERATORS
from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.behaviours import Behaviours
from ethos_kws.synth import write_model

VECTORS = 4
# U55/U65 (both compilers, LiteRT oracle); U85 has its own tests in test_npusim_u85.py
ACCELERATORS = [name for name, acc in ALL_ACCELERATORS.items() if acc.legacy_core]
COMPILERS = {"regor": False, "legacy": True}
# channel counts that are not multiples of 16, strides, dilation, SAME/VALID, broadcasts
CASES = {
    "conv_same": ("conv2d", {}),
    "conv_s2_valid_19ch": ("conv2d", {"stride": (2, 2), "padding": "valid", "out_channels": 19}),
    "conv_dil2_33ch_relu6": ("conv2d", {"dilation": (2, 2), "out_channels": 33, "activation": "relu6"}),
    "conv_5x3_s21_3in": ("conv2d", {"input_shape": (1, 9, 7, 3), "kernel": (5, 3), "stride": (2, 1),
                                        "out_channels": 7, "activation": "none"}),
    "depthwise_same": ("depthwise", {}),
    "depthwise_s2_valid_21ch": ("depthwise", {"stride": (2, 2), "padding": "valid", "input_shape": (1, 11, 9, 21)}),
    "depthwise_dil2": ("depthwise", {"dilation": (2, 2)}),
    "avgpool_valid": ("avgpool", {"padding": "valid"}),
    "avgpool_same": ("avgpool", {}),
    "avgpool_same_33ch": ("avgpool", {"filter": (3, 2), "stride": (1, 1), "input_shape": (1, 7, 6, 33)}),
    "maxpool_valid": ("maxpool", {}),
    "maxpool_same": ("maxpool", {"padding": "same", "filter": (3, 3), "stride": (2, 2)}),
    "fc": ("fc", {}),
    "fc_per_channel_37": ("fc", {"per_channel": True, "units": 37}),
    "softmax": ("softmax", {}),
    "softmax_40_beta": ("softmax", {"input_shape": (1, 40), "beta": 0.5}),
    "add": ("add", {}),
    "add_broadcast_c": ("add", {"other_shape": (1, 1, 1, 20)}),
    "mul": ("mul", {}),
    "mul_broadcast_hw": ("mul", {"other_shape": (1, 6, 5, 1)}),
    "reshape": ("reshape", {}),
    "ds_cnn_s": ("ds-cnn-s", {}),
    "ds_cnn_m_clustered": ("ds-cnn-m", {"clusters": 32}),
}
LITERT_FC = Behaviours(litert_fc_rounding=True)  # see test_npusim_dscnn.py


def _oracle(path, inputs):
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    out = []
    for item in inputs:
        for d, x in zip(it.get_input_details(), item):
            it.set_tensor(d["index"], x)
        it.invoke()
        out.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
    return out, it.get_input_details()


@pytest.mark.parametrize("case", CASES)
def test_generated_model_all_accelerators_both_compilers(case, tmp_path):
    arch, opts = CASES[case]
    opts = dict(opts)
    clusters = opts.pop("clusters", None)
    model = write_model(tmp_path / f"{case}.tflite", arch, seed=len(case), clusters=clusters, **opts)
    rng = np.random.default_rng(len(case))
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    details = it.get_input_details()
    inputs = [[rng.integers(-128, 128, d["shape"], dtype=np.int8) for d in details] for _ in range(VECTORS)]
    expected, _ = _oracle(model, inputs)
    failures = []
    for acc in ACCELERATORS:
        for comp, legacy in COMPILERS.items():
            compiled = compile_with_vela(model, acc, tmp_path / f"{acc}-{comp}", legacy_core=legacy)
            got = NpuSimBackend(compiled, LITERT_FC).run_batch(inputs)
            bad = sum(
                int(np.count_nonzero(g.reshape(e.shape) != e))
                for gi, ei in zip(got, expected) for g, e in zip(gi, ei)
            )
            if bad:
                failures.append(f"{acc}/{comp}: {bad} mismatching values")
    assert not failures, f"{case}: " + "; ".join(failures)


def test_outputs_depend_on_inputs(tmp_path):
    """The comparison means something: different inputs give different outputs."""
    model = write_model(tmp_path / "c.tflite", "conv2d", seed=1)
    compiled = compile_with_vela(model, "u55-128", tmp_path / "out")
    rng = np.random.default_rng(0)
    a, b = (rng.integers(-128, 128, (1, 12, 10, 5), dtype=np.int8) for _ in range(2))
    out = NpuSimBackend(compiled).run_batch([[a], [b]])
    assert not np.array_equal(out[0][0], out[1][0])
    assert len(np.unique(out[0][0])) > 10
