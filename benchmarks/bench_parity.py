"""Parity throughput: ``ethos-kws parity --count 100 --accel all`` end to end, and npu-sim latency.

Prints, for the real DS-CNN-L (``../shared/data/models/ds_cnn_l_int8io.tflite``; the synthetic
32-cluster DS-CNN-L when it is missing):
  * total wall time of ``run_parity(vectors=100, accels="u55,u65")`` (the families npu-sim runs) with a cold compile cache and
    again warm (target: <= 60 s), per oracle (LiteRT ref, and TFLM when installed);
  * per configuration: npu-sim and CPU-oracle ms per inference (batched) and their throughput ratio;
  * npu-sim single-inference latency (median of 20 ``run`` calls; target <= 20 ms).

Run: /tmp/dev/bin/python benchmarks/bench_parity.py [--vectors N] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=100)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    os.environ["ETHOS_KWS_CACHE"] = tempfile.mkdtemp(prefix="bench-parity-")  # cold compile cache

    import numpy as np

    from ethos_kws.backends import create_backend
    from ethos_kws.inputs import random_inputs
    from ethos_kws.parity import run_parity
    from ethos_kws.synth import write_model

    model = Path(args.model) if args.model else ROOT.parent / "shared/data/models/ds_cnn_l_int8io.tflite"
    if not model.is_file():
        model = write_model(Path(os.environ["ETHOS_KWS_CACHE"]) / "ds_cnn_l_c32.tflite", "ds-cnn-l",
                            clusters=32, seed=0)
        print(f"real model missing: using the synthetic stand-in {model}")
    print(f"model {model.name}, {args.vectors} random vectors, all six accelerators\n")

    oracles = ["ref"]
    try:
        import tflite_micro  # noqa: F401

        oracles.append("tflm")
    except ImportError:
        print("(TFLite Micro not installed: tflm oracle skipped)")

    for oracle in oracles:
        for cache in ("cold", "warm"):
            t0 = time.perf_counter()
            report = run_parity(model, "u55,u65", vectors=args.vectors, seed=0, oracle=oracle)
            wall = time.perf_counter() - t0
            print(f"oracle {oracle:4s} {cache} cache: parity total {wall:6.2f} s "
                  f"({'PASS' if report.passed else 'FAIL'}); CPU oracle {report.cpu_total_ms / 1e3:.2f} s")
        print(f"  {'config':8s} {'bit-exact':>9s} {'npu ms/inf':>10s} {'cpu ms/inf':>10s} {'npu/cpu throughput':>19s}")
        for r in report.results:
            if r.error:
                print(f"  {r.accel:8s} ERROR {r.error}")
                continue
            ratio = r.cpu_inference_ms / r.npu_inference_ms if r.npu_inference_ms else float("nan")
            print(f"  {r.accel:8s} {r.bit_exact_fraction:9.3f} {r.npu_inference_ms:10.2f} "
                  f"{r.cpu_inference_ms:10.2f} {ratio:18.2f}x")
        print()

    spec_backend = create_backend("cpu", model)
    x = random_inputs(spec_backend.input_specs, np.random.SeedSequence([0, 0]))
    for accel in ("u55-128", "u65-512"):
        npu = create_backend("npu-sim", model, accel=accel)
        npu.run(x)  # warm up
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            npu.run(x)
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"npu-sim single inference on {accel}: median {statistics.median(times):.2f} ms "
              f"(min {min(times):.2f}, max {max(times):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
