"""``ethos-kws fvp doctor``: what the FVP backend found, what is missing, how to fix it.

Looking never fails: every problem becomes an entry in ``missing`` with a step in ``fix``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform as host_platform
from dataclasses import dataclass, field
from typing import Any

from .discovery import (
    ENV_FVP_DIR,
    FVP_DOWNLOAD_URL,
    RUNNER_DIST,
    fvp_version,
    search_fvp,
    search_runner,
    vela_version,
)
from .targets import FvpTarget, load_targets


@dataclass(frozen=True)
class TargetStatus:
    target: FvpTarget
    fvp_path: str | None
    fvp_source: str | None
    fvp_version: str | None
    fvp_problem: str  # why the found FVP does not start ("" when it does or none was found)
    fvp_env: dict[str, str]
    fvp_probes: tuple[dict, ...]
    runner_path: str | None
    runner_source: str | None
    runner_version: str | None
    runner_probes: tuple[dict, ...]

    @property
    def ready(self) -> bool:
        return bool(self.fvp_path and self.runner_path and not self.fvp_problem)

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "platform": t.platform,
            "npu": t.npu,
            "executable": t.executable,
            "num_macs": list(t.num_macs),
            "memory_mode": t.memory_mode,
            "ready": self.ready,
            "fvp": {
                "path": self.fvp_path,
                "source": self.fvp_source,
                "version": self.fvp_version,
                "problem": self.fvp_problem or None,
                "env": self.fvp_env,
                "searched": list(self.fvp_probes),
            },
            "runner": {
                "path": self.runner_path,
                "source": self.runner_source,
                "version": self.runner_version,
                "searched": list(self.runner_probes),
            },
        }


@dataclass(frozen=True)
class DoctorReport:
    targets: tuple[TargetStatus, ...]
    runner_package_version: str | None
    vela_version: str
    host: dict[str, str]
    missing: tuple[str, ...]
    fix: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ready(self) -> bool:
        return any(t.ready for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "ready_targets": [t.target.key for t in self.targets if t.ready],
            "targets": [t.to_dict() for t in self.targets],
            "runner_package": {"name": RUNNER_DIST, "version": self.runner_package_version},
            "vela_version": self.vela_version,
            "host": self.host,
            "missing": list(self.missing),
            "fix": list(self.fix),
        }


def _status(
    target: FvpTarget, fvp: str | None, runner: str | None, check_version: bool
) -> TargetStatus:
    search = search_fvp(target, fvp)
    rsearch = search_runner(target, runner)
    version, problem = (None, "")
    if search.install is not None and check_version:
        version, problem = fvp_version(search.install)
    inst, r = search.install, rsearch.runner
    return TargetStatus(
        target=target,
        fvp_path=str(inst.executable) if inst else None,
        fvp_source=inst.source if inst else None,
        fvp_version=version,
        fvp_problem=problem,
        fvp_env=dict(inst.env) if inst else {},
        fvp_probes=tuple(p.to_dict() for p in search.probes),
        runner_path=str(r.path) if r else None,
        runner_source=r.source if r else None,
        runner_version=r.version if r else None,
        runner_probes=tuple(p.to_dict() for p in rsearch.probes),
    )


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _problem_fix(problem: str) -> str:
    if "libpython3.9" in problem:
        return (
            "the FVP needs libpython3.9: `source <fvp install>/scripts/runtime.sh`, or set "
            "PYTHONHOME=<fvp install>/python and LD_LIBRARY_PATH=<fvp install>/python/lib, "
            "or install libpython3.9 from your distribution"
        )
    if "executable stack" in problem:
        return (
            "glibc >= 2.41 refuses this FVP build (executable stack): install a newer FVP release, "
            "or run `patchelf --clear-execstack` on the library the error names"
        )
    return f"the FVP does not start (`<fvp> --version` said: {problem}); reinstall it"


def diagnose(
    *, fvp: str | None = None, runner: str | None = None, check_version: bool = True
) -> DoctorReport:
    statuses = tuple(_status(t, fvp, runner, check_version) for t in load_targets())
    missing: list[str] = []
    fix: list[str] = []
    no_fvp = [s for s in statuses if not s.fvp_path]
    if no_fvp:
        names = ", ".join(s.target.executable for s in no_fvp)
        missing.append(f"FVP executable(s) not found: {names}")
        if fvp is not None:
            fix.append(
                f"--fvp {fvp} holds none of them: pass the FVP executable or its install folder"
            )
        platforms = sorted({s.target.platform for s in no_fvp})
        fix += [
            f"download the {', '.join(p.title() for p in platforms)} FVP(s) for your host from "
            f"Arm: {FVP_DOWNLOAD_URL} (ethos-kws never downloads an FVP)",
            "run the FVP's installer yourself, e.g. `./FVP_Corstone_SSE-300.sh -d "
            "~/FVP_Corstone_SSE-300`; it asks you to accept Arm's EULA, which only you can do",
            f"then either `export {ENV_FVP_DIR}=~/FVP_Corstone_SSE-300`, or add "
            "`~/FVP_Corstone_SSE-300/models/Linux64_GCC-9.3` to PATH, or pass `--fvp PATH`",
            "MLIA users: "
            + ", ".join(f"`mlia backend install {b}`" for b in sorted({x.target.mlia_backend for x in no_fvp}))
            + " installs it where ethos-kws also looks ($VIRTUAL_ENV/.mlia or ~/.mlia)",
        ]
        if any(x.target.platform == "corstone-320" for x in no_fvp):
            fix.append(
                "Corstone-320 (Ethos-U85) links the Python 3.9 it ships in <install>/python: keep "
                "that folder beside models/ (ethos-kws then sets PYTHONHOME and LD_LIBRARY_PATH)"
            )
    for s in statuses:
        if s.fvp_problem:
            missing.append(f"{s.target.executable} at {s.fvp_path} does not start: {s.fvp_problem}")
            fix.append(_problem_fix(s.fvp_problem))
    no_runner = [s for s in statuses if not s.runner_path]
    if no_runner:
        names = ", ".join(s.target.key for s in no_runner)
        missing.append(f"generic inference runner not found for: {names}")
        if runner is not None:
            notes = sorted({p["note"] for s in no_runner for p in s.runner_probes if p["note"]})
            fix.append(
                f"--runner {runner}: {'; '.join(notes)}; pass the inference runner ELF (.axf) "
                "built for the target you run"
            )
        else:
            fix.append(
                f"`pip install 'ethos-kws[fvp]'` (the PyPI wheel {RUNNER_DIST}, ~11 MB, ships the "
                "runners) or pass `--runner PATH` to an evaluation-kit inference_runner .axf"
            )
    fix = list(dict.fromkeys(fix))
    libc = host_platform.libc_ver()
    host = {
        "system": host_platform.system(),
        "machine": host_platform.machine(),
        "libc": " ".join(x for x in libc if x) or "unknown",
        "virtual_env": os.environ.get("VIRTUAL_ENV", ""),
    }
    return DoctorReport(
        targets=statuses,
        runner_package_version=_package_version(RUNNER_DIST),
        vela_version=vela_version(),
        host=host,
        missing=tuple(missing),
        fix=tuple(fix),
    )


def format_report(report: DoctorReport) -> str:
    lines = ["Corstone FVP backend"]
    for s in report.targets:
        t = s.target
        state = "ready" if s.ready else "not ready"
        lines.append(f"  {t.platform} Ethos-{t.npu}  [{state}]")
        if s.fvp_path:
            version = s.fvp_version or "version unknown"
            lines.append(f"    FVP     {s.fvp_path} ({s.fvp_source}; {version})")
            if s.fvp_problem:
                lines.append(f"            does not start: {s.fvp_problem}")
        else:
            looked = "; ".join(
                f"{p['place']}: {p['note']}" for p in s.fvp_probes if p["note"]
            )
            lines.append(f"    FVP     {t.executable} not found ({looked})")
        if s.runner_path:
            v = f" {s.runner_version}" if s.runner_version else ""
            lines.append(f"    runner  {s.runner_path} ({s.runner_source}{v})")
        else:
            lines.append("    runner  not found")
        lines.append(f"    Vela    --memory-mode {t.memory_mode}; {t.npu_prefix}num_macs "
                     f"{'/'.join(map(str, t.num_macs))}")
    lines.append(f"  {RUNNER_DIST}: {report.runner_package_version or 'not installed'}; "
                 f"ethos-u-vela {report.vela_version}; host {report.host['system']} "
                 f"{report.host['machine']} {report.host['libc']}")
    if report.missing:
        lines.append("Missing:")
        lines += [f"  - {m}" for m in report.missing]
    if report.fix:
        lines.append("To fix:")
        lines += [f"  {i}. {step}" for i, step in enumerate(report.fix, 1)]
    if report.ready:
        lines.append("Ready: " + ", ".join(s.target.key for s in report.targets if s.ready))
    return "\n".join(lines)
