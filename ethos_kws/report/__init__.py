"""Reports of sweep, parity and FVP results, their comparison and a regression gate.

- ``write_report(results, out_dir=None, *, name=None, parity=None, fvp=None) -> Path``
- ``compare_results(a, b) -> Comparison`` and ``write_comparison(a, b, out_dir=None, *, name=None)``
- ``check_regression(baseline, current, max_regression_pct=0.0) -> list[Regression]``
"""

from .check import CHECKED_METRICS, Regression, check_regression
from .compare import Comparison, MetricDelta, compare_results, write_comparison
from .load import ResultsError, RunResults, load_results
from .writer import write_report

__all__ = [
    "CHECKED_METRICS", "Comparison", "MetricDelta", "Regression", "ResultsError", "RunResults",
    "check_regression", "compare_results", "load_results", "write_comparison", "write_report",
]
