"""Exploration timing (issue 12): ethos-kws explore against a serial loop of the `vela` CLI, warm
re-run, and the same exploration on a 2-worker Dask LocalCluster; measured side by side in one run.

    python benchmarks/bench_explore.py [--model PATH] [--points N] [--vela-points M] [--no-dask]

The exploration: 6 accelerators (u55-32 .. u65-512) x 2 optimise x 2 memory modes (Shared_Sram,
Sram_Only: both fit every U55/U65 default system config) x 4 arena cache sizes = 96 points.
`--points N` keeps the first N points of that product (each axis cut evenly is not needed: the
timing is per point). ethos-kws runs as the user runs it (`ethos-kws explore` in a fresh process,
wall time, empty cache; cold twice and warm three times, each shown, the best counted). The `vela`
CLI loop runs the same argv ethos-kws gives Vela, one process per point (twice, the faster counted),
over `--vela-points` of the points (every k-th, k odd: every axis value) and is extrapolated to all
of them, labelled as such. Goals: ethos-kws cold >= 4x the vela loop's points/s; warm <= 1 s;
LocalCluster overhead over the local pool <= 25 %, taken against a local-pool run made just before
it (the machine's load drifts over a run).

ethos-kws's bytecode is compiled first (``compileall``), as ``pip install`` does: without it (an
editable install under ``PYTHONDONTWRITEBYTECODE``) every run compiles its sources again, about
0.3 s of a warm run that no installed copy pays. The load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "data" / "models" / "ds_cnn_l_int8io.tflite"
ACCELS = ("u55-32", "u55-64", "u55-128", "u55-256", "u65-256", "u65-512")
OPTIMISE = ("Performance", "Size")
MEMORY_MODES = ("Shared_Sram", "Sram_Only")
ARENAS = ("64KiB", "128KiB", "256KiB", "512KiB")


def _ethos_kws() -> list[str]:
    return [sys.executable, "-m", "ethos_kws"]


def _axes(n: int) -> list[tuple[str, str, str, str]]:
    import itertools

    return list(itertools.product(ACCELS, MEMORY_MODES, OPTIMISE, ARENAS))[:n]


def _explore_argv(model: str, points: list[tuple[str, str, str, str]], out: Path) -> list[str]:
    # the product of the distinct values; with --points < 96 this may be a superset, so the
    # benchmark gives explore exactly the points through the axes of the full product only when n=96
    pick = lambda i: ",".join(dict.fromkeys(p[i] for p in points))  # noqa: E731
    return [*_ethos_kws(), "explore", model, "--accel", pick(0), "--memory-mode", pick(1), "--optimise", pick(2),
            "--arena-cache-size", pick(3), "--out", str(out), "--json"]


def _count(argv: list[str]) -> int:
    n = 1
    for flag in ("--accel", "--memory-mode", "--optimise", "--arena-cache-size"):
        n *= len(argv[argv.index(flag) + 1].split(","))
    return n


CPU_S: list[float] = []  # CPU seconds (user + system) of each timed run and its children


def timed(argv: list[str], env: dict[str, str]) -> float:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def vela_loop(model: str, points, tmp: Path) -> float:
    """Seconds for a serial loop of the `vela` CLI over ``points``, the argv ethos-kws would pass;
    each point run twice and its faster run counted (as ethos-kws's cold run: the better of two)."""
    from ethos_kws.explore import parse_size
    from ethos_kws.vela import make_spec

    vela = shutil.which("vela") or str(Path(sys.executable).parent / "vela")
    total = 0.0
    for k, (acc, mode, opt, arena) in enumerate(points):
        spec = make_spec(model, acc, memory_mode=mode, optimise=opt, arena_cache_size=parse_size(arena))
        out = tmp / f"vela-{k}"
        argv = [vela, *spec.vela_argv(out)]
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            runs.append(time.perf_counter() - t0)
        total += min(runs)
    return total


def _cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def dask_run(argv: list[str], env: dict[str, str], cache: Path) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds of the client and the workers) on a fresh cluster, then of the
    same exploration again on it: each with an empty client cache; the second finds the workers
    with Vela imported, as an existing cluster's are. CPU seconds do not depend on how busy the
    machine is, wall seconds do."""
    from distributed import Client, LocalCluster

    out = []
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as probe:
        for k in range(2):
            before = sum(probe.run(_cpu_s).values())
            wall = timed(argv + ["--dask", cluster.scheduler_address], dict(env, ETHOS_KWS_CACHE=str(cache / str(k))))
            out.append((wall, CPU_S[-1] + sum(probe.run(_cpu_s).values()) - before))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--points", type=int, default=96, help="first N points of the 96 (default all)")
    ap.add_argument("--vela-points", type=int, default=8, help="points the vela CLI loop runs (extrapolated)")
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    points = _axes(args.points)
    import compileall

    import ethos_kws

    compileall.compile_dir(str(Path(ethos_kws.__file__).parent), quiet=1)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        argv = _explore_argv(args.model, points, tmp / "out")
        n = _count(argv)
        env = dict(os.environ, ETHOS_KWS_CACHE=str(tmp / "cache-local"))
        cold_1 = timed(argv, env)
        warms = [timed(argv, env) for _ in range(3)]
        warm = min(warms)
        warm_cpu = CPU_S[1 + warms.index(warm)]
        # an odd stride, so the sample takes every value of the even-sized inner axes (every 12th
        # point of the 96 would only take the 64 KiB arena, Performance and Shared_Sram/Sram_Only
        # in turn; every 13th takes all four arenas, both optimise goals and memory modes, all six
        # accelerators)
        step = max(1, len(points) // max(1, args.vela_points))
        step += 1 - step % 2
        sample = points[::step][: args.vela_points]
        vela_s = vela_loop(args.model, sample, tmp)
        vela_per_point = vela_s / len(sample)
        # the cold run once more (a fresh cache), just before the cluster: on a shared machine the
        # load drifts over a run; the better of the two counts, and the cluster is compared with
        # the run next to it
        local_s = timed(argv, dict(os.environ, ETHOS_KWS_CACHE=str(tmp / "cache-local-2")))
        cold = min(cold_1, local_s)
        cold_cpu = CPU_S[0] if cold == cold_1 else CPU_S[-1]
        dask_s = None
        if not args.no_dask:
            local_cpu = CPU_S[-1]
            (dask_s, dask_cpu), (dask_again, again_cpu) = dask_run(argv, dict(os.environ), tmp / "cache-dask")
    print(f"exploration: {n} points of DS-CNN-L ({Path(args.model).name}), {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"ethos-kws explore, cold (local pool):  {cold:7.2f} s  = {n / cold:6.2f} points/s  (better of "
          f"{cold_1:.2f}, {local_s:.2f} s; {cold_cpu:.1f} CPU s)")
    print(f"ethos-kws explore, warm re-run:        {warm:7.2f} s  (goal <= 1 s; best of "
          f"{', '.join(f'{w:.2f}' for w in warms)} s; {warm_cpu:.2f} CPU s)")
    print(f"vela CLI serial loop (each point's better of two runs): {len(sample)} points in {vela_s:.2f} s = {1 / vela_per_point:.2f} points/s; "
          f"extrapolated to {n} points: {vela_per_point * n:.1f} s")
    print(f"speed-up, cold points/s:               {vela_per_point * n / cold:6.2f}x  (goal >= 4x)")
    if dask_s is not None:
        print(f"ethos-kws explore on a 2-worker LocalCluster, cold: {dask_s:7.2f} s = {n / dask_s:.2f} points/s; "
              f"the local pool just before it: {local_s:.2f} s; overhead {100 * (dask_s / local_s - 1):+.0f} %  "
              f"(goal <= 25 %; {100 * (dask_s / cold - 1):+.0f} % against the better local run)")
        print(f"  the same exploration again on that cluster (workers warm):   {dask_again:7.2f} s; overhead "
              f"{100 * (dask_again / local_s - 1):+.0f} % against the local pool run")
        print(f"  CPU seconds (independent of the machine's load): local pool {local_cpu:.1f}, cluster {dask_cpu:.1f} "
              f"({100 * (dask_cpu / local_cpu - 1):+.0f} %), again {again_cpu:.1f} ({100 * (again_cpu / local_cpu - 1):+.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
