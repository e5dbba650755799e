"""``ethos-kws run``: one inference of a model on any backend (cpu, npu-sim, fvp), same output."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys

from .common import (  # noqa: I001
    seed_value,
    add_backend_group,
    add_command,
    add_fvp_group,
    add_json_arg,
    add_model_arg,
    add_vela_group,
    backend_options_from_args,
    print_json,
)

DEFAULT_SEED = 0


def add_backend_args(p, *, default_backend: str = "cpu") -> None:
    """Every flag a backend can take: the backend, Vela and FVP groups of ``cli.common``."""
    add_backend_group(p, default_backend=default_backend)
    add_vela_group(p, accel="optional")
    add_fvp_group(p)


@contextlib.contextmanager
def backend_stdout():
    """Tools under a backend (Vela compiling for npu-sim/fvp, native runtimes, child processes)
    may print on stdout, some straight to file descriptor 1; send all of it to stderr so that
    stdout carries only our output (one JSON document with --json)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable fd 1 (embedded use): Python-level redirect only
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def open_backend(args):
    """Resolve --model and build --backend with the flags given; returns (resolved, backend)."""
    from ..backends import create_backend
    from ..model import resolve_model

    resolved = resolve_model(args.model)
    options = backend_options_from_args(args, args.backend)
    with backend_stdout():
        return resolved, create_backend(args.backend, resolved.path, **options)


def register(sub) -> None:
    p = add_command(
        sub, "run",
        help="run a model once on cpu, npu-sim or fvp; print outputs and scores",
        description="Run one inference and print the raw output tensors, the dequantized scores "
        "and, for a 12-label KWS model, the top label. Every backend prints the same --json "
        "document: {backend, model_sha256, outputs[{name, shape, dtype, scale, zero_point, "
        "data}], scores, top}.\n\n--input X.npy: one array with the input's element count; int "
        "values must fit the input type, float values are quantized with the input's scale and "
        "zero point; pickles/object arrays, NaN and inf are refused.\n--input CLIP.wav: MFCC "
        "features of its first second (16 kHz mono).\nWithout --input: a seeded random input, "
        "uniform over the quantized range (--seed).\n\n"
        "examples:\n"
        "  ethos-kws run --backend npu-sim --accel u55-256 --input clip.wav\n"
        "  ethos-kws run --backend npu-sim --accel u55-256 --trace   # NPU commands per Vela layer",
        func=run,
    )
    add_model_arg(p)
    p.add_argument("--input", metavar="X.npy|CLIP.wav", help="input array or WAV clip")
    p.add_argument("--seed", type=seed_value, default=DEFAULT_SEED, help="seed of the random input used without --input")
    p.add_argument("--sequence", type=int, default=None, metavar="N",
                   help="run N seeded random inputs as consecutive steps of one stream (stateful "
                   "models carry their state); --json prints {sequence, steps: [document...]}")
    p.add_argument("--labels", metavar="FILE", help="labels, one per line in output order (default: the 12 DS-CNN labels)")
    p.add_argument("--trace", action="store_true",
                   help="npu-sim: list the NPU commands executed per Vela layer (op, OFM blocks, bytes "
                   "DMA'd, feature-map bytes read and written) beside Vela's cycles for the layer")
    add_backend_args(p)
    add_json_arg(p)


