"""Every inferred hardware behaviour sits behind a switch; flipping any one breaks a real case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.behaviours import DEFAULT, Behaviours
from ethos_kws.synth import write_model
from ethos_kws.synth.opcases import build_case

HARDWARE_SWITCHES = [f.name for f in dataclasses.fields(Behaviours) if f.name != "litert_fc_rounding"]
# which real case shows each behaviour (the softmax's int32 pipeline lives in DS-CNN-L)
SHOWN_BY = {
    "mul32_shift_only": "dscnn",
    "ignore_zp_on_32bit": "dscnn",
    "minmax_no_clamp_32bit": "dscnn",
    "lut_index_plus_128": "dscnn",
    "padded_avg_round_away": "avgpool_same",
    "lrelu_alpha_in_ofm_scale": "leaky_relu_int16",
}


def _oracle(path, inputs):
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for x in inputs:
        it.set_tensor(d_in["index"], x)
        it.invoke()
        out.append(it.get_tensor(d_out["index"]).copy())
    return out


@pytest.fixture(scope="module")
def cases(int8io_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviours")
    rng = np.random.default_rng(11)
    avg = write_model(root / "avg.tflite", "avgpool", seed=4, input_shape=(1, 9, 7, 24))
    lrelu = root / "lrelu16.tflite"
    lrelu.write_bytes(build_case("leaky_relu_int16"))
    result = {}
    for name, model, shape, dtype in (("dscnn", int8io_model, (1, 490), np.int8),
                                      ("avgpool_same", avg, (1, 9, 7, 24), np.int8),
                                      ("leaky_relu_int16", lrelu, (1, 6, 5, 8), np.int16)):
        info = np.iinfo(dtype)
        inputs = [rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype) for _ in range(8)]
        expected = _oracle(model, inputs)
        compiled = [compile_with_vela(model, "u55-128", root / f"{name}-{c}", legacy_core=c == "legacy")
                    for c in ("regor", "legacy")]
        result[name] = (compiled, inputs, expected)
    return result


def _mismatches(compiled, inputs, expected, behaviours):
    got = NpuSimBackend(compiled, behaviours).run_batch([[x] for x in inputs])
    return sum(not np.array_equal(g[0].reshape(e.shape), e) for g, e in zip(got, expected))


def test_every_switch_has_a_case():
    assert set(HARDWARE_SWITCHES) == set(SHOWN_BY)


@pytest.mark.parametrize("switch", HARDWARE_SWITCHES)
def test_default_matches_and_opposite_fails(cases, switch):
    compiled, inputs, expected = cases[SHOWN_BY[switch]]
    lite_fc = dataclasses.replace(DEFAULT, litert_fc_rounding=True)
    flipped = dataclasses.replace(lite_fc, **{switch: not getattr(DEFAULT, switch)})
    for path in compiled:
        assert _mismatches(path, inputs, expected, lite_fc) == 0
    assert sum(_mismatches(path, inputs, expected, flipped) for path in compiled) > 0, (
        f"flipping {switch} changed nothing on {SHOWN_BY[switch]}"
    )
