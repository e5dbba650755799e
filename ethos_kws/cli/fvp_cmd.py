"""``ethos-kws fvp doctor``: the Corstone FVP setup (runs go through ``run --backend fvp``)."""

from __future__ import annotations

from .common import add_command, add_json_arg, print_json

DOCTOR_DESCRIPTION = """\
Look for the Corstone-300/-310 FVPs and the generic inference runner the fvp backend needs, and
say what was found (paths, versions), what is missing and the exact steps to fix it. Nothing is
downloaded or installed. Exit code 0 whenever the search could run, whatever it found.

FVP search order: --fvp, $ETHOS_KWS_FVP_DIR, PATH, an MLIA backend install
($VIRTUAL_ENV/.mlia or ~/.mlia), /opt/VHT. Runner: --runner, else the mlia-ethos-u wheel
(pip install 'ethos-kws[fvp]').
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fvp",
        help="Corstone FVP backend setup (doctor)",
        description="Corstone FVP backend utilities. Runs use `ethos-kws run --backend fvp`.",
    )
    sub = p.add_subparsers(dest="fvp_command", metavar="SUBCOMMAND")
    d = add_command(
        sub, "doctor", help="what the FVP backend found and how to fix what is missing",
        description=DOCTOR_DESCRIPTION, func=_doctor,
    )  # fmt: skip
    d.add_argument("--fvp", metavar="PATH", default=None,
                   help="FVP executable or install folder to check instead of searching")
    d.add_argument("--runner", metavar="PATH", default=None,
                   help="inference runner ELF to check instead of the mlia-ethos-u wheel")
    d.add_argument("--no-version", action="store_true",
                   help="do not start the FVP to ask its version")
    add_json_arg(d)
    p.set_defaults(func=lambda args: _no_subcommand(p))


def _no_subcommand(parser) -> int:
    parser.print_help()
    return 2


def _doctor(args) -> int:
    from ..backends.fvp.doctor import diagnose, format_report

    report = diagnose(fvp=args.fvp, runner=args.runner, check_version=not args.no_version)
    if args.json:
        print_json(report.to_dict())
    else:
        print(format_report(report))
    return 0
