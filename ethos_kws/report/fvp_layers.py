"""An FVP runner's per-operator profile beside Vela's per-layer estimate.

Runners that profile per operator (ExecuTorch's ``arm_perf_monitor``: ``ethos-u : cycle_cnt :
1498202 cycles``) time each operator of the *TFLite graph the CPU runs*. Vela turns every NPU layer
into one ``ethos-u`` custom operator, so the finest FVP figure for the NPU part is that operator:
it stands beside the sum of Vela's per-layer estimates for the NPU layers, and each CPU operator
beside Vela's CPU rows (which carry no estimate). Rows of an ``fvp`` section carry the profile as
``per_operator: [{"op": ..., "cycles": ...}]``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from .document import Heading, Para, TableBlock
from .load import RunResults
from .tables import Column, fmt_int, fmt_ratio, fmt_text, table_from_rows

_OPERATOR_LINE = re.compile(r"(?P<op>[A-Za-z][\w\-]*)\s*:\s*cycle_cnt\s*:\s*(?P<cycles>\d+)\s*cycles")
NPU_OPERATOR = "ethos-u"


def parse_operator_profile(text: str) -> list[dict[str, Any]]:
    """``[{"op", "cycles"}]`` from a runner's per-operator profile, in the order printed."""
    return [{"op": m["op"], "cycles": int(m["cycles"])} for m in _OPERATOR_LINE.finditer(text)]


def operator_rows(label: str, fvp_row: Mapping[str, Any], result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    layers = (result or {}).get("layers") or []
    npu = [x for x in layers if x.get("target", "NPU") == "NPU"]
    cpu_ops = [x for x in layers if x.get("target") == "CPU"]
    rows = []
    for p in fvp_row.get("per_operator") or []:
        op = str(p.get("op", ""))
        if op == NPU_OPERATOR:
            vela = sum(int(x.get("cycles") or 0) for x in npu) if npu else None
            what = f"{len(npu)} Vela layers (the whole NPU subgraph)"
        else:
            vela = None
            match = [x for x in cpu_ops if str(x.get("tflite_op", "")).lower() == op.lower()]
            what = f"CPU operator{' (Vela row ' + str(match[0].get('index')) + ')' if match else ''}: no Vela estimate"
        cycles = p.get("cycles")
        rows.append({"config": label, "op": op, "fvp_cycles": cycles, "vela_cycles": vela, "covers": what,
                     "ratio": None if not vela or not cycles else vela / float(cycles)})
    return rows


def fvp_layer_blocks(run: RunResults) -> list:
    if not run.fvp:
        return []
    by_accel = {str(r.get("accel")): (label, r) for label, r in zip(run.config_labels(), run.results)}
    rows: list[dict[str, Any]] = []
    for f in run.fvp:
        if not f.get("per_operator"):
            continue
        label, result = by_accel.get(str(f.get("accel")), (str(f.get("accel")), None))
        rows += operator_rows(label, f, result)
    if not rows:
        return []
    table = table_from_rows("FVP per-operator profile beside Vela's per-layer estimate", rows, (
        Column("config", "config", fmt_text, numeric=False),
        Column("op", "operator (runner)", fmt_text, numeric=False),
        Column("fvp_cycles", "FVP cycles", fmt_int),
        Column("vela_cycles", "Vela estimate (cycles)", fmt_int),
        Column("ratio", "Vela ÷ FVP", fmt_ratio),
        Column("covers", "Vela layers it covers", fmt_text, numeric=False),
    ), "The runner times operators of the TFLite graph; Vela makes all NPU layers one ethos-u "
       "operator, so that is the finest FVP figure for the NPU part (see the per-layer table for "
       "Vela's split).")
    return [Heading(3, "Per operator on the FVP", "fvp-layers"), TableBlock(table, sortable=True),
            Para("Vela's estimate here is the sum of its per-layer cycles for the NPU layers.")]


def attach_profile(fvp_rows: Sequence[Mapping[str, Any]], accel: str, log_text: str) -> list[dict[str, Any]]:
    """FVP rows with ``per_operator`` parsed from a runner's console log for ``accel``."""
    profile = parse_operator_profile(log_text)
    return [{**r, "per_operator": profile} if str(r.get("accel")) == accel and profile else dict(r)
            for r in fvp_rows]
