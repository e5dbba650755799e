"""Sweep timing: cold (empty cache) and warm (cached) sweeps, side by side.

    python benchmarks/bench_sweep.py [--model PATH] [--repeat N]

Cold and warm are measured as the user runs them: `ethos-kws sweep` as a fresh process, wall time.
Two sweeps in the same run: the default (`--accel all`, eleven configurations since U85 joined)
and `--accel u55,u65` (the six configurations the default was before U85), so the cost of the
five U85 rows is measured, not guessed. When `mlia` is on PATH (or --mlia PATH), `mlia check
--performance` is timed in the same run for the nine configurations it has target profiles for
and the per-config ratio printed.
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
MLIA_TARGETS = (
    "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
    "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048",
)  # fmt: skip
SWEEPS = (("all", 11), ("u55,u65", 6))  # (--accel, configurations)


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

    cold: dict[str, list[float]] = {spec: [] for spec, _ in SWEEPS}
    warm: dict[str, list[float]] = {spec: [] for spec, _ in SWEEPS}
    mlia = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for spec, _n in SWEEPS:  # alternate, so both see the same machine load
                env = dict(os.environ, ETHOS_KWS_CACHE=str(Path(tmp) / f"cache-{spec}-{i}"))
                out = Path(tmp) / f"run-{spec}-{i}"
                argv = _ethos_kws() + ["sweep", "--model", args.model, "--accel", spec, "--out", str(out)]
                cold[spec].append(timed(argv, env, Path(tmp)))
                warm[spec].append(timed(argv, env, Path(tmp)))
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
    for spec, n in SWEEPS:
        label = f"ethos-kws sweep --accel {spec} ({n} configs)"
        print(f"{label:<44} cold cache: {fmt(cold[spec])}   target <= 3 s")
        print(f"{label:<44} warm cache: {fmt(warm[spec])}   target <= 0.5 s")
    if mlia:
        per_config_ek = statistics.median(cold["all"]) / SWEEPS[0][1]
        per_config_mlia = statistics.median(mlia) / len(MLIA_TARGETS)
        print(f"mlia check --performance, {len(MLIA_TARGETS)} configs    : {fmt(mlia)}")
        print(f"per config: ethos-kws cold {per_config_ek:.3f} s vs mlia {per_config_mlia:.3f} s "
              f"-> ethos-kws is {per_config_mlia / per_config_ek:.1f}x faster per config")
    else:
        print("mlia not found: install `mlia` to time `mlia check --performance` side by side")
    return 0


if __name__ == "__main__":
    sys.exit(main())
