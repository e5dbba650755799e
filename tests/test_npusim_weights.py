"""Weight-stream decoder against real encoders.

Two kinds of ground truth, both Arm's own code running for real:
- ``ethosu.mlw_codec.reorder_encode``: the reorder + MLW encoder the legacy Vela core calls, on
  random weights and a wide grid of traversal parameters (fast, no compile);
- Vela 5.2.0 compiling small generated models (int8, and 16x8 for 16-bit IFMs) and the real
  DS-CNN-L (default Regor core and ``--debug-force-legacy-core``) for all six accelerators: every
  CONV/DEPTHWISE weight stream in the command stream must decode to an exact OFM slice of the
  original weights (minus the zero point, 0 here), and together the streams must cover every
  original weight. A corrupt stream must raise, never end the process (the fuzz test).

The test builds its models with a small flatbuffer writer on Vela's own TFLite schema modules, and
reads the command stream with a minimal register-file walk; both are test-only helpers.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ethosu import mlw_codec
from ethosu.vela.tflite import (
    Buffer,
    BuiltinOperator,
    BuiltinOptions,
    Conv2DOptions,
    DepthwiseConv2DOptions,
    FullyConnectedOptions,
    Model,
    Operator,
    OperatorCode,
    QuantizationParameters,
    SubGraph,
    Tensor,
    TensorType,
)

from ethos_kws.backends.npusim.weights import (
    WeightStreamParams,
    decode_weights,
    expected_stream_length,
)
from ethos_kws.accel import ACCELERATORS as ACCEL_TABLE, accelerator_for
from ethos_kws.errors import CommandStreamError
from ethos_kws.tflite import load_tflite

from mlw_mutations import MUTATIONS, mutate

ACCELERATORS = ["u55-32", "u55-64", "u55-128", "u55-256", "u65-256", "u65-512"]
COMPILERS = {"regor": False, "legacy": True}  # name -> legacy_core

# ---------------------------------------------------------------------------------------------
# 1. Traversal against the codec's own reorder (the legacy core's encoder)
# ---------------------------------------------------------------------------------------------


def _random_params(rng: random.Random, npu: str, macs: int) -> WeightStreamParams:
    num_cores = accelerator_for(npu, macs).cores
    op = rng.choice(["CONV", "CONV", "DEPTHWISE"])
    return WeightStreamParams(
        macs_per_cycle=macs,
        npu=npu,
        num_cores=num_cores,
        core=rng.randrange(num_cores),
        op=op,
        kernel_h=rng.choice([1, 2, 3, 4, 5, 9, 10, 17]),
        kernel_w=rng.choice([1, 2, 3, 4, 7, 10]),
        dilation_y=rng.choice([1, 2]),
        dilation_x=rng.choice([1, 2]),
        ifm_depth=rng.choice([1, 3, 8, 16, 17, 31, 33, 40, 64]),
        ofm_depth=rng.choice([1, 2, 5, 8, 9, 16, 24, 33, 64, 100]),
        ofm_block_depth=rng.choice([8, 16, 24, 32, 48, 64]),
        part_kernel_first=op == "CONV" and rng.random() < 0.5,
        ifm_bits=rng.choice([8, 16]),
    )


def _reorder_encode(weights: np.ndarray, p: WeightStreamParams) -> tuple[bytes, int]:
    acc = accelerator_for(p.npu, p.macs_per_cycle)
    ofm_ublock, ifm_ublock = acc.ofm_ublock.depth, acc.ifm_ublock.depth
    stream, padded_len = mlw_codec.reorder_encode(
        ifm_ublock, ofm_ublock, weights.astype(np.int16), p.core_ofm_block_depth,
        p.op == "DEPTHWISE", p.part_kernel_first, p.ifm_bits, 8 // p.dilation_y, 8 // p.dilation_x,
    )  # fmt: skip
    return bytes(stream), padded_len


# U55/U65 MLW streams only: U85 weights are a different encoding, decoded and tested in test_npusim_u85.py
@pytest.mark.parametrize("npu,macs", sorted((a.npu, a.macs_per_cycle) for a in ACCEL_TABLE.values() if a.npu != "U85"))
def test_round_trip_through_codec_reorder(npu, macs):
    rng = random.Random(f"{npu}-{macs}")
    nprng = np.random.default_rng(macs)
    checked = 0
    for _ in range(60):
        p = _random_params(rng, npu, macs)
        if p.core_ofm_depth == 0:
            continue
        # Full 9-bit range: a wrong permutation cannot hide behind repeated values.
        w = nprng.integers(-255, 256, size=p.weights_shape)
        stream, padded_len = _reorder_encode(w, p)
        assert expected_stream_length(p) == padded_len, p
        got = decode_weights(stream, p)
        assert got.dtype == np.int32 and got.shape == p.weights_shape
        np.testing.assert_array_equal(got, w, err_msg=str(p))
        checked += 1
    assert checked > 40


def test_u55_32_has_narrower_ofm_ublock_than_u55_64():
    # The same weights give differently ordered streams: decoding a U55-32 stream with U55-64
    # params must fail or differ, so the ublock table is really used.
    base = WeightStreamParams(32, "U55", 1, 0, "CONV", 1, 1, 1, 1, 16, 8, 8, False, 8)
    w = np.random.default_rng(1).integers(-100, 100, size=base.weights_shape)
    stream, _ = _reorder_encode(w, base)
    np.testing.assert_array_equal(decode_weights(stream, base), w)
    other = dataclasses.replace(base, macs_per_cycle=64)
    try:
        assert not np.array_equal(decode_weights(stream, other), w)
    except CommandStreamError:
        pass


def test_part_kernel_first_and_depth_first_differ():
    p = WeightStreamParams(128, "U55", 1, 0, "CONV", 3, 3, 1, 1, 16, 16, 16, True, 8)
    w = np.random.default_rng(2).integers(-100, 100, size=p.weights_shape)
    stream, _ = _reorder_encode(w, p)
    np.testing.assert_array_equal(decode_weights(stream, p), w)
    with pytest.raises(CommandStreamError, match="decodes to .* weights"):
        # depth-first walks 32-deep IFM blocks: a different stream length, caught as such
        decode_weights(stream, dataclasses.replace(p, part_kernel_first=False))


def test_count_mismatch_is_a_command_stream_error():
    p = WeightStreamParams(256, "U55", 1, 0, "CONV", 3, 3, 1, 1, 8, 16, 16, False, 8)
    short = bytes(mlw_codec.encode([1] * (expected_stream_length(p) - 1)))
    with pytest.raises(CommandStreamError, match=r"needs \d+"):
        decode_weights(short, p)


@pytest.mark.parametrize(
    "change",
    [
        {"macs_per_cycle": 1024},
        {"npu": "U85"},
        {"op": "POOL"},
        {"op": "DEPTHWISE", "part_kernel_first": True},
        {"ifm_bits": 32},
        {"core": 1},
        {"dilation_x": 3},
        {"kernel_h": 0},
        {"ofm_block_depth": 0},
        {"ifm_depth": 1 << 20, "ofm_depth": 1 << 10},
    ],
)
def test_bad_params_are_command_stream_errors(change):
    p = WeightStreamParams(128, "U55", 1, 0, "CONV", 1, 1, 1, 1, 8, 8, 8, False, 8)
    with pytest.raises(CommandStreamError):
        decode_weights(b"\xff" * 16, dataclasses.replace(p, **change))


FUZZ_SCRIPT = """
import random, sys
sys.path.insert(0, TESTS_DIR)
from mlw_mutations import MUTATIONS, mutate
import numpy as np
from ethosu import mlw_codec
from ethos_kws.backends.npusim.weights import WeightStreamParams, decode_weights
from ethos_kws.errors import CommandStreamError
rng = random.Random(5)
nprng = np.random.default_rng(5)
decoded = rejected = 0
for trial in range(600):
    p = WeightStreamParams(128, "U55", 1, 0, "CONV", rng.choice([1, 3]), rng.choice([1, 3]), 1, 1,
                           rng.choice([8, 17, 40]), rng.choice([8, 24]), 16, rng.random() < 0.5, 8)
    w = nprng.integers(-255, 256, p.weights_shape)
    if trial % 2:  # sparse small weights: palettes and zero runs
        w = nprng.integers(-3, 4, p.weights_shape) * (nprng.random(p.weights_shape) < 0.1)
    stream = bytearray(mlw_codec.reorder_encode(
        8, 8, w.astype(np.int16), 16, False, p.part_kernel_first, 8, 8, 8)[0])
    stream = mutate(rng, stream, trial % MUTATIONS)
    try:
        decode_weights(stream, p)
        decoded += 1
    except CommandStreamError:
        rejected += 1
