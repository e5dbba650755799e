"""npu-sim on Ethos-U85 (issue 15): Vela 5.2's U85 command streams for u85-128 ... u85-2048 against
TFLite Micro's reference kernels (the parity oracle), bit for bit; the U85 weight decoder against
the original kernels on every size; the U85 decoder against Vela's own disassembly; malformed U85
streams end in CommandStreamError."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import tflite_micro

from ethos_kws.accel import ACCELERATORS
from ethos_kws.backends import create_backend
from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.container import CommandPayload, read_ethos_u_op
from ethos_kws.backends.npusim.memory import Memory
from ethos_kws.backends.npusim.u85 import isa
from ethos_kws.backends.npusim.u85.commands import decode_u85_stream
from ethos_kws.backends.npusim.u85.executor import U85Executor
from ethos_kws.backends.npusim.u85.ops import ConvPlan
from ethos_kws.backends.npusim.u85.weights import U85WeightParams, decode_weights
from ethos_kws.cli import main
from ethos_kws.errors import CommandStreamError, NotModelledError
from ethos_kws.synth import DS_CNN_CASES, SINGLE_OP_CASES, NetBuilder, write_model
from ethos_kws.synth.flatbuf import OpDef
from ethos_kws.tflite import load_tflite

U85 = [name for name, acc in ACCELERATORS.items() if acc.npu == "U85"]
CMD0_CODE = {name: code for code, name in isa.CMD0.items()}
CMD1_CODE = {name: code for code, name in isa.CMD1.items()}

# the generated single-operator cases of test_npusim_matrix.py (same shapes and seeds)
from test_npusim_matrix import CASES as MATRIX_CASES  # noqa: E402


def tflm(model_path, inputs):
    it = tflite_micro.runtime.Interpreter.from_file(str(model_path))
    n_out = len(load_tflite(model_path).output_specs)
    out = []
    for item in inputs:
        for i, x in enumerate(item):
            it.set_input(x, i)
        it.invoke()
        out.append([np.array(it.get_output(i), copy=True) for i in range(n_out)])
    return out


def random_inputs(model_path, n, seed):
    rng = np.random.default_rng(seed)
    specs = load_tflite(model_path).input_specs
    return [[rng.integers(-128, 128, s.shape, dtype=np.int8) for s in specs] for _ in range(n)]


def mismatches(compiled, inputs, expected, behaviours=None) -> int:
    got = (NpuSimBackend(compiled, behaviours) if behaviours else NpuSimBackend(compiled)).run_batch(inputs)
    return sum(int(np.count_nonzero(g.reshape(e.shape) != e))
               for gi, ei in zip(got, expected) for g, e in zip(gi, ei))


def test_u85_rows():
    assert U85 == ["u85-128", "u85-256", "u85-512", "u85-1024", "u85-2048"]
    assert [ACCELERATORS[a].cores for a in U85] == [1, 1, 2, 4, 4]
    assert not any(ACCELERATORS[a].legacy_core for a in U85)


@pytest.mark.parametrize("case", MATRIX_CASES)
def test_matrix_case_bit_exact_on_every_u85(case, tmp_path):
    arch, opts = MATRIX_CASES[case]
    opts = dict(opts)
    clusters = opts.pop("clusters", None)
    model = write_model(tmp_path / f"{case}.tflite", arch, seed=len(case), clusters=clusters, **opts)
    inputs = random_inputs(model, 4, len(case))
    expected = tflm(model, inputs)
    failures = []
    for acc in U85:
        compiled = compile_with_vela(model, acc, tmp_path / acc)
        bad = mismatches(compiled, inputs, expected)
        if bad:
            failures.append(f"{acc}: {bad} mismatching values")
    assert not failures, f"{case}: " + "; ".join(failures)


@pytest.mark.parametrize("case", SINGLE_OP_CASES + DS_CNN_CASES, ids=lambda c: c.id)
def test_synth_case_bit_exact_single_and_multi_core(case, tmp_path):
    """The synth matrix (sub-kernels above 8x8, dilation 3, DS-CNN S/M/L) on one single-core and
    one four-core U85."""
    model = write_model(tmp_path / "m.tflite", case.arch, **case.build_kwargs())
    inputs = random_inputs(model, 3, case.seed)
    expected = tflm(model, inputs)
    # DS-CNN S/M/L on all five sizes (issue 15); the single-op cases on one single- and one 4-core
    sizes = U85 if case in DS_CNN_CASES else ("u85-256", "u85-2048")
    for acc in sizes:
        assert mismatches(compile_with_vela(model, acc, tmp_path / acc), inputs, expected) == 0, acc


def _activation_model(path, kind):
    """int8 LOGISTIC / TANH / LEAKY_RELU (Vela lowers each to a 1x1 SUM pool with a LUT_S8_S8)."""
    nb = NetBuilder(seed=3)
    x = nb.input((1, 6, 5, 20))
    y = {"LOGISTIC": 1 / (1 + np.exp(-x.calib)), "TANH": np.tanh(x.calib),
         "LEAKY_RELU": np.where(x.calib < 0, 0.2 * x.calib, x.calib)}[kind]
    qparams = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}.get(kind)  # LEAKY_RELU: from y's range
    out = nb._act(kind.lower(), x.shape, y, qparams=qparams)
    nb.graph.add_op(OpDef(kind, (x.index,), (out.index,), {"Alpha": 0.2} if kind == "LEAKY_RELU" else {}))
    nb.output(out)
    path.write_bytes(nb.to_bytes(kind))
    return path


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH", "LEAKY_RELU"])
def test_lut_activations_bit_exact(kind, tmp_path):
    model = _activation_model(tmp_path / f"{kind}.tflite", kind)
    inputs = random_inputs(model, 4, 1)
    expected = tflm(model, inputs)
    for acc in U85:
        compiled = compile_with_vela(model, acc, tmp_path / acc)
        ops = {c.name for c in decode_u85_stream(read_ethos_u_op(
            load_tflite(compiled), next(o for o in load_tflite(compiled).operators()
                                        if o.custom_code == "ethos-u")).payload.words, 1 << 20)}
        assert "NPU_OP_DMA_START" in ops  # the LUT goes into the LUT RAM
        assert mismatches(compiled, inputs, expected) == 0, acc


@pytest.mark.parametrize("switch, case", [
    ("mul32_shift_only", "softmax"),
    ("lut_index_plus_128", "LOGISTIC"),
    ("padded_avg_round_away", "avgpool_same"),
])
def test_inferred_behaviours_hold_on_u85(switch, case, tmp_path):
    """The U55 behaviour switches U85 shares: the default is exact, the opposite choice is not."""
    import dataclasses

    from ethos_kws.backends.npusim.behaviours import DEFAULT

    if case == "LOGISTIC":
        model = _activation_model(tmp_path / "m.tflite", case)
    else:
        arch, opts = MATRIX_CASES[case]
        model = write_model(tmp_path / "m.tflite", arch, seed=len(case), **opts)
    inputs = random_inputs(model, 8, 3)
    expected = tflm(model, inputs)
    compiled = compile_with_vela(model, "u85-256", tmp_path / "o")
    assert mismatches(compiled, inputs, expected) == 0
    flipped = dataclasses.replace(DEFAULT, **{switch: not getattr(DEFAULT, switch)})
    assert mismatches(compiled, inputs, expected, flipped) > 0


@pytest.fixture(scope="module")
def real_compiled(int8io_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("u85_real")
    return {acc: compile_with_vela(int8io_model, acc, root / acc) for acc in U85}


@pytest.mark.parametrize("acc", U85)
def test_real_ds_cnn_l_bit_exact(int8io_model, real_compiled, acc):
    inputs = random_inputs(int8io_model, 12, 2024)
    backend = NpuSimBackend(real_compiled[acc])
    assert backend.executors[0].config.name == acc
    assert mismatches(real_compiled[acc], inputs, tflm(int8io_model, inputs)) == 0


def test_outputs_depend_on_inputs(int8io_model, real_compiled):
    backend = NpuSimBackend(real_compiled["u85-512"])
    a, b = random_inputs(int8io_model, 2, 5)
    out = backend.run_batch([a, b])
    assert not np.array_equal(out[0][0], out[1][0])


# --- the weight decoder on streams from every U85 size ---------------------------------------

def _originals(model_path):
    model = load_tflite(model_path)
    out = []
    for op in model.operators():
        if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w = model.tensor_data(op.inputs[1]).astype(np.int32)
        zp = model.tensor(op.inputs[1]).Quantization().ZeroPointAsNumpy()
        w = w - (zp if np.size(zp) == 1 else 0)
        if op.opcode == "DEPTHWISE_CONV_2D":
            w = w.transpose(3, 1, 2, 0)
        elif op.opcode == "FULLY_CONNECTED":
            w = w.reshape(w.shape[0], 1, 1, w.shape[1])
        out.append(w)
    return out


def _conv_plans(compiled):
    m = load_tflite(compiled)
    eop = read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u"))
    ex = U85Executor(eop.payload)
    mem = Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes,
                        eop.fast_is_scratch, eop.payload.config.shram_bytes)
    ex.run(mem)  # weights are often DMA'd into SRAM just before their op: decode what the op saw
    return [p for _c, p in ex._plans if isinstance(p, ConvPlan)]


def _streams(plan):
    return list(plan._key[0])  # the raw weight streams of the plan's last run


def _slice_of(decoded, originals, covered) -> bool:
    for k, o in enumerate(originals):
        if o.shape[1:] != decoded.shape[1:]:
            continue
        n = decoded.shape[0]
        for start in range(0, o.shape[0] - n + 1):
            if np.array_equal(o[start : start + n], decoded):
                covered[k][start : start + n] = True
                return True
    return False


@pytest.mark.parametrize("acc", U85)
def test_weight_streams_decode_to_the_original_kernels(int8io_model, real_compiled, acc, tmp_path):
    """Every CONV/DEPTHWISE weight stream (one per core) decodes to an exact OFM slice of an
    original kernel, and together they cover every channel; on the synthetic DS-CNN-L too, whose
    first conv Vela encodes 2:4 sparse."""
    synth = write_model(tmp_path / "l.tflite", "ds-cnn-l", seed=0)
    traversals = set()
    for model, compiled in ((int8io_model, real_compiled[acc]),
                            (synth, compile_with_vela(synth, acc, tmp_path / "s"))):
        originals = _originals(model)
        covered = [np.zeros(o.shape[0], dtype=bool) for o in originals]
        plans = _conv_plans(compiled)
        assert plans
        for plan in plans:
            streams = _streams(plan)
            assert len(streams) == ACCELERATORS[acc].cores
            decoded = decode_weights(streams, plan.params)
            assert _slice_of(decoded, originals, covered), plan.params
            traversals.add(plan.params.traversal + ("-sparse" if plan.params.sparse else ""))
        for k, c in enumerate(covered):
            assert c.all(), f"layer {k}: channels {np.flatnonzero(~c)[:8]} in no stream"
    assert {"DEPTH_FIRST", "DEPTHWISE", "PART_KERNEL_FIRST-sparse"} <= traversals, traversals


@pytest.mark.parametrize("change", ["ublock", "ofm_block", "core_order"])
def test_a_wrong_traversal_does_not_decode(real_compiled, change):
    """The decoder's count and padding checks bite: any other traversal parameter fails or gives
    other weights."""
    import dataclasses

    plans = _conv_plans(real_compiled["u85-512"])
    plan = next(p for p in plans if p.params.traversal == "DEPTH_FIRST" and p.params.ifm_depth > 64)
    streams = _streams(plan)
    good = decode_weights(streams, plan.params)
    p = plan.params
    wrong = {"ublock": dataclasses.replace(p, ublock_depth=p.ublock_depth * 2),
             "ofm_block": dataclasses.replace(p, ofm_block_depth=max(8, p.ofm_block_depth // 2)),
             "core_order": p}[change]
    if change == "core_order":
        streams = streams[1:] + streams[:1]
    try:
        other = decode_weights(streams, wrong)
    except CommandStreamError:
        return
    assert not np.array_equal(other, good)


def test_weight_params_are_checked():
    p = U85WeightParams(256, 1, "SIDEWAYS", 1, 1, 1, 1, 1, 1, 8, 8, 8, 8, 8)
    with pytest.raises(CommandStreamError, match="traversal"):
        decode_weights([b""], p)


# --- decoding and disassembly ---------------------------------------------------------------

def _vela_disassembly(model, acc, out_dir):
    """Vela's own --verbose-register-command-stream listing, from a separate process (an
    in-process run would leave Vela's printing bound to this test's captured, then closed, stdout)."""
    import subprocess
    import sys

    from ethos_kws.accel import vela_ini_path

    argv = [str(model), "--accelerator-config", f"ethos-{acc}", "--config", str(vela_ini_path()),
            "--system-config", "Ethos_U85_SYS_DRAM_Mid", "--memory-mode", "Dedicated_Sram",
            "--output-dir", str(out_dir), "--verbose-register-command-stream"]
    p = subprocess.run([sys.executable, "-c", "import sys; from ethosu.vela.vela import main; "
                        "sys.exit(main(sys.argv[1:]))", *argv], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = re.findall(r"^0x([0-9a-f]{6}):.* - (NPU_\w+)", p.stdout, re.M)
    return [(int(off, 16), name) for off, name in rows], out_dir / f"{model.stem}_vela.tflite"


@pytest.mark.parametrize("acc", ["u85-128", "u85-1024"])
def test_decoder_agrees_with_velas_disassembly(acc, tmp_path):
    model = write_model(tmp_path / "sm.tflite", "ds-cnn-s", seed=0)
    rows, compiled = _vela_disassembly(model, acc, tmp_path / "out")
    m = load_tflite(compiled)
    eop = read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u"))
    ours = [(c.offset, c.name) for c in decode_u85_stream(eop.payload.words, 1 << 20)]
    assert len(rows) > 100 and ours == rows


@pytest.fixture(scope="module")
def softmax_u85(tmp_path_factory):
    root = tmp_path_factory.mktemp("u85_softmax")
    model = write_model(root / "sm.tflite", "softmax", seed=0)
    compiled = compile_with_vela(model, "u85-256", root / "out")
    m = load_tflite(compiled)
    return read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u")), compiled


def test_disasm_u85_register_names(softmax_u85, capsys):
    _, compiled = softmax_u85
    assert main(["disasm", str(compiled)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "u85-256" in lines[0] and "IB 16384 bytes" in lines[0]
    body = lines[1:]
    assert any("NPU_SET_ACTIVATION" in l and "activation_function=LUT_S8_S32" in l for l in body)
    assert any("NPU_SET_OFM_SCALE" in l and "round_mode=NATURAL" in l for l in body)
    assert any("NPU_SET_IFM_SCALE" in l and "dbl_rnd=20" in l for l in body)
    assert any("NPU_SET_OP_SCALAR" in l for l in body)
    assert any("NPU_SET_OFM_PRECISION" in l and "activation_storage=CHAINED" in l for l in body)
    assert any("NPU_OP_POOL" in l and "pooling_mode=REDUCE_SUM" in l for l in body)
    assert not any("NPU_SET_OPA_SCALE" in l or "IFM2_SCALAR" in l for l in body)  # U55-only names
    assert body[-1].split()[-2] == "NPU_OP_STOP"


# --- malformed and unmodelled U85 streams -----------------------------------------------------

def cmd0(name, param=0):
    return [CMD0_CODE[name] | (param & 0xFFFF) << 16]


def cmd1(name, value, param=0):
    return [CMD1_CODE[name] | 0x4000 | (param & 0xFFFF) << 16, value & 0xFFFFFFFF]


def run_words(eop, words, seconds=10.0, error=CommandStreamError):
    """Malformed streams raise CommandStreamError (exit 2); valid ones using something npu-sim does
    not model raise NotModelledError (exit 1)."""
    payload = CommandPayload(eop.payload.config, np.asarray(words, dtype=np.uint32))
    mem = Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes, eop.fast_is_scratch,
                        eop.payload.config.shram_bytes)
    start = time.perf_counter()
    with pytest.raises(error) as info:
        U85Executor(payload).run(mem)
    assert time.perf_counter() - start < seconds
    return str(info.value)


def with_before(words, name, extra):
    code = CMD0_CODE[name]
    i = 0
    while not ((words[i] >> 14) & 3 == 0 and words[i] & 0x3FF == code):
        i += 2 if (words[i] >> 14) & 3 else 1
    return words[:i] + extra + words[i:]


def words_of(eop):
    return [int(w) for w in eop.payload.words]


def test_original_u85_stream_runs(softmax_u85):
    eop, _ = softmax_u85
    mem = Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes, eop.fast_is_scratch,
                        eop.payload.config.shram_bytes)
    U85Executor(eop.payload).run(mem)


def test_truncated(softmax_u85):
    eop, _ = softmax_u85
    words = words_of(eop)
    i = next(k for k, w in enumerate(words) if (w >> 14) & 3 == 1)
    assert "truncated" in run_words(eop, words[: i + 1])


def test_unknown_u85_opcode(softmax_u85):
    eop, _ = softmax_u85
    # 0x186 is IFM2_SCALAR on U55; U85 has no such register
    assert "unknown cmd0 opcode 0x186" in run_words(eop, [0x186] + words_of(eop))


def test_bit_flips_never_crash(softmax_u85):
    """Single-bit flips in every other of the first 200 words run or stop with
    CommandStreamError: nothing else escapes."""
    eop, _ = softmax_u85
    words = words_of(eop)
    outcomes = set()
    for i in range(0, min(200, len(words)), 2):
        for bit in (0, 3, 9, 14, 16, 20, 27, 31):
            w = list(words)
            w[i] ^= 1 << bit
            payload = CommandPayload(eop.payload.config, np.asarray(w, dtype=np.uint32))
            mem = Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes,
                                eop.fast_is_scratch, eop.payload.config.shram_bytes)
            try:
                U85Executor(payload).run(mem)
                outcomes.add("ran")
            except (CommandStreamError, NotModelledError):
                outcomes.add("error")
    assert outcomes == {"ran", "error"}


@pytest.mark.parametrize("reg", ["NPU_SET_IFM_BASE0", "NPU_SET_OFM_BASE0"])
def test_out_of_range_feature_map(softmax_u85, reg):
    eop, _ = softmax_u85
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_POOL", cmd1(reg, 0xFFFFFF00)))
    assert "outside the region" in msg and "NPU_OP_POOL" in msg


def test_out_of_range_dma_and_lut(softmax_u85):
    eop, _ = softmax_u85
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_DMA_START", cmd1("NPU_SET_DMA0_DST", 4000)))
    assert "DMA destination" in msg and "region LUT" in msg


def test_out_of_range_weights(tmp_path):
    model = write_model(tmp_path / "c.tflite", "conv2d", seed=1)
    m = load_tflite(compile_with_vela(model, "u85-256", tmp_path / "o"))
    eop = read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u"))
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_CONV", cmd1("NPU_SET_WEIGHT_LENGTH", 1 << 30)))
    assert "WEIGHT stream" in msg and "outside the region" in msg
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_CONV", cmd1("NPU_SET_WEIGHT_LENGTH", 16)))
    assert "weight" in msg


@pytest.mark.parametrize("extra, needle", [
    (cmd0("NPU_SET_OFM_REGION", 0), "read-only region 0"),
    (cmd0("NPU_SET_IFM_REGION", 5), "region 5 is not backed"),
    (cmd1("NPU_SET_OFM_SCALE", 1, 7 << 13), "rounding mode 7 is not defined"),
    (cmd0("NPU_SET_OFM_PRECISION", 0x0001 | 1 << 6 | 4 << 11), "activation_transpose 4 is not defined"),
])
def test_malformed_register_values(softmax_u85, extra, needle):
    eop, _ = softmax_u85
    assert needle in run_words(eop, with_before(words_of(eop), "NPU_OP_POOL", extra))


@pytest.mark.parametrize("extra, needle", [
    (cmd0("NPU_SET_ACTIVATION", 10), "LUT_TANH with a"),
    (cmd0("NPU_SET_IFM_UPSCALE", 1), "IFM_UPSCALE mode 1"),
    (cmd0("NPU_SET_ACC_FORMAT", 1 << 4), "acc_input KEEP"),
    (cmd0("NPU_SET_ACC_FORMAT", 1 << 6), "acc_output DISABLE"),
    (cmd1("NPU_SET_IFM_STRIDE_C", 3), "with IFM_STRIDE_C 3 (not its element size)"),
    (cmd0("NPU_SET_OFM_PRECISION", 0x0001 | 1 << 6 | 1 << 9 | 1 << 11), "activation_reverse together with activation_transpose"),
])
def test_unmodelled_register_values(softmax_u85, extra, needle):
    eop, _ = softmax_u85
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_POOL", extra), error=NotModelledError)
    assert needle in msg


@pytest.mark.parametrize("op, mode, needle", [
    ("NPU_OP_POOL", 7, "POOL ARGMAX_Y is not modelled"),
    ("NPU_OP_POOL", 6, "POOL ARGMAX_X with OFM_SCALE"),  # softmax's POOL scale is not ArgMax's 1 >> 16
    ("NPU_OP_ELEMENTWISE", 16, "ELEMENTWISE CMP_EQ is not modelled"),
    ("NPU_OP_POOL", 4, "POOL NONE with ACC_FORMAT acc_input RESET"),
    ("NPU_OP_ELEMENTWISE", 33, "ELEMENTWISE AND is not modelled"),
    ("NPU_OP_ELEMENTWISE", 10, "ELEMENTWISE LSR is not modelled"),
    ("NPU_OP_POOL", 5, "POOL MIN is not modelled"),
])
def test_unmodelled_modes(softmax_u85, op, mode, needle):
    eop, _ = softmax_u85
    words = words_of(eop)
    code = CMD0_CODE[op]
    j = next(k for k in range(len(words)) if words[k] & 0x3FF == code and (words[k] >> 14) & 3 == 0)
    words[j] = code | mode << 16
    assert needle in run_words(eop, words, error=NotModelledError)


def test_resize_and_branch_are_named(softmax_u85):
    eop, _ = softmax_u85
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_POOL", cmd0("NPU_OP_RESIZE", 1)), error=NotModelledError)
    assert "NPU_OP_RESIZE REPLICATE is not modelled" in msg
    msg = run_words(eop, cmd1("NPU_OP_BRANCH", 0) + words_of(eop), error=NotModelledError)
    assert "NPU_OP_BRANCH (control flow) is not modelled" in msg


def test_chained_input_without_producer(softmax_u85):
    eop, _ = softmax_u85
    chained_ifm = cmd0("NPU_SET_IFM_PRECISION", 0x1 | 2 << 14) + cmd0("NPU_SET_IFM_REGION", 5)
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_POOL", chained_ifm))
    assert "chain buffer CB5" in msg and "no earlier operation wrote" in msg


def test_dma_2d_refused(softmax_u85):
    eop, _ = softmax_u85
    msg = run_words(eop, with_before(words_of(eop), "NPU_OP_DMA_START", cmd0("NPU_SET_DMA0_SRC_REGION", 1 << 9)),
                    error=NotModelledError)
    assert "stride mode D2" in msg


def test_cli_exit_2_one_line(softmax_u85, tmp_path, capsys):
    _, compiled = softmax_u85
    data = bytearray(compiled.read_bytes())
    off = data.find(b"COP1")
    i = off + 4
    while data[i] != 0x02:
        i += 12 if data[i] == 0x01 else 4
    data[i + 4 : i + 8] = (0x3FE).to_bytes(4, "little")
    bad = tmp_path / "bad_vela.tflite"
    bad.write_bytes(bytes(data))
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 12), dtype=np.int8))
    rc = main(["run", "--backend", "npu-sim", "--model", str(bad), "--input", str(x)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "unknown cmd0 opcode 0x3fe" in err[0], err


def test_argmax_ties_pick_the_first_maximum(tmp_path):
    """POOL ARGMAX_X on inputs full of ties (values -1, 0, 1): the first maximum wins, as in
    TFLite's ARG_MAX. Random int8 inputs almost never tie, so the op matrix cannot show this."""
    from ethos_kws.synth.opcases import OP_CASES, build_case

    path = tmp_path / "argmax.tflite"
    path.write_bytes(build_case("arg_max_int8"))
    cpu = create_backend("cpu", path, kernels=OP_CASES["arg_max_int8"].oracle)
    rng = np.random.default_rng(0)
    steps = [[rng.integers(-1, 2, size=s.shape).astype(s.dtype) for s in cpu.input_specs] for _ in range(3)]
    ties = sum(int(((x[0].reshape(-1, x[0].shape[-1]) == x[0].reshape(-1, x[0].shape[-1]).max(1, keepdims=True)).sum(1) > 1).sum())
               for x in steps)
    assert ties > 50
    sim = NpuSimBackend(compile_with_vela(path, "u85-256", tmp_path / "o"))
    for x, got in zip(steps, sim.run_batch(steps)):
        np.testing.assert_array_equal(got[0].reshape(cpu.run(x).outputs[0].data.shape), cpu.run(x).outputs[0].data)


