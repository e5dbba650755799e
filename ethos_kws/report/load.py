"""Reading what a sweep left behind: a run folder or a ``results.json``, checked against the contract.

A run folder holds ``results.json`` and, when those steps ran, ``parity.json`` and ``fvp.json``.
The same sections may also be embedded in ``results.json`` (``"parity"``, ``"fvp"``). Everything
but the compile results is optional; a missing field shows as "n/a" in the report rather than
failing it, while a field of the wrong type is a user error naming the file and the field.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import UserError
from ..parity import LEGACY_KEYS, ConfigParity
from ..records import check_schema, numeric_fields, versioned
from ..vela import CompileResult, LayerResult

RESULTS_FILE = "results.json"
PARITY_FILE = "parity.json"
FVP_FILE = "fvp.json"

# Fields that must be numbers when present: the numeric fields of each result dataclass.
NUMERIC_FIELDS = numeric_fields(CompileResult)
LAYER_NUMERIC_FIELDS = numeric_fields(LayerResult)
PARITY_NUMERIC_FIELDS = numeric_fields(ConfigParity)
REQUIRED_FIELDS = ("accel", "cycles_total")
# What tells two configurations apart; the accelerator alone is enough in a default sweep.
CONFIG_KEY_FIELDS = ("accel", "system_config", "memory_mode", "optimise")


class ResultsError(UserError):
    """A results document is missing, not JSON or not shaped like a sweep's output."""


@dataclass(frozen=True)
class RunResults:
    """A sweep's results plus the optional parity and FVP sections, validated."""

    model: dict[str, Any]
    results: tuple[dict[str, Any], ...]
    parity: dict[str, Any] | None = None
    fvp: tuple[dict[str, Any], ...] | None = None
    host: Any = None
    created: str | None = None
    source: str = "<memory>"
    document: dict[str, Any] = field(default_factory=dict, repr=False)

    def config_labels(self) -> list[str]:
        return config_labels(self.results)

    def to_document(self) -> dict[str, Any]:
        """The full document, parity and FVP sections merged in (what the report folder keeps)."""
        doc = dict(self.document)
        doc["model"] = self.model
        doc["results"] = list(self.results)
        if self.parity is not None:
            doc["parity"] = self.parity
        if self.fvp is not None:
            doc["fvp"] = list(self.fvp)
        return versioned(doc)


def config_key(result: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(result.get(k, "")) for k in CONFIG_KEY_FIELDS)


def config_labels(results: list[Mapping[str, Any]] | tuple[Mapping[str, Any], ...]) -> list[str]:
    """Short, unique labels: the accelerator, plus any key field that differs between results of
    the same accelerator (U55 and U65 having different default system configs is no reason to
    spell them out)."""
    keys = [config_key(r) for r in results]
    by_accel: dict[str, list[tuple[str, ...]]] = {}
    for k in keys:
        by_accel.setdefault(k[0], []).append(k)
    shown = [0] + [
        i for i in range(1, len(CONFIG_KEY_FIELDS))
        if any(len({k[i] for k in group}) > 1 for group in by_accel.values())
    ]
    labels = [" / ".join(k[i] for i in shown if k[i]) for k in keys]
    # Identical keys (e.g. two runs of one config) still need distinct labels.
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label if n == 0 else f"{label} #{n + 1}")
    return out


def _read_json(path: Path, what: str) -> Any:
    if not path.exists():
        raise ResultsError(f"{what} not found: {path}")
    if path.is_dir():
        raise ResultsError(f"{what} is a directory, expected a JSON file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ResultsError(f"cannot read {what} {path}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path} is not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ResultsError(f"{path} is nested too deeply to be a results document") from None


MAX_FIGURE = 2**63  # no cycle count or byte size reaches it; 10**400 would not even fit a float


def _number_ok(v: Any) -> bool:
    if isinstance(v, int) and not isinstance(v, bool):
        return abs(v) < MAX_FIGURE
    return v is None or (isinstance(v, float) and math.isfinite(v) and abs(v) < MAX_FIGURE)


def _counts_something(field_name: str) -> bool:
    """Cycles, bytes and counts cannot be negative."""
    return field_name.startswith("cycles") or field_name.endswith(("_bytes", "_cycles", "_ops", "macs"))


