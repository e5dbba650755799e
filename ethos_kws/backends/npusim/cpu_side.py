"""The CPU beside the NPU: every operator of a Vela model outside the ``ethos-u`` custom operators
runs on TFLite Micro's own kernels, as it would on the Cortex-M of a deployment.

Consecutive CPU operators form a *segment*; each segment becomes a small TFLite model (the
operators with their options, constants and variable tensors copied from the Vela model, written
with the schema's object API) run by one TFLite Micro interpreter that lives as long as the
backend, so variable tensors (SVDF's activation state, a CPU LSTM's states) carry over between
invocations exactly as in TFLite Micro.

Resource variables (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE) and CALL_ONCE are interpreter
facilities, not kernels: TFLite Micro keeps them in ``MicroResourceVariables`` and runs the
CALL_ONCE subgraph once per interpreter. A handle can cross NPU operators, so the graph executor
keeps them itself (``ResourceVariables``) with TFLite Micro's semantics: one buffer per
(container, shared_name), filled with the zero point until the first assignment (Regor schedules
a READ_VARIABLE before the CALL_ONCE that initialises it, which TFLM's fill makes harmless),
assignment copies the bytes. The CPU
oracle runs the original model on TFLite Micro with its own resource variables, so parity checks
this plumbing too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ...errors import BackendError, NotModelledError
from ...tflite import BUILTIN_OP_NAMES
from ..cpu import tflm_interpreter

# handled by the graph executor (see module docstring), never sent to TFLite Micro
RESOURCE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})
# operators whose subgraph references the executor cannot follow
CONTROL_FLOW_OPS = frozenset({"WHILE", "IF", "CALL"})
_NUMPY = {fb.TensorType.INT8: np.int8, fb.TensorType.INT16: np.int16, fb.TensorType.INT32: np.int32,
          fb.TensorType.INT64: np.int64, fb.TensorType.UINT8: np.uint8, fb.TensorType.FLOAT32: np.float32,
          fb.TensorType.BOOL: np.bool_, fb.TensorType.UINT16: np.uint16, fb.TensorType.UINT32: np.uint32}


def op_name(model: fb.ModelT, op: fb.OperatorT) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = BUILTIN_OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        return f"CUSTOM {custom}"
    return name


def _has_data(model: fb.ModelT, t: fb.TensorT) -> bool:
    if t.buffer <= 0 or t.buffer >= len(model.buffers):
        return False
    data = model.buffers[t.buffer].data
    return data is not None and len(data) > 0


def tensor_shape(t: fb.TensorT) -> tuple[int, ...]:
    return tuple(int(s) for s in (t.shape if t.shape is not None else ()))


def tensor_zero_point(t: fb.TensorT) -> int:
    q = t.quantization
    if q is None or q.zeroPoint is None or len(q.zeroPoint) == 0:
        return 0
    return int(q.zeroPoint[0])


def tensor_dtype(t: fb.TensorT) -> np.dtype:
    if t.type not in _NUMPY:
        raise NotModelledError(f"tensor {t.name!r} of type {t.type} crosses the CPU/NPU boundary")
    return np.dtype(_NUMPY[t.type])


@dataclass
class Segment:
    """Consecutive CPU operators run as one TFLite Micro model."""

    ops: list[int]
    names: list[str]
    inputs: list[int] = field(default_factory=list)  # tensor indices of the Vela model
    outputs: list[int] = field(default_factory=list)
    interpreter: object = None
    stateful: bool = False  # holds variable tensors
    out_specs: list = field(default_factory=list)  # (shape, dtype) of each output

    def describe(self) -> str:
        return "+".join(self.names)


def segment_model(model: fb.ModelT, sg_index: int, seg: Segment) -> bytes:
    """The segment's operators as a one-subgraph TFLite model with the segment's inputs/outputs."""
    from ...synth.graph import pack_model

    sg = model.subgraphs[sg_index]
    order: list[int] = []
    for i in seg.ops:
        op = sg.operators[i]
        for t in list(op.inputs if op.inputs is not None else []) + list(op.outputs) + list(
                op.intermediates if op.intermediates is not None else []):
            if t >= 0 and t not in order:
                order.append(int(t))
    remap = {old: new for new, old in enumerate(order)}
    buffers = [fb.BufferT()]
    tensors = []
    for old in order:
        t = copy.copy(sg.tensors[old])
        if _has_data(model, t):
            b = fb.BufferT()
            b.data = model.buffers[t.buffer].data
            buffers.append(b)
            t.buffer = len(buffers) - 1
        else:
            t.buffer = 0
        tensors.append(t)
    codes: list[int] = []
    ops = []
    for i in seg.ops:
        op = copy.copy(sg.operators[i])
        if op.opcodeIndex not in codes:
            codes.append(op.opcodeIndex)
        op.opcodeIndex = codes.index(op.opcodeIndex)
        op.inputs = [remap[int(t)] if t >= 0 else -1 for t in (op.inputs if op.inputs is not None else [])]
        op.outputs = [remap[int(t)] for t in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [remap[int(t)] for t in op.intermediates]
        ops.append(op)
    out = fb.ModelT()
    out.version, out.description = 3, f"ethos-kws npu-sim CPU segment {seg.describe()}"
    out.operatorCodes = [model.operatorCodes[c] for c in codes]
    s = fb.SubGraphT()
    s.name, s.tensors, s.operators = "cpu_segment", tensors, ops
    s.inputs, s.outputs = [remap[t] for t in seg.inputs], [remap[t] for t in seg.outputs]
    out.subgraphs, out.buffers = [s], buffers
    return pack_model(out)


class ResourceVariables:
    """TFLite Micro's resource variables, kept by the graph executor (see module docstring)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], np.ndarray] = {}
        self.called_once: set[int] = set()

    def reset(self) -> None:
        self.values.clear()
        self.called_once.clear()

    @staticmethod
    def key(op: fb.OperatorT) -> tuple[str, str]:
        o = op.builtinOptions
        dec = lambda v: v.decode() if isinstance(v, bytes) else (v or "")  # noqa: E731
        return dec(getattr(o, "container", None)), dec(getattr(o, "sharedName", None))

    def read(self, key, shape: tuple[int, ...], dtype: np.dtype, batch: int, zero_point: int = 0) -> np.ndarray:
        v = self.values.get(key)
        if v is None:  # TFLM fills a variable nobody assigned yet with its zero point
            return np.full((batch,) + shape, zero_point, dtype=dtype)
        if v.dtype.itemsize * v[0].size != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise BackendError(f"resource variable {key[1]!r} holds {v[0].nbytes} bytes, "
                               f"READ_VARIABLE wants {shape} {dtype}")
        return np.ascontiguousarray(v).view(dtype).reshape((batch,) + shape)

    def assign(self, key, value: np.ndarray) -> None:
        self.values[key] = np.array(value, copy=True)


def run_segment(seg: Segment, values: dict[int, np.ndarray], batch: int,
                out_specs: list[tuple[tuple[int, ...], np.dtype]]) -> None:
    """One TFLite Micro invocation per batch item (a static arena runs one item at a time)."""
    interp = seg.interpreter
    outs = [np.empty((batch,) + shape, dtype=dt) for shape, dt in out_specs]
    for b in range(batch):
        for k, t in enumerate(seg.inputs):
            interp.set_input(values[t][b], k)
        try:
            interp.invoke()
        except RuntimeError as e:
            raise BackendError(f"TFLite Micro failed on CPU segment {seg.describe()}: {e}") from None
        for k, o in enumerate(outs):
            o[b] = np.asarray(interp.get_output(k)).reshape(o.shape[1:])
    for t, o in zip(seg.outputs, outs):
        values[t] = o


def open_segment(model: fb.ModelT, sg_index: int, seg: Segment) -> None:
    data = segment_model(model, sg_index, seg)
    try:
        seg.interpreter = tflm_interpreter(data)
    except RuntimeError as e:
        raise NotModelledError(f"TFLite Micro cannot run CPU operator(s) {seg.describe()}: {e}") from None
