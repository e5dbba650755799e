"""``ethos-kws disasm``: print the NPU command stream of a Vela-compiled model."""

from __future__ import annotations

import sys

from .common import add_command, add_json_arg, print_json


def register(sub) -> None:
    p = add_command(
        sub, "disasm",
        help="decode the NPU command stream of a *_vela.tflite",
        description="Print the Ethos-U register command stream inside a Vela-compiled model, one "
        "command per line: byte offset, raw words, register name and decoded fields.",
        func=run,
    )
    p.add_argument("compiled", metavar="COMPILED.tflite", help="a model compiled by Vela")
    add_json_arg(p)


def run(args) -> int:
    from ..backends.npusim.disasm import disassemble, to_json, to_text

    streams = disassemble(args.compiled)
    if args.json:
        print_json(to_json(streams))
    else:
        sys.stdout.write(to_text(streams))
    return 0
