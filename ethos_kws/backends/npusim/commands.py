"""Command words of the Ethos-U register command stream: decoding and naming.

Opcode names and bit fields come from Vela's generated ``ethos_u55_regs`` tables (``cmd0``/``cmd1``
enums and the ``npu_*_t`` ctypes structures), so the simulator and its disassembler speak the
hardware's vocabulary. A word is ``[9:0]`` opcode, ``[15:14]`` payload size (0 = cmd0, 1 = cmd1
with one u32 payload word), ``[31:16]`` a 16-bit parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from ethosu.vela.ethos_u55_regs import ethos_u55_regs as regs

from ...errors import CommandStreamError

CMD0 = {e.value: e.name for e in regs.cmd0}
CMD1 = {e.value: e.name for e in regs.cmd1}
CMD0_CODE = {e.name: e.value for e in regs.cmd0}
CMD1_CODE = {e.name: e.value for e in regs.cmd1}

OPERATIONS = frozenset(name for name in CMD0_CODE if name.startswith("NPU_OP_"))

# KERNEL_STRIDE is a bare 16-bit param in the register tables; its fields (from the hardware
# documentation as summarised in the project notes) are listed here as (name, lsb, width).
_EXTRA_FIELDS = {
    "NPU_SET_KERNEL_STRIDE": (
        ("stride_x_lsb", 0, 1), ("stride_y_lsb", 1, 1), ("weight_order", 2, 1),
        ("dilation_x", 3, 1), ("dilation_y", 4, 1), ("decomposition", 5, 1),
        ("stride_x_msb", 6, 1), ("stride_y_msb", 9, 1),
    ),
}
_SKIP = ("cmd_code", "must_be_zero", "payload_size", "reserved", "data")

# (command, field) -> register-table enum whose names label the value in the disassembly
_ENUM_FIELDS = {
    ("NPU_SET_IFM_PRECISION", "precision"): regs.ifm_precision,
    ("NPU_SET_IFM2_PRECISION", "precision"): regs.ifm_precision,
    ("NPU_SET_OFM_PRECISION", "precision"): regs.ofm_precision,
    ("NPU_SET_IFM_PRECISION", "format"): regs.data_format,
    ("NPU_SET_IFM2_PRECISION", "format"): regs.data_format,
    ("NPU_SET_OFM_PRECISION", "format"): regs.data_format,
    ("NPU_SET_IFM_PRECISION", "scale_mode"): regs.ifm_scale_mode,
    ("NPU_SET_IFM_PRECISION", "round_mode"): regs.rounding,
    ("NPU_SET_OFM_PRECISION", "rounding"): regs.rounding,
    ("NPU_OP_POOL", "mode"): regs.pooling_mode,
    ("NPU_OP_ELEMENTWISE", "mode"): regs.elementwise_mode,
    ("NPU_SET_ACTIVATION", "act_clip_range"): regs.clip_range,
    ("NPU_SET_ACC_FORMAT", "param"): regs.acc_format,
    ("NPU_SET_DMA0_SRC_REGION", "stride_mode"): regs.stride_mode,
    ("NPU_SET_DMA0_DST_REGION", "stride_mode"): regs.stride_mode,
}
_SIGNED_PARAMS = frozenset({
    "NPU_SET_IFM_ZERO_POINT", "NPU_SET_IFM2_ZERO_POINT", "NPU_SET_OFM_ZERO_POINT",
    "NPU_SET_ACTIVATION_MIN", "NPU_SET_ACTIVATION_MAX", "NPU_SET_IFM2_SCALAR",
})


def field_label(cmd_name: str, field: str, value: int) -> str:
    enum = _ENUM_FIELDS.get((cmd_name, field))
    if enum is not None:
        try:
            return enum(value).name
        except ValueError:
            return f"{value} (undefined)"
    if cmd_name == "NPU_SET_ACTIVATION" and field == "type":
        if 16 <= value <= 23:
            return f"TABLE_{value - 16}"
        return {0: "NONE", 3: "TANH", 4: "SIGMOID"}.get(value, f"{value} (undefined)")
    if cmd_name in _SIGNED_PARAMS and field == "param":
        return str(value - 0x10000 if value & 0x8000 else value)
    return str(value)


@cache
def param_fields(name: str) -> tuple[tuple[str, int, int], ...]:
    """(field, lsb within the 16-bit param, width) for a command, from its ``npu_*_t`` structure."""
    if name in _EXTRA_FIELDS:
        return _EXTRA_FIELDS[name]
    struct = getattr(regs, name.lower() + "_t", None)
    if struct is None:
        return (("param", 0, 16),)
    out, bit = [], 0
    for fname, _ctype, width in struct._fields_:
        if bit >= 16 and bit < 32 and not fname.startswith(_SKIP):
            out.append((fname, bit - 16, width))
        bit += width
    return tuple(out) or (("param", 0, 16),)


def decode_fields(name: str, param: int) -> dict[str, int]:
    return {f: (param >> lsb) & ((1 << w) - 1) for f, lsb, w in param_fields(name)}


@dataclass(frozen=True)
class Command:
    """One decoded command. ``offset`` is the byte offset inside the register command stream."""

    offset: int
    code: int
    name: str
    param: int
    payload: int | None  # cmd1 only

    @property
    def is_operation(self) -> bool:
        return self.payload is None and self.name in OPERATIONS

    @property
    def address(self) -> int:
        """40-bit value of a cmd1 address/length: ``(param & 0xFF) << 32 | payload``."""
        return ((self.param & 0xFF) << 32) | (self.payload or 0)

    def fields(self) -> dict[str, int]:
        d = decode_fields(self.name, self.param)
        if self.payload is not None:
            d["data"] = self.payload
        return d

    def to_dict(self) -> dict:
        return {
            "offset": self.offset,
            "word": f"0x{self.param << 16 | self.code | (0x4000 if self.payload is not None else 0):08x}",
            "name": self.name,
            "param": self.param,
            "payload": self.payload,
            "fields": self.fields(),
        }

    def text(self) -> str:
        if self.payload is not None:
            head = f"0x{self.offset:06x}: {self.payload:08x} {self.param:04x} {self.code | 0x4000:04x}"
            if self.name in ("NPU_SET_OFM_SCALE", "NPU_SET_OPA_SCALE", "NPU_SET_OPB_SCALE"):
                desc = f"scale={self.payload}, shift={self.param & 0x3F}"
            else:
                desc = f"value=0x{self.address:x} ({self.address})"
        else:
            head = f"0x{self.offset:06x}:          {self.param:04x} {self.code:04x}"
            f = decode_fields(self.name, self.param)
            desc = ", ".join(f"{k}={field_label(self.name, k, v)}" for k, v in f.items())
        return f"{head}  {self.name:<28} {desc}"


def decode_stream(words: np.ndarray, max_commands: int, cmd0: dict[int, str] = CMD0,
                  cmd1: dict[int, str] = CMD1, make: type[Command] = Command) -> list[Command]:
    """Decode u32 command words; raise ``CommandStreamError`` for unknown opcodes or truncation.

    The word format is the same on every Ethos-U; ``cmd0``/``cmd1``/``make`` select the opcode map
    and command class of one family (U55/U65 by default, ``u85.commands`` for U85)."""
    words = np.asarray(words, dtype=np.uint32)
    out: list[Command] = []
    n = len(words)
    i = 0
    wl = words.tolist()
    while i < n:
        if len(out) >= max_commands:
            raise CommandStreamError(
                f"command stream has more than {max_commands} commands (cap); refusing to run"
            )
        w = wl[i]
        code, size, param = w & 0x3FF, (w >> 14) & 0x3, w >> 16
        if (w >> 10) & 0xF:
            raise CommandStreamError(f"command word 0x{w:08x} at byte {4 * i}: reserved bits [13:10] set")
        if size == 0:
            name = cmd0.get(code)
            if name is None:
                raise CommandStreamError(f"unknown cmd0 opcode 0x{code:03x} at byte {4 * i}")
            out.append(make(4 * i, code, name, param, None))
            i += 1
        elif size == 1:
            name = cmd1.get(code)
            if name is None:
                raise CommandStreamError(f"unknown cmd1 opcode 0x{code:03x} at byte {4 * i}")
            if i + 1 >= n:
                raise CommandStreamError(f"truncated command stream: {name} at byte {4 * i} has no payload")
            out.append(make(4 * i, code, name, param, wl[i + 1]))
            i += 2
        else:
            raise CommandStreamError(f"unsupported payload size {size} in word 0x{w:08x} at byte {4 * i}")
    return out


def stop_problem(commands: list[Command]) -> tuple[int, str] | None:
    """(command index, message) when the stream does not end in exactly one ``NPU_OP_STOP``.

    The hardware stops at the first STOP, so commands after it never run, and a stream without
    one runs into whatever memory follows it. Vela ends every stream with one STOP and nothing
    after it (all 2,084 streams of the compile cache, U55/U65/U85): anything else is a truncated
    or corrupt stream, refused rather than run up to where the words happen to end."""
    if not commands:
        return 0, "command stream is empty: no NPU_OP_STOP"
    for i, cmd in enumerate(commands):
        if cmd.name == "NPU_OP_STOP":
            if i == len(commands) - 1:
                return None
            nxt = commands[i + 1]
            return i, (f"{len(commands) - 1 - i} command(s) after NPU_OP_STOP at stream byte {cmd.offset} "
                       f"(first {nxt.name} at stream byte {nxt.offset}): the NPU stops at the first "
                       f"STOP; a truncated or corrupt stream")
    last = commands[-1]
    end = last.offset + (8 if last.payload is not None else 4)
    return len(commands) - 1, (f"command stream ends at byte {end} without NPU_OP_STOP (last command "
                               f"{last.name} at stream byte {last.offset}): a truncated or corrupt stream")


def require_stop(commands: list[Command]) -> list[Command]:
    problem = stop_problem(commands)
    if problem is not None:
        raise CommandStreamError(problem[1])
    return commands