def _check_results(doc: Any, source: str) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ResultsError(
            f"{source} is not a sweep results document: expected an object with a 'results' list"
        )
    if not doc["results"]:
        raise ResultsError(f"{source} has no results (the 'results' list is empty)")
    if "model" in doc and not isinstance(doc["model"], dict):
        raise ResultsError(f"{source}: 'model' must be an object")
    for i, r in enumerate(doc["results"]):
        if not isinstance(r, dict):
            raise ResultsError(f"{source}: results[{i}] is not an object")
        for k in REQUIRED_FIELDS:
            if k not in r:
                raise ResultsError(f"{source}: results[{i}] has no '{k}'")
        if not isinstance(r["accel"], str):
            raise ResultsError(f"{source}: results[{i}].accel must be a string")
        for k in NUMERIC_FIELDS:
            if k in r and not _number_ok(r[k]):
                raise ResultsError(
                    f"{source}: results[{i}].{k} is {str(r[k])[:40]!r}, expected a number"
                )
            if k in r and r[k] is not None and _counts_something(k) and r[k] < 0:
                raise ResultsError(f"{source}: results[{i}].{k} is {r[k]}, a count cannot be negative")
        layers = r.get("layers")
        if layers is not None and not (
            isinstance(layers, list) and all(isinstance(x, dict) for x in layers)
        ):
            raise ResultsError(f"{source}: results[{i}].layers must be a list of objects")
        for j, layer in enumerate(layers or []):
            for k in LAYER_NUMERIC_FIELDS:
                if k in layer and not _number_ok(layer[k]):
                    raise ResultsError(
                        f"{source}: results[{i}].layers[{j}].{k} is {layer[k]!r}, expected a number"
                    )
                if k in layer and layer[k] is not None and _counts_something(k) and layer[k] < 0:
                    raise ResultsError(f"{source}: results[{i}].layers[{j}].{k} is {layer[k]}, "
                                       f"a count cannot be negative")


def _normalise_parity(p: Any, source: str) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, list):  # a bare list of per-config rows
        p = {"results": p}
    check_schema(p, source)
    if not isinstance(p, dict) or not isinstance(p.get("results"), list) or not p["results"]:
        raise ResultsError(f"{source}: not a parity document (expected an object with a non-empty 'results' list)")
    p = {**p, "results": [{LEGACY_KEYS.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r
                          for r in p.get("results", [])]}
    for i, r in enumerate(p.get("results", [])):
        if not isinstance(r, dict) or not isinstance(r.get("accel"), str):
            raise ResultsError(f"{source}: parity results[{i}] needs an 'accel' string")
        if r.get("error") is not None and not isinstance(r["error"], str):
            raise ResultsError(f"{source}: parity results[{i}].error must be a string")
        for k in PARITY_NUMERIC_FIELDS:
            if k in r and not _number_ok(r[k]):
                raise ResultsError(f"{source}: parity results[{i}].{k} is {r[k]!r}, expected a number")
    return p


def _normalise_fvp(f: Any, source: str) -> tuple[dict[str, Any], ...] | None:
    if f is None:
        return None
    if isinstance(f, dict):  # {"schema_version", "results": [...]} or a single run
        check_schema(f, source)
        f = f.get("results", [f])
    if not isinstance(f, list):
        raise ResultsError(f"{source}: fvp must be a list of per-config runs")
    for i, r in enumerate(f):
        if not isinstance(r, dict) or not isinstance(r.get("accel"), str):
            raise ResultsError(f"{source}: fvp[{i}] needs an 'accel' string")
        for k in _fvp_numeric_fields():
            if k in r and not _number_ok(r[k]):
                raise ResultsError(f"{source}: fvp[{i}].{k} is {r[k]!r}, expected a number")
    return tuple(f)


def _fvp_numeric_fields() -> tuple[str, ...]:
    from ..backends.fvp.measurement import FvpMeasurement

    return numeric_fields(FvpMeasurement) + ("sweep_cycles_total",)


def load_results(
    src: Mapping[str, Any] | RunResults | str | os.PathLike,
    *,
    parity: Any = None,
    fvp: Any = None,
) -> RunResults:
    """Read a run folder, a results file or an in-memory document.

    ``parity``/``fvp`` (a document, or a path to ``parity.json``/``fvp.json``) override the sections
    found in the source.
    """
    if hasattr(src, "to_dict") and not isinstance(src, Mapping):  # a SweepResult
        src = src.to_dict()
    if isinstance(src, RunResults):
        doc, source, folder = src.to_document(), src.source, None
    elif isinstance(src, Mapping):
        doc, source, folder = dict(src), "<results>", None
    else:
        path = Path(src)
        if path.is_dir():
            folder = path
            path = path / RESULTS_FILE
            if not path.exists():
                raise ResultsError(f"no {RESULTS_FILE} in run folder {folder}")
        else:
            # Only a file named like a sweep's output has meaningful siblings.
            folder = path.parent if path.name == RESULTS_FILE else None
        doc, source = _read_json(path, "results file"), str(path)
    check_schema(doc, source)
    _check_results(doc, source)

    def section(given: Any, embedded_key: str, filename: str) -> tuple[Any, str]:
        if isinstance(given, (str, os.PathLike)):
            p = Path(given)
            return _read_json(p, f"{embedded_key} file"), str(p)
        if given is not None:
            return given, f"<{embedded_key}>"
        if doc.get(embedded_key) is not None:
            return doc[embedded_key], source
        # A results.json sitting in a run folder picks up its sibling sections.
        if folder is not None and (folder / filename).is_file():
            p = folder / filename
            return _read_json(p, f"{embedded_key} file"), str(p)
        return None, source

    par, par_src = section(parity, "parity", PARITY_FILE)
    fv, fv_src = section(fvp, "fvp", FVP_FILE)
    created = doc.get("created")
    return RunResults(
        model=dict(doc.get("model") or {}),
        results=tuple(doc["results"]),
        parity=_normalise_parity(par, par_src),
        fvp=_normalise_fvp(fv, fv_src),
        host=doc.get("host"),
        created=None if created is None else str(created),
        source=source,
        document=doc,
    )
