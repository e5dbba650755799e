"""npu-sim speed on DS-CNN-L: model load (stream check, weight decode), single-inference latency per
accelerator and batched throughput against LiteRT's reference kernels (BUILTIN_REF), measured side
by side, for every U55, U65 and U85 configuration (U85 streams run on npu-sim's U85 part; Vela's
legacy core cannot compile for U85, so --legacy skips them).

    python benchmarks/bench_npusim.py [--model M] [--accel all|LIST] [--legacy] [--batch 64] [--repeats 20]

npu-sim splits a batch across the process's cores (one thread and one copy of the graph per part;
"threads"); "1st batch ms" is the untimed first batch, which loads those copies. Prints one line
per accelerator, the throughput ratio npu-sim / LiteRT BUILTIN_REF (>= 1 means
npu-sim is at least as fast as the oracle), the three LiteRT anchors of issue 16 measured in the
same run (reference kernels; builtin optimised kernels without XNNPACK; XNNPACK on one thread) and
whether npu-sim meets the targets (batched >= 1,000 inferences/s and single inference <= 3 ms on
every configuration).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ethos_kws.accel import parse_accelerator_list
from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.paths import shared_data_dir


TARGET_BATCH_IPS = 1000.0
TARGET_SINGLE_MS = 3.0
# the LiteRT anchors: (label, op resolver, threads)
ANCHORS = (("BUILTIN_REF", "BUILTIN_REF", None),
           ("builtin, no XNNPACK", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", 1),
           ("XNNPACK, 1 thread", "AUTO", 1))


def litert_runner(model: Path, resolver: str = "BUILTIN_REF", threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model), experimental_op_resolver_type=getattr(OpResolverType, resolver),
                     num_threads=threads)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run(x):
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)

    return run


def conv_macs(sim: NpuSimBackend) -> int:
    """Multiply-accumulates per inference of the NPU's convolutions (CONV and DEPTHWISE plans)."""
    total = 0
    for ex in sim.executors:
        for plan in (p for _cmd, p in ex._plans or ()):
            if hasattr(plan, "depthwise") and hasattr(plan, "k"):
                taps = plan.k.height * plan.k.width
                total += plan.h * plan.w * plan.c * taps * (1 if plan.depthwise else plan.ifm_depth)
    return total


def sgemm_gflops(repeats: int = 20) -> float:
    """This machine's float32 matmul rate on a pointwise layer of a batch (what npu-sim's
    convolutions run on), now."""
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (64 * 65, 276)).astype(np.float32)
    b = rng.integers(-128, 128, (276, 276)).astype(np.float32)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] * repeats / (time.perf_counter() - t0) / 1e9


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main(argv=None) -> int:
    default_model = (shared_data_dir() or Path(".")) / "models" / "ds_cnn_l_int8io.tflite"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_model))
    ap.add_argument("--accel", default="all")  # every family: npu-sim executes U55, U65 and U85
    ap.add_argument("--legacy", action="store_true", help="compile with --debug-force-legacy-core")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)

    model = Path(args.model)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-128, 128, (1, 490), dtype=np.int8) for _ in range(args.batch)]
    litert = litert_runner(model)
    print(f"model {model.name}, batch {args.batch}, compiler {'legacy' if args.legacy else 'regor'}")
    print(f"{'accel':8} {'load ms':>8} {'npu-sim 1x ms':>14} {'litert 1x ms':>13} {'npu-sim inf/s':>14} "
          f"{'litert inf/s':>13} {'ratio':>6} {'threads':>7} {'1st batch ms':>9}")
    ratios = []
    worst_ips, worst_ms = float("inf"), 0.0
    macs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for acc in parse_accelerator_list(args.accel):
            if args.legacy and not acc.legacy_core:
                print(f"{acc.name:8} skipped: Vela's legacy core does not compile for {acc.npu}")
                continue
            compiled = compile_with_vela(model, acc.name, Path(tmp) / acc.name, legacy_core=args.legacy)
            t0 = time.perf_counter()
            sim = NpuSimBackend(compiled)  # checks every stream, decodes weights (a warm-up run)
            load_ms = (time.perf_counter() - t0) * 1000.0
            sim.run([inputs[0]])  # builds plans, decodes weights once
            macs = max(macs, conv_macs(sim))
            litert(inputs[0])
            sim_ms = median_ms(lambda sim=sim: sim.run([inputs[0]]), args.repeats)
            lite_ms = median_ms(lambda: litert(inputs[0]), args.repeats)
            # throughput: the same inputs through both, alternating to share machine load. The
            # first batch loads the graph's copies for the other threads (sim.threads): untimed,
            # like the load
            t0 = time.perf_counter()
            sim.run_batch([[x] for x in inputs])
            split_ms = (time.perf_counter() - t0) * 1000.0
            sim_t = lite_t = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                sim.run_batch([[x] for x in inputs])
                sim_t += time.perf_counter() - t0
                t0 = time.perf_counter()
                for x in inputs:
                    litert(x)
                lite_t += time.perf_counter() - t0
            sim_ips = 3 * len(inputs) / sim_t
            lite_ips = 3 * len(inputs) / lite_t
            ratios.append(sim_ips / lite_ips)
            print(f"{acc.name:8} {load_ms:8.0f} {sim_ms:14.2f} {lite_ms:13.2f} {sim_ips:14.0f} {lite_ips:13.0f} "
                  f"{sim_ips / lite_ips:6.2f} {sim.threads:7d} {split_ms:9.0f}")
            worst_ips = min(worst_ips, sim_ips)
            worst_ms = max(worst_ms, sim_ms)
            sys.stdout.flush()
    print(f"throughput ratio npu-sim/litert: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")
    print("LiteRT anchors, same run (inferences/s, one at a time):")
    for label, resolver, threads in ANCHORS:
        run = litert_runner(model, resolver, threads)
        run(inputs[0])
        t0 = time.perf_counter()
        for _ in range(3):
            for x in inputs:
                run(x)
        print(f"  {label:22} {3 * len(inputs) / (time.perf_counter() - t0):8.0f}")
    gflops = sgemm_gflops()
    print(f"float32 matmul on this machine now: {gflops:.0f} GFLOP/s; the convolutions' {macs / 1e6:.1f} M MACs per "
          f"inference then bound npu-sim (bit exact through float32 BLAS) to {gflops * 1e9 / (2 * macs):.0f} inf/s "
          "batched even if every other step took no time")
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"targets: batched >= {TARGET_BATCH_IPS:.0f} inf/s on every configuration: worst {worst_ips:.0f} "
          f"({met(worst_ips >= TARGET_BATCH_IPS)}); single <= {TARGET_SINGLE_MS:g} ms: worst {worst_ms:.2f} ms "
          f"({met(worst_ms <= TARGET_SINGLE_MS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
