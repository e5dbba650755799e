"""Reading TFLite flatbuffers without TensorFlow, through the schema module shipped in ``ethosu.vela``.

``load_tflite`` validates the file (exists, not a directory, not empty, ``TFL3`` identifier, every
table and buffer inside the file) so that later code can trust it, and raises ``ModelError`` with a
message naming the problem otherwise.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from ethosu.vela.tflite import BuiltinOperator as _BuiltinOperator
from ethosu.vela.tflite import TensorType as _TensorType
from ethosu.vela.tflite.Model import Model

from .errors import ModelError
from .tflite_verify import verify_tflite

# TensorType enum value -> numpy dtype name (what we can handle as data)
_TENSOR_TYPES = {
    v: k.lower() for k, v in vars(_TensorType.TensorType).items() if not k.startswith("_")
}
_NUMPY_DTYPE = {
    "float32": "float32", "float16": "float16", "float64": "float64", "int32": "int32",
    "uint8": "uint8", "int64": "int64", "bool": "bool", "int16": "int16", "int8": "int8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
}
BUILTIN_OP_NAMES = {
    v: k for k, v in vars(_BuiltinOperator.BuiltinOperator).items() if not k.startswith("_")
}
STATE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"})
MIN_TFLITE_BYTES = 8  # root offset + "TFL3"


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the user sees it (the original model's view)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "int8", "float32", ...
    scale: float | None = None
    zero_point: int | None = None

    def dequantize(self, data: np.ndarray) -> np.ndarray:
        if self.scale is None or np.dtype(self.dtype).kind == "f":
            return np.asarray(data, dtype=np.float32)
        return (np.asarray(data, dtype=np.float32) - float(self.zero_point or 0)) * self.scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(str(d["name"]), tuple(int(x) for x in d["shape"]), str(d["dtype"]),
                   d.get("scale"), d.get("zero_point"))

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def tensor_type_name(t: int) -> str:
    return _TENSOR_TYPES.get(t, f"type{t}")


def numpy_dtype(t: int) -> np.dtype:
    name = tensor_type_name(t)
    if name not in _NUMPY_DTYPE:
        raise ModelError(f"tensor type {name} is not supported")
    return np.dtype(_NUMPY_DTYPE[name])


@dataclass(frozen=True)
class OpInfo:
    index: int
    opcode: str  # builtin name ("CONV_2D") or "CUSTOM"
    custom_code: str | None
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass
class TfliteModel:
    path: Path
    data: bytes = field(repr=False)
    model: Model = field(repr=False)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def subgraph(self):
        return self.model.Subgraphs(0)

    def tensor(self, index: int, subgraph: int = 0):
        return self.model.Subgraphs(subgraph).Tensors(index)

    def tensor_spec(self, index: int, subgraph: int = 0) -> TensorSpec:
        t = self.tensor(index, subgraph)
        q = t.Quantization()
        scale = zp = None
        if q is not None and q.ScaleLength() > 0:
            scale = float(q.Scale(0))
            zp = int(q.ZeroPoint(0)) if q.ZeroPointLength() > 0 else 0
        shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor{index}"
        return TensorSpec(name, shape, tensor_type_name(t.Type()), scale, zp)

    @property
    def input_specs(self) -> list[TensorSpec]:
        sg = self.subgraph
        return [self.tensor_spec(int(i)) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []

    @property
    def output_specs(self) -> list[TensorSpec]:
        sg = self.subgraph
        return [self.tensor_spec(int(i)) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []

    def int8_boundary(self) -> tuple[list[TensorSpec | None], list[TensorSpec | None]]:
        """The int8 twin of each graph input and output, in order: the output of the QUANTIZE
        that reads a float input, the input of the DEQUANTIZE that writes a float output (None
        where there is none). What the NPU sees of a float-I/O model."""
        sg = self.subgraph
        ins = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outs = [int(i) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        ops = [op for op in self.operators() if op.inputs and op.outputs]
        quant_of = {op.inputs[0]: op.outputs[0] for op in ops if op.opcode == "QUANTIZE"}
        dequant_of = {op.outputs[0]: op.inputs[0] for op in ops if op.opcode == "DEQUANTIZE"}

        def twin(table: dict[int, int], t: int) -> TensorSpec | None:
            return self.tensor_spec(table[t]) if t in table else None

        return [twin(quant_of, t) for t in ins], [twin(dequant_of, t) for t in outs]

    def operators(self, subgraph: int = 0) -> list[OpInfo]:
        sg = self.model.Subgraphs(subgraph)
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = BUILTIN_OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
            custom = code.CustomCode().decode("utf-8", "replace") if code.CustomCode() else None
            ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
            outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            ops.append(OpInfo(i, name, custom, ins, outs))
        return ops

    def buffer_bytes(self, buffer_index: int) -> bytes:
        buf = self.model.Buffers(buffer_index)
        if buf.DataLength():
            return buf.DataAsNumpy().tobytes()
        off, size = buf.Offset(), buf.Size()
        if off > 1 and size:  # large models keep buffers after the flatbuffer
            if off + size > len(self.data):
                raise ModelError(f"{self.path}: truncated file (buffer {buffer_index} ends past EOF)")
            return self.data[off : off + size]
        return b""

    def tensor_data(self, index: int, subgraph: int = 0) -> np.ndarray | None:
        """Constant data of a tensor, shaped, or None for activations."""
        t = self.tensor(index, subgraph)
        raw = self.buffer_bytes(t.Buffer())
        if not raw:
            return None
        arr = np.frombuffer(raw, dtype=numpy_dtype(t.Type()))
        shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        return arr.reshape(shape) if int(np.prod(shape)) == arr.size else arr

    @cached_property
    def keeps_state(self) -> bool:
        """Whether an invocation can depend on earlier ones: resource variables (streaming
        converters' VAR_HANDLE / ASSIGN_VARIABLE) or variable tensors (SVDF, LSTM state)."""
        for s in range(self.model.SubgraphsLength()):
            if any(op.opcode in STATE_OPS for op in self.operators(s)):
                return True
            sg = self.model.Subgraphs(s)
            if any(sg.Tensors(i).IsVariable() for i in range(sg.TensorsLength())):
                return True
        return False

    def metadata(self, name: str) -> bytes | None:
        for i in range(self.model.MetadataLength()):
            md = self.model.Metadata(i)
            if md.Name() and md.Name().decode("utf-8", "replace") == name:
                return self.buffer_bytes(md.Buffer())
        return None


def load_tflite(path: str | os.PathLike) -> TfliteModel:
    """Read and validate a TFLite file; raise ``ModelError`` with a one-line reason otherwise."""
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {p}") from None
    except OSError as e:
        raise ModelError(f"cannot read model file {p}: {e.strerror or e}") from None
    if p.is_dir():
        raise ModelError(f"model path is a directory, not a .tflite file: {p}")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {p}: {e.strerror or e}") from None
    return parse_tflite(data, p)


def parse_tflite(data: bytes, path: str | os.PathLike = "<memory>") -> TfliteModel:
    p = Path(path)
    if len(data) == 0:
        raise ModelError(f"model file is empty: {p}")
    if len(data) < MIN_TFLITE_BYTES or data[4:8] != b"TFL3":
        raise ModelError(f"not a TFLite flatbuffer (no 'TFL3' identifier): {p}")
    root = int.from_bytes(data[0:4], "little")
    if root >= len(data):
        raise ModelError(f"truncated or corrupt TFLite file (root table outside the file): {p}")
    try:
        verify_tflite(data)
    except ModelError as e:
        raise ModelError(f"{p}: {e}") from None
    try:
        model = Model.GetRootAs(data, 0)
        _walk(model, len(data))
    except ModelError:
        raise
    except Exception:  # flatbuffers raises IndexError/struct.error on out-of-range reads
        raise ModelError(f"truncated or corrupt TFLite file: {p}") from None
    tm = TfliteModel(p, data, model)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"TFLite file has no subgraph: {p}")
    return tm