def test_resize_nearest_half_pixel_is_regors(tmp_path):
    """RESIZE_NEAREST_NEIGHBOR 6x5 -> 9x7 with and without half_pixel_centers: Regor emits one and
    the same U85 command stream for both, so at most one can match its model. npu-sim matches the
    half-pixel model bit for bit (nearest rounds half up on the centre position); the other
    model's difference is Vela's, named in the op matrix."""
    from ethos_kws.synth.opcases import OP_CASES, build_case, random_inputs

    streams, sims = {}, {}
    for case in ("resize_nearest_6_to_9_int8", "resize_nearest_6_to_9_half_pixel_int8"):
        path = tmp_path / f"{case}.tflite"
        path.write_bytes(build_case(case))
        compiled = compile_with_vela(path, "u85-256", tmp_path / case)
        m = load_tflite(compiled)
        streams[case] = read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u")).payload.words
        sims[case] = (path, NpuSimBackend(compiled))
    assert list(streams["resize_nearest_6_to_9_int8"]) == list(streams["resize_nearest_6_to_9_half_pixel_int8"])
    path, sim = sims["resize_nearest_6_to_9_half_pixel_int8"]
    cpu = create_backend("cpu", path, kernels=OP_CASES["resize_nearest_6_to_9_half_pixel_int8"].oracle)
    steps = random_inputs(cpu.input_specs, 3, seed=1)
    for x, got in zip(steps, sim.run_batch(steps)):
        want = cpu.run(x).outputs[0].data
        np.testing.assert_array_equal(got[0].reshape(want.shape), want)


