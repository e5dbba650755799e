"""``ethos-kws accuracy DATASET``: top-1, per-class precision/recall and confusion matrices of a
Speech Commands split on cpu, npu-sim (every configuration) and fvp, with NPU-vs-CPU differences."""

from __future__ import annotations

import sys

from .common import (
    add_backend_group, add_command, add_executor_group, add_fvp_group, add_json_arg, add_model_arg,
    add_vela_group, backend_options_from_args, open_work_pool, print_json,
)

EXAMPLES = """examples:
  ethos-kws accuracy ~/data/speech_commands_v0.02 --limit 500
  ethos-kws accuracy SC/ --backends cpu,npu-sim --accel all --kernels tflm --json > acc.json
  ethos-kws accuracy SC/ --split validation --report reports/accuracy
  ethos-kws accuracy SC/ --backends npu-sim --accel u55-128,u65-512 --jobs 2

The split comes from testing_list.txt / validation_list.txt (TensorFlow's hash rule without
them). Labels: _silence_, _unknown_, yes, no, up, down, left, right, on, off, stop, go; other words
are _unknown_ (10 % of the keyword clips), _silence_ clips are random 1 s cuts of
_background_noise_ at a random volume (10 %), as TensorFlow's speech_commands input_data.py (used
by ARM-software/ML-KWS-for-MCU) builds them. Results are cached per clip and configuration and
verified: an interrupted run resumes; a changed clip or model is recomputed.
"""


def register(sub) -> None:
    p = add_command(
        sub, "accuracy",
        help="accuracy on a Speech Commands split: cpu, npu-sim x every config, fvp; confusion matrices",
        description="Classify every clip of a Speech Commands split (one folder per word, "
        "_background_noise_, testing_list.txt) on each backend and configuration; print top-1, "
        "per-class precision/recall, and how many clips' NPU scores differ from the CPU's bit for "
        "bit and whose top label differs.\n\n" + EXAMPLES,
        func=run,
    )
    p.add_argument("dataset", metavar="DATASET", help="Speech Commands folder")
    add_model_arg(p)
    p.add_argument("--split", choices=("test", "validation"), default="test", help="which split")
    p.add_argument("--limit", type=int, metavar="N", help="only N clips (a seeded shuffle of the split, so the class mix stays)")
    p.add_argument("--backends", default="cpu,npu-sim", metavar="LIST",
                   help="comma-separated: cpu, npu-sim, fvp (npu-sim and fvp run every --accel)")
    p.add_argument("--report", metavar="DIR", help="also write a report (confusion matrix plots) into this new folder")
    p.add_argument("--progress", action="store_true", default=None, help="progress bar on stderr even when it is not a terminal")
    add_executor_group(p)
    add_backend_group(p)
    add_vela_group(p, accel="list")
    add_fvp_group(p)
    add_json_arg(p)


def run(args) -> int:
    from ..accel import parse_accelerator_list
    from ..accuracy import build_runs, evaluate
    from ..backends import BACKENDS
    from ..dataset import load_dataset
    from ..errors import UserError
    from ..model import resolve_model
    from .run_cmd import backend_stdout

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise UserError(f"--backends: unknown backend {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKENDS)}")
    accels = [a.name for a in parse_accelerator_list(args.accel)]
    dataset = load_dataset(args.dataset, args.split, args.limit)
    resolved = resolve_model(args.model)
    options: dict = {}
    for b in backends:
        options.update(backend_options_from_args(args, b, warn=lambda _line: None))
    pool = open_work_pool(args)  # an unreachable scheduler fails here, before any compile
    try:
        with backend_stdout():
            runs = build_runs(resolved.path, resolved.sha256, backends, accels, options)
        with backend_stdout():
            doc = evaluate(dataset, runs, pool=pool, progress=args.progress, model_label=str(resolved.path))
    finally:
        pool.close()
    doc["model_sha256"] = resolved.sha256
    doc["model_provenance"] = resolved.provenance
    if args.report:
        from ..report.kws import write_kws_report

        write_kws_report({"accuracy": doc}, args.report)
    if args.json:
        print_json(doc)
        return 0
    _print(doc, resolved)
    if args.report:
        print(f"report: {args.report}")
    return 0


def _print(doc: dict, resolved) -> None:
    lim = f" (--limit: {doc['clips']} of {doc['split_clips']})" if doc.get("limited") else ""
    print(f"{resolved.path.name}: {doc['clips']} clips of the {doc['split']} split of {doc['dataset']}{lim}")
    counts = ", ".join(f"{k} {v}" for k, v in doc["counts"].items() if v)
    print(f"  clips     {counts}")
    rate = doc.get("clip_configs_per_s")
    print(f"  work      {doc['computed_clips']} clips computed, {doc['cached_clips']} from the cache, "
          f"{doc['elapsed_s']:.1f} s" + (f" ({rate:g} clip-configurations/s)" if rate else "")
          + (f" on {doc['executor']}" if doc.get("executor") else ""))
    head = f"  {'configuration':22} {'top-1':>7} {'correct':>9} {'scores != cpu':>14} {'label != cpu':>13}"
    print(head)
    for r in doc["runs"]:
        sd = r.get("scores_differ_from_cpu")
        ld = r.get("labels_differ_from_cpu")
        print(f"  {r['config']:22} {r['top1']:7.4f} {r['correct']:>4}/{r['clips']:<4} "
              f"{'-' if sd is None else sd:>14} {'-' if ld is None else ld:>13}")
    for r in doc["runs"]:
        for d in r.get("label_differs") or []:
            print(f"  {r['config']}: {d['clip']}: {d['label']} (cpu: {d['cpu']})")
    first = doc["runs"][0]
    recall = ", ".join(f"{c['label']} {c['recall']:.2f}" for c in first["per_class"] if c["recall"] is not None)
    print(f"  recall    ({first['config']}) {recall}")
    sys.stdout.flush()
