"""U85 command words: decoding with the U85 opcode map and naming with U85 fields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..commands import Command, decode_stream
from . import isa


def decode_fields(name: str, param: int) -> dict[str, int]:
    fields = isa.PARAM_FIELDS.get(name, (("param", 0, 16),))
    return {f: (param >> lsb) & ((1 << w) - 1) for f, lsb, w in fields}


def field_label(name: str, field: str, value: int) -> str:
    enum = isa.ENUM_FIELDS.get((name, field))
    if enum is not None:
        return enum.get(value, f"{value} (undefined)")
    if name in isa.SIGNED_PARAMS and field == "param":
        return str(value - 0x10000 if value & 0x8000 else value)
    return str(value)


@dataclass(frozen=True)
class U85Command(Command):
    @property
    def is_operation(self) -> bool:
        # NPU_OP_BRANCH is a cmd1 operation on U85
        return self.name in isa.OPERATIONS or self.name == "NPU_OP_BRANCH"

    def fields(self) -> dict[str, int]:
        d = decode_fields(self.name, self.param)
        if self.payload is not None:
            d["data"] = self.payload
        return d

    def text(self) -> str:
        f = decode_fields(self.name, self.param)
        if self.payload is not None:
            head = f"0x{self.offset:06x}: {self.payload:08x} {self.param:04x} {self.code | 0x4000:04x}"
            if self.name in isa.SCALE_REGISTERS:
                rest = ", ".join(f"{k}={field_label(self.name, k, v)}" for k, v in f.items())
                desc = f"scale={self.payload & 0x7FFFFFFF}, {rest}"
            elif self.name == "NPU_OP_BRANCH":
                desc = f"target=0x{self.payload:x}, cond={field_label(self.name, 'branch_cond', f['branch_cond'])}"
            elif not f or self.name.endswith("_LENGTH"):
                desc = f"value={self.payload} (0x{self.payload:x})"
            else:
                desc = f"value=0x{self.address:x} ({self.address})"
        else:
            head = f"0x{self.offset:06x}:          {self.param:04x} {self.code:04x}"
            desc = ", ".join(f"{k}={field_label(self.name, k, v)}" for k, v in f.items())
        return f"{head}  {self.name:<28} {desc}"


def decode_u85_stream(words: np.ndarray, max_commands: int) -> list[Command]:
    return decode_stream(words, max_commands, isa.CMD0, isa.CMD1, U85Command)