# --- the fast weight decoder (WEIGHT_FORMAT FWD) ---------------------------------------------

# generated cases whose weights Vela 5.2 encodes for U85's fast weight decoder, and the mode it picks
FWD_CASES = {"conv2d_fwd_raw_int8": "RAW", "conv2d_fwd_raw_int16": "RAW",
             "fully_connected_fwd_lut2_int8": "LUT2", "fully_connected_fwd_lut4_int8": "LUT4"}
FWD_MODES = {0: "LUT4", 1: "RAW", 2: "LUT2"}  # header bits 0 (raw) and 1 (2-bit LUT)


def test_fwd_cases_reach_every_fwd_mode_bit_exact(tmp_path):
    """Vela encodes the FWD cases' weights in each of the fast weight decoder's three modes, on one
    core and on U85-512's two (one stream, the cores' traversals interleaved); npu-sim decodes them
    to the original kernels and matches TFLite Micro bit for bit."""
    from ethos_kws.synth.opcases import OP_CASES, build_case
    from ethos_kws.synth.opcases import random_inputs as case_inputs

    seen = set()
    for case, mode in FWD_CASES.items():
        path = tmp_path / f"{case}.tflite"
        path.write_bytes(build_case(case))
        cpu = create_backend("cpu", path, kernels=OP_CASES[case].oracle)
        steps = case_inputs(cpu.input_specs, 3, seed=1)
        expected = [[o.data for o in cpu.run(x).outputs] for x in steps]
        originals = _originals(path)
        for acc in ("u85-128", "u85-256", "u85-512"):
            compiled = compile_with_vela(path, acc, tmp_path / f"{case}-{acc}")
            for plan in _conv_plans(compiled):
                if not plan.params.fast:
                    continue
                streams = _streams(plan)
                assert len(streams) == 1 and FWD_MODES[streams[0][0] & 3] == mode, (case, acc)
                covered = [np.zeros(o.shape[0], dtype=bool) for o in originals]
                assert _slice_of(decode_weights(streams, plan.params), originals, covered)
                seen.add((mode, ACCELERATORS[acc].cores))
            got = NpuSimBackend(compiled).run_batch(steps)
            bad = sum(int(np.count_nonzero(g.reshape(e.shape) != e))
                      for gi, ei in zip(got, expected) for g, e in zip(gi, ei))
            assert bad == 0, f"{case} on {acc}: {bad} mismatching values"
    assert {("RAW", 1), ("RAW", 2), ("LUT2", 1), ("LUT2", 2), ("LUT4", 2)} <= seen, seen


