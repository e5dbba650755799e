"""Hostile files, generated in code from a real model: truncations, bit flips, bad dimensions and
scales, bad .npy headers, results.json documents a report or the gate must refuse.

Shared by ``tests/adversarial/`` and the driver ``tests/adversarial/driver.py``; nothing here is
committed data, every file is derived from ``shared/data/models/ds_cnn_l_int8io.tflite`` or built.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ethosu.vela.tflite.Model import Model

# ---- flatbuffer positions -------------------------------------------------------------------------


def _tensor(data: bytes, index: int):
    return Model.GetRootAs(data, 0).Subgraphs(0).Tensors(index)


def _vector_start(table, field_offset: int) -> int:
    o = table._tab.Offset(field_offset)
    if not o:
        raise ValueError(f"field at vtable offset {field_offset} is absent")
    return table._tab.Vector(o)


def shape_position(data: bytes, tensor: int, dim: int) -> int:
    """File offset of ``shape[dim]`` (int32) of a tensor."""
    return _vector_start(_tensor(data, tensor), 4) + 4 * dim


def scale_position(data: bytes, tensor: int) -> int:
    """File offset of the first quantization scale (float32) of a tensor."""
    q = _tensor(data, tensor).Quantization()
    return _vector_start(q, 8)


def name_position(data: bytes, tensor: int) -> int:
    t = _tensor(data, tensor)
    o = t._tab.Offset(10)
    return t._tab.Vector(o)  # string bytes start like a vector's


def patch(data: bytes, pos: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def with_dimension(data: bytes, tensor: int, dim: int, value: int) -> bytes:
    return patch(data, shape_position(data, tensor, dim), "<i", value)


def with_scale(data: bytes, tensor: int, value: float) -> bytes:
    return patch(data, scale_position(data, tensor), "<f", value)


def with_name_first_char(data: bytes, tensor: int, ch: bytes) -> bytes:
    return patch(data, name_position(data, tensor), "c", ch)


def flip_bit(data: bytes, pos: int, bit: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def truncated(data: bytes, n: int = 1) -> bytes:
    return data[:-n]


def command_stream_span(compiled: bytes) -> tuple[int, int]:
    """(file offset, length) of the command stream tensor of the first ``ethos-u`` op."""
    m = Model.GetRootAs(compiled, 0)
    sg = m.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        if code.CustomCode() == b"ethos-u":
            buf = m.Buffers(sg.Tensors(op.Inputs(0)).Buffer())
            return _vector_start(buf, 4), buf.DataLength()
    raise ValueError("no ethos-u operator")


# Registers whose value the hardware takes as it is (a scale, a clamp, a padding amount, a zero
# point, a mode): a flip there may change the output and is counted, never an error. Everything
# else in a stream (bases, strides, sizes, regions, lengths, opcodes) moves an access.
ACCEPTED_VALUE_REGISTERS = (
    "PAD", "ZERO_POINT", "ACTIVATION", "OFM_SCALE", "OPA_SCALE", "OPB_SCALE", "IFM2_SCALAR",
    "KERNEL_STRIDE", "PRECISION", "ACC_FORMAT", "BLK", "IB_", "AB_START", "ACC_", "PARALLEL_MODE",
    "IFM_UPSCALE", "IFM2_BROADCAST", "OP_POOL", "OP_ELEMENTWISE", "DMA_WAIT", "KERNEL_WAIT", "PMU", "IRQ",
    # U85: the operand scales of ADD/SUB, the 32-bit scalar, the block dependency (a sync)
    "IFM_SCALE", "IFM2_SCALE", "OP_SCALAR", "BLOCKDEP",
)


def accepted_value(register: str) -> bool:
    return any(k in register for k in ACCEPTED_VALUE_REGISTERS)


# What the data-flow check's refusals of a moved or resized access say (``npusim/dataflow.py``)
DATAFLOW_REFUSAL = ("nothing wrote|never read|not written completely|constant data|cut across|its own IFM reads|"
                    "holds bytes this OFM wrote")


def stream_command_at(compiled: bytes, pos: int):
    """(command, byte within it) holding file byte ``pos`` of the first ethos-u command stream,
    or None for the COP1 header."""
    from ethos_kws.backends.npusim.commands import decode_stream
    from ethos_kws.backends.npusim.container import parse_payload

    start, length = command_stream_span(compiled)
    payload = parse_payload(compiled[start : start + length])
    rel = pos - (start + length - 4 * len(payload.words))
    if rel < 0:
        return None
    cmds = [c for c in decode_stream(payload.words, 1 << 20) if c.offset <= rel]
    return (cmds[-1], rel - cmds[-1].offset) if cmds else None


def _ethos_u_op(m):
    sg = m.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        if m.OperatorCodes(op.OpcodeIndex()).CustomCode() == b"ethos-u":
            return op
    raise ValueError("no ethos-u operator")


def output_tensor(data: bytes) -> int:
    return Model.GetRootAs(data, 0).Subgraphs(0).Outputs(0)


def scratch_size(compiled: bytes) -> int:
    m = Model.GetRootAs(compiled, 0)
    t = m.Subgraphs(0).Tensors(_ethos_u_op(m).Inputs(2))
    n = 1
    for j in range(t.ShapeLength()):
        n *= t.Shape(j)
    return n


def with_arena_offset(compiled: bytes, tensor: int, offset: int) -> bytes:
    """Move a tensor in the scratch arena (its ``OfflineMemoryAllocation`` entry)."""
    m = Model.GetRootAs(compiled, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() == b"OfflineMemoryAllocation":
            start = _vector_start(m.Buffers(md.Buffer()), 4)
            return patch(compiled, start + 4 * (3 + tensor), "<i", offset)
    raise ValueError("no OfflineMemoryAllocation metadata")


def first_conv_output(data: bytes) -> int:
    m = Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        c = m.OperatorCodes(op.OpcodeIndex())
        if max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) == 3:  # CONV_2D
            return op.Outputs(0)
    raise ValueError("no CONV_2D")


def first_activation_with_shape(data: bytes) -> int:
    """Index of the first tensor with a shape and no constant data (an activation)."""
    m = Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        if t.ShapeLength() and m.Buffers(t.Buffer()).DataLength() == 0:
            return i
    raise ValueError("no activation tensor")


def first_quantized_tensor(data: bytes) -> int:
    sg = Model.GetRootAs(data, 0).Subgraphs(0)
    for i in range(sg.TensorsLength()):
        q = sg.Tensors(i).Quantization()
        if q is not None and q.ScaleLength():
            return i
    raise ValueError("no quantized tensor")


# ---- .npy files -----------------------------------------------------------------------------------


def npy_garbage_header() -> bytes:
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 490), ((((( "
    header += b" " * (63 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npy_huge_header(elements: int = 2**40) -> bytes:
    header = f"{{'descr': '|i1', 'fortran_order': False, 'shape': ({elements},), }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64


def npy_bytes(array) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


# ---- result documents -----------------------------------------------------------------------------


def results_doc(rows: int = 1, **overrides) -> dict:
    row = {
        "accel": "u55-128", "system_config": "Ethos_U55_High_End_Embedded", "memory_mode": "Shared_Sram",
        "optimise": "Performance", "arena_cache_size_bytes": None, "compiler": "regor",
        "core_clock_hz": 500e6, "macs_per_cycle": 128, "cycles_npu": 1000, "cycles_total": 1000,
        "inference_time_ms": 0.002, "inferences_per_second": 500000.0, "sram_bytes": 1024,
        "flash_bytes": 2048, "dram_bytes": 0, "npu_ops": 1, "cpu_ops": 0, "cpu_op_names": [],
        "macs": 1000, "mac_utilization": 0.01, "encoded_weights_bytes": 10, "original_weights_bytes": 20,
        "vela_version": "5.2.0", "model_sha256": "0" * 64, "model_path": "m.tflite",
        "compiled_model": "m_vela.tflite", "output_dir": ".", "cache_key": "k", "layers": [],
        "model_provenance": "user file",
    }  # fmt: skip
    row.update(overrides)
    model = {
        "path": "m.tflite", "name": "m", "sha256": "0" * 64, "size_bytes": 1, "provenance": "user file",
        "description": "", "inputs": [], "outputs": [], "operators": {}, "operator_count": 0,
        "macs": 1000, "weights": [], "warnings": [],
    }  # fmt: skip
    accels = ("u55-32", "u55-64", "u55-128", "u55-256", "u65-256", "u65-512")
    out = []
    for i in range(rows):
        r = dict(row)
        if rows > 1:
            r["accel"] = accels[i % len(accels)]
            r["system_config"] = f"{r['system_config']}" if i < len(accels) else f"sys{i}"
            r["cycles_total"] = 1000 + i
        out.append(r)
    return {"model": model, "results": out, "created": "2026-01-01T00:00:00+00:00", "host": "h"}


def results_json_text(rows: int = 1, **overrides) -> str:
    return json.dumps(results_doc(rows, **overrides))


def huge_int_results() -> str:
    return results_json_text().replace('"cycles_total": 1000', '"cycles_total": ' + "1" + "0" * 400)


def deep_json(depth: int = 200_000) -> str:
    return "[" * depth + "]" * depth


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path
