"""A complete verifier of TFLite flatbuffers, run before anything (Vela, LiteRT, the simulator) reads one.

The flatbuffers runtime trusts its input: an offset, a vector length or a buffer range that points
outside the file makes Python's reader raise ``struct.error`` somewhere deep, and makes Vela's C++
core read wild memory (a truncated model crashed it with SIGSEGV). This module walks every table,
vtable, vector, string and buffer the TFLite schema defines (the fields of ``schema.fbs`` by id) and
checks each lies inside the file, then checks the values that size memory: every dimension is
positive, no tensor is larger than ``MAX_TENSOR_BYTES``, constant data matches its tensor's size,
quantization scales are finite and positive and zero points fit their type. The first problem found
is raised as ``ModelError`` naming the object ("tensor 3 declares dimension -1").
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .errors import ModelError

MAX_TENSOR_BYTES = 1 << 30  # no keyword-spotting tensor comes near; bigger is a corrupt header
MAX_RANK = 8

# TensorType -> element size in bytes (schema.fbs enum TensorType); string/resource/variant are 0
# (INT4 is packed two to a byte: 0 here, its size is not checked against its buffer)
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
                  13: 0, 14: 0, 15: 4, 16: 2, 17: 0, 18: 2}
# integer TensorType -> (min, max) of a zero point
_ZERO_POINT_RANGE = {3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 17: (-8, 7), 2: (-(2**31), 2**31 - 1)}


class _Corrupt(Exception):
    pass


@dataclass(frozen=True)
class _Table:
    pos: int  # absolute position of the table
    vtable: int
    vtable_size: int
    size: int  # inline size of the table
    what: str


class _Reader:
    """Bounds-checked reads of the flatbuffer wire format."""

    def __init__(self, data: bytes):
        self.b = data
        self.n = len(data)

    def _need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise _Corrupt(f"{what} lies outside the file (bytes {pos}..{pos + size} of {self.n})")

    def u8(self, pos: int, what: str) -> int:
        self._need(pos, 1, what)
        return self.b[pos]

    def u16(self, pos: int, what: str) -> int:
        self._need(pos, 2, what)
        return struct.unpack_from("<H", self.b, pos)[0]

    def u32(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        return struct.unpack_from("<I", self.b, pos)[0]

    def i32(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        return struct.unpack_from("<i", self.b, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        """A table and its vtable, checked as flatbuffers' own Verifier does: inside the file,
        aligned, every field's start inside the table."""
        if pos % 4:
            raise _Corrupt(f"{what} is misaligned (byte {pos})")
        vt = pos - self.i32(pos, f"{what} (table)")
        if vt % 2:
            raise _Corrupt(f"{what} has a misaligned vtable (byte {vt})")
        vt_size = self.u16(vt, f"{what} (vtable)")
        if vt_size < 4 or vt_size % 2:
            raise _Corrupt(f"{what} has a malformed vtable (size {vt_size})")
        self._need(vt, vt_size, f"{what} (vtable)")
        size = self.u16(vt + 2, f"{what} (vtable)")
        if size < 4:
            raise _Corrupt(f"{what} has a malformed vtable (table size {size})")
        self._need(pos, size, f"{what} (table)")
        for slot in range(4, vt_size, 2):
            off = struct.unpack_from("<H", self.b, vt + slot)[0]
            if off and not 4 <= off < size:
                raise _Corrupt(f"{what}: field {(slot - 4) // 2} lies outside its table")
        return _Table(pos, vt, vt_size, size, what)

    def field(self, t: _Table, fid: int, size: int) -> int:
        """Absolute position of field ``fid`` (0 when absent), checked inside its table."""
        slot = 4 + 2 * fid
        if slot + 2 > t.vtable_size:
            return 0
        off = self.u16(t.vtable + slot, t.what)
        if off == 0:
            return 0
        if off + size > t.size:
            raise _Corrupt(f"{t.what}: field {fid} lies outside its table")
        if (t.pos + off) % size:
            raise _Corrupt(f"{t.what}: field {fid} is misaligned")
        return t.pos + off

    def scalar(self, t: _Table, fid: int, fmt: str, default):
        size = struct.calcsize(fmt)
        p = self.field(t, fid, size)
        if not p:
            return default
        return struct.unpack_from("<" + fmt, self.b, p)[0]

    def ref(self, t: _Table, fid: int, what: str) -> int:
        p = self.field(t, fid, 4)
        if not p:
            return 0
        target = p + self.u32(p, what)
        self._need(target, 4, what)
        return target

    def vector(self, t: _Table, fid: int, elem: int, what: str) -> tuple[int, int]:
        """(start of the elements, length); (0, 0) when absent."""
        v = self.ref(t, fid, what)
        if not v:
            return 0, 0
        if v % 4:
            raise _Corrupt(f"{what} is misaligned (byte {v})")
        length = self.u32(v, f"{what} (length)")
        self._need(v + 4, length * elem, f"{what} ({length} elements)")
        if elem > 4 and (v + 4) % elem:
            raise _Corrupt(f"{what} is misaligned (byte {v + 4})")
        return v + 4, length

    def string(self, t: _Table, fid: int, what: str) -> bytes | None:
        start, length = self.vector(t, fid, 1, what)
        if not start:
            return None
        self._need(start, length + 1, f"{what} (terminator)")
        return self.b[start : start + length]

    def ints(self, t: _Table, fid: int, fmt: str, what: str) -> list[int]:
        size = struct.calcsize(fmt)
        start, length = self.vector(t, fid, size, what)
        return list(struct.unpack_from(f"<{length}{fmt}", self.b, start)) if length else []

    def tables(self, t: _Table, fid: int, what: str) -> list[_Table]:
        start, length = self.vector(t, fid, 4, what)
        out = []
        for i in range(length):
            p = start + 4 * i
            out.append(self.table(p + self.u32(p, f"{what} {i}"), f"{what} {i}"))
        return out

    def union(self, t: _Table, type_fid: int, value_fid: int, what: str) -> None:
        if self.scalar(t, type_fid, "B", 0) and self.field(t, value_fid, 4):
            self.table(self.ref(t, value_fid, what), what)