print("OK", decoded, rejected)
"""


def test_corrupt_streams_raise_and_never_kill_the_process():
    # Arm's C decoder exit(1)s when it reads past a stream's end; run in a child process so a
    # regression shows as a failed test instead of a vanished test run.
    import subprocess
    import sys

    script = FUZZ_SCRIPT.replace("TESTS_DIR", repr(str(Path(__file__).resolve().parent)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-500:] + proc.stderr[-2000:]
    _, decoded, rejected = proc.stdout.split()
    assert int(rejected) > 300  # most mutations are caught by the structure walk or the count


def test_core_without_channels_has_empty_stream():
    p = WeightStreamParams(512, "U65", 2, 1, "CONV", 1, 1, 1, 1, 8, 1, 16, False, 8)
    assert decode_weights(b"", p).shape == (0, 1, 1, 8)


# ---------------------------------------------------------------------------------------------
# 2. Real Vela output
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Layer:
    kind: str  # "CONV_2D" | "DEPTHWISE_CONV_2D" | "FULLY_CONNECTED"
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)


class _TfliteWriter:
    """Just enough of a TFLite writer for int8 CONV/DEPTHWISE/FC chains (test-only)."""

    def __init__(self):
        self.b = flatbuffers.Builder(1024)
        self.buffers: list[bytes] = [b""]
        self.tensors: list[int] = []
        self.opcodes: list[int] = []
        self.ops: list[int] = []

    def _ivec(self, start, values):
        start(self.b, len(values))
        for v in reversed(values):
            self.b.PrependInt32(v)
        return self.b.EndVector()

    def tensor(self, shape, ttype, scale, zero_point, data=None, quant_dim=0):
        name = self.b.CreateString(f"t{len(self.tensors)}")
        shp = self._ivec(Tensor.TensorStartShapeVector, list(shape))
        scales = np.atleast_1d(np.asarray(scale, np.float32))
        zps = np.broadcast_to(np.atleast_1d(np.asarray(zero_point, np.int64)), scales.shape)
        sc = self.b.CreateNumpyVector(scales)
        zp = self.b.CreateNumpyVector(np.ascontiguousarray(zps))
        QuantizationParameters.QuantizationParametersStart(self.b)
        QuantizationParameters.QuantizationParametersAddScale(self.b, sc)
        QuantizationParameters.QuantizationParametersAddZeroPoint(self.b, zp)
        QuantizationParameters.QuantizationParametersAddQuantizedDimension(self.b, quant_dim)
        q = QuantizationParameters.QuantizationParametersEnd(self.b)
        buf = 0
        if data is not None:
            buf = len(self.buffers)
            self.buffers.append(np.ascontiguousarray(data).tobytes())
        Tensor.TensorStart(self.b)
        Tensor.TensorAddShape(self.b, shp)
        Tensor.TensorAddType(self.b, ttype)
        Tensor.TensorAddBuffer(self.b, buf)
        Tensor.TensorAddName(self.b, name)
        Tensor.TensorAddQuantization(self.b, q)
        self.tensors.append(Tensor.TensorEnd(self.b))
        return len(self.tensors) - 1

    def op(self, builtin, inputs, outputs, options_type, options):
        if builtin not in self.opcodes:
            self.opcodes.append(builtin)
        ins = self._ivec(Operator.OperatorStartInputsVector, inputs)
        outs = self._ivec(Operator.OperatorStartOutputsVector, outputs)
        Operator.OperatorStart(self.b)
        Operator.OperatorAddOpcodeIndex(self.b, self.opcodes.index(builtin))
        Operator.OperatorAddInputs(self.b, ins)
        Operator.OperatorAddOutputs(self.b, outs)
        Operator.OperatorAddBuiltinOptionsType(self.b, options_type)
        Operator.OperatorAddBuiltinOptions(self.b, options)
        self.ops.append(Operator.OperatorEnd(self.b))

    def finish(self, inputs, outputs) -> bytes:
        b = self.b
        codes = []
        for code in self.opcodes:
            OperatorCode.OperatorCodeStart(b)
            OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            OperatorCode.OperatorCodeAddBuiltinCode(b, code)
            OperatorCode.OperatorCodeAddVersion(b, 1)
            codes.append(OperatorCode.OperatorCodeEnd(b))
        bufs = []
        for data in self.buffers:
            vec = b.CreateByteVector(data) if data else None
            Buffer.BufferStart(b)
            if vec is not None:
                Buffer.BufferAddData(b, vec)
            bufs.append(Buffer.BufferEnd(b))

        def table_vec(start, items):
            start(b, len(items))
            for it in reversed(items):
                b.PrependUOffsetTRelative(it)
            return b.EndVector()

        tensors = table_vec(SubGraph.SubGraphStartTensorsVector, self.tensors)
        ops = table_vec(SubGraph.SubGraphStartOperatorsVector, self.ops)
        ins = self._ivec(SubGraph.SubGraphStartInputsVector, inputs)
        outs = self._ivec(SubGraph.SubGraphStartOutputsVector, outputs)
        SubGraph.SubGraphStart(b)
        SubGraph.SubGraphAddTensors(b, tensors)
        SubGraph.SubGraphAddOperators(b, ops)
        SubGraph.SubGraphAddInputs(b, ins)
        SubGraph.SubGraphAddOutputs(b, outs)
        sg = SubGraph.SubGraphEnd(b)
        codes_v = table_vec(Model.ModelStartOperatorCodesVector, codes)
        sgs = table_vec(Model.ModelStartSubgraphsVector, [sg])
        bufs_v = table_vec(Model.ModelStartBuffersVector, bufs)
        desc = b.CreateString("ethos-kws weight decoder test")
        Model.ModelStart(b)
        Model.ModelAddVersion(b, 3)
        Model.ModelAddOperatorCodes(b, codes_v)
        Model.ModelAddSubgraphs(b, sgs)
        Model.ModelAddBuffers(b, bufs_v)
        Model.ModelAddDescription(b, desc)
        b.Finish(Model.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def build_chain(input_shape, layers, seed, int16=False) -> tuple[bytes, list[np.ndarray]]:
    """A chain of layers with random per-channel int8 weights; returns (model, OHWI weights).

    Activations are int8, or int16 with int64 biases (TFLite's 16x8 scheme) when ``int16``.
    """
    rng = np.random.default_rng(seed)
    w = _TfliteWriter()
    scale_in = 0.05
    types = TensorType.TensorType
    act_type = types.INT16 if int16 else types.INT8
    bias_type, bias_dtype = (types.INT64, np.int64) if int16 else (types.INT32, np.int32)
    act_zp = (lambda zp: 0) if int16 else (lambda zp: zp)
    x = w.tensor(input_shape, act_type, scale_in, act_zp(-3))
    first, shape, originals = x, list(input_shape), []
    for layer in layers:
        cin = shape[-1]
        kh, kw = layer.kernel
        if layer.kind == "DEPTHWISE_CONV_2D":
            wshape = [1, kh, kw, cin]
            cout, qdim = cin, 3
        elif layer.kind == "FULLY_CONNECTED":
            cin = int(np.prod(shape[1:]))
            wshape, cout, qdim = [layer.out_channels, cin], layer.out_channels, 0
        else:
            wshape, cout, qdim = [layer.out_channels, kh, kw, cin], layer.out_channels, 0
        weights = rng.integers(-127, 128, size=wshape, dtype=np.int8)
        w_scale = rng.uniform(0.002, 0.02, cout).astype(np.float32)
        wt = w.tensor(wshape, TensorType.TensorType.INT8, w_scale, 0, weights, qdim)
        bias = rng.integers(-500, 500, cout).astype(bias_dtype)
        bt = w.tensor([cout], bias_type, scale_in * w_scale, 0, bias)
        if layer.kind == "FULLY_CONNECTED":
            out_shape = [1, cout]
        else:
            pad_h = (kh - 1) * layer.dilation[0]
            pad_w = (kw - 1) * layer.dilation[1]
            h = (shape[1] - pad_h - 1) // layer.stride[0] + 1
            ww = (shape[2] - pad_w - 1) // layer.stride[1] + 1
            out_shape = [1, h, ww, cout]
        y = w.tensor(out_shape, act_type, 0.1, act_zp(2))
        b = w.b
        if layer.kind == "CONV_2D":
            Conv2DOptions.Conv2DOptionsStart(b)
            Conv2DOptions.Conv2DOptionsAddPadding(b, 1)  # VALID
            Conv2DOptions.Conv2DOptionsAddStrideH(b, layer.stride[0])
            Conv2DOptions.Conv2DOptionsAddStrideW(b, layer.stride[1])
            Conv2DOptions.Conv2DOptionsAddDilationHFactor(b, layer.dilation[0])
            Conv2DOptions.Conv2DOptionsAddDilationWFactor(b, layer.dilation[1])
            opts = Conv2DOptions.Conv2DOptionsEnd(b)
            w.op(BuiltinOperator.BuiltinOperator.CONV_2D, [x, wt, bt], [y],
                 BuiltinOptions.BuiltinOptions.Conv2DOptions, opts)  # fmt: skip
            originals.append(weights.astype(np.int32))
        elif layer.kind == "DEPTHWISE_CONV_2D":
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsStart(b)
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddPadding(b, 1)
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddStrideH(b, layer.stride[0])
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddStrideW(b, layer.stride[1])
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddDilationHFactor(b, layer.dilation[0])
            DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddDilationWFactor(b, layer.dilation[1])
            opts = DepthwiseConv2DOptions.DepthwiseConv2DOptionsEnd(b)
            w.op(BuiltinOperator.BuiltinOperator.DEPTHWISE_CONV_2D, [x, wt, bt], [y],
                 BuiltinOptions.BuiltinOptions.DepthwiseConv2DOptions, opts)  # fmt: skip
            originals.append(weights.transpose(3, 1, 2, 0).astype(np.int32))  # [C, KH, KW, 1]
        else:
            FullyConnectedOptions.FullyConnectedOptionsStart(b)
            opts = FullyConnectedOptions.FullyConnectedOptionsEnd(b)
            w.op(BuiltinOperator.BuiltinOperator.FULLY_CONNECTED, [x, wt, bt], [y],
                 BuiltinOptions.BuiltinOptions.FullyConnectedOptions, opts)  # fmt: skip
            originals.append(weights.reshape(cout, 1, 1, cin).astype(np.int32))
        x, shape = y, out_shape
    return w.finish([first], [x]), originals


# Each model exercises a set of cases; Vela picks the weight order per layer (shallow IFMs go
# part-kernel-first, deep ones depth-first).
MODELS = {
    # 3x3 on a 3-deep IFM (part-kernel-first), 10x4 on 17 (part-kernel-first, kernel > 8 high),
    # depthwise 3x3 on 17 channels, 1x1 17 -> 40, 1x1 40 -> 276 (depth-first), 3x3 276 -> 5.
    "mixed": (
        [1, 24, 14, 3],
        [
            _Layer("CONV_2D", 17, (3, 3)),
            _Layer("CONV_2D", 17, (10, 4)),
            _Layer("DEPTHWISE_CONV_2D", 17, (3, 3)),
            _Layer("CONV_2D", 40, (1, 1)),
            _Layer("CONV_2D", 276, (1, 1)),
            _Layer("CONV_2D", 5, (3, 3)),
        ],
    ),
    # Dilation 2 (sub-kernels of 4x4), a dilated depthwise, a strided conv, 24-deep OFM.
    "dilated": (
        [1, 30, 30, 40],
        [
            _Layer("CONV_2D", 24, (3, 3), dilation=(2, 2)),
            _Layer("DEPTHWISE_CONV_2D", 24, (5, 5), dilation=(2, 2)),
            _Layer("CONV_2D", 24, (5, 2), dilation=(2, 1), stride=(2, 1)),
        ],
    ),
    # Fully connected layers: 1x1 CONV, IFM 40 and 276 deep, OFM 276 and 12.
    "fc": (
        [1, 40],
        [_Layer("FULLY_CONNECTED", 276), _Layer("FULLY_CONNECTED", 12)],
    ),
    # 16-bit IFMs: 16-deep IFM blocks, part-kernel elements padded to 2.
    "int16": (
        [1, 16, 12, 3],
        [
            _Layer("CONV_2D", 17, (3, 3)),
            _Layer("CONV_2D", 40, (5, 3)),
            _Layer("DEPTHWISE_CONV_2D", 40, (3, 3)),
            _Layer("CONV_2D", 24, (1, 1)),
        ],
    ),
}


@dataclasses.dataclass(frozen=True)
class _StreamRef:
    params: WeightStreamParams
    data: bytes


def _u32_words(data: bytes) -> np.ndarray:
    return np.frombuffer(data[: len(data) // 4 * 4], dtype="<u4")


def weight_streams(compiled: Path) -> list[_StreamRef]:
    """Every CONV/DEPTHWISE weight stream of a *_vela.tflite, with the params from its registers."""
    model = load_tflite(compiled)
    ops = [o for o in model.operators() if o.custom_code == "ethos-u"]
    assert len(ops) == 1, "expected the whole model on the NPU"
    cmd = model.tensor_data(ops[0].inputs[0]).tobytes()
    read_only = model.tensor_data(ops[0].inputs[1]).tobytes()
    words = _u32_words(cmd)
    assert words[0] == int.from_bytes(b"COP1", "little")
    pos, config, stream = 1, None, None
    while pos < len(words):
        tag = int(words[pos])
        action = tag & 0xFF
        if action == 0x01:  # CONFIG: config_r, id_r
            config = int(words[pos + 1])
            pos += 3
        elif action == 0x05:  # NOP
            pos += 1
        elif action == 0x02:  # CMD_STREAM
            n = ((tag >> 8) & 0xFF) << 16 | (tag >> 16)
            stream = words[pos + 1 : pos + 1 + n]
            break
        else:
            raise AssertionError(f"unexpected driver action {action:#x}")
    assert config is not None and stream is not None
    macs = 1 << (config & 0xF)
    npu = {0: "U55", 1: "U65"}[config >> 28]

    regs: dict[tuple[int, int], int] = {}
    # Where the bytes at an SRAM address came from: the last DMA from region 0 that wrote them.
    dma_copies: list[tuple[int, int, int, int]] = []  # (dst_region, dst, len, src)
    refs = []
    i = 0
    while i < len(stream):
        word = int(stream[i])
        opcode, kind, param = word & 0x3FF, (word >> 14) & 3, word >> 16
        if kind == 1:
            value = (param & 0xFF) << 32 | int(stream[i + 1])
            regs[(1, opcode)] = value
            i += 2
            continue
        i += 1
        if opcode >= 0x100:
            regs[(0, opcode)] = param
        elif opcode == 0x010:  # DMA_START
            if regs.get((0, 0x130), 0) & 0x7 == 0:  # source region 0 (bits [2:0])
                dst_region = regs[(0, 0x131)] & 0x7
                dma_copies.append((dst_region, regs[(1, 0x031)], regs[(1, 0x032)], regs[(1, 0x030)]))
        elif opcode in (0x002, 0x003):
            op = "CONV" if opcode == 2 else "DEPTHWISE"
            refs += _op_streams(regs, macs, npu, op, read_only, dma_copies)
        elif opcode == 0x000:
            break
    return refs


def _op_streams(regs, macs, npu, op, read_only, dma_copies) -> list[_StreamRef]:
    stride = regs.get((0, 0x122), 0)
    dil_x, dil_y = (stride >> 3 & 1) + 1, (stride >> 4 & 1) + 1
    num_cores = regs.get((0, 0x123), 0) + 1
    base = WeightStreamParams(
        macs_per_cycle=macs, npu=npu, num_cores=num_cores, core=0, op=op,
        kernel_h=regs.get((0, 0x121), 0) // dil_y + 1, kernel_w=regs.get((0, 0x120), 0) // dil_x + 1,
        dilation_y=dil_y, dilation_x=dil_x,
        ifm_depth=regs.get((0, 0x104), 0) + 1, ofm_depth=regs.get((0, 0x113), 0) + 1,
        ofm_block_depth=regs.get((0, 0x117), 0) + 1, part_kernel_first=bool(stride >> 2 & 1),
        ifm_bits=8 << ((regs.get((0, 0x105), 0) >> 2) & 3),
    )  # fmt: skip
    region = regs.get((0, 0x128), 0) & 0x7
    out = []
    for core, (base_reg, len_reg) in enumerate([(0x020, 0x021), (0x090, 0x091)][:num_cores]):
        addr, length = regs.get((1, base_reg), 0), regs.get((1, len_reg), 0)
        if length == 0:
            continue
        src = addr
        if region != 0:
            for dst_region, dst, n, dma_src in reversed(dma_copies):
                if dst_region == region and dst <= addr and addr + length <= dst + n:
                    src = dma_src + (addr - dst)
                    break
            else:
                raise AssertionError(f"weights at region {region} {addr:#x} were not DMA'd from region 0")
        out.append(_StreamRef(dataclasses.replace(base, core=core), read_only[src : src + length]))
    return out


def _match(decoded: np.ndarray, p: WeightStreamParams, originals, covered) -> bool:
    """Find the OFM slice of an original tensor that the decoded weights are, and mark it."""
    for k, orig in enumerate(originals):
        if orig.shape[1:] != decoded.shape[1:] or decoded.shape[0] == 0:
            continue
        # Row 0 is channel (op start + core); try every start whose channels fit.
        for first in np.flatnonzero((orig == decoded[0]).all(axis=(1, 2, 3))):
            channels = first + np.arange(decoded.shape[0]) * p.num_cores
            if channels[-1] < orig.shape[0] and np.array_equal(orig[channels], decoded):
                covered[k][channels] = True
                return True
    return False


@pytest.fixture(scope="session")
def compile_env(tmp_path_factory):
    """Vela's cache in a temporary folder, so tests never touch the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield tmp_path_factory


@pytest.fixture(scope="session")
def test_models(compile_env):
    out = {}
    folder = compile_env.mktemp("models")
    for name, (shape, layers) in MODELS.items():
        data, originals = build_chain(shape, layers, seed=len(out) + 7, int16=name == "int16")
        path = folder / f"{name}.tflite"
        path.write_bytes(data)
        out[name] = (path, originals)
    return out


def _compile(model: Path, accel: str, legacy: bool) -> Path:
    from ethos_kws.vela import compile_model

    return Path(compile_model(model, accel, legacy_core=legacy).compiled_model)


# The opposite of a modelling choice, per accelerator: decoding with it must break at least one
# stream of the model, or the choice is not really tested by that compile.
OPPOSITE_CHOICES = {
    # The register holds the whole NPU's OFM block depth; each core walks its share.
    "u65-512": lambda p: dataclasses.replace(p, ofm_block_depth=p.ofm_block_depth * p.num_cores),
    # U55-32 has a 4-deep OFM ublock; every other configuration an 8-deep one.
    "u55-32": lambda p: dataclasses.replace(p, macs_per_cycle=64),
}


def _decodes_to(ref: _StreamRef, params: WeightStreamParams, expected: np.ndarray) -> bool:
    try:
        return np.array_equal(decode_weights(ref.data, params), expected)
    except CommandStreamError:
        return False


def _check_compiled(compiled: Path, originals, opposite=None) -> set[str]:
    """Decode every weight stream; each must be an exact OFM slice; all weights covered."""
    refs = weight_streams(compiled)
    assert refs, "no weight streams found"
    covered = [np.zeros(o.shape[0], dtype=bool) for o in originals]
    orders = set()
    opposite_broke = False
    for ref in refs:
        decoded = decode_weights(ref.data, ref.params)
        assert _match(decoded, ref.params, originals, covered), f"no original weights match {ref.params}"
        if opposite is not None:
            opposite_broke |= not _decodes_to(ref, opposite(ref.params), decoded)
        orders.add(
            "depthwise" if ref.params.op == "DEPTHWISE"
            else "part-kernel-first" if ref.params.part_kernel_first else "depth-first"
        )  # fmt: skip
        orders.add(f"ifm{ref.params.ifm_bits}")
    for k, c in enumerate(covered):
        assert c.all(), f"weights of layer {k}: channels {np.flatnonzero(~c)[:8]} in no stream"
    if opposite is not None:
        orders.add("opposite-broke" if opposite_broke else "opposite-harmless")
    return orders


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("accel", ACCELERATORS)
@pytest.mark.parametrize("model_name", MODELS)
def test_vela_weight_streams_decode(test_models, model_name, accel, compiler):
    path, originals = test_models[model_name]
    opposite = OPPOSITE_CHOICES.get(accel)
    orders = _check_compiled(_compile(path, accel, COMPILERS[compiler]), originals, opposite)
    if model_name in ("mixed", "int16"):
        assert {"depthwise", "part-kernel-first", "depth-first"} <= orders
        assert f"ifm{16 if model_name == 'int16' else 8}" in orders
        if opposite is not None:
            assert "opposite-broke" in orders, f"{accel}: the opposite modelling choice decodes too"


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("accel", ["u55-128", "u65-512"])
def test_ds_cnn_l_weight_streams_decode(int8io_model, compile_env, accel, compiler):
    model = load_tflite(int8io_model)
    originals = []
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
        originals.append(w)
    _check_compiled(_compile(int8io_model, accel, COMPILERS[compiler]), originals)


def test_compiled_structure_walk_agrees_with_python(monkeypatch):
    """The MLW structure walk is compiled (numba): on valid, bit-flipped, truncated, extended and
    random streams it gives the same verdict, position and message as the same code in Python
    (integer typing is where a compiled version could differ)."""
    from ethos_kws.backends.npusim import kernels, weights

    if kernels.numba is None:
        pytest.skip("numba is not installed")
    rng = random.Random(11)

    def verdict(stream: bytes, n: int) -> str:
        try:
            weights._check_mlw_structure(stream, n)
            return "ok"
        except CommandStreamError as e:
            return str(e)

    cases = []
    for trial in range(120):
        n = rng.randrange(1, 2000)
        values = [rng.choice([0, 0, rng.randrange(-255, 256)]) if trial % 2 else rng.randrange(-255, 256)
                  for _ in range(n)]
        s = bytes(weights.mlw_codec.encode(values))
        kind = trial % (MUTATIONS + 1)  # the last kind: the valid stream itself
        cases.append((s if kind == MUTATIONS else mutate(rng, s, kind), n))
    compiled = [verdict(s, n) for s, n in cases]
    monkeypatch.setattr(weights, "_WALK_CHUNKS", weights._walk_chunks)
    assert [verdict(s, n) for s, n in cases] == compiled
    assert compiled.count("ok") >= 30 and len(set(compiled)) > 20  # both kinds, many positions
