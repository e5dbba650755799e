"""``ethos-kws report``: a sweep's results as one HTML page, Markdown, CSV and JSON; or two sweeps
side by side with ``--compare A B``."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .common import add_command, add_json_arg, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "report",
        help="write an HTML/Markdown/CSV/JSON report of sweep results, or compare two sweeps",
        description="Turn a sweep's results (a RUN_DIR holding results.json, plus parity.json and "
        "fvp.json when those ran, or --from results.json) into reports/<name>/: index.html "
        "(self-contained, opens from disk), report.md, results.csv, results.json and the plots as "
        "PNG. <name> defaults to the model's name.\n\n"
        "Given an explore.json (from `ethos-kws explore`, or its folder): the exploration page: "
        "SRAM against latency for every point (colour: accelerator, marker: memory mode), the "
        "Pareto front drawn and as a table, the budget lines and the points within budget.\n\n"
        "With --compare A B (each a results.json or a run folder): the same tables with deltas, "
        "printed and written to reports/compare-<A>-vs-<B>/.\n\n"
        "examples:\n"
        "  ethos-kws sweep --out runs/today && ethos-kws report runs/today\n"
        "  ethos-kws report --compare baseline/results.json runs/today\n"
        "  ethos-kws report reports/explore/ds_cnn_l/explore.json",
        func=run,
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help="folder holding results.json (from `ethos-kws sweep --out`)")
    p.add_argument("--from", dest="from_file", metavar="RESULTS_JSON", help="a results.json instead of a RUN_DIR")
    p.add_argument("--parity", metavar="JSON",
                   help="parity results to include; RUN_DIR/parity.json is read when present")
    p.add_argument("--fvp", metavar="JSON", help="FVP results to include; RUN_DIR/fvp.json is read when present")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two results (files or run folders)")
    p.add_argument("--out", metavar="DIR", help="the report folder; reports/<name> when not given")
    p.add_argument("--name", metavar="N", help="report name: its folder under reports/; the model's name when not given")
    add_json_arg(p)


def run(args) -> int:
    from ..report import write_comparison, write_report
    from ..report.compare import comparison_text

    sources = [s for s in (args.run_dir, args.from_file) if s is not None]
    if args.compare:
        if sources or args.parity or args.fvp:
            raise UserError("--compare A B takes its inputs from A and B; drop RUN_DIR/--from/--parity/--fvp")
        dest, cmp = write_comparison(args.compare[0], args.compare[1], args.out, name=args.name)
        if args.json:
            print_json({"report_dir": str(dest), "comparison": cmp.to_dict()})
        else:
            print(comparison_text(cmp), end="")
            print(f"report: {dest / 'index.html'}")
        return 0
    if len(sources) != 1:
        raise UserError("give exactly one of RUN_DIR or --from results.json (or --compare A B)")
    from ..report.explore_page import explore_source, write_explore_report

    explored = explore_source(sources[0])
    if explored is not None:  # an exploration: its own page (scatter, front, budget)
        if args.parity or args.fvp:
            raise UserError("--parity/--fvp belong to a sweep's report, not an exploration's")
        dest = write_explore_report(explored, args.out, name=args.name)
    else:
        dest = write_report(sources[0], args.out, name=args.name, parity=args.parity, fvp=args.fvp)
    files = sorted(p.name for p in Path(dest).iterdir())
    if args.json:
        print_json({"report_dir": str(dest), "files": files})
    else:
        print(f"report: {dest / 'index.html'} ({', '.join(files)})")
    return 0