def _walk(model: Model, size: int) -> None:
    """Touch every table we rely on, so truncation shows up here and not deep in a backend."""
    for i in range(model.OperatorCodesLength()):
        c = model.OperatorCodes(i)
        c.BuiltinCode(), c.CustomCode()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            t.ShapeAsNumpy() if t.ShapeLength() else None
            t.Name(), t.Type(), t.Buffer()
            q = t.Quantization()
            if q is not None and q.ScaleLength():
                q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
        n_tensors = sg.TensorsLength()

        def check_indices(indices, what: str) -> None:
            for t in indices:
                if not -1 <= int(t) < n_tensors:  # -1 marks an omitted optional input
                    raise ModelError(f"corrupt TFLite file: {what} refers to tensor {int(t)} of {n_tensors}")

        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            if op.OpcodeIndex() >= model.OperatorCodesLength():
                raise ModelError("corrupt TFLite file: operator refers to a missing opcode")
            check_indices(op.InputsAsNumpy() if op.InputsLength() else (), f"operator {i}")
            check_indices(op.OutputsAsNumpy() if op.OutputsLength() else (), f"operator {i}")
        check_indices(sg.InputsAsNumpy() if sg.InputsLength() else (), "a subgraph input")
        check_indices(sg.OutputsAsNumpy() if sg.OutputsLength() else (), "a subgraph output")
        for i in range(n_tensors):
            if sg.Tensors(i).Buffer() >= max(model.BuffersLength(), 1):
                raise ModelError(f"corrupt TFLite file: tensor {i} refers to a missing buffer")
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.DataLength():
            arr = b.DataAsNumpy()
            if arr.size != b.DataLength():
                raise ModelError("truncated TFLite file (buffer data past end of file)")
        elif b.Offset() > 1 and b.Offset() + b.Size() > size:
            raise ModelError("truncated TFLite file (buffer data past end of file)")
    for i in range(model.MetadataLength()):
        model.Metadata(i).Name()
