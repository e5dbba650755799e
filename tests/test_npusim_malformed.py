"""Malformed command streams end in one clear CommandStreamError (exit 2), valid streams using
something npu-sim does not model in NotModelledError (exit 1): no crash, no hang, no runaway
allocation; the CLI turns them into one line."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.commands import CMD0_CODE, CMD1_CODE
from ethos_kws.backends.npusim.container import (
    CommandPayload,
    parse_payload,
    read_ethos_u_op,
)
from ethos_kws.backends.npusim.executor import Executor
from ethos_kws.backends.npusim.memory import Memory
from ethos_kws.cli import main
from ethos_kws.errors import CommandStreamError, NotModelledError, UserError
from ethos_kws.synth import write_model
from ethos_kws.tflite import load_tflite


def cmd0(name, param=0):
    return [CMD0_CODE[name] | (param & 0xFFFF) << 16]


def cmd1(name, value, param=0):
    return [CMD1_CODE[name] | 0x4000 | (param & 0xFFFF) << 16, value & 0xFFFFFFFF]


@pytest.fixture(scope="module")
def softmax_op(tmp_path_factory):
    """A real stream with DMA, LUT, POOL and ELEMENTWISE ops (softmax), u55-128, Regor."""
    root = tmp_path_factory.mktemp("malformed")
    model = write_model(root / "sm.tflite", "softmax", seed=0)
    compiled = compile_with_vela(model, "u55-128", root / "out")
    m = load_tflite(compiled)
    op = next(o for o in m.operators() if o.custom_code == "ethos-u")
    return read_ethos_u_op(m, op), compiled


def run_words(eop, words, seconds=10.0, error=CommandStreamError):
    payload = CommandPayload(eop.payload.config, np.asarray(words, dtype=np.uint32))
    mem = Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes, eop.fast_is_scratch,
                        eop.payload.config.shram_bytes)
    start = time.perf_counter()
    with pytest.raises(error) as info:
        Executor(payload).run(mem)
    assert time.perf_counter() - start < seconds
    return str(info.value)


def first_op_index(words, name):
    code = CMD0_CODE[name]
    i = 0
    while i < len(words):
        w = words[i]
        if (w >> 14) & 3 == 0 and w & 0x3FF == code:
            return i
        i += 2 if (w >> 14) & 3 else 1
    raise AssertionError(name)


def with_before(words, name, extra):
    i = first_op_index(words, name)
    return words[:i] + extra + words[i:]


def test_original_stream_runs(softmax_op):
    eop, _ = softmax_op
    mem = Memory.create(1, eop.read_only, eop.scratch_bytes, eop.scratch_fast_bytes, eop.fast_is_scratch,
                        eop.payload.config.shram_bytes)
    Executor(eop.payload).run(mem)


def test_truncated_payload(softmax_op):
    eop, _ = softmax_op
    words = [int(w) for w in eop.payload.words]
    i = next(k for k, w in enumerate(words) if (w >> 14) & 3 == 1)
    assert "truncated" in run_words(eop, words[: i + 1])


def test_unknown_opcode(softmax_op):
    eop, _ = softmax_op
    msg = run_words(eop, [0x3FF] + [int(w) for w in eop.payload.words])
    assert "unknown cmd0 opcode 0x3ff" in msg


def test_reserved_bits(softmax_op):
    eop, _ = softmax_op
    assert "reserved bits" in run_words(eop, [0x0000_0C00] + [int(w) for w in eop.payload.words])


@pytest.mark.parametrize("reg", ["NPU_SET_IFM_BASE0", "NPU_SET_OFM_BASE0"])
def test_out_of_bounds_feature_map(softmax_op, reg):
    eop, _ = softmax_op
    words = with_before([int(w) for w in eop.payload.words], "NPU_OP_POOL", cmd1(reg, 0xFFFFFF00))
    msg = run_words(eop, words)
    assert "outside the region" in msg and "NPU_OP_POOL" in msg and "region 1" in msg


def test_out_of_bounds_dma(softmax_op):
    eop, _ = softmax_op
    words = with_before([int(w) for w in eop.payload.words], "NPU_OP_DMA_START",
                        cmd1("NPU_SET_DMA0_LEN", 0xFFFFFFFF, 0xFF))
    msg = run_words(eop, words)
    assert "DMA source" in msg and "outside the region" in msg


def test_huge_counts(softmax_op):
    eop, _ = softmax_op
    huge = (cmd0("NPU_SET_OFM_HEIGHT_M1", 0xFFFF) + cmd0("NPU_SET_OFM_WIDTH_M1", 0xFFFF)
            + cmd0("NPU_SET_OFM_DEPTH_M1", 0xFFFF))
    msg = run_words(eop, with_before([int(w) for w in eop.payload.words], "NPU_OP_ELEMENTWISE", huge))
    assert "unsupported shape" in msg


def test_endless_stream_is_capped(softmax_op):
    eop, _ = softmax_op
    msg = run_words(eop, cmd0("NPU_SET_IFM_PAD_TOP", 0) * ((1 << 20) + 1), seconds=30)
    assert "cap" in msg


def test_too_many_operations_capped(softmax_op):
    eop, _ = softmax_op
    words = [int(w) for w in eop.payload.words]
    i = first_op_index(words, "NPU_OP_DMA_START")
    msg = run_words(eop, words[:i] + cmd0("NPU_OP_DMA_START") * 70000 + cmd0("NPU_OP_STOP", 0xFFFF), seconds=30)
    assert "operations" in msg and "cap" in msg


@pytest.mark.parametrize("extra, needle", [
    (cmd0("NPU_SET_OFM_REGION", 0), "read-only region 0"),
    (cmd0("NPU_SET_IFM_REGION", 5), "region 5 is not backed"),
    (cmd0("NPU_SET_OFM_PRECISION", 0x7), "unsupported element size"),
    (cmd0("NPU_SET_ACTIVATION", 7), "ACTIVATION function 7 is not defined"),
    (cmd0("NPU_SET_ACTIVATION", 1 << 12), "clip range 1 is not defined"),
    (cmd0("NPU_SET_OFM_PRECISION", 0x0001 | 3 << 14), "rounding mode 3"),
])
def test_malformed_register_values(softmax_op, extra, needle):
    eop, _ = softmax_op
    msg = run_words(eop, with_before([int(w) for w in eop.payload.words], "NPU_OP_POOL", extra))
    assert needle in msg


@pytest.mark.parametrize("extra, needle", [
    (cmd0("NPU_SET_ACC_FORMAT", 2), "FP_S5_10"),
])
def test_unmodelled_register_values(softmax_op, extra, needle):
    eop, _ = softmax_op
    msg = run_words(eop, with_before([int(w) for w in eop.payload.words], "NPU_OP_POOL", extra),
                    error=NotModelledError)
    assert needle in msg


@pytest.mark.parametrize("op", ["NPU_OP_POOL", "NPU_OP_ELEMENTWISE"])
def test_unmodelled_modes(softmax_op, op):
    eop, _ = softmax_op
    words = [int(w) for w in eop.payload.words]
    i = first_op_index(words, op)
    words[i] = CMD0_CODE[op] | 12 << 16
    assert "mode 12 is not defined" in run_words(eop, words)


def test_dma_stride_modes_refused(softmax_op):
    eop, _ = softmax_op
    words = with_before([int(w) for w in eop.payload.words], "NPU_OP_DMA_START",
                        cmd0("NPU_SET_DMA0_SRC_REGION", 3 << 9))
    assert "undefined DMA stride mode 3" in run_words(eop, words)


def test_not_modelled_is_not_a_user_error(softmax_op):
    """A valid feature npu-sim lacks is ours (exit 1), not a malformed stream (exit 2)."""
    assert not issubclass(NotModelledError, UserError) and issubclass(CommandStreamError, UserError)
    eop, _ = softmax_op
    words = with_before([int(w) for w in eop.payload.words], "NPU_OP_ELEMENTWISE",
                        cmd0("NPU_SET_IFM_UPSCALE", 1))
    assert "IFM_UPSCALE NEAREST on ELEMENTWISE" in run_words(eop, words, error=NotModelledError)


@pytest.mark.parametrize("header, needle", [
    (b"XXXX", "COP1"),
    (b"COP1" + (0x01).to_bytes(4, "little"), "truncated COP1 header"),
    (b"COP1" + (0x07).to_bytes(4, "little"), "unknown COP1 driver action"),
    (b"COP1" + (0x01).to_bytes(4, "little") + (0x1807).to_bytes(4, "little") + bytes(4)
     + (0x02 | 100 << 16).to_bytes(4, "little"), "header says 100 words"),
    (b"COP1" + (0x01).to_bytes(4, "little") + (0x70001807).to_bytes(4, "little") + bytes(4), "unknown product"),
    (b"COP1" + bytes(3), "not a multiple of 4"),
])
def test_bad_driver_header(header, needle):
    with pytest.raises(CommandStreamError, match=needle):
        parse_payload(header)


def _corrupt_file(compiled, out):
    """Replace the first command word after the CMD_STREAM driver action with an unknown opcode."""
    data = bytearray(compiled.read_bytes())
    off = data.find(b"COP1")
    i = off + 4
    while data[i] != 0x02:  # walk driver actions: CONFIG (3 words), NOPs (1 word)
        i += 12 if data[i] == 0x01 else 4
    data[i + 4 : i + 8] = (0x3FE).to_bytes(4, "little")
    out.write_bytes(bytes(data))
    return out


def test_backend_refuses_at_load(softmax_op, tmp_path):
    _, compiled = softmax_op
    bad = _corrupt_file(compiled, tmp_path / "bad_vela.tflite")
    with pytest.raises(CommandStreamError, match="unknown cmd0 opcode 0x3fe"):
        NpuSimBackend(bad)


def test_cli_exit_2_one_line(softmax_op, tmp_path, capsys):
    _, compiled = softmax_op
    bad = _corrupt_file(compiled, tmp_path / "bad_vela.tflite")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 12), dtype=np.int8))
    rc = main(["run", "--backend", "npu-sim", "--model", str(bad), "--input", str(x)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "unknown cmd0 opcode 0x3fe" in err[0], err


def test_behaviours_are_frozen():
    from ethos_kws.backends.npusim.behaviours import DEFAULT
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.lut_index_plus_128 = False  # type: ignore[misc]


# Features of the U55/U65 register set that Vela 5.2 never emits (README, "Not modelled today"):
# a hand-built stream using one is refused with its name, never run as something else.
@pytest.fixture(scope="module")
def conv_op(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed-conv")
    model = write_model(root / "conv.tflite", "conv2d", seed=0)
    m = load_tflite(compile_with_vela(model, "u55-128", root / "out"))
    return read_ethos_u_op(m, next(o for o in m.operators() if o.custom_code == "ethos-u"))


@pytest.mark.parametrize("reg, mode, needle", [
    ("NPU_SET_DMA0_SRC_REGION", 1, "DMA0_SRC_REGION: DMA STRIDE_MODE_2D is not modelled"),
    ("NPU_SET_DMA0_DST_REGION", 2, "DMA0_DST_REGION: DMA STRIDE_MODE_3D is not modelled"),
])
def test_dma_2d_3d_strides_are_refused_by_name(softmax_op, reg, mode, needle):
    eop, _ = softmax_op
    words = with_before([int(w) for w in eop.payload.words], "NPU_OP_DMA_START", cmd0(reg, 1 | mode << 9))
    assert needle in run_words(eop, words, error=NotModelledError)


@pytest.mark.parametrize("bit", [3, 4])  # dilation_x, dilation_y
def test_pool_dilation_is_refused_by_name(softmax_op, bit):
    eop, _ = softmax_op
    extra = cmd0("NPU_SET_KERNEL_WIDTH_M1", 2) + cmd0("NPU_SET_KERNEL_STRIDE", 1 << bit)  # a span dilation 2 divides
    words = with_before([int(w) for w in eop.payload.words], "NPU_OP_POOL", extra)
    assert "POOL with dilation is not modelled" in run_words(eop, words, error=NotModelledError)


def test_convolution_with_a_global_scale_is_refused_by_name(conv_op):
    """OFM_PRECISION bit 8 (one OFM_SCALE for every channel) on a CONV: Vela always gives
    convolutions a per-channel scale stream."""
    words = [int(w) for w in conv_op.payload.words]
    i = first_op_index(words, "NPU_OP_CONV")
    code = CMD0_CODE["NPU_SET_OFM_PRECISION"]
    j = max(k for k in range(i) if words[k] & 0x3FF == code and (words[k] >> 14) & 3 == 0)
    words[j] |= 1 << (16 + 8)
    assert "CONV with global OFM_SCALE (no scale stream) is not modelled" in run_words(
        conv_op, words, error=NotModelledError)
    words[j] &= ~(1 << (16 + 8))  # the same stream with the bit clear runs
    mem = Memory.create(1, conv_op.read_only, conv_op.scratch_bytes, conv_op.scratch_fast_bytes,
                        conv_op.fast_is_scratch, conv_op.payload.config.shram_bytes)
    Executor(CommandPayload(conv_op.payload.config, np.asarray(words, dtype=np.uint32))).run(mem)
