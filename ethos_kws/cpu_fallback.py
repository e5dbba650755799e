"""Operators Vela leaves on the CPU, each with Vela's reason.

Vela's compiled model keeps every operator it could not place on the NPU as a plain TFLite
operator beside the ``ethos-u`` custom op; its console says why, one warning per operator:

    Warning (supported operators) operator: QUANTIZE, ofm: 'input_int8'
    Reason: Operation has tensor with unsupported DataType Float32 (input)
    Feature-map dataTypes must be one of {...}

(the legacy Python core says ``Warning: QUANTIZE 'input_int8' is not supported on the NPU. Placing
on CPU instead`` followed by `` - reason`` lines). Figures Vela reports cover the NPU part only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NO_REASON = "no reason given by Vela"

_REGOR = re.compile(r"^Warning \(supported operators\) operator: (?P<op>[A-Z0-9_]+), ofm: '(?P<ofm>.*)'\s*$")
_LEGACY = re.compile(r"^Warning: (?P<op>[A-Z0-9_]+) '(?P<ofm>.*)' is not supported on the NPU\. Placing on CPU instead\s*$")


# what ends a warning's reason lines besides a blank line: the next warning or another report
_NOT_A_REASON = ("Warning", "#", "Tensor '", "Allocation", "Performance for", "Network summary")


@dataclass(frozen=True)
class CpuOperator:
    index: int  # operator index in the compiled model
    op: str  # TFLite builtin name
    ofm: str  # its output tensor
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.op} '{self.ofm}': {self.reason}"


def fallback_reasons(log: str) -> dict[tuple[str, str], str]:
    """(op, ofm) -> Vela's reason, from its console output."""
    reasons: dict[tuple[str, str], str] = {}
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        m = _REGOR.match(lines[i].strip()) or _LEGACY.match(lines[i].strip())
        i += 1
        if not m:
            continue
        body = []
        while i < len(lines) and lines[i].strip() and not lines[i].startswith(_NOT_A_REASON):
            text = lines[i].strip()
            body.append(text.removeprefix("Reason:").removeprefix("- ").strip())
            i += 1
        reasons[(m["op"], m["ofm"])] = "; ".join(b for b in body if b) or NO_REASON
    return reasons


def cpu_operators(compiled_model: str | Path, log: str) -> tuple[CpuOperator, ...]:
    """Every non-NPU operator of Vela's output model, with the reason Vela gave for it."""
    from .tflite import load_tflite

    m = load_tflite(compiled_model)
    reasons = fallback_reasons(log)
    out = []
    for o in m.operators():
        if o.custom_code == "ethos-u":
            continue
        ofm = m.tensor_spec(o.outputs[0]).name if o.outputs and o.outputs[0] >= 0 else ""
        op = o.custom_code if o.opcode == "CUSTOM" and o.custom_code else o.opcode
        out.append(CpuOperator(o.index, op, ofm, reasons.get((op, ofm), NO_REASON)))
    return tuple(out)


def npu_only_note(cpu_ops: int) -> str:
    """The sentence every table of Vela figures carries when part of the model runs on the CPU."""
    return f"figures cover the NPU part only: {cpu_ops} operator{'s' if cpu_ops != 1 else ''} on the CPU"
