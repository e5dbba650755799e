"""``ethos-kws model synth``: write a synthetic int8 TFLite model (single op or DS-CNN S/M/L)."""

from __future__ import annotations

import re
from pathlib import Path

from ..fsutil import atomic_write_bytes
from ..synth import ARCHS, SynthOptionError, build_model, resolve_options
from ..tflite import parse_tflite
from .common import seed_value, HelpFormatter, add_json_arg, print_json

DESCRIPTION = """\
Build an int8 TFLite model with seeded random weights, without TensorFlow. Single-op models
(conv2d, depthwise, avgpool, maxpool, fc, softmax, add, mul, reshape) exercise one NPU operation;
ds-cnn-s/m/l reproduce ML-zoo's DS-CNN topologies (int8 input (1,490), output (1,12)).
Quantization is calibrated on random inputs so every output depends on its inputs. The same
arguments always write the same bytes.

examples:
  ethos-kws model synth --arch ds-cnn-l --clusters 32 --seed 0 --out ds_cnn_l_c32.tflite
  ethos-kws model synth --arch conv2d --input-shape 1x16x16x3 --out-channels 33 \\
      --kernel 5x3 --stride 2 --dilation 1x2 --padding valid --activation relu6 --out conv.tflite
"""

# CLI flag -> (option name, kind); kinds: "shape" 1x2x3, "pair" 3 or 3x2, int, float, str, flag
_SHAPE_FLAGS = {
    "--input-shape": ("input_shape", "shape", "input tensor shape, e.g. 1x12x10x5"),
    "--other-shape": ("other_shape", "shape", "add/mul: second input's shape (broadcasts)"),
    "--new-shape": ("new_shape", "shape", "reshape: output shape"),
    "--out-channels": ("out_channels", int, "conv2d: output channels"),
    "--kernel": ("kernel", "pair", "conv2d/depthwise: kernel HxW"),
    "--stride": ("stride", "pair", "stride HxW"),
    "--dilation": ("dilation", "pair", "conv2d/depthwise: dilation HxW"),
    "--filter": ("filter", "pair", "pools: filter HxW"),
    "--units": ("units", int, "fc: output units"),
    "--beta": ("beta", float, "softmax: beta"),
}
_METAVARS = {"shape": "1xHxWxC", "pair": "HxW", int: "N", float: "X"}
_SEPARATORS = re.compile(r"[x,]")


def register_under(msub) -> None:
    p = msub.add_parser("synth", help="build a synthetic int8 test model (single op or DS-CNN)",
                        description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("--arch", required=True, choices=list(ARCHS), help="architecture")
    p.add_argument("--clusters", type=int, default=None, metavar="K",
                   help="cluster every conv/FC kernel to at most K int8 values")
    p.add_argument("--seed", type=seed_value, default=0, help="random seed for weights and calibration")
    p.add_argument("--out", required=True, metavar="FILE", help="output .tflite file (written atomically)")
    for flag, (_, kind, text) in _SHAPE_FLAGS.items():
        p.add_argument(flag, default=None, help=text, metavar=_METAVARS[kind])
    p.add_argument("--padding", choices=("same", "valid"), default=None, help="SAME or VALID padding")
    p.add_argument("--activation", choices=("none", "relu", "relu6"), default=None,
                   help="fused activation")
    p.add_argument("--per-channel", action="store_true", default=None,
                   help="fc: per-channel weight scales")
    add_json_arg(p)
    p.set_defaults(func=run_synth)


def _parse(flag: str, kind, text: str):
    try:
        if kind in ("shape", "pair"):
            values = tuple(int(v) for v in _SEPARATORS.split(text.strip().lower()))
            return values[0] if kind == "pair" and len(values) == 1 else values
        return kind(text)
    except ValueError:
        example = {"shape": "1x12x10x5", "pair": "3 or 3x2", int: "an integer", float: "a number"}[kind]
        raise SynthOptionError(f"{flag} {text!r}: expected {example}") from None


def options_from_args(args) -> dict:
    opts = {}
    for flag, (name, kind, _) in _SHAPE_FLAGS.items():
        text = getattr(args, name)
        if text is not None:
            opts[name] = _parse(flag, kind, text)
    for name in ("padding", "activation", "per_channel"):
        if getattr(args, name) is not None:
            opts[name] = getattr(args, name)
    return opts


def run_synth(args) -> int:
    opts = options_from_args(args)
    data = build_model(args.arch, seed=args.seed, clusters=args.clusters, **opts)
    out = Path(args.out)
    if out.is_dir():
        raise SynthOptionError(f"--out {out} is a directory; give a file name")
    atomic_write_bytes(out, data)
    m = parse_tflite(data, out)
    doc = {
        "path": str(out),
        "arch": args.arch,
        "seed": args.seed,
        "clusters": args.clusters,
        "options": resolve_options(args.arch, opts),
        "size_bytes": len(data),
        "sha256": m.sha256,
        "inputs": [s.to_dict() for s in m.input_specs],
        "outputs": [s.to_dict() for s in m.output_specs],
        "operators": [o.opcode for o in m.operators()],
    }
    if args.json:
        print_json(doc)
    else:
        print(f"wrote {out} ({len(data)} bytes, sha256 {m.sha256[:12]}…): {args.arch}, "
              f"{len(doc['operators'])} ops, seed {args.seed}"
              + (f", {args.clusters} clusters" if args.clusters else ""))
    return 0