def verify_tflite(data: bytes) -> None:
    """Raise ``ModelError`` with a one-line reason when ``data`` is not a sound TFLite model."""
    try:
        _verify(_Reader(data))
    except _Corrupt as e:
        raise ModelError(f"corrupt TFLite file: {e}") from None


def _verify(r: _Reader) -> None:
    model = r.table(r.u32(0, "root offset"), "model")
    codes = r.tables(model, 1, "operator code")
    for i, c in enumerate(codes):
        r.string(c, 1, f"custom code of operator code {i}")
    buffers = r.tables(model, 4, "buffer")
    buffer_sizes = []
    for i, b in enumerate(buffers):
        start, length = r.vector(b, 0, 1, f"buffer {i}")
        offset, size = r.scalar(b, 1, "Q", 0), r.scalar(b, 2, "Q", 0)
        if offset > 1:  # data kept after the flatbuffer (models over 2 GB)
            if offset + size > r.n:
                raise _Corrupt(f"buffer {i} (bytes {offset}..{offset + size}) ends past the end of the file ({r.n} bytes)")
            length = size
        buffer_sizes.append(length)
    subgraphs = r.tables(model, 2, "subgraph")
    if not subgraphs:
        raise _Corrupt("the model has no subgraph")
    for s, sg in enumerate(subgraphs):
        _verify_subgraph(r, sg, s, len(codes), buffer_sizes)
    r.string(model, 3, "model description")
    r.ints(model, 5, "i", "metadata buffer list")
    for i, md in enumerate(r.tables(model, 6, "metadata")):
        r.string(md, 0, f"name of metadata {i}")
        if r.scalar(md, 1, "I", 0) >= len(buffers):
            raise _Corrupt(f"metadata {i} refers to buffer {r.scalar(md, 1, 'I', 0)} of {len(buffers)}")
    for i, sd in enumerate(r.tables(model, 7, "signature")):
        for fid in (0, 1):
            kind = ("input", "output")[fid]  # k is not bound yet: name the list, not the element
            for k, tm in enumerate(r.tables(sd, fid, f"{kind} tensor maps of signature {i}")):
                r.string(tm, 0, f"tensor map {k} of signature {i}")
        r.string(sd, 2, f"key of signature {i}")


