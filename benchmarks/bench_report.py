"""Report generation time against the number of result rows, side by side in one run.

    python benchmarks/bench_report.py [--rows 1000,3000,10000]

Each size is a fresh `ethos-kws report` process (CPU seconds of the child and wall seconds). Work
that grows linearly keeps seconds-per-1,000-rows flat across the sizes; quadratic work shows as a
per-row cost that grows with the size. Target (issue 10): 10,000 rows in under 10 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "adversarial"))

from hostile_files import results_json_text  # noqa: E402  (the test suite's generator of results rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1000,3000,10000", help="comma list of row counts")
    args = ap.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    print(f"{'rows':>7} {'cpu s':>7} {'wall s':>7} {'cpu s / 1k rows':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            src = Path(tmp) / f"rows{n}.json"
            src.write_text(results_json_text(n))
            t0, w0 = os.times(), time.perf_counter()
            subprocess.run([sys.executable, "-m", "ethos_kws", "report", "--from", str(src),
                            "--out", str(Path(tmp) / f"r{n}")], check=True, capture_output=True)
            t1, w1 = os.times(), time.perf_counter()
            cpu = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
            print(f"{n:>7} {cpu:>7.2f} {w1 - w0:>7.2f} {cpu / n * 1000:>16.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
