"""npu-sim on the real DS-CNN-L: six accelerators x both Vela compilers against LiteRT's reference
kernels (BUILTIN_REF) on the original model, raw int8 outputs compared bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ethos_kws.accel import ACCELERATORS as ALL_ACCELERATORS
from ethos_kws.backends.npusim.backend import (
    NpuSimBackend,
    compile_with_vela,
    make_backend,
)
from ethos_kws.backends.npusim.behaviours import Behaviours

VECTORS = 12
# U55/U65 (both compilers, LiteRT oracle); U85 has its own tests in test_npusim_u85.py
ACCELERATORS = [name for name, acc in ALL_ACCELERATORS.items() if acc.legacy_core]
COMPILERS = {"regor": False, "legacy": True}
# LiteRT's FULLY_CONNECTED rounds once where the NPU (and LiteRT's CONV) round twice; this switch
# reproduces LiteRT's FC so that everything else can be compared bit for bit (see behaviours.py).
LITERT_FC = Behaviours(litert_fc_rounding=True)


def oracle(model_path, inputs):
    it = Interpreter(model_path=str(model_path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    result = []
    for item in inputs:
        for d, x in zip(ins, item):
            it.set_tensor(d["index"], x)
        it.invoke()
        result.append([it.get_tensor(d["index"]).copy() for d in outs])
    return result


@pytest.fixture(scope="module")
def compiled(int8io_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dscnn_vela")
    return {
        (acc, comp): compile_with_vela(int8io_model, acc, root / f"{acc}-{comp}", legacy_core=legacy)
        for acc in ACCELERATORS
        for comp, legacy in COMPILERS.items()
    }


@pytest.fixture(scope="module")
def vectors(int8io_model):
    rng = np.random.default_rng(2024)
    inputs = [[rng.integers(-128, 128, (1, 490), dtype=np.int8)] for _ in range(VECTORS)]
    return inputs, oracle(int8io_model, inputs)


@pytest.mark.parametrize("comp", COMPILERS)
@pytest.mark.parametrize("acc", ACCELERATORS)
def test_dscnn_l_bit_exact(compiled, vectors, acc, comp):
    inputs, expected = vectors
    backend = NpuSimBackend(compiled[(acc, comp)], LITERT_FC)
    assert backend.executors[0].config.name == acc
    got = backend.run_batch(inputs)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g[0].reshape(e[0].shape), e[0])


def test_hardware_fc_rounding_differs_from_litert_only_in_fc(compiled, int8io_model):
    """With the NPU's own (double) rounding in the FC, a few vectors differ from LiteRT; making only
    the FC round like LiteRT removes every difference, so nothing else is involved."""
    rng = np.random.default_rng(7)
    inputs = [[rng.integers(-128, 128, (1, 490), dtype=np.int8)] for _ in range(200)]
    expected = oracle(int8io_model, inputs)
    path = compiled[("u55-128", "regor")]
    hw = NpuSimBackend(path).run_batch(inputs)
    fc = NpuSimBackend(path, LITERT_FC).run_batch(inputs)
    hw_bad = sum(not np.array_equal(g[0].reshape(e[0].shape), e[0]) for g, e in zip(hw, expected))
    fc_bad = sum(not np.array_equal(g[0].reshape(e[0].shape), e[0]) for g, e in zip(fc, expected))
    assert fc_bad == 0
    assert 0 < hw_bad < 20  # the rare double-rounding ties of the FC


def test_single_run_matches_batch(compiled, vectors):
    inputs, expected = vectors
    backend = NpuSimBackend(compiled[("u65-512", "regor")], LITERT_FC)
    result = backend.run(inputs[0])
    np.testing.assert_array_equal(result.outputs[0].data.reshape(expected[0][0].shape), expected[0][0])
    assert result.backend == "npu-sim" and result.extra["accel"] == "u65-512"
    assert result.host_ms is not None and result.host_ms > 0  # host wall clock (npu-sim has no NPU time)


def test_batch_split_across_threads_is_bit_exact(compiled, vectors, tmp_path):
    """A stateless batch split over threads (each on its own copy of the graph) gives exactly the
    one-thread outputs, in order, for uneven parts too; a file changed after loading is refused."""
    from ethos_kws.errors import ModelError

    rng = np.random.default_rng(11)
    inputs = [[rng.integers(-128, 128, (1, 490), dtype=np.int8)] for _ in range(37)]
    path = tmp_path / "m_vela.tflite"
    path.write_bytes(compiled[("u55-32", "regor")].read_bytes())
    one = NpuSimBackend(path, threads=1).run_batch(inputs)
    three = NpuSimBackend(path, threads=3)
    got = three.run_batch(inputs)
    assert len(three._twins) == 2  # 37 inputs: parts of 13, 13 and 11
    assert len(got) == len(one) and all(np.array_equal(g[0], o[0]) for g, o in zip(got, one))
    assert three.run_batch(inputs[:5])[4][0].tobytes() == one[4][0].tobytes()  # too small to split
    fresh = NpuSimBackend(path, threads=2)
    path.write_bytes(compiled[("u55-64", "regor")].read_bytes())
    with pytest.raises(ModelError, match="changed on disk"):
        fresh.run_batch(inputs)


def test_float_io_model_runs_quantize_dequantize_on_cpu(float_io_model, tmp_path):
    """ds_cnn_l_quantized.tflite keeps QUANTIZE/DEQUANTIZE on the CPU; npu-sim runs them in numpy."""
    compiled = compile_with_vela(float_io_model, "u55-64", tmp_path)
    backend = NpuSimBackend(compiled, LITERT_FC)
    assert backend.step_names == ["QUANTIZE", "ethos-u", "DEQUANTIZE"]
    rng = np.random.default_rng(3)
    inputs = [[rng.normal(0, 30, (1, 490)).astype(np.float32)] for _ in range(6)]
    expected = oracle(float_io_model, inputs)
    for g, e in zip(backend.run_batch(inputs), expected):
        np.testing.assert_array_equal(g[0].reshape(e[0].shape), e[0])


def test_make_backend_compiles_plain_model(int8io_model):
    backend = make_backend(int8io_model, accel="u55-32", legacy_core=True, litert_fc_rounding=True)
    assert backend.executors[0].config.name == "u55-32"
    x = np.zeros((1, 490), dtype=np.int8)
    np.testing.assert_array_equal(backend.run([x]).outputs[0].data.reshape(1, 12), oracle(int8io_model, [[x]])[0][0])


def test_both_compilers_really_differ(compiled):
    regor = NpuSimBackend(compiled[("u55-128", "regor")]).executors[0].commands
    legacy = NpuSimBackend(compiled[("u55-128", "legacy")]).executors[0].commands
    assert len(regor) != len(legacy)


def test_thread_count_from_the_environment(monkeypatch):
    from ethos_kws.backends.npusim.backend import MAX_THREADS, default_threads
    from ethos_kws.errors import UserError

    monkeypatch.setenv("ETHOS_KWS_NPUSIM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("ETHOS_KWS_NPUSIM_THREADS")
    assert 1 <= default_threads() <= MAX_THREADS
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("ETHOS_KWS_NPUSIM_THREADS", bad)
        with pytest.raises(UserError, match="whole number"):
            default_threads()


def test_batch_split_after_fork(compiled):
    """A backend that split a batch, inherited by a forked child (a local worker process), splits
    there too: the child makes its own threads (the parent's do not exist in it), no hang."""
    import multiprocessing as mp

    backend = NpuSimBackend(compiled[("u55-128", "regor")], threads=2)
    rng = np.random.default_rng(5)
    inputs = [[rng.integers(-128, 128, (1, 490), dtype=np.int8)] for _ in range(8)]
    want = backend.run_batch(inputs)
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        q.put([o[0].tobytes() for o in backend.run_batch(inputs)])

    p = ctx.Process(target=child)
    p.start()
    try:
        got = q.get(timeout=60)
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
    assert got == [o[0].tobytes() for o in want]
