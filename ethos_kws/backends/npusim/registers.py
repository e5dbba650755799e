"""The sticky register file: every ``NPU_SET_*`` command writes one register; operations read them.

Vela elides writes that would not change a register, so an operation sees whatever was last
written, possibly many operations earlier. Registers never written read as 0 (reset value).
"""

from __future__ import annotations

from .commands import Command, decode_fields


class RegisterFile:
    __slots__ = ("cmd0", "cmd1")

    def __init__(self) -> None:
        self.cmd0: dict[str, int] = {}
        self.cmd1: dict[str, tuple[int, int]] = {}

    def write(self, cmd: Command) -> None:
        key = cmd.name[len("NPU_SET_"):]
        if cmd.payload is None:
            self.cmd0[key] = cmd.param
        else:
            self.cmd1[key] = (cmd.param, cmd.payload)

    def param(self, name: str) -> int:
        """16-bit parameter of a cmd0 register."""
        return self.cmd0.get(name, 0)

    def signed(self, name: str) -> int:
        """A cmd0 register read as a signed 16-bit value (zero points, clamp bounds, scalars)."""
        v = self.cmd0.get(name, 0)
        return v - 0x10000 if v & 0x8000 else v

    def address(self, name: str) -> int:
        """40-bit address/length of a cmd1 register: ``(param & 0xFF) << 32 | payload``."""
        param, payload = self.cmd1.get(name, (0, 0))
        return ((param & 0xFF) << 32) | payload

    def field(self, name: str, field: str) -> int:
        """One named bit field of a cmd0 register's parameter, laid out as in Vela's register
        tables (``npu_set_ifm_precision_t`` and friends)."""
        return decode_fields("NPU_SET_" + name, self.param(name))[field]

    def scale(self, name: str) -> tuple[int, int]:
        """(multiplier, shift) of OFM_SCALE/OPA_SCALE/OPB_SCALE: payload and param[5:0]."""
        param, payload = self.cmd1.get(name, (0, 0))
        return payload, param & 0x3F

    def snapshot(self) -> RegisterFile:
        r = RegisterFile()
        r.cmd0 = dict(self.cmd0)
        r.cmd1 = dict(self.cmd1)
        return r
