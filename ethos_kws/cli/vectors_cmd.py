"""``ethos-kws vectors``: reproducible int8 test vectors with CPU reference outputs (ML-zoo layout)."""

from __future__ import annotations

from .common import seed_value, add_command, add_count_arg, add_model_arg, add_output_group, print_json


def register(sub) -> None:
    from ..backends.cpu import KERNELS
    from ..backends.cpu import DEFAULT_ORACLE

    p = add_command(
        sub, "vectors",
        help="write reproducible test vectors and CPU reference outputs (ML-zoo layout)",
        description="Write OUT/testing_input/<input>/N.npy and OUT/testing_output/<output>/N.npy "
        "(ML-zoo's layout, named after the model's tensors) plus OUT/manifest.json. Vectors "
        "0..COUNT-1 are uniform over the input's quantized range (reproducible from --seed); "
        "then one per WAV clip in --audio DIR (its MFCC features, quantized). Outputs come from "
        "the CPU oracle: TFLite Micro's reference kernels by default, the same oracle as "
        "`ethos-kws parity` (--oracle ref: LiteRT BUILTIN_REF).\n\n"
        "example: ethos-kws vectors --count 50 --seed 0 --out vectors/",
        func=run,
    )
    add_model_arg(p)
    add_count_arg(p, default=10)
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the random vectors")
    p.add_argument("--audio", metavar="DIR", help="also add the MFCC features of every *.wav in DIR")
    p.add_argument("--oracle", "--kernels", dest="kernels", choices=list(KERNELS), default=DEFAULT_ORACLE,
                   help="CPU kernels of the reference outputs; the default is parity's oracle, so "
                   "the files hold what `ethos-kws parity` compares the NPU against")
    add_output_group(p, out="output directory (replaced atomically)", required=True)


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
