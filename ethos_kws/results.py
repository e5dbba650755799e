"""A sweep's results: ``SweepResult`` (``results.json``) and the one ``results.csv`` layout.

``results.json`` is ``{"schema_version", "model": {...}, "results": [...], "created", "host"}`` plus
optional ``"fvp"``/``"parity"`` sections; ``SweepResult.from_dict`` reads it back. The CSV columns
are derived from ``CompileResult``'s scalar fields, so a new field is a new column without a
second list; ``sweep`` and ``report`` write the same layout.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .model import ModelInfo
from .records import SchemaError, check_schema, scalar_fields, versioned
from .vela import CompileResult

# label of the configuration (unique within the file), every scalar CompileResult field, then
# what model the row is about (a synthetic stand-in can't pass for the real model)
CSV_COLUMNS = ("config",) + scalar_fields(CompileResult) + ("model_provenance",)


@dataclass(frozen=True)
class SweepResult:
    model: ModelInfo
    results: tuple[CompileResult, ...]
    out_dir: str | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    host: str = field(default_factory=lambda: f"{socket.gethostname()} ({platform.platform()}, {os.cpu_count()} cores)")
    extra: dict[str, Any] = field(default_factory=dict)  # optional sections: "fvp", "parity"

    def _row(self, r: CompileResult) -> dict[str, Any]:
        return {**r.to_dict(), "model_provenance": self.model.provenance}

    def to_dict(self) -> dict[str, Any]:
        d = {
            "model": self.model.to_dict(),
            "results": [self._row(r) for r in self.results],
            "created": self.created,
            "host": self.host,
        }
        d.update(self.extra)
        return versioned(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<results>", out_dir: str | None = None) -> "SweepResult":
        check_schema(d, source)
        try:
            model = ModelInfo.from_dict(d["model"])
            results = tuple(CompileResult.from_dict(r) for r in d["results"])
        except (KeyError, TypeError) as e:
            raise SchemaError(f"{source} is not a sweep results document ({type(e).__name__}: {e})") from None
        known = {"schema_version", "model", "results", "created", "host"}
        return cls(model, results, out_dir, str(d.get("created", "")), str(d.get("host", "")),
                   {k: v for k, v in d.items() if k not in known})

    def rows(self) -> list[dict[str, Any]]:
        return csv_rows([self._row(r) for r in self.results])

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=list(CSV_COLUMNS))

    def csv_text(self) -> str:
        return csv_text([self._row(r) for r in self.results])


def csv_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``results`` (result dicts) as ``results.csv`` rows: ``CSV_COLUMNS``, missing cells empty."""
    from .report.load import config_labels

    labels = config_labels(list(results))
    return [{c: (label if c == "config" else r.get(c)) for c in CSV_COLUMNS} for label, r in zip(labels, results)]


def csv_text(results: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in csv_rows(results):
        w.writerow(row)
    return buf.getvalue()
