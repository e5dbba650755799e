"""``ethos-kws vectors``: reproducible int8 test vectors with CPU reference outputs (ML-zoo layout)."""

from __future__ import annotations

from .common import add_command, add_json_arg, add_model_arg, print_json


def register(sub) -> None:
    from ..backends.cpu import KERNELS

    p = add_command(
        sub, "vectors",
        help="write reproducible test vectors and CPU reference outputs (ML-zoo layout)",
        description="Write OUT/testing_input/<input>/N.npy and OUT/testing_output/<output>/N.npy "
        "(ML-zoo's layout, named after the model's tensors) plus OUT/manifest.json. Vectors "
        "0..COUNT-1 are uniform over the input's quantized range (reproducible from --seed); "
        "then one per WAV clip in --audio DIR (its MFCC features, quantized). Outputs come from "
        "the CPU backend (LiteRT reference kernels by default).",
        func=run,
    )
    add_model_arg(p)
    p.add_argument("--count", type=int, default=10, help="number of random vectors")
    p.add_argument("--seed", type=int, default=0, help="seed of the random vectors")
    p.add_argument("--audio", metavar="DIR", help="also add the MFCC features of every *.wav in DIR")
    p.add_argument("--kernels", choices=list(KERNELS), default="ref", help="CPU kernels for the reference outputs")
    p.add_argument("--out", metavar="DIR", required=True, help="output directory (replaced atomically)")
    add_json_arg(p)


def run(args) -> int:
    from ..model import resolve_model
    from ..vectors import check_count, write_vectors

    check_count(args.count)  # before looking for (or downloading) a model
    resolved = resolve_model(args.model)
    vs = write_vectors(resolved.path, args.out, count=args.count, seed=args.seed,
                       audio_dir=args.audio, kernels=args.kernels)
    if args.json:
        print_json(vs.to_dict())
        return 0
    clips = sum(1 for s in vs.sources if s["source"] == "clip")
    print(f"wrote {vs.count} vectors ({vs.count - clips} random, seed {vs.seed}; {clips} from clips) "
          f"to {vs.out_dir}")
    print(f"  inputs   testing_input/{', testing_input/'.join(vs.input_dirs)}")
    print(f"  outputs  testing_output/{', testing_output/'.join(vs.output_dirs)} "
          f"({resolved.path.name}, CPU {vs.kernels} kernels)")
    return 0
