"""``ethos-kws parity``: NPU backend vs the CPU oracle, bit for bit, on every configuration."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..backends import NPU_BACKENDS
from ..backends.cpu import DEFAULT_ORACLE, ORACLE_KERNELS
from .common import (  # noqa: I001
    seed_value,
    add_command,
    add_count_arg,
    add_deprecated_alias,
    add_executor_group,
    add_fvp_group,
    add_model_arg,
    check_jobs,
    add_output_group,
    add_vela_group,
    backend_options_from_args,
    is_terminal,
    print_json,
)

if TYPE_CHECKING:
    from ..parity import ParityReport

DESCRIPTION = """\
Run the same inputs through the CPU oracle (TFLite Micro's reference kernels on the original
model, as on the Cortex-M next to the NPU; --oracle ref: LiteRT BUILTIN_REF) and an NPU backend (npu-sim: ethos-kws' bit-exact simulator on Vela's output; fvp: a
Corstone FVP) for each accelerator configuration, and compare every output element.

Inputs: --count uniform random tensors over the input's quantized range (seeded; the same as
`ethos-kws vectors --seed S`), plus with --audio DIR the MFCC features of every .wav in DIR.
Why TFLite Micro by default: LiteRT 2.x rounds int8 FULLY_CONNECTED once; TFLM and the NPU's TFL
rounding mode round twice. With --oracle ref, about 1-2% of random DS-CNN-L vectors differ (1 LSB
on a logit at a rounding tie, amplified by softmax) — LiteRT's rounding, not an NPU error.

Exit status: 0 when no element differs by more than --tolerance LSB on any configuration,
1 otherwise (or when a backend fails on a configuration), 2 for bad arguments.

examples:
  ethos-kws parity --accel all --count 100
  ethos-kws parity --model streaming.tflite --sequence 20   (stateful: 20 consecutive steps)
  ethos-kws parity --model vendor_vela.tflite --reference original.tflite   (compiled elsewhere)
  ethos-kws parity --model ds_cnn_l_int8io.tflite --audio ../shared/data/audio --json
"""
DEFAULT_VECTORS = 50


def register(sub) -> None:
    p = add_command(sub, "parity", help="compare an NPU backend with the CPU oracle, bit for bit",
                    description=DESCRIPTION, func=run)
    add_model_arg(p)
    p.add_argument("--npu", choices=NPU_BACKENDS, default="npu-sim", help="NPU backend")
    add_count_arg(p, default=DEFAULT_VECTORS)
    add_deprecated_alias(p, "--vectors", "--count", dest="count", type=int)
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the random vectors")
    p.add_argument("--sequence", type=int, default=None, metavar="N",
                   help="N random steps of one stream instead of --count: state (resource "
                   "variables, SVDF/LSTM state) carries from step to step on both sides and every "
                   "step is compared")
    p.add_argument("--reference", metavar="ORIGINAL.tflite", default=None,
                   help="for a model already compiled by Vela (here, by a vendor or an evaluation "
                   "kit): the original model the CPU oracle runs; the compiled model runs on the "
                   "accelerator of its COP1 header")
    p.add_argument("--audio", metavar="DIR", default=None, help="also compare on the MFCC features of DIR/*.wav")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="LSB",
                   help="largest accepted difference per output element")
    p.add_argument("--oracle", choices=ORACLE_KERNELS, default=DEFAULT_ORACLE,
                   help="CPU oracle kernels: TFLite Micro (tflm, what runs on the Cortex-M; rounds "
                   "FULLY_CONNECTED like the NPU) or LiteRT BUILTIN_REF (ref)")
    add_vela_group(p, accel="list")
    add_fvp_group(p)
    add_executor_group(p)
    add_output_group(p, out="also write DIR/parity.json")


def run(args) -> int:
    from ..executors import dask_address, dask_runner
    from ..model import resolve_model
    from ..parity import check_arguments, run_parity, write_report

    check_jobs(args)
    address = dask_address(args.dask)
    if args.sequence is not None:
        args.count = args.sequence
    check_arguments(npu=args.npu, vectors=args.count, oracle=args.oracle, tolerance=args.tolerance)
    options = backend_options_from_args(args, args.npu)
    options.pop("accel", None)  # one per configuration, from --accel's list
    legacy_core = bool(options.pop("legacy_core", False))
    resolved = resolve_model(args.model)
    bar = None
    progress = None
    if is_terminal() and not args.json:
        from tqdm import tqdm

        bar = tqdm(total=0, desc="parity", unit="config", file=sys.stderr, leave=False)

        def progress(label: str, done: int, total: int) -> None:
            bar.total = total
            bar.set_description(f"parity {label}")
            bar.n = done
            bar.refresh()

    # an FVP is a heavy process: one at a time unless --jobs asks for more
    jobs = args.jobs if args.jobs is not None else (1 if args.npu == "fvp" else None)
    try:
        with dask_runner(address, args.dask_timeout) as dask:
            report = run_parity(resolved, args.accel, npu=args.npu, vectors=args.count, seed=args.seed,
                                audio_dir=args.audio, tolerance=args.tolerance,
                                legacy_core=legacy_core, npu_options=options, oracle=args.oracle,
                                progress=progress, sequence=args.sequence is not None,
                                reference=args.reference, jobs=jobs, dask=dask)
    finally:
        if bar is not None:
            bar.close()
    if args.out:
        write_report(report, args.out)
    if args.json:
        print_json(report.to_dict())
    else:
        print(format_report(report))
    return 0 if report.passed else 1


def format_report(report: ParityReport) -> str:
    m = report.model
    synthetic = " [SYNTHETIC STAND-IN]" if m.get("provenance") == "synthetic stand-in" else ""
    inputs = f"{report.random_vectors} random (seed {report.seed})"
    if report.clips:
        inputs += f" + {len(report.clips)} audio clips"
    if report.sequence:
        inputs += ", as consecutive steps of one stream"
    lines = [
        f"model   {m['name']} ({m['provenance']}, sha256 {m['sha256'][:12]}…){synthetic}",
        (f"compare {report.npu} vs {report.oracle} on {report.vectors} vectors: {inputs}; "
         f"tolerance {report.tolerance_lsb:g} LSB"),
        "",
    ]
    from ..report.tables import format_parity_table

    rows = [{**r.to_dict(), "config": r.label, "status": "ERROR" if r.error else ("PASS" if r.passed else "FAIL")}
            for r in report.results]
    lines.append(format_parity_table(rows))
    for r in report.results:
        if r.error:
            lines.append(f"\n{r.label}: {r.error}")
        elif r.first_differences:
            lines.append(f"\nfirst differences on {r.label}:")
            for d in r.first_differences:
                lines.append(f"  vector {d.vector} ({d.source}) {d.output}[{d.index}]: cpu {d.cpu} "
                             f"npu {d.npu} ({d.diff_lsb:g} LSB)")
    lines.append("")
    lines.append("PASS: bit-exact within tolerance on every configuration" if report.passed
                 else "FAIL: differences beyond tolerance (or backend errors) above")
    return "\n".join(lines)
