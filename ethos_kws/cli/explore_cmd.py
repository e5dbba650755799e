"""``ethos-kws explore MODEL``: which NPU, memory mode and SRAM size meet my budget, at what cost."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import (
    add_command,
    add_executor_group,
    add_explore_axes_group,
    add_output_group,
    check_jobs,
    is_terminal,
    user_ini_of,
)


def register(sub) -> None:
    p = add_command(
        sub,
        "explore",
        help="explore the design space: every combination of accelerator, system config, memory mode, ...",
        description="Compile MODEL with Vela for every point of the product of the axes below (each a "
        "comma list), mark the Pareto front over (inference time, SRAM, flash+DRAM, MACs/cycle as the "
        "silicon-cost proxy) and, with a budget, list the points that meet it, cheapest first (fewest "
        "MACs/cycle, then least SRAM). Every point is compiled once: the compile cache makes a re-run "
        "instant and lets an interrupted run resume. A combination Vela cannot take is a failed point "
        "with its reason. Writes explore.json and explore.csv (one row per point: the axis values, "
        "then every results.csv field); `ethos-kws report explore.json` draws the exploration page.\n\n"
        "Exit status: 0, or 1 when a budget was given and no point meets it (or no point compiled).\n\n"
        "examples:\n"
        "  ethos-kws explore ds_cnn_l.tflite --accel u55-64,u55-128,u55-256 --optimise Performance,Size\n"
        "  ethos-kws explore ds_cnn_l.tflite --accel u65 --memory-mode Shared_Sram,Dedicated_Sram \\\n"
        "      --arena-cache-size 64KiB,128KiB,256KiB --max-time-ms 1 --max-sram-kib 128\n"
        "  ethos-kws explore ds_cnn_l.tflite --config my_soc.ini --system-config My_SoC --dask tcp://sched:8786",
        func=run,
    )
    p.add_argument("model", metavar="MODEL", help="TFLite model")
    add_explore_axes_group(p)
    g = p.add_argument_group("budget (lists the points that meet it, cheapest first)")
    g.add_argument("--max-time-ms", metavar="MS", help="inference time budget in milliseconds")
    g.add_argument("--max-sram-kib", metavar="KIB", help="SRAM budget in KiB")
    p.add_argument("--yes", action="store_true", help="run an exploration of more than 10,000 points")
    add_executor_group(p)
    add_output_group(p, out="output folder (default: reports/explore/<model>)")


def run(args) -> int:
    # imported here, not at the top: every command module is imported to build the parser, and a
    # warm exploration (every point cached) is dominated by start-up
    from ..errors import EthosKwsError
    from ..executors import dask_address, dask_runner
    from ..explore import EXPLORE_CSV, EXPLORE_JSON, explore, parse_axes, parse_budget
    from ..model import resolve_model

    check_jobs(args)
    max_time = parse_budget(args.max_time_ms, "--max-time-ms", "ms")
    max_sram = parse_budget(args.max_sram_kib, "--max-sram-kib", "KiB")
    user_ini = user_ini_of(args)
    axes = parse_axes(accel=args.accel, system_config=args.system_config, memory_mode=args.memory_mode,
                      optimise=args.optimise, arena_cache_size=args.arena_cache_size,
                      tensor_allocator=args.tensor_allocator, user_ini=user_ini)
    address = dask_address(args.dask)
    resolved = resolve_model(args.model)
    out = Path(args.out) if args.out else Path("reports") / "explore" / resolved.path.stem
    bar = progress = None
    if is_terminal() and not args.json:
        from tqdm import tqdm

        bar = tqdm(total=axes.size(), desc="Vela", unit="point", file=sys.stderr, leave=False)

        def progress(r) -> None:
            bar.update(1)

    try:
        with dask_runner(address, args.dask_timeout) as dask:
            result = explore(resolved, axes, user_ini=user_ini, max_time_ms=max_time, max_sram_kib=max_sram,
                             jobs=args.jobs, dask=dask, yes=args.yes, out_dir=out, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    budget = max_time is not None or max_sram is not None
    ok, chosen = result.ok(), result.within_budget()
    if args.json:  # the document just written (serialising 96 points twice is most of a warm run)
        sys.stdout.write((out / EXPLORE_JSON).read_text())
    else:
        from ..report.tables import format_explore_table  # pandas: only for the terminal table

        failed = [p for p in result.points if p.status != "ok"]
        print(f"{resolved.path.name}: {len(result.points)} points, {len(ok)} compiled, {len(failed)} failed")
        print("\nPareto front (inference time, SRAM, flash+DRAM, MACs/cycle):")
        print(format_explore_table(result.front()))
        if failed:
            print(f"\n{len(failed)} failed point(s), e.g. {failed[0].label()}: {failed[0].error}")
        if budget:
            limits = " and ".join(x for x in (f"time <= {max_time:g} ms" if max_time is not None else "",
                                               f"SRAM <= {max_sram:g} KiB" if max_sram is not None else "") if x)
            if chosen:
                print(f"\n{len(chosen)} point(s) meet {limits}, cheapest first:")
                print(format_explore_table(chosen))
            else:
                print(f"\nno point meets {limits}")
        print(f"\nresults: {out / EXPLORE_JSON}, {out / EXPLORE_CSV}")
    if not ok:
        raise EthosKwsError(f"no point compiled; first failure: {result.points[0].error}")
    if budget and not chosen:
        if args.json:
            print("ethos-kws: no point meets the budget", file=sys.stderr)
        return 1
    return 0
