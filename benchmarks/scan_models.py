"""Parity of npu-sim against the CPU oracle over a folder of third-party models, per model,
configuration and Vela compiler (issue 11's measurement, reproducible on any models you have).

    python benchmarks/scan_models.py DIR_OR_MODEL... [--accel all] [--count 10] [--compilers regor,legacy]
                                     [--jobs 2] [--json OUT.json]

Each model runs through `ethos-kws parity --json` (a subprocess per model and compiler, bounded in
time), once with Vela's default compiler (regor) and once with `--legacy-core` (U55/U65 only: the
legacy core cannot compile for U85). A stateful model (resource variables) is compared over a
sequence of steps (`--sequence`). Models are never copied into the repository: point this at a
folder outside it.

One row per model; per configuration a cell:
  ok          every element bit exact
  d=N         N elements differ (max LSB in the detail), the diagnosis when parity names one
  stop        the simulator stops with a named error (the reason is in the JSON and with --verbose)
  vela        Vela fails or crashes compiling for this configuration (not the simulator)
  -           Vela cannot compile the model (the legacy core's U85 columns are left out: it cannot
              compile for U85)
Totals at the end: models bit exact everywhere / wrong somewhere / stopping somewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ethos_kws.accel import parse_accelerator_list


def models_in(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.rglob("*.tflite")) if p.is_dir() else [p]
    return [m for m in out if not m.name.endswith("_vela.tflite")]


def parity(model: Path, accels: list[str], count: int, legacy: bool, jobs: int, timeout: float,
           sequence: bool = False) -> dict:
    argv = [sys.executable, "-m", "ethos_kws", "parity", "--model", str(model), "--accel", ",".join(accels),
            "--jobs", str(jobs), "--json"]
    argv += ["--sequence", str(min(count, 5))] if sequence else ["--count", str(count)]
    if legacy:
        argv.append("--legacy-core")
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        line = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        if not sequence and "--sequence" in line:  # a stateful model: compare consecutive steps
            return parity(model, accels, count, legacy, jobs, timeout, sequence=True)
        return {"error": line}
    return doc


def cell(row: dict | None) -> tuple[str, str]:
    if row is None:
        return "-", ""
    if row.get("error"):  # Vela failing (or crashing) on one configuration is not the simulator
        return ("vela" if str(row["error"]).startswith("CompileError") else "stop"), row["error"]
    if row.get("mismatched_elements", 0) == 0:
        return "ok", ""
    detail = f"max {row.get('max_abs_diff_lsb')} LSB"
    if row.get("diagnosis"):
        detail += f"; {row['diagnosis']}"
    return f"d={row['mismatched_elements']}", detail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="model files or folders (searched for *.tflite)")
    ap.add_argument("--accel", default="all")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--compilers", default="regor,legacy")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per model and compiler")
    ap.add_argument("--json", metavar="OUT", help="write every parity document here")
    ap.add_argument("--verbose", action="store_true", help="print every stop and difference")
    args = ap.parse_args(argv)
    accels = [a.name for a in parse_accelerator_list(args.accel)]
    compilers = [c.strip() for c in args.compilers.split(",") if c.strip()]
    models = models_in(args.paths)
    legacy_ok = {a.name for a in parse_accelerator_list(args.accel) if a.legacy_core}
    cols = [(a, c) for c in compilers for a in accels if c != "legacy" or a in legacy_ok]
    width = max([len(m.stem) for m in models] + [5])
    print(f"{len(models)} models, {len(accels)} configurations, compilers {', '.join(compilers)}")
    print(f"{'model':<{width}} " + " ".join(f"{a + ('/L' if c == 'legacy' else ''):>10}" for a, c in cols))
    docs, totals = [], {"bit exact everywhere": 0, "wrong somewhere": 0, "stops somewhere": 0,
                         "Vela fails somewhere": 0, "no result": 0}
    for m in models:
        cells, notes, any_run = [], [], False
        for compiler in compilers:
            accs = [a for a in accels if compiler != "legacy" or a in legacy_ok]
            doc = parity(m, accs, args.count, compiler == "legacy", args.jobs, args.timeout) if accs else {}
            docs.append({"model": str(m), "compiler": compiler, "parity": doc})
            rows = {r["accel"]: r for r in doc.get("results", [])}
            for a in accs:
                if doc.get("error"):
                    text, why = "-", f"{compiler}: {doc['error']}"
                else:
                    text, why = cell(rows.get(a))
                any_run |= text not in ("-",)
                cells.append(text)
                if why:
                    notes.append(f"  {a}/{compiler}: {why}")
        print(f"{m.stem:<{width}} " + " ".join(f"{t:>10}" for t in cells))
        if args.verbose:
            for n in dict.fromkeys(notes):
                print(n)
        if not any_run:
            totals["no result"] += 1
        elif any(t.startswith("d=") for t in cells):
            totals["wrong somewhere"] += 1
        elif "stop" in cells:
            totals["stops somewhere"] += 1
        elif "vela" in cells:
            totals["Vela fails somewhere"] += 1
        else:
            totals["bit exact everywhere"] += 1
        sys.stdout.flush()
    print("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(docs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