def _verify_subgraph(r: _Reader, sg: _Table, s: int, n_codes: int, buffer_sizes: list[int]) -> None:
    where = f"subgraph {s} " if s else ""
    tensors = r.tables(sg, 0, f"{where}tensor")
    n = len(tensors)
    for i, t in enumerate(tensors):
        _verify_tensor(r, t, f"{where}tensor {i}", buffer_sizes)
    for fid, what in ((1, "input"), (2, "output")):
        for k in r.ints(sg, fid, "i", f"{where}{what} list"):
            if not 0 <= k < n:
                raise _Corrupt(f"{where}{what} list refers to tensor {k} of {n}")
    for i, op in enumerate(r.tables(sg, 3, f"{where}operator")):
        what = f"{where}operator {i}"
        if r.scalar(op, 0, "I", 0) >= n_codes:
            raise _Corrupt(f"{what} refers to operator code {r.scalar(op, 0, 'I', 0)} of {n_codes}")
        for fid in (1, 2, 8):  # inputs, outputs, intermediates; -1 marks an omitted optional input
            for k in r.ints(op, fid, "i", what):
                if not -1 <= k < n:
                    raise _Corrupt(f"{what} refers to tensor {k} of {n}")
        r.union(op, 3, 4, f"options of {what}")
        r.union(op, 11, 12, f"options of {what}")
        r.vector(op, 5, 1, f"custom options of {what}")
        r.vector(op, 7, 1, f"mutating inputs of {what}")
    r.string(sg, 4, f"name of {where or 'subgraph 0 '}".strip())


def _verify_tensor(r: _Reader, t: _Table, what: str, buffer_sizes: list[int]) -> None:
    shape = r.ints(t, 0, "i", f"shape of {what}")
    ttype = r.scalar(t, 1, "b", 0)
    if ttype not in _ELEMENT_BYTES:
        raise _Corrupt(f"{what} has unknown type {ttype}")
    buffer = r.scalar(t, 2, "I", 0)
    if buffer >= max(len(buffer_sizes), 1):
        raise _Corrupt(f"{what} refers to buffer {buffer} of {len(buffer_sizes)}")
    r.string(t, 3, f"name of {what}")
    r.ints(t, 7, "i", f"shape signature of {what}")
    if r.field(t, 6, 4):
        raise ModelError(f"{what} is sparse; sparse tensors are not supported")
    if len(shape) > MAX_RANK:
        raise _Corrupt(f"{what} has rank {len(shape)} (at most {MAX_RANK})")
    elements = 1
    for d in shape:
        if d < 0:
            raise ModelError(f"corrupt TFLite file: {what} declares dimension {d}")
        elements *= d
    nbytes = elements * _ELEMENT_BYTES[ttype]
    if max(nbytes, elements) > MAX_TENSOR_BYTES:
        raise ModelError(f"corrupt TFLite file: {what} declares shape {tuple(shape)} ({nbytes:,} bytes, "
                         f"over the {MAX_TENSOR_BYTES:,}-byte limit)")
    data = buffer_sizes[buffer] if buffer < len(buffer_sizes) else 0
    if data and _ELEMENT_BYTES[ttype] and data != nbytes:
        raise ModelError(f"corrupt TFLite file: {what} of shape {tuple(shape)} needs {nbytes} bytes, "
                         f"its buffer {buffer} holds {data}")
    qpos = r.ref(t, 4, f"quantization of {what}")
    if qpos:
        _verify_quantization(r, r.table(qpos, f"quantization of {what}"), what, ttype, shape)


def _verify_quantization(r: _Reader, q: _Table, what: str, ttype: int, shape: list[int]) -> None:
    r.ints(q, 0, "f", f"min of {what}")
    r.ints(q, 1, "f", f"max of {what}")
    scales = r.ints(q, 2, "f", f"scales of {what}")
    zero_points = r.ints(q, 3, "q", f"zero points of {what}")
    r.union(q, 4, 5, f"quantization details of {what}")
    for s in scales:
        if not (math.isfinite(s) and s > 0):
            raise ModelError(f"corrupt TFLite file: {what} has quantization scale {s!r} (must be finite and positive)")
    lo, hi = _ZERO_POINT_RANGE.get(ttype, (-(2**63), 2**63 - 1))
    for z in zero_points:
        if not lo <= z <= hi:
            raise ModelError(f"corrupt TFLite file: {what} has zero point {z}, outside {lo}..{hi}")
    if len(scales) > 1:
        dim = r.scalar(q, 6, "i", 0)
        # a 1-D tensor's scales can only run along its one axis: old converters wrote the
        # weights' dimension (3) on biases (TFLite Micro's person_detect.tflite), TFLM reads axis 0
        one_axis = len(shape) == 1 and shape[0] == len(scales)
        if not one_axis and (not 0 <= dim < len(shape) or shape[dim] != len(scales)):
            raise ModelError(f"corrupt TFLite file: {what} has {len(scales)} scales for quantized "
                             f"dimension {dim} of shape {tuple(shape)}")
    if zero_points and scales and len(zero_points) != len(scales):
        raise ModelError(f"corrupt TFLite file: {what} has {len(scales)} scales and {len(zero_points)} zero points")