def _fwd_stream(values, mode: str, lut=(), adjust: int = 0) -> bytes:
    """A fast-weight stream written from the format's description (header, fields, 256-bit pad)."""
    bits = [int(mode == "RAW"), int(mode == "LUT2")] + [0] * 102 + [(adjust >> i) & 1 for i in range(8)]
    table = list(lut) + [0] * (16 - len(lut))
    for v in table:
        folded = (abs(v) << 1) | int(v < 0)
        bits += [(folded >> i) & 1 for i in range(9)]
    width = {"RAW": 8, "LUT2": 2, "LUT4": 4}[mode]
    for v in values:
        code = (v + adjust) & 0xFF if mode == "RAW" else table.index(v)
        bits += [(code >> i) & 1 for i in range(width)]
    bits += [0] * (-len(bits) % 256)
    return np.packbits(np.array(bits, dtype=np.uint8), bitorder="little").tobytes()


@pytest.mark.parametrize("mode, lut, adjust, lo, hi", [
    ("RAW", (), 0, -128, 127),
    ("RAW", (), 12, -140, 115),   # a range past -128: stored shifted up by the zero adjust
    ("RAW", (), -20, -100, 147),
    ("LUT2", (0, -5, 7, 127), 0, None, None),
    ("LUT4", tuple(range(-120, 121, 16)), 0, None, None),
])
def test_fwd_fields_decode(mode, lut, adjust, lo, hi):
    from ethos_kws.backends.npusim.u85.weights import _fwd_decode

    rng = np.random.default_rng(0)
    values = rng.integers(lo, hi + 1, 77) if mode == "RAW" else rng.choice(lut, 77)
    np.testing.assert_array_equal(_fwd_decode(_fwd_stream(values.tolist(), mode, lut, adjust), 77), values)


