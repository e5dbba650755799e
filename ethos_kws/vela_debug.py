"""Bytes each layer moves, per memory, from Vela's debug database (``--enable-debug-db``).

Vela's per-layer CSV has access *cycles* per memory but not bytes; a roofline needs bytes. The
debug database (``<model>_debug.xml``: CSV tables in CDATA sections) has both: its ``perf`` table
holds one row per per-layer-CSV row, in the same order, and ``perf_debug`` holds, per row id, the
bytes read and written per memory (``Sram``, ``Dram``, ``OnChipFlash``, ``OffChipFlash``) and
per traffic kind (``FeatureMap``, ``Weights``, ``Scales``, ``Lut``). SHRAM, inside the NPU, is no
memory a roofline charges.

Vela quotes text fields here without escaping quotes inside them, so a tensor name can break a
row; only ``perf``'s id column (before the name) and ``perf_debug`` (which holds no names) are read.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

# Vela's memory prefix in the debug database -> ours
MEMORIES = (
    ("Sram", "sram"),
    ("Dram", "dram"),
    ("OnChipFlash", "on_chip_flash"),
    ("OffChipFlash", "off_chip_flash"),
)
TRAFFIC_KINDS = ("FeatureMap", "Weights", "Scales", "Lut")
BYTE_FIELDS = tuple(f"{ours}_{rw}_bytes" for _, ours in MEMORIES for rw in ("read", "write"))

_TABLE = re.compile(r'<table name="(?P<name>[^"]+)">\s*<!\[CDATA\[\n(?P<body>.*?)\]\]>', re.S)


def debug_db_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f"{stem}_debug.xml"


def _tables(text: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in _TABLE.finditer(text)}


def _int(text: str) -> int:
    try:
        return int(float(text)) if text.strip() else 0
    except ValueError:
        return 0


def layer_bytes(path: Path) -> list[dict[str, int]] | None:
    """Per per-layer-CSV row, in order: bytes read and written per memory; None without a
    readable debug database (then a roofline is not drawn, nothing is guessed)."""
    if not path.is_file():
        return None
    tables = _tables(path.read_text(encoding="utf-8", errors="replace"))
    if "perf" not in tables or "perf_debug" not in tables:
        return None
    perf_lines = [ln for ln in tables["perf"].splitlines() if ln.strip()]
    ids = [ln.split(",", 1)[0].strip('"') for ln in perf_lines[1:]]  # the id column comes first
    debug = list(csv.DictReader(io.StringIO(tables["perf_debug"])))
    by_id = {row["id"]: row for row in debug}
    out = []
    for row_id in ids:
        row = by_id.get(row_id, {})
        d: dict[str, int] = {}
        for vela, ours in MEMORIES:
            for rw in ("read", "write"):
                d[f"{ours}_{rw}_bytes"] = sum(_int(row.get(f"{vela}{kind}_{rw}", "")) for kind in TRAFFIC_KINDS)
        out.append(d)
    return out
