"""Serialize a small graph description into a TFLite flatbuffer (schema modules from ``ethosu.vela``).

The graph is plain data (``TensorDef``/``OpDef``); this module only knows the file format. Output
is deterministic: the same graph gives the same bytes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from ethosu.vela.tflite import (
    Buffer,
    Metadata,
    Model,
    Operator,
    OperatorCode,
    QuantizationParameters,
    SubGraph,
    Tensor,
)
from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
from ethosu.vela.tflite.BuiltinOptions import BuiltinOptions
from ethosu.vela.tflite.TensorType import TensorType

SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16  # weights start on 16-byte boundaries, as converters do
DEPRECATED_CODE_LIMIT = 127  # codes above this live only in OperatorCode.builtin_code


@dataclass(frozen=True)
class OpKind:
    options: str | None  # BuiltinOptions table name, e.g. "Conv2DOptions"
    version: int  # the operator version a converter gives the int8 variant


# opcode name -> options table and int8 operator version
OP_KINDS: dict[str, OpKind] = {
    "CONV_2D": OpKind("Conv2DOptions", 3),
    "DEPTHWISE_CONV_2D": OpKind("DepthwiseConv2DOptions", 3),
    "AVERAGE_POOL_2D": OpKind("Pool2DOptions", 2),
    "MAX_POOL_2D": OpKind("Pool2DOptions", 2),
    "FULLY_CONNECTED": OpKind("FullyConnectedOptions", 4),
    "SOFTMAX": OpKind("SoftmaxOptions", 2),
    "ADD": OpKind("AddOptions", 2),
    "MUL": OpKind("MulOptions", 2),
    "RESHAPE": OpKind(None, 1),
    "LOGISTIC": OpKind(None, 2),
    "TANH": OpKind(None, 2),
    "LEAKY_RELU": OpKind("LeakyReluOptions", 2),
}

TENSOR_TYPES = {"int8": TensorType.INT8, "int32": TensorType.INT32, "uint8": TensorType.UINT8,
                "int16": TensorType.INT16, "float32": TensorType.FLOAT32}


@dataclass
class TensorDef:
    name: str
    shape: tuple[int, ...]
    dtype: str  # key of TENSOR_TYPES
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant contents, or None for activations


@dataclass
class OpDef:
    opcode: str  # key of OP_KINDS
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)  # field name -> value, e.g. {"StrideW": 2}


@dataclass
class Graph:
    tensors: list[TensorDef] = field(default_factory=list)
    ops: list[OpDef] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add_tensor(self, t: TensorDef) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    def add_op(self, op: OpDef) -> None:
        self.ops.append(op)


def _vector(b: flatbuffers.Builder, start, values, prepend) -> int:
    start(b, len(values))
    for v in reversed(values):
        prepend(v)
    return b.EndVector()


def _int_vector(b, start, values) -> int:
    return _vector(b, start, [int(v) for v in values], b.PrependInt32)


def _offset_vector(b, start, offsets) -> int:
    return _vector(b, start, offsets, b.PrependUOffsetTRelative)


def _aligned_bytes(b: flatbuffers.Builder, data: bytes) -> int:
    b.StartVector(1, len(data), BUFFER_ALIGNMENT)
    b.head -= len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def _options(b: flatbuffers.Builder, table: str, values: dict[str, Any]) -> int:
    mod = importlib.import_module(f"ethosu.vela.tflite.{table}")
    getattr(mod, f"{table}Start")(b)
    for name, value in sorted(values.items()):
        adder = getattr(mod, f"{table}Add{name}", None)
        if adder is None:
            raise ValueError(f"{table} has no field {name}")
        adder(b, value)
    return getattr(mod, f"{table}End")(b)


def _quantization(b: flatbuffers.Builder, t: TensorDef) -> int | None:
    if t.scale is None:
        return None
    Q = QuantizationParameters
    scale = _vector(b, lambda b_, n: Q.QuantizationParametersStartScaleVector(b_, n),
                    [float(s) for s in t.scale], b.PrependFloat32)
    zps = t.zero_point if t.zero_point is not None else (0,) * len(t.scale)
    zp = _vector(b, lambda b_, n: Q.QuantizationParametersStartZeroPointVector(b_, n),
                 [int(z) for z in zps], b.PrependInt64)
    Q.QuantizationParametersStart(b)
    Q.QuantizationParametersAddScale(b, scale)
    Q.QuantizationParametersAddZeroPoint(b, zp)
    Q.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
    return Q.QuantizationParametersEnd(b)


def serialize(graph: Graph, *, description: str = "ethos-kws synth", name: str = "main") -> bytes:
    """The graph as TFLite flatbuffer bytes (file identifier ``TFL3``)."""
    b = flatbuffers.Builder(1 << 16)

    # Buffers: 0 is the empty sentinel shared by every activation; each constant gets its own.
    buffer_data: list[bytes] = [b""]
    tensor_buffer: list[int] = []
    for t in graph.tensors:
        if t.data is None:
            tensor_buffer.append(0)
        else:
            buffer_data.append(np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes())
            tensor_buffer.append(len(buffer_data) - 1)
    buffer_data.append(b"1.14.0\0\0\0\0\0\0\0\0\0\0")  # min_runtime_version metadata, as converters write
    metadata_buffer = len(buffer_data) - 1

    buffers = []
    for raw in buffer_data:
        data = _aligned_bytes(b, raw) if raw else None
        Buffer.BufferStart(b)
        if data is not None:
            Buffer.BufferAddData(b, data)
        buffers.append(Buffer.BufferEnd(b))

    tensors = []
    for t, buf in zip(graph.tensors, tensor_buffer):
        tname = b.CreateString(t.name)
        shape = _int_vector(b, Tensor.TensorStartShapeVector, t.shape)
        quant = _quantization(b, t)
        Tensor.TensorStart(b)
        Tensor.TensorAddShape(b, shape)
        Tensor.TensorAddType(b, TENSOR_TYPES[t.dtype])
        Tensor.TensorAddBuffer(b, buf)
        Tensor.TensorAddName(b, tname)
        if quant is not None:
            Tensor.TensorAddQuantization(b, quant)
        tensors.append(Tensor.TensorEnd(b))

    opcode_names = sorted({op.opcode for op in graph.ops}, key=lambda n: getattr(BuiltinOperator, n))
    opcode_index = {n: i for i, n in enumerate(opcode_names)}
    operators = []
    for op in graph.ops:
        kind = OP_KINDS[op.opcode]
        opts = _options(b, kind.options, op.options) if kind.options else None
        ins = _int_vector(b, Operator.OperatorStartInputsVector, op.inputs)
        outs = _int_vector(b, Operator.OperatorStartOutputsVector, op.outputs)
        Operator.OperatorStart(b)
        Operator.OperatorAddOpcodeIndex(b, opcode_index[op.opcode])
        Operator.OperatorAddInputs(b, ins)
        Operator.OperatorAddOutputs(b, outs)
        if opts is not None:
            Operator.OperatorAddBuiltinOptionsType(b, getattr(BuiltinOptions, kind.options))
            Operator.OperatorAddBuiltinOptions(b, opts)
        operators.append(Operator.OperatorEnd(b))

    codes = []
    for n in opcode_names:
        code = getattr(BuiltinOperator, n)
        OperatorCode.OperatorCodeStart(b)
        OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, DEPRECATED_CODE_LIMIT))
        OperatorCode.OperatorCodeAddBuiltinCode(b, code)
        OperatorCode.OperatorCodeAddVersion(b, OP_KINDS[n].version)
        codes.append(OperatorCode.OperatorCodeEnd(b))

    sg_name = b.CreateString(name)
    sg_tensors = _offset_vector(b, SubGraph.SubGraphStartTensorsVector, tensors)
    sg_inputs = _int_vector(b, SubGraph.SubGraphStartInputsVector, graph.inputs)
    sg_outputs = _int_vector(b, SubGraph.SubGraphStartOutputsVector, graph.outputs)
    sg_ops = _offset_vector(b, SubGraph.SubGraphStartOperatorsVector, operators)
    SubGraph.SubGraphStart(b)
    SubGraph.SubGraphAddTensors(b, sg_tensors)
    SubGraph.SubGraphAddInputs(b, sg_inputs)
    SubGraph.SubGraphAddOutputs(b, sg_outputs)
    SubGraph.SubGraphAddOperators(b, sg_ops)
    SubGraph.SubGraphAddName(b, sg_name)
    subgraph = SubGraph.SubGraphEnd(b)

    md_name = b.CreateString("min_runtime_version")
    Metadata.MetadataStart(b)
    Metadata.MetadataAddName(b, md_name)
    Metadata.MetadataAddBuffer(b, metadata_buffer)
    metadata = Metadata.MetadataEnd(b)

    desc = b.CreateString(description)
    m_codes = _offset_vector(b, Model.ModelStartOperatorCodesVector, codes)
    m_subgraphs = _offset_vector(b, Model.ModelStartSubgraphsVector, [subgraph])
    m_buffers = _offset_vector(b, Model.ModelStartBuffersVector, buffers)
    m_metadata = _offset_vector(b, Model.ModelStartMetadataVector, [metadata])
    Model.ModelStart(b)
    Model.ModelAddVersion(b, SCHEMA_VERSION)
    Model.ModelAddOperatorCodes(b, m_codes)
    Model.ModelAddSubgraphs(b, m_subgraphs)
    Model.ModelAddDescription(b, desc)
    Model.ModelAddBuffers(b, m_buffers)
    Model.ModelAddMetadata(b, m_metadata)
    root = Model.ModelEnd(b)
    b.Finish(root, file_identifier=b"TFL3")
    return bytes(b.Output())
