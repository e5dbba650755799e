"""Result records: one JSON codec and one schema version for every document ethos-kws writes.

Every result type is a frozen dataclass whose ``to_dict`` / ``from_dict`` round-trip through
``to_record`` / ``from_record`` below, driven by the dataclass fields and their type hints (so a
new field is serialized, read back and listed without a second edit). Documents a later command
reads back (``results.json``, ``parity.json``, ``fvp.json``, ``compile.json``, the vectors'
``manifest.json``) carry ``schema_version``; ``check_schema`` refuses a newer or unknown one with a
``UserError`` (exit 2) instead of reading it as all "n/a". A document without ``schema_version``
was written before versioning (layout 1) and is read as such.

Field metadata (``metric(...)``) says what a numeric field is: its label and unit and, for the
figures the regression gate and ``report --compare`` look at, which direction is better. The
report's column definitions, ``report/load.py``'s numeric checks, ``results.csv`` and ``check``
all read it from here.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import UserError

SCHEMA_VERSION = 1  # bump when a field changes meaning or is removed (adding one does not)
SCHEMA_KEY = "schema_version"


class SchemaError(UserError):
    """A document of a schema this ethos-kws cannot read (newer, or not a version at all)."""


def versioned(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with ``schema_version`` first."""
    return {SCHEMA_KEY: SCHEMA_VERSION, **{k: v for k, v in d.items() if k != SCHEMA_KEY}}


def check_schema(doc: Any, source: str) -> int:
    """The document's schema version; ``SchemaError`` when it is not one this code reads."""
    if not isinstance(doc, Mapping) or SCHEMA_KEY not in doc:
        return 1  # written before documents were versioned: layout 1
    v = doc[SCHEMA_KEY]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SchemaError(f"{source}: schema_version {v!r} is not a schema this ethos-kws knows "
                          f"(it reads 1..{SCHEMA_VERSION})")
    if v > SCHEMA_VERSION:
        from . import __version__

        raise SchemaError(f"{source} has schema_version {v}, newer than this ethos-kws "
                          f"{__version__} reads (up to {SCHEMA_VERSION}); upgrade ethos-kws to read it")
    return v


# ---- field metadata ----------------------------------------------------------------------------

# unit of a metric field -> what it counts (the report maps units to formats)
UNITS = ("cycles", "ms", "hz", "bytes", "count", "ratio", "per_s", "lsb", "x")


def metric(label: str, unit: str, *, better: str | None = None, gate: bool = False,
           short: str | None = None, **kw) -> Any:
    """A dataclass field holding a figure. ``better``: "lower"/"higher" when ``report --compare``
    shows its delta; ``gate``: ``check`` fails when it grows; ``short``: the header of the narrow
    terminal tables (default: the label)."""
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not one of {UNITS}")
    if better not in (None, "lower", "higher"):
        raise ValueError("better must be 'lower', 'higher' or None")
    md = {"label": label, "unit": unit, "better": better, "gate": gate, "short": short}
    return dataclasses.field(metadata=md, **kw)


def metric_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """The fields of ``cls`` declared with ``metric``, in declaration order."""
    return tuple(f for f in dataclasses.fields(cls) if "unit" in f.metadata)


# ---- the codec ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def _scalar_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def scalar_fields(cls: type) -> tuple[str, ...]:
    """Fields of ``cls`` holding one str/number/bool (or None): what fits a CSV cell."""
    out = []
    for f in dataclasses.fields(cls):
        if _is_scalar(_hints(cls)[f.name]):
            out.append(f.name)
    return tuple(out)


def numeric_fields(cls: type) -> tuple[str, ...]:
    """Fields of ``cls`` holding an int or float (or None)."""
    return tuple(f.name for f in dataclasses.fields(cls)
                 if _is_scalar(_hints(cls)[f.name], (int, float)))


def _is_scalar(tp: Any, kinds: tuple[type, ...] = (str, int, float, bool)) -> bool:
    args = [a for a in _union_args(tp) if a is not type(None)]
    return bool(args) and all(a in kinds for a in args) and not (kinds == (int, float) and bool in args)


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def to_record(obj: Any) -> Any:
    """JSON-ready value: dataclasses by field (their own ``to_dict`` when they have one), tuples as
    lists, numpy arrays and scalars as Python values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return _value(obj)


def _value(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return v.to_dict() if hasattr(v, "to_dict") else to_record(v)
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def from_record(cls: type, d: Mapping[str, Any]) -> Any:
    """Rebuild a ``cls`` written by ``to_record``; keys that are not fields (derived values such as
    ``passed``, ``schema_version``) are ignored, missing fields take their defaults."""
    if not isinstance(d, Mapping):
        raise SchemaError(f"expected an object for {cls.__name__}, got {type(d).__name__}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in d and f.init:
            kwargs[f.name] = _convert(hints[f.name], d[f.name])
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise SchemaError(f"cannot read {cls.__name__}: {e}") from None


def _convert(tp: Any, v: Any) -> Any:
    if v is None:
        return None
    args = [a for a in _union_args(tp) if a is not type(None)]
    if len(args) > 1:
        return v  # e.g. float | int: JSON already chose
    tp = args[0] if args else tp
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)
        if len(inner) == 2 and inner[1] is Ellipsis:
            return tuple(_convert(inner[0], x) for x in v)
        return tuple(_convert(t, x) for t, x in zip(inner, v)) if inner else tuple(v)
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return [_convert(inner, x) for x in v]
    if origin is dict or tp is dict:
        return dict(v)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp.from_dict(v) if hasattr(tp, "from_dict") else from_record(tp, v)
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


class Record:
    """Mixin: ``to_dict``/``from_dict`` through the codec above."""

    def to_dict(self) -> dict[str, Any]:
        return to_record(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        return from_record(cls, d)