def run(args) -> int:
    import numpy as np  # here: every command module is imported to build the parser

    from ..inputs import load_input_file, quantized_input_specs, random_inputs
    from ..labels import labels_for

    from ..errors import UserError

    if args.sequence is not None and (args.sequence < 1 or args.input):
        raise UserError("--sequence N needs N >= 1 and no --input (its steps are seeded random inputs)")
    if args.trace and args.backend != "npu-sim":
        raise UserError(f"--trace needs --backend npu-sim (the simulator records what it executes), not {args.backend}")
    if args.trace and args.sequence is not None:
        raise UserError("--trace runs one inference; drop --sequence")
    resolved, backend = open_backend(args)
    specs = list(backend.input_specs)
    if args.sequence is not None:
        return _run_sequence(args, resolved, backend, specs)
    if args.input:
        inputs = load_input_file(args.input, specs)
        source = args.input
    else:
        inputs = random_inputs(specs, args.seed, quantized_input_specs(resolved.path, specs))
        source = f"seeded random input (seed {args.seed}), uniform over the quantized range"
        print(f"ethos-kws: no --input: using a {source}", file=sys.stderr)
    trace = None
    with backend_stdout():
        if args.trace:
            from ..npu_trace import trace_run

            result, trace = trace_run(backend, inputs)
        else:
            result = backend.run(inputs)
    n_classes = int(np.prod(result.outputs[0].spec.shape)) if result.outputs else 0
    labels = labels_for(n_classes, args.labels) if args.labels else (result.labels or labels_for(n_classes))
    result = dataclasses.replace(result, labels=labels)
    if args.json:
        doc = result.to_dict()
        if trace is not None:
            doc["trace"] = trace.to_dict()
        print_json(doc)
        return 0
    _print_human(result, resolved, source)
    if trace is not None:
        from ..npu_trace import format_trace

        print(format_trace(trace))
    return 0


def _run_sequence(args, resolved, backend, specs) -> int:
    import numpy as np

    from ..inputs import quantized_input_specs, random_inputs
    from ..labels import labels_for

    quant = quantized_input_specs(resolved.path, specs)
    seeds = np.random.SeedSequence(args.seed).spawn(args.sequence)
    results = []
    with backend_stdout():
        for s in seeds:
            results.append(backend.run(random_inputs(specs, s, quant)))
    n_classes = int(np.prod(results[0].outputs[0].spec.shape)) if results[0].outputs else 0
    labels = labels_for(n_classes, args.labels) if args.labels else (results[0].labels or labels_for(n_classes))
    results = [dataclasses.replace(r, labels=labels) for r in results]
    if args.json:
        print_json({"sequence": args.sequence, "seed": args.seed, "steps": [r.to_dict() for r in results]})
        return 0
    print(f"{resolved.path.name} on {results[0].backend}: {args.sequence} steps of one stream "
          f"(seeded random inputs, seed {args.seed})")
    for i, r in enumerate(results):
        top = r.top(1)[0]
        name = top["label"] if top["label"] is not None else f"#{top['index']}"
        head = " ".join(str(v) for v in r.outputs[0].data.reshape(-1)[:12])
        print(f"  step {i:3d}  top {name} ({top['score']:.4f})  {r.outputs[0].spec.name}: {head}")
    return 0


def _print_human(result, resolved, source: str) -> None:
    import numpy as np

    extra = ", ".join(f"{k} {v}" for k, v in result.extra.items() if isinstance(v, (str, int, float)))
    print(f"{resolved.path.name} on {result.backend}" + (f" ({extra})" if extra else ""))
    print(f"  model     sha256 {result.model_sha256[:16]}... ({resolved.provenance})")
    print(f"  input     {source}")
    if result.inference_time_ms is not None:
        print(f"  NPU time  {result.inference_time_ms:.3f} ms ({result.inference_time_source})")
    if result.host_ms is not None:
        print(f"  host time {result.host_ms:.3f} ms (host wall clock)")
    for o in result.outputs:
        q = f", scale {o.spec.scale:.6g}, zero point {o.spec.zero_point}" if o.spec.scale is not None else ""
        print(f"  output    {o.spec.name} {o.spec.dtype}{list(o.spec.shape)}{q}")
        print("            " + np.array2string(o.data.reshape(-1), max_line_width=100,
                                               separator=" ").replace("\n", "\n            "))
    scores = result.scores
    names = result.labels or [str(i) for i in range(len(scores))]
    print("  scores    " + "  ".join(f"{n} {s:.4f}" for n, s in zip(names, scores)))
    if result.labels:
        top = result.top(3)
        print(f"  top       {top[0]['label']} ({top[0]['score']:.4f}); then "
              + ", ".join(f"{t['label']} ({t['score']:.4f})" for t in top[1:]))
