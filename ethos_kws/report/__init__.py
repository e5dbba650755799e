"""Reports of sweep, parity and FVP results, their comparison and a regression gate.

- ``write_report(results, out_dir=None, *, name=None, parity=None, fvp=None) -> Path``
- ``compare_results(a, b) -> Comparison`` and ``write_comparison(a, b, out_dir=None, *, name=None)``
- ``check_regression(baseline, current, max_regression_pct=0.0) -> list[Regression]``
"""

import importlib

# imported on first use: ``report.tables`` (every command's terminal tables) must not pay for
# matplotlib, which the writers below import
_EXPORTS = {
    "CHECKED_METRICS": "check", "Regression": "check", "check_regression": "check",
    "Comparison": "compare", "MetricDelta": "compare", "compare_results": "compare", "write_comparison": "compare",
    "ResultsError": "load", "RunResults": "load", "load_results": "load",
    "write_report": "writer",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECKED_METRICS", "Comparison", "MetricDelta", "Regression", "ResultsError", "RunResults",
    "check_regression", "compare_results", "load_results", "write_comparison", "write_report",
]
