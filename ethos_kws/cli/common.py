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


# ---- flag groups: each defined once, called by every command that takes those flags ----------
# Vela's own spellings are accepted as aliases where users type them (--accelerator-config,
# --output-dir); a deprecated spelling stays accepted and is hidden from --help.

ACCEL_MODES = ("required", "optional", "list")
DEFAULT_OPTIMISE = "Performance"


def add_vela_group(p: argparse.ArgumentParser, *, accel: str = "optional",
                   accel_default: str | None = None) -> argparse._ArgumentGroup:
    """The Vela flags: --accel (alias --accelerator-config), --system-config, --memory-mode,
    --optimise, --arena-cache-size, --legacy-core. ``accel``: "required" (one accelerator),
    "optional" (one; the backend's default when unset) or "list" (comma-separated, or all)."""
    from ..accel import ACCELERATORS
    from ..vela import OPTIMISE_CHOICES

    if accel not in ACCEL_MODES:
        raise ValueError(f"accel must be one of {ACCEL_MODES}")
    g = p.add_argument_group("Vela (compiler options; Vela's own spellings accepted)")
    names = ", ".join(ACCELERATORS)
    if accel == "list":
        g.add_argument("--accel", "--accelerator-config", dest="accel", default=accel_default or "all",
                       metavar="all|u55|u65|u85|LIST",
                       help=f"comma-separated accelerators, a family (u55, u65, u85) or all ({names}; "
                       "ethos-u55-128 spelling accepted)")
    else:
        g.add_argument("--accel", "--accelerator-config", dest="accel", required=accel == "required",
                       default=accel_default, metavar="ACCEL",
                       help=f"accelerator: {names} (ethos-u55-128 spelling accepted)"
                       + ("" if accel == "required" else "; default: the backend's (u55-128)"))
    g.add_argument("--system-config", metavar="NAME",
                   help="Vela system config (default per accelerator; see `ethos-kws configs`)")
    g.add_argument("--memory-mode", metavar="NAME",
                   help="Vela memory mode (default: Shared_Sram on U55, Dedicated_Sram on U65 and U85)")
    g.add_argument("--optimise", choices=OPTIMISE_CHOICES, default=None,
                   help=f"Vela's scheduler goal (default: {DEFAULT_OPTIMISE})")
    g.add_argument("--arena-cache-size", type=int, metavar="BYTES",
                   help="Vela --arena-cache-size (Dedicated_Sram fast scratch)")
    g.add_argument("--legacy-core", action="store_true", default=None,
                   help="use Vela's legacy Python compiler (--debug-force-legacy-core)")
    add_config_arg(g)
    return g


def add_config_arg(g) -> None:
    """--config INI: the user's own Vela ini (Vela's flag), read on top of Vela's Arm/vela.ini."""
    g.add_argument("--config", metavar="INI", default=None,
                   help="your SoC's Vela ini: its [System_Config.*] and [Memory_Mode.*] sections join "
                   "Vela's own (see `ethos-kws configs --config INI`); its sha256 is in every result")


def user_ini_of(args):
    """The checked ``--config`` ini of ``args`` (None when not given); bad ini = UserError."""
    from ..vela_ini import load_user_ini

    return load_user_ini(getattr(args, "config", None))


def add_tensor_allocator_arg(g, *, many: bool = False) -> None:
    from ..vela import TENSOR_ALLOCATORS

    g.add_argument("--tensor-allocator", metavar="LIST" if many else "NAME", default=None,
                   help=f"Vela --tensor-allocator{' (comma list)' if many else ''}: {', '.join(TENSOR_ALLOCATORS)} "
                   "(default: Vela's, HillClimb)")


