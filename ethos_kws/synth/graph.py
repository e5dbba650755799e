"""A general TFLite graph builder on the schema's object API (``ai_edge_litert``'s generated
``ModelT``): any builtin operator with its options, int8/int16/int32/float tensors, constants,
variable tensors and several subgraphs (CALL_ONCE initialisers).

``net.NetBuilder`` calibrates int8 layers for realistic networks; this module is for everything
else: single operators of any type and precision with explicit quantization, recurrent and
stateful graphs. Same inputs -> same bytes.

    g = GraphBuilder()
    x = g.activation("x", (1, 8, 8, 4), "int16", scale=1 / 4096)
    y = g.activation("y", (1, 8, 8, 4), "int16", scale=8 / 32767)
    g.op("LEAKY_RELU", [x], [y], alpha=0.2)
    g.inputs, g.outputs = [x], [y]
    data = g.to_bytes("one LEAKY_RELU")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

SCHEMA_VERSION = 3
DTYPES = {"int8": fb.TensorType.INT8, "int16": fb.TensorType.INT16, "int32": fb.TensorType.INT32,
          "int64": fb.TensorType.INT64, "uint8": fb.TensorType.UINT8, "float32": fb.TensorType.FLOAT32,
          "bool": fb.TensorType.BOOL, "resource": fb.TensorType.RESOURCE}
NUMPY = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
         "float32": np.float32, "bool": np.bool_}
DEPRECATED_CODE_LIMIT = 127
# operator -> its options table, where the name does not follow "<CamelCase>Options"
OPTIONS = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MINIMUM": "MaximumMinimumOptions", "MAXIMUM": "MaximumMinimumOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "CONCATENATION": "ConcatenationOptions", "SVDF": "SVDFOptions", "LOGISTIC": None, "TANH": None,
    "RELU": None, "RELU6": None, "RELU_N1_TO_1": None, "RELU_0_TO_1": None, "PRELU": None,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions", "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions", "RSQRT": None, "LOG": None,
    "EXP": "ExpOptions", "ARG_MAX": "ArgMaxOptions", "SPLIT_V": "SplitVOptions",
    "VAR_HANDLE": "VarHandleOptions", "READ_VARIABLE": "ReadVariableOptions",
    "ASSIGN_VARIABLE": "AssignVariableOptions", "CALL_ONCE": "CallOnceOptions",
    "QUANTIZE": "QuantizeOptions", "DEQUANTIZE": "DequantizeOptions", "FILL": "FillOptions",
    "HARD_SWISH": "HardSwishOptions", "SQUARED_DIFFERENCE": "SquaredDifferenceOptions",
    "LEAKY_RELU": "LeakyReluOptions", "STRIDED_SLICE": "StridedSliceOptions",
    "MIRROR_PAD": "MirrorPadOptions", "GATHER": "GatherOptions", "SLICE": "SliceOptions",
}


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def options_table(opcode: str) -> str | None:
    if opcode in OPTIONS:
        return OPTIONS[opcode]
    name = f"{_camel(opcode)}Options"
    return name if hasattr(fb.BuiltinOptions, name) else None


def qparams(lo: float, hi: float, dtype: str) -> tuple[float, int]:
    """Scale and zero point covering [lo, hi]: asymmetric for 8 bit, symmetric (zp 0) for 16 bit,
    as TFLite's int16x8 quantization requires."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if dtype == "int16":
        return float(np.float32(max(-lo, hi) / 32767.0)), 0
    info = np.iinfo(NUMPY[dtype])
    scale = float(np.float32((hi - lo) / (int(info.max) - int(info.min))))
    return scale, int(np.clip(round(int(info.min) - lo / scale), info.min, info.max))


@dataclass
class Subgraph:
    name: str
    tensors: list = field(default_factory=list)
    operators: list = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


