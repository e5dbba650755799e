"""``ethos-kws check``: the regression gate for CI. Exit 1 when cycles or memory grew."""

from __future__ import annotations

from typing import Any

from .common import add_command, add_json_arg, add_model_arg, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "check",
        help="fail (exit 1) when cycles, memory, CPU operators or any layer grew against a baseline",
        description="Compare current results with a baseline results.json and exit 1 when any "
        "configuration's cycles (total or NPU) or memory (SRAM, flash, DRAM) grew by more than "
        "--max-regression percent, a baseline configuration is missing, more operators run on the "
        "CPU, any layer's cycles grew by more than --max-layer-regression percent (the layer is "
        "named), or the model's sha256, the Vela version or the Vela ini differ (unless "
        "--allow-model-change); each regression is named (config and metric). A baseline that "
        "lacks a field the current run has is an error (exit 2): regenerate it. Exit 0 otherwise."
        "\n\n"
        "Without --current, the baseline's configurations are compiled now (--model, else the "
        "baseline's model file, else the usual model resolution), so a Vela upgrade or a model "
        "change is caught.\n\n"
        "examples:\n"
        "  ethos-kws check --baseline ci/baseline.json --max-regression 1\n"
        "  ethos-kws check --baseline ci/baseline.json --current reports/runs/ds_cnn --max-layer-regression 5\n"
        "  ethos-kws check --baseline old.json --model retrained.tflite --allow-model-change",
        func=run,
    )
    p.add_argument("--baseline", required=True, metavar="RESULTS", help="baseline results.json or run folder")
    p.add_argument("--current", metavar="RESULTS", help="current results.json or run folder; compiled now when not given")
    add_model_arg(p)
    p.add_argument("--max-regression", type=float, default=0.0, metavar="PCT",
                   help="allowed growth in percent (Vela is deterministic, so 0 means any growth fails)")
    p.add_argument("--max-layer-regression", type=float, default=None, metavar="PCT",
                   help="allowed growth of any one layer's cycles in percent (default: --max-regression)")
    p.add_argument("--allow-model-change", action="store_true",
                   help="compare even when the model sha256, Vela version or ini differ (layers are "
                   "then matched by name where they still exist)")
    add_json_arg(p)


def run(args) -> int:
    from ..report import check_regression, load_results
    from ..report.check import current_by_compiling

    baseline = load_results(args.baseline)
    if args.current is not None:
        current: Any = args.current
        label = args.current
    else:
        current = current_by_compiling(baseline, args.model)  # report.check: library logic
        label = f"{current['model'].get('path')} compiled now"
    regressions = check_regression(baseline, current, args.max_regression,
                                   max_layer_regression_pct=args.max_layer_regression,
                                   allow_model_change=args.allow_model_change)
    per_layer = "" if args.max_layer_regression is None else f" (any layer: {args.max_layer_regression:g}%)"
    if args.json:
        print_json({"passed": not regressions, "max_regression_pct": args.max_regression,
                    "max_layer_regression_pct": args.max_layer_regression,
                    "allow_model_change": args.allow_model_change,
                    "baseline": args.baseline, "current": label,
                    "regressions": [r.to_dict() for r in regressions]})
    elif regressions:
        for r in regressions:
            print(f"REGRESSION {r}")
        print(f"check: {len(regressions)} regression(s) above {args.max_regression:g}%{per_layer} "
              f"(baseline {args.baseline}, current {label})")
    else:
        print(f"check: no regression above {args.max_regression:g}%{per_layer} "
              f"({len(baseline.results)} configurations; baseline {args.baseline}, current {label})")
    if regressions:
        return 1
    return 0
