"""Disassembly of the command streams in a ``*_vela.tflite``: one command per line."""

from __future__ import annotations

from typing import Any

from ...errors import ModelError, NotModelledError, UserError
from ...tflite import load_tflite
from .commands import decode_stream, stop_problem
from .container import CUSTOM_CODE, read_ethos_u_op
from .executor import MAX_COMMANDS
from .u85.commands import decode_u85_stream

# each NPU family decodes with its own opcode map and register names
DECODERS = {"U55": decode_stream, "U65": decode_stream, "U85": decode_u85_stream}


def _violations(eop, commands) -> dict[int, list[str]]:
    """Data-flow violations per command index (see ``dataflow``); a stream that does not end in
    one NPU_OP_STOP gets that on the command at fault, one that does not even build its plans
    its error on the first command, so disasm still lists it."""
    from .backend import NpuSimBackend, check_stream_dataflow, make_executor

    problem = stop_problem(commands)
    if problem is not None:
        return {problem[0]: [problem[1]]}
    try:
        ex = make_executor(eop.payload)
        mem = NpuSimBackend._memory(type("Step", (), {"op": eop, "executor": ex})(), 1)
        ex.prepare(mem)
        found = check_stream_dataflow(eop, ex, mem, stop_at_first=False)
    except UserError as e:
        return {0: [str(e)]}
    except NotModelledError:
        return {}
    out: dict[int, list[str]] = {}
    for v in found:
        out.setdefault(v.command, []).append(v.message)
    return out


def disassemble(path) -> list[dict[str, Any]]:
    """One entry per ``ethos-u`` operator: its accelerator config and decoded commands."""
    model = load_tflite(path)
    out = []
    for op in model.operators():
        if op.opcode != "CUSTOM" or op.custom_code != CUSTOM_CODE:
            continue
        eop = read_ethos_u_op(model, op)
        cfg = eop.payload.config
        commands = DECODERS[cfg.npu](eop.payload.words, MAX_COMMANDS)
        violations = _violations(eop, commands)
        out.append({
            "operator": op.index,
            "config_r": f"0x{cfg.config_word:08x}",
            "accelerator": cfg.name,
            "npu": cfg.npu,
            "macs_per_cycle": cfg.macs_per_cycle,
            "shram_bytes": cfg.shram_bytes,
            "stream_words": len(eop.payload.words),
            "read_only_bytes": len(eop.read_only),
            "scratch_bytes": eop.scratch_bytes,
            "scratch_fast_bytes": eop.scratch_fast_bytes,
            "commands": commands,
            "violations": violations,
        })
    if not out:
        raise ModelError(f"{path}: no '{CUSTOM_CODE}' operator; compile the model with Vela first")
    return out


def to_text(streams: list[dict[str, Any]]) -> str:
    lines = []
    for s in streams:
        lines.append(
            f"; ethos-u operator {s['operator']}: {s['accelerator']} (config_r {s['config_r']}, "
            f"{'IB' if s['npu'] == 'U85' else 'SHRAM'} {s['shram_bytes']} bytes), {s['stream_words']} words, "
            f"read_only {s['read_only_bytes']} bytes, scratch {s['scratch_bytes']} bytes, "
            f"scratch_fast {s['scratch_fast_bytes']} bytes"
        )
        marks = s.get("violations", {})
        for i, c in enumerate(s["commands"]):
            lines.append(c.text())
            lines.extend(f"; ! command {i}: {m}" for m in marks.get(i, ()))
    return "\n".join(lines) + "\n"


def to_json(streams: list[dict[str, Any]]) -> dict[str, Any]:
    return {"streams": [dict(s, commands=[c.to_dict() for c in s["commands"]],
                             violations={str(k): v for k, v in s.get("violations", {}).items()})
                        for s in streams]}