class GraphBuilder:
    def __init__(self) -> None:
        self.buffers: list[bytes] = [b""]
        self.opcodes: list[tuple[str, int]] = []
        self.subgraphs: list[Subgraph] = [Subgraph("main")]
        self.current = 0

    # subgraph 0 is the model; ``subgraph()`` adds another and makes it current
    @property
    def inputs(self) -> list[int]:
        return self.subgraphs[self.current].inputs

    @inputs.setter
    def inputs(self, value) -> None:
        self.subgraphs[self.current].inputs = list(value)

    @property
    def outputs(self) -> list[int]:
        return self.subgraphs[self.current].outputs

    @outputs.setter
    def outputs(self, value) -> None:
        self.subgraphs[self.current].outputs = list(value)

    def subgraph(self, name: str) -> int:
        self.subgraphs.append(Subgraph(name))
        self.current = len(self.subgraphs) - 1
        return self.current

    def use(self, index: int) -> None:
        self.current = index

    def tensor(self, name: str, shape, dtype: str, scale=None, zero_point=None, data=None,
               variable: bool = False, axis: int = 0) -> int:
        t = fb.TensorT()
        t.name, t.shape, t.type = name, [int(s) for s in shape], DTYPES[dtype]
        t.buffer = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=NUMPY[dtype]).reshape(t.shape))
            self.buffers.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = fb.QuantizationParametersT()
            scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zps = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, dtype=np.int64))
            if len(zps) == 1 and len(scales) > 1:
                zps = np.repeat(zps, len(scales))
            q.scale, q.zeroPoint, q.quantizedDimension = [float(s) for s in scales], [int(z) for z in zps], axis
            t.quantization = q
        t.isVariable = bool(variable)
        sg = self.subgraphs[self.current]
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    def activation(self, name: str, shape, dtype: str = "int8", scale=None, zero_point=None,
                   lo_hi: tuple[float, float] | None = None, variable: bool = False) -> int:
        """A non-constant tensor; quantized from ``lo_hi`` when no scale is given."""
        if scale is None and lo_hi is not None and dtype in ("int8", "int16", "uint8"):
            scale, zero_point = qparams(*lo_hi, dtype)
        return self.tensor(name, shape, dtype, scale, zero_point, variable=variable)

    def const(self, name: str, data, dtype: str, scale=None, zero_point=None, axis: int = 0) -> int:
        data = np.asarray(data)
        return self.tensor(name, data.shape, dtype, scale, zero_point, data=data, axis=axis)

    def op(self, opcode: str, inputs, outputs, version: int = 1, **options) -> None:
        """One operator; ``options`` are fields of its options table in the object API's
        camelCase (``alpha=0.2``, ``fusedActivationFunction=1``, ``sharedName="state"``)."""
        key = (opcode, version)
        if key not in self.opcodes:
            self.opcodes.append(key)
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes.index(key)
        o.inputs, o.outputs = [int(i) for i in inputs], [int(i) for i in outputs]
        table = options_table(opcode)
        if table is not None:
            opts = getattr(fb, f"{table}T")()
            for k, v in options.items():
                if not hasattr(opts, k):
                    raise ValueError(f"{table} has no field {k}")
                setattr(opts, k, v)
            o.builtinOptionsType = getattr(fb.BuiltinOptions, table)
            o.builtinOptions = opts
        elif options:
            raise ValueError(f"{opcode} takes no options, got {sorted(options)}")
        self.subgraphs[self.current].operators.append(o)

    def model(self, description: str) -> fb.ModelT:
        m = fb.ModelT()
        m.version, m.description = SCHEMA_VERSION, description
        m.operatorCodes = []
        for name, version in self.opcodes:
            c = fb.OperatorCodeT()
            code = getattr(fb.BuiltinOperator, name)
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, DEPRECATED_CODE_LIMIT), version
            m.operatorCodes.append(c)
        m.subgraphs = []
        for sg in self.subgraphs:
            s = fb.SubGraphT()
            s.name, s.tensors, s.operators, s.inputs, s.outputs = (
                sg.name, sg.tensors, sg.operators, sg.inputs, sg.outputs)
            m.subgraphs.append(s)
        m.buffers = []
        for raw in self.buffers:
            b = fb.BufferT()
            b.data = np.frombuffer(raw, dtype=np.uint8) if raw else None
            m.buffers.append(b)
        return m

    def to_bytes(self, description: str = "ethos-kws synth graph") -> bytes:
        return pack_model(self.model(description))


def pack_model(model: fb.ModelT) -> bytes:
    b = flatbuffers.Builder(1 << 16)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