@pytest.mark.parametrize("damage, needle", [
    (lambda b: b[:20], "shorter than its 32-byte header"),
    (lambda b: bytes([b[0] | 3]) + b[1:], "both raw mode and the 2-bit LUT"),
    (lambda b: b[:5] + bytes([1]) + b[6:], "reserved bits"),
    (lambda b: b[:40], "fewer than 77 8-bit weights"),
])
def test_fwd_malformed_streams(damage, needle):
    from ethos_kws.backends.npusim.u85.weights import _fwd_decode

    good = _fwd_stream(list(range(-38, 39)), "RAW")
    with pytest.raises(CommandStreamError, match=needle):
        _fwd_decode(damage(good), 77)


def test_fwd_interleaves_core_orders_in_blocks():
    from ethos_kws.backends.npusim.u85.weights import _fwd_interleave

    orders = (np.arange(10), np.arange(10, 20))
    got = _fwd_interleave(orders, 4).tolist()
    assert got == [0, 1, 2, 3, 10, 11, 12, 13, 4, 5, 6, 7, 14, 15, 16, 17, 8, 9, 18, 19]


# --- NullPool (POOL NONE) and int32 DIV --------------------------------------------------------

def _plans(compiled):
    m = load_tflite(compiled)
    eop = read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u"))
    ex = U85Executor(eop.payload)
    ex.prepare(Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes,
                             eop.fast_is_scratch, eop.payload.config.shram_bytes))
    return [p for _c, p in ex._plans if p is not None]