def add_executor_group(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Where units of work (compiles, NPU batches, FVP runs) run: --jobs N local processes, or
    --dask ADDRESS (a Dask scheduler)."""
    from ..executors import DASK_ENV, DEFAULT_DASK_TIMEOUT_S

    g = p.add_argument_group("execution (local process pool, or a Dask cluster)")
    g.add_argument("--jobs", type=int, metavar="N",
                   help="parallel local processes for compiles and NPU batches (default: CPU count; FVP runs: 1)")
    g.add_argument("--dask", metavar="ADDRESS", default=None,
                   help=f"run the work on the Dask cluster at this scheduler (tcp://host:8786; default ${DASK_ENV}); "
                   "needs pip install 'ethos-kws[dask]'")
    g.add_argument("--dask-timeout", type=float, metavar="S", default=DEFAULT_DASK_TIMEOUT_S,
                   help="give up on an unreachable scheduler after this many seconds")
    return g


def open_work_pool(args):
    """The ``executors.WorkPool`` of --jobs/--dask/--dask-timeout; ``close()`` it when done (it
    holds the Dask connection and the local workers)."""
    from ..executors import WorkPool, dask_address, dask_runner

    check_jobs(args)
    address = dask_address(getattr(args, "dask", None))
    if address is None:
        return WorkPool(getattr(args, "jobs", None))
    connection = dask_runner(address, args.dask_timeout)
    return WorkPool(getattr(args, "jobs", None), connection.__enter__(),
                    on_close=lambda: connection.__exit__(None, None, None))


def check_jobs(args) -> None:
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        from ..errors import UserError

        raise UserError("--jobs must be at least 1")


def add_explore_axes_group(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The axes of ``explore``: each a comma list; the exploration is their product."""
    from ..accel import ACCELERATORS
    from ..vela import OPTIMISE_CHOICES

    g = p.add_argument_group("axes (each a comma-separated list; every combination is one point)")
    g.add_argument("--accel", "--accelerator-config", dest="accel", default="all", metavar="LIST",
                   help=f"accelerators, families (u55, u65, u85) or all ({', '.join(ACCELERATORS)})")
    g.add_argument("--system-config", metavar="LIST", help="system configs (default: each accelerator's)")
    g.add_argument("--memory-mode", metavar="LIST", help="memory modes (default: each accelerator's)")
    g.add_argument("--optimise", metavar="LIST", default=None,
                   help=f"{','.join(OPTIMISE_CHOICES)} or one of them (default: {DEFAULT_OPTIMISE})")
    g.add_argument("--arena-cache-size", metavar="LIST", default=None,
                   help="arena cache sizes, bytes or with KiB/MiB (e.g. 64KiB,256KiB; default: the memory mode's)")
    add_tensor_allocator_arg(g, many=True)
    add_config_arg(g)
    return g


def optimise_of(args) -> str:
    return getattr(args, "optimise", None) or DEFAULT_OPTIMISE


def add_backend_group(p: argparse.ArgumentParser, *, default_backend: str = "cpu") -> argparse._ArgumentGroup:
    """--backend and the CPU backend's --kernels. A backend gets only the flags it declares
    (``backend_options``); the Vela and FVP groups hold the other backends' flags."""
    from ..backends import BACKENDS
    from ..backends.cpu import DEFAULT_KERNELS, KERNELS

    g = p.add_argument_group("backend")
    g.add_argument("--backend", default=default_backend, choices=list(BACKENDS), help="where the model runs")
    g.add_argument("--kernels", choices=list(KERNELS), default=None,
                   help="cpu backend kernels: ref (LiteRT reference kernels), builtin (optimized), xnnpack (LiteRT's default delegate), tflm (TFLite Micro, the "
                   "parity oracle); default: " + DEFAULT_KERNELS)
    return g


def add_fvp_group(p: argparse.ArgumentParser, *, measure: bool = False) -> argparse._ArgumentGroup:
    """--platform (choices: the FVP target table), --fvp, --runner, --fvp-timeout (--timeout is
    its deprecated alias); with ``measure``, sweep's --measure fvp."""
    from ..backends.fvp.targets import DEFAULT_PLATFORM, load_targets

    platforms = sorted({t.platform for t in load_targets()})
    g = p.add_argument_group("FVP (needs an installed Corstone FVP; see `ethos-kws fvp doctor`)")
    if measure:
        g.add_argument("--measure", choices=("fvp",), help="measure every config on a Corstone FVP beside Vela's estimate")
    g.add_argument("--platform", choices=platforms, help=f"Corstone platform (default {DEFAULT_PLATFORM}; corstone-320 for U85)")
    g.add_argument("--fvp", metavar="PATH", help="FVP executable or install folder")
    g.add_argument("--runner", metavar="PATH", help="inference runner ELF (default: from mlia-ethos-u)")
    g.add_argument("--fvp-timeout", dest="fvp_timeout", type=float, metavar="S",
                   help="per-run FVP time limit in seconds")
    add_deprecated_alias(g, "--timeout", "--fvp-timeout", dest="fvp_timeout", type=float)
    return g


def add_output_group(p: argparse.ArgumentParser, *, out: str | None = None, required: bool = False,
                     json: bool = True) -> argparse._ArgumentGroup:
    """--out DIR (alias --output-dir, Vela's spelling) with the command's own help, and --json."""
    g = p.add_argument_group("output")
    if out is not None:
        g.add_argument("--out", "--output-dir", dest="out", metavar="DIR", required=required, default=None, help=out)
    if json:
        g.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return g


# argparse dest of a flag in the groups above -> the backend option it sets
BACKEND_FLAG_OPTIONS = {
    "kernels": "kernels",
    "accel": "accel",
    "system_config": "system_config",
    "memory_mode": "memory_mode",
    "optimise": "optimise",
    "arena_cache_size": "arena_cache_size",
    "legacy_core": "legacy_core",
    "config": "vela_ini",
    "platform": "platform",
    "fvp": "fvp",
    "runner": "runner",
    "fvp_timeout": "timeout_s",
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def backend_options_from_args(args, backend: str, *, warn=None) -> dict[str, Any]:
    """The options of ``backend`` that were given on the command line. A given flag the backend
    does not declare is not passed; ``warn`` (default: stderr) is told which do not apply."""
    from ..backends import backend_options

    accepted = backend_options(backend)
    given = {dest: getattr(args, dest) for dest in BACKEND_FLAG_OPTIONS if getattr(args, dest, None) is not None}
    unused = [_flag(dest) for dest in given if BACKEND_FLAG_OPTIONS[dest] not in accepted]
    if unused:
        say = warn or (lambda line: print(line, file=sys.stderr))
        say(f"ethos-kws: note: {', '.join(unused)} do{'es' if len(unused) == 1 else ''} not apply to "
            f"--backend {backend}; ignored")
    return {BACKEND_FLAG_OPTIONS[d]: v for d, v in given.items() if BACKEND_FLAG_OPTIONS[d] in accepted}


def add_deprecated_alias(p, old: str, new: str, **kwargs) -> None:
    """Accept ``old`` as a hidden spelling of ``new`` (same dest); using it says so on stderr."""

    class _Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"ethos-kws: note: {old} is deprecated; use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)

    p.add_argument(old, action=_Deprecated, help=argparse.SUPPRESS, **kwargs)


def add_count_arg(p, *, default: int, what: str = "random input vectors") -> None:
    """``--count N``: how many seeded random vectors (``vectors`` and ``parity`` alike)."""
    p.add_argument("--count", type=int, default=default, metavar="N", help=what)


def seed_value(text: str) -> int:
    """argparse type of --seed: numpy's generators take 0..2**63-1, not a negative number."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"{v} is outside 0..2**63-1")
    return v
