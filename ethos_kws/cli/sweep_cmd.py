"""``ethos-kws sweep``: the main job — every configuration, one table."""

from __future__ import annotations

import sys
from pathlib import Path

from ..accel import ACCELERATORS, families, parse_accelerator_list
from .common import (
    add_command,
    add_executor_group,
    add_tensor_allocator_arg,
    check_jobs,
    user_ini_of,
    add_fvp_group,
    add_model_arg,
    add_output_group,
    add_vela_group,
    is_terminal,
    optimise_of,
    print_json,
)


def register(sub) -> None:
    p = add_command(
        sub,
        "sweep",
        help="compile for every accelerator configuration and tabulate (the main job)",
        description="Compile the model with Vela for every requested Ethos-U configuration in "
        "parallel processes and print one table: cycles, inference time, SRAM/flash/DRAM, NPU/CPU "
        "ops, MAC utilization. Writes results.json and results.csv (one row per config) and each "
        "config's Vela output. Compiles are cached by content (model sha256, accelerator, system "
        "config, memory mode, optimise, arena cache size, Vela version, ini), so a re-run is "
        "instant and an interrupted sweep resumes.\n\n"
        "Without --model / $ETHOS_KWS_MODEL / a cached or downloadable ML-zoo model, the sweep runs "
        "on a synthetic 32-cluster DS-CNN-L and labels every result 'synthetic stand-in'.\n\n"
        f"accelerators: all = {', '.join(ACCELERATORS)}; families: {', '.join(families())}\n\n"
        "examples:\n"
        "  ethos-kws sweep                                  # all eleven configurations\n"
        "  ethos-kws sweep --accel u85                      # the five Ethos-U85 sizes\n"
        "  ethos-kws sweep --accel u55-128,u85-256 --json\n"
        "  ethos-kws sweep --accel u85 --system-config Ethos_U85_SYS_DRAM_High",
        func=run,
    )
    add_model_arg(p)
    g = add_vela_group(p, accel="list")
    add_tensor_allocator_arg(g)
    add_executor_group(p)
    p.add_argument("--report", action="store_true", help="also write the HTML/Markdown report into reports/<model>/")
    p.add_argument("--report-out", metavar="DIR", help="report folder (default: reports/<model>)")
    add_fvp_group(p, measure=True)
    add_output_group(p, out="output folder (default: reports/runs/<model>)")


def run(args) -> int:
    # imported here: every command module is imported to build the parser (start-up time)
    from ..executors import dask_address, dask_runner
    from ..model import resolve_model
    from ..sweeps import check_fvp_available, default_out_dir, measure_fvp, sweep, write_sweep

    check_jobs(args)
    user_ini = user_ini_of(args)
    address = dask_address(args.dask)
    if args.measure == "fvp" and address is None:  # on Dask, each worker finds its own FVP
        check_fvp_available(args.accel, platform=args.platform, fvp=args.fvp, runner=args.runner)
    resolved = resolve_model(args.model, allow_synthetic=True)
    out = Path(args.out) if args.out else default_out_dir(resolved)
    bar = None
    progress = None
    if is_terminal() and not args.json:
        from tqdm import tqdm

        n = len(parse_accelerator_list(args.accel))
        bar = tqdm(total=n, desc="Vela", unit="config", file=sys.stderr, leave=False)

        def progress(r) -> None:
            bar.set_postfix_str(r.accel)
            bar.update(1)

    try:
        with dask_runner(address, args.dask_timeout) as dask:
            result = sweep(
                resolved, accels=args.accel, system_config=args.system_config, memory_mode=args.memory_mode,
                optimise=optimise_of(args), arena_cache_size=args.arena_cache_size,
                legacy_core=bool(args.legacy_core), out_dir=None if args.measure else out, jobs=args.jobs,
                progress=progress, tensor_allocator=args.tensor_allocator, user_ini=user_ini, dask=dask,
            )  # fmt: skip
            if args.measure == "fvp":
                # one FVP at a time here (each is a heavy process); spread over the workers on Dask
                result = measure_fvp(result, platform=args.platform, fvp=args.fvp, runner=args.runner,
                                     timeout_s=args.fvp_timeout, jobs=1, dask=dask, user_ini=user_ini)
    finally:
        if bar is not None:
            bar.close()
    if args.measure == "fvp":
        result = write_sweep(result, out)
    report_dir = None
    if args.report or args.report_out:
        from ..report import write_report

        report_dir = write_report(result.to_dict(), args.report_out)
    if args.json:
        doc = result.to_dict()
        if report_dir is not None:
            doc["report"] = str(report_dir)
        print_json(doc)
        _raise_failed(result)
        return 0
    label = " [SYNTHETIC STAND-IN]" if resolved.is_synthetic else ""
    print(f"{resolved.path.name} ({resolved.provenance}){label}, sha256 {resolved.sha256[:12]}…, Vela {result.results[0].vela_version}")
    from ..report.tables import format_fvp_table, format_table

    print(format_table(result.results))
    if "fvp" in result.extra:
        print("\nCorstone FVP measurements (NPU cycles; Vela/FVP = Vela's NPU estimate over FVP active cycles):")
        print(format_fvp_table(result.extra["fvp"]))
    print(f"results: {Path(result.out_dir) / 'results.json'}, {Path(result.out_dir) / 'results.csv'}")
    if report_dir is not None:
        print(f"report:  {report_dir / 'index.html'}")
    _raise_failed(result)
    return 0


def _raise_failed(result) -> None:
    """The rows that compiled are written and shown; the ones that did not make the exit code 1."""
    failed = result.extra.get("failed")
    if failed:
        from ..errors import CompileError

        raise CompileError("; ".join(f["error"] for f in failed)
                           + f" (the other {len(result.results)} configuration(s) are in the results)")
