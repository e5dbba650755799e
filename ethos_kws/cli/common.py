"""Argument helpers every sub-command shares, so flags are spelled the same everywhere."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..fsutil import to_json


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps hand-wrapped descriptions and shows defaults, but only where there is one."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, *, help: str, description: str, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)
    p.set_defaults(func=func)
    return p


def add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="TFLite model (default: $ETHOS_KWS_MODEL, else the cached ML-zoo DS-CNN Clustered "
        "INT8, else download it)",
    )


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def print_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj))


def is_terminal() -> bool:
    return sys.stderr.isatty()
