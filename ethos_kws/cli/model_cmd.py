"""``ethos-kws model fetch|info|synth``."""

from __future__ import annotations

import sys

from ..model import MLZOO_SHA256, MLZOO_SIZE, fetch_model, model_info, resolve_model
from .common import HelpFormatter, add_json_arg, is_terminal, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "model",
        help="fetch, inspect or synthesize models",
        description="Fetch the ML-zoo DS-CNN Clustered INT8 model, inspect a TFLite model, or "
        "build a synthetic int8 test model.",
        formatter_class=HelpFormatter,
    )
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    f = msub.add_parser(
        "fetch",
        help="download DS-CNN Clustered INT8 from Arm ML-zoo into the cache",
        description=f"Download ML-zoo's DS-CNN Clustered INT8 ({MLZOO_SIZE} bytes, sha256 "
        f"{MLZOO_SHA256[:12]}…), verify size and hash, and store it atomically in the cache "
        "($ETHOS_KWS_CACHE or the platform's user cache folder). A partial or mismatched download "
        "is never kept.",
        formatter_class=HelpFormatter,
    )
    f.add_argument("--url", help="download from this URL instead of ML-zoo (the hash is still checked)")
    f.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds")
    add_json_arg(f)
    f.set_defaults(func=run_fetch)

    i = msub.add_parser(
        "info",
        help="inputs, outputs, operators, MACs and weight clustering of a model",
        description="Describe a TFLite model: path, sha256, size, inputs/outputs (shape, dtype, "
        "scale, zero point), operator counts, MACs, and per weight tensor its element count and "
        "number of unique values (a 32-cluster model shows at most 32 per kernel). Also compiles it "
        "for u55-128 (cached) to name every operator Vela leaves on the CPU and Vela's reason.\n\n"
        "example: ethos-kws model info ds_cnn_l_quantized.tflite",
        formatter_class=HelpFormatter,
    )
    i.add_argument("model", nargs="?", help="TFLite file (default: the resolved model, see --help of sweep)")
    i.add_argument("--no-compile", action="store_true", help="skip the Vela check for CPU ops")
    add_json_arg(i)
    i.set_defaults(func=run_info)

    try:
        from .synth_cmd import register_under
    except ModuleNotFoundError:
        pass
    else:
        register_under(msub)


def run_fetch(args) -> int:
    progress = None
    bar = None
    if is_terminal() and not args.json:
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, desc="DS-CNN Clustered INT8", file=sys.stderr)

        def progress(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

    try:
        path = fetch_model(args.url, timeout_s=args.timeout, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print_json({"path": str(path), "sha256": MLZOO_SHA256, "size_bytes": MLZOO_SIZE})
    else:
        print(f"fetched and verified: {path}")
    return 0


def run_info(args) -> int:
    resolved = resolve_model(args.model, allow_fetch=False)
    info = model_info(resolved)
    doc = info.to_dict()
    warnings = list(info.warnings)
    if not args.no_compile:
        from ..vela import compile_model

        r = compile_model(resolved.path, "u55-128")
        doc["vela_cpu_ops"] = list(r.cpu_op_names)
        doc["vela_cpu_operators"] = [c.to_dict() for c in r.cpu_operators]
        if r.cpu_ops:
            warnings.append(f"Vela leaves {r.cpu_ops} op(s) on the CPU: {', '.join(r.cpu_op_names)}; "
                            f"its figures cover the NPU part only")
    doc["warnings"] = warnings
    if args.json:
        print_json(doc)
        return 0
    print(f"model      {doc['path']}")
    print(f"provenance {doc['provenance']}{' — ' + doc['description'] if doc['description'] else ''}")
    print(f"sha256     {doc['sha256']}")
    print(f"size       {doc['size_bytes']:,} bytes")
    for kind in ("inputs", "outputs"):
        for t in doc[kind]:
            print(
                f"{kind[:-1]:<10} {t['name']}  {tuple(t['shape'])} {t['dtype']}  "
                f"scale {t['scale']}  zero point {t['zero_point']}"
            )
    ops = ", ".join(f"{k} x{v}" for k, v in doc["operators"].items())
    print(f"operators  {doc['operator_count']}: {ops}")
    print(f"MACs       {doc['macs']:,}")
    if doc["weights"]:
        print("weights    (tensor, op, elements, unique values)")
        for w in doc["weights"]:
            print(f"  {w['elements']:>8,}  {w['unique_values']:>5}  {w['op']:<18} {w['tensor']}")
    for c in doc.get("vela_cpu_operators", []):
        print(f"on the CPU #{c['index']} {c['op']} '{c['ofm']}': {c['reason']}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0
