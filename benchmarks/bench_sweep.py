"""Sweep timing: cold (empty cache) and warm (cached) sweeps of all six configs, side by side.

    python benchmarks/bench_sweep.py [--model PATH] [--repeat N]

Cold and warm are measured as the user runs them: `ethos-kws sweep` as a fresh process, wall time.
When `mlia` is on PATH (or --mlia PATH), `mlia check --performance` is timed in the same run for
the four configurations it supports (u55-128, u55-256, u65-256, u65-512) and the ratio printed.
Targets (issue 2): cold <= 3 s, warm <= 0.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "data" / "models" / "ds_cnn_l_int8io.tflite"
MLIA_TARGETS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512")


def _ethos_kws() -> list[str]:
    exe = shutil.which("ethos-kws")
    return [exe] if exe else [sys.executable, "-m", "ethos_kws"]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mlia", default=shutil.which("mlia"), help="mlia executable (default: on PATH)")
    args = ap.parse_args()

    cold, warm, mlia = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            env = dict(os.environ, ETHOS_KWS_CACHE=str(Path(tmp) / f"cache{i}"))
            out = Path(tmp) / f"run{i}"
            argv = _ethos_kws() + ["sweep", "--model", args.model, "--out", str(out)]
            cold.append(timed(argv, env, Path(tmp)))
            warm.append(timed(argv, env, Path(tmp)))
            if args.mlia:
                t = 0.0
                for target in MLIA_TARGETS:
                    t += timed(
                        [args.mlia, "check", args.model, "-t", target, "--performance", "-b", "vela"],
                        dict(os.environ), Path(tmp),
                    )
                mlia.append(t)

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.3f} s (min {min(xs):.3f}, max {max(xs):.3f}, n={len(xs)})"

    print(f"model: {args.model}")
    print(f"ethos-kws sweep, 6 configs, cold cache : {fmt(cold)}   target <= 3 s")
    print(f"ethos-kws sweep, 6 configs, warm cache : {fmt(warm)}   target <= 0.5 s")
    if mlia:
        per_config_ek = statistics.median(cold) / 6
        per_config_mlia = statistics.median(mlia) / len(MLIA_TARGETS)
        print(f"mlia check --performance, 4 configs    : {fmt(mlia)}")
        print(f"per config: ethos-kws cold {per_config_ek:.3f} s vs mlia {per_config_mlia:.3f} s "
              f"-> ethos-kws is {per_config_mlia / per_config_ek:.1f}x faster per config")
    else:
        print("mlia not found: install `mlia` to time `mlia check --performance` side by side")
    return 0


if __name__ == "__main__":
    sys.exit(main())