@pytest.mark.parametrize("case, plan, mode", [
    ("concatenation_int32", "NullPoolPlan", None),
    ("div_int32", "ElementwisePlan", "DIV"),
    ("div_scalar_int32", "ElementwisePlan", "DIV"),
])
def test_int32_cases_reach_nullpool_and_div(case, plan, mode, tmp_path):
    """The op matrix's int32 cases run on U85 as regor's NullPool (POOL NONE, accumulators loaded
    from IFM2) and as int32 ELEMENTWISE DIV (negative quotients truncated toward zero, as TFLite's
    int32 DIV): the op matrix shows them bit exact, this that they reach those operations."""
    from ethos_kws.synth.opcases import build_case

    path = tmp_path / f"{case}.tflite"
    path.write_bytes(build_case(case))
    for acc in U85:
        plans = _plans(compile_with_vela(path, acc, tmp_path / acc))
        assert any(type(p).__name__ == plan and (mode is None or isa.ELEMENTWISE_MODE[p.mode] == mode)
                   for p in plans), (acc, [type(p).__name__ for p in plans])


def test_div_by_zero_is_named(tmp_path):
    from ethos_kws.synth.opcases import SHAPE, _int32

    path = tmp_path / "div2.tflite"
    path.write_bytes(_int32("DIV", SHAPE, second=SHAPE)(0))
    sim = NpuSimBackend(compile_with_vela(path, "u85-256", tmp_path / "o"))
    x = np.arange(-120, 120, dtype=np.int32).reshape(SHAPE)
    ok = sim.run_batch([[x, np.full(SHAPE, -7, np.int32)]])[0][0].reshape(SHAPE)
    np.testing.assert_array_equal(ok, np.trunc(x / -7).astype(np.int32))
    with pytest.raises(NotModelledError, match="DIV by zero"):
        sim.run_batch([[x, np.zeros(SHAPE, np.int32)]])
