"""The ``ethos-kws`` command line: a thin layer over the Python API.

Each sub-command lives in its own module with a ``register(subparsers)`` function; the table below
is the only place that lists them. Errors become exit codes here and nowhere else:
``UserError`` -> 2, other ``EthosKwsError`` -> 1, both as one line on stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..errors import EthosKwsError, UserError

from . import (
    accuracy_cmd,
    check_cmd,
    classify_cmd,
    compile_cmd,
    configs_cmd,
    disasm_cmd,
    explore_cmd,
    features_cmd,
    fvp_cmd,
    model_cmd,
    parity_cmd,
    report_cmd,
    run_cmd,
    sweep_cmd,
    vectors_cmd,
)

# order = order in --help; imported directly, so a broken command module fails loudly (it can never
# silently drop out of --help)
COMMANDS = (
    configs_cmd,
    model_cmd,
    compile_cmd,
    sweep_cmd,
    explore_cmd,
    run_cmd,
    features_cmd,
    classify_cmd,
    accuracy_cmd,
    vectors_cmd,
    disasm_cmd,
    parity_cmd,
    fvp_cmd,
    report_cmd,
    check_cmd,
)

DESCRIPTION = """\
Keyword spotting on Arm Ethos-U NPUs: compile a TFLite model with Vela for every Ethos-U55/U65
configuration, run it on the CPU (LiteRT / TFLite Micro), on ethos-kws' bit-exact NPU simulator or
on a Corstone FVP, check NPU-vs-CPU parity and write reports.

Typical session:
  ethos-kws model fetch                 # download DS-CNN Clustered INT8 from Arm ML-zoo
  ethos-kws sweep                       # Vela on every U55/U65/U85 configuration, one table
  ethos-kws parity --accel all          # NPU simulator vs the CPU oracle (TFLite Micro), bit for bit
  ethos-kws classify clip.wav           # MFCC front end + model on real audio
"""


class Parser(argparse.ArgumentParser):
    """A bad flag is bad input like any other: one line on stderr, exit code 2."""

    def error(self, message: str):
        where = self.prog.removeprefix("ethos-kws").strip()  # the subcommand, if the error is in one
        where = f"{where}: " if where else ""
        self.exit(2, f"ethos-kws: error: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ethos-kws",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"ethos-kws {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that temporaries are removed on the way out."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except (EthosKwsError, OSError) as e:  # a broken installation (e.g. its data folder missing)
        print(f"ethos-kws: error: {e}; reinstall ethos-kws", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        rc = args.func(args)
        return int(rc or 0)
    except Terminated:
        print("ethos-kws: terminated", file=sys.stderr)
        return 143
    except UserError as e:
        print(f"ethos-kws: error: {e}", file=sys.stderr)
        return 2
    except EthosKwsError as e:
        print(f"ethos-kws: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ethos-kws: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # last guard: a file error that no layer below named
        where = f" {e.filename}" if e.filename else ""
        print(f"ethos-kws: error: cannot access{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("ethos-kws: error: out of memory", file=sys.stderr)
        return 1
    except RecursionError:
        print("ethos-kws: error: input nested too deeply to process", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
