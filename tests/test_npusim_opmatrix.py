"""The operator matrix, generated from Vela's own list of operators it can place on the NPU:
every operator on that list has a generated case (int8, and int16 where Vela and a CPU reference
support it), and every case runs on all six accelerators with both Vela compilers, bit exact
against the CPU oracle — or stops with the named feature npu-sim does not model, or shows a named
difference that is not the simulator's (a Vela bug, a CPU kernel TFLite Micro lacks)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
from ethosu.vela.tflite_mapping import builtin_operator_map
from ethosu.vela.tflite_supported_operators import TFLiteSupportedOperators

from ethos_kws.accel import ACCELERATORS as ACCEL_TABLE
from ethos_kws.backends import create_backend
from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.families import SIMULATED
from ethos_kws.errors import BackendError, CompileError, NotModelledError
from ethos_kws.synth import ARCHS
from ethos_kws.synth.opcases import OP_CASES, build_case, random_inputs

COMPILERS = {"regor": False, "legacy": True}
ACCELERATORS = [n for n, a in ACCEL_TABLE.items() if SIMULATED[a.npu]]  # the families npu-sim runs


def compilers_for(acc: str) -> dict[str, bool]:
    """Both compilers where Vela has both; U85 has only Regor (Vela refuses --debug-force-legacy-core)."""
    return COMPILERS if ACCEL_TABLE[acc].legacy_core else {"regor": False}


# case -> the NotModelledError text every U85 size stops with: the U85 features npu-sim does not
# model yet (README, "npu-sim on Ethos-U85"). A case leaving this table (now modelled) or joining
# it fails the test, so the table is the coverage list.
U85_NOT_MODELLED: dict[str, str] = {}
# case -> why the U85 stream computes something else than the model (not the simulator's doing;
# the case must still differ, and a test shows the cause)
U85_STREAM_DIFFERS = {
    "resize_nearest_6_to_9_int8": "Regor's U85 RESIZE_NEAREST at a non-integer ratio ignores "
                                  "half_pixel_centers=False: its stream is byte-identical to the half-pixel "
                                  "model's (test_npusim_u85::test_resize_nearest_half_pixel_is_regors)",
}
# operators the int8 network matrix (test_npusim_matrix.py) covers with calibrated models
NETWORK_MATRIX_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                      "FULLY_CONNECTED", "SOFTMAX", "ADD", "MUL", "RESHAPE"}
# case -> the NotModelledError text every configuration stops with (empty: every case runs)
NOT_MODELLED: dict[str, str] = {}
# (case, compiler) -> (how, why): a difference that is not the simulator's. "vela-fails": Vela
# refuses to compile on some configurations (the others are bit exact); "stream-differs": the
# stream itself computes something else than the model; "no-cpu-kernel": an operator left on the
# CPU that TFLite Micro cannot run.
NOT_OURS = {
    ("shape_int8", "legacy"): ("stream-differs", "Vela's legacy compiler folds SHAPE into a constant "
                               "written as int64 into an int32 tensor: the stream yields [1, 0, 6, 0]"),
    ("unpack_int8", "legacy"): ("vela-fails", "Vela's legacy compiler fails on this UNPACK"),
    ("transpose_int32", "legacy"): ("vela-fails", "Vela's legacy compiler fails on an unquantized int32 "
                                    "TRANSPOSE ('NoneType' object has no attribute 'scale_f32')"),
    ("log_int8", "legacy"): ("no-cpu-kernel", "Vela's legacy compiler leaves int8 LOG on the CPU, "
                             "where TFLite Micro has no int8 LOG kernel"),
}


# (case, compiler) -> (max LSB, what is known): a difference not yet attributed, bounded so that
# any growth fails; parity reports it too. Regor's stream for the same model is bit exact.
OPEN_DIFFERENCES = {
    ("softmax_int16", "legacy"): (1, "Vela's legacy int16 SOFTMAX (a different op sequence from "
                                     "Regor's): 1 LSB on some elements, npu-sim or compiler not yet known"),
}


def vela_npu_operators() -> set[str]:
    """TFLite operators Vela 5.2 can place on the NPU (its TFLiteSupportedOperators table)."""
    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    return {names[code] for code, (op, *_rest) in builtin_operator_map.items()
            if op in TFLiteSupportedOperators.supported_operators}


def test_every_npu_operator_has_a_case():
    covered = NETWORK_MATRIX_OPS | {op for c in OP_CASES.values() for op in c.tflite_ops}
    missing = sorted(vela_npu_operators() - covered)
    assert not missing, f"operators Vela puts on the NPU without a generated case: {missing}"
    assert {"conv2d", "depthwise", "avgpool", "maxpool", "fc", "softmax", "add", "mul", "reshape"} <= set(ARCHS)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("opmatrix")


def _expected(case: str, path, steps):
    cpu = create_backend("cpu", path, kernels=OP_CASES[case].oracle)
    return [[o.data for o in cpu.run(x).outputs] for x in steps]


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_case_on_every_configuration(case, root):
    path = root / f"{case}.tflite"
    path.write_bytes(build_case(case))
    n = 6 if OP_CASES[case].stateful else 3
    cpu = create_backend("cpu", path, kernels=OP_CASES[case].oracle)
    steps = random_inputs(cpu.input_specs, n, seed=len(case))
    expected = _expected(case, path, steps)
    values = np.concatenate([e[0].ravel() for e in expected])
    assert len(np.unique(values)) > 3, f"{case}: degenerate oracle output"
    failures = []
    for acc in ACCELERATORS:
        u85 = ACCEL_TABLE[acc].npu == "U85"
        for comp, legacy in compilers_for(acc).items():
            where = f"{acc}/{comp}"
            how, why = NOT_OURS.get((case, comp), (None, None))
            try:
                compiled = compile_with_vela(path, acc, root / f"{case}-{acc}-{comp}", legacy_core=legacy)
            except CompileError:
                if how == "vela-fails":
                    continue
                raise
            stops = U85_NOT_MODELLED.get(case) if u85 else NOT_MODELLED.get(case)
            if stops:
                with pytest.raises(NotModelledError, match=re.escape(stops)):
                    NpuSimBackend(compiled, cpu_only_ok=True).run_batch(steps)
                continue
            try:
                got = NpuSimBackend(compiled, cpu_only_ok=True).run_batch(steps)
            except BackendError as e:
                if how == "no-cpu-kernel" and "TFLite Micro" in str(e):
                    continue
                raise
            bad = sum(int(np.count_nonzero(g.reshape(e.shape) != e))
                      for gi, ei in zip(got, expected) for g, e in zip(gi, ei))
            if u85 and case in U85_STREAM_DIFFERS:
                assert bad, f"{where}: the named difference is gone ({U85_STREAM_DIFFERS[case]}): update the table"
            elif how == "stream-differs":
                assert bad, f"{where}: the named difference is gone ({why}): update NOT_OURS"
                assert got[0][0].tolist() == [1, 0, 6, 0]
            elif (case, comp) in OPEN_DIFFERENCES:
                limit = OPEN_DIFFERENCES[(case, comp)][0]
                worst = max(int(np.abs(g.reshape(e.shape).astype(np.int64) - e).max())
                            for gi, ei in zip(got, expected) for g, e in zip(gi, ei))
                assert worst <= limit, f"{where}: {worst} LSB, more than the known {limit}"
            elif bad:
                failures.append(f"{where}: {bad} mismatching values")
    assert not failures, f"{case}: " + "; ".join(failures)


@pytest.mark.parametrize("case", ["streaming_kws", "gru_kws"])
def test_stateful_cases_depend_on_history(root, case):
    """A streaming model's output depends on earlier steps (so the state is really carried), and
    reset() returns to the state after loading."""
    path = root / f"{case}.tflite"
    path.write_bytes(build_case(case))
    sim = NpuSimBackend(compile_with_vela(path, "u55-128", root / f"{case}-out"))
    assert sim.stateful
    x = random_inputs(sim.input_specs, 3, seed=5)
    first = sim.run(x[0]).outputs[0].data
    sim.run(x[1])
    again = sim.run(x[0]).outputs[0].data
    assert not np.array_equal(first, again)
    sim.reset()
    assert np.array_equal(sim.run(x[0]).outputs[0].data, first)


def test_model_with_no_npu_operator_runs_on_the_cpu_side(root, tmp_path):
    """MAXIMUM of two int8 inputs stays on the CPU under both compilers: npu-sim runs it on
    TFLite Micro and says so."""
    path = tmp_path / "max.tflite"
    path.write_bytes(build_case("maximum_int8"))
    b = create_backend("npu-sim", path, accel="u55-128")
    r = b.run(random_inputs(b.input_specs, 1, seed=0)[0])
    assert "no operator on the NPU" in r.extra["note"] and r.extra["cpu_operators"] == ["MAXIMUM"]


@pytest.mark.parametrize("opcode", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("in_scale, multiplier", [(1 / 4096, 3), (1 / 2048, 6)])
def test_native_int16_sigmoid_tanh_exhaustive(opcode, in_scale, multiplier):
    """ACTIVATION SIGMOID/TANH on every int16 input, after Vela's rescale to units of 1/0x3000,
    equals TFLite Micro's int16 LOGISTIC/TANH."""
    from ethos_kws.backends.cpu import tflm_interpreter
    from ethos_kws.backends.npusim.activation import sigmoid_q15, tanh_q15
    from ethos_kws.synth.graph import GraphBuilder

    x = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 256, 256, 1)
    g = GraphBuilder()
    a = g.activation("x", x.shape, "int16", scale=in_scale, zero_point=0)
    y = g.activation("y", x.shape, "int16", scale=1 / 32768, zero_point=0)
    g.op(opcode, [a], [y])
    g.inputs, g.outputs = [a], [y]
    interp = tflm_interpreter(g.to_bytes())
    interp.set_input(x, 0)
    interp.invoke()
    expected = np.asarray(interp.get_output(0)).ravel()
    fn = sigmoid_q15 if opcode == "LOGISTIC" else tanh_q15
    got = np.clip(fn(x.astype(np.int64).ravel() * multiplier), -32768, 32767)
    assert np.array_equal(got, expected)
    assert len(np.unique(got)) > 10000
