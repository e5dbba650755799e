"""Find an installed Corstone FVP and the generic inference runner ELF; never download either.

FVP search order (the first hit wins; an explicit path is authoritative):
``--fvp PATH`` > ``$ETHOS_KWS_FVP_DIR`` > ``PATH`` > an MLIA backend install (``mlia_config.json``
under ``$VIRTUAL_ENV/.mlia``, then ``~/.mlia``) > ``/opt/VHT`` (Arm Virtual Hardware images).

Runner: ``--runner PATH``, else the ELFs shipped in the PyPI wheel ``mlia-ethos-u``, located through
package metadata without importing MLIA.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ...errors import BackendUnavailable
from .targets import FvpTarget, load_targets

ENV_FVP_DIR = "ETHOS_KWS_FVP_DIR"
VHT_DIR = Path("/opt/VHT")
MLIA_CONFIG = "mlia_config.json"
RUNNER_DIST = "mlia-ethos-u"
RUNNER_APPS = "mlia/resources/backends/applications"
DOCTOR_HINT = "run `ethos-kws fvp doctor`"
FVP_DOWNLOAD_URL = (
    "https://developer.arm.com/tools-and-software/open-source-software/arm-platforms-software/"
    "arm-ecosystem-fvps"
)


@dataclass(frozen=True)
class Probe:
    """One place the search looked."""

    place: str  # "--fvp", "$ETHOS_KWS_FVP_DIR", "PATH", "MLIA backend", "/opt/VHT", ...
    where: str  # the path or setting examined
    found: str | None = None  # the file found there
    note: str = ""

    def to_dict(self) -> dict:
        return {"place": self.place, "where": self.where, "found": self.found, "note": self.note}


@dataclass(frozen=True)
class FvpInstall:
    target: FvpTarget
    executable: Path
    source: str  # Probe.place that found it
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment the FVP needs


@dataclass(frozen=True)
class FvpSearch:
    target: FvpTarget
    install: FvpInstall | None
    probes: tuple[Probe, ...]

    def require(self) -> FvpInstall:
        if self.install is None:
            places = ", ".join(dict.fromkeys(p.place for p in self.probes))
            raise BackendUnavailable(
                f"no {self.target.platform} FVP for Ethos-{self.target.npu} "
                f"({self.target.executable}) found in {places}; {DOCTOR_HINT}"
            )
        return self.install


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _in_dir(directory: Path, names: Iterable[str]) -> Path | None:
    """``names`` in ``directory`` or in an FVP install tree (``models/<host>/``)."""
    for name in names:
        candidates = [directory / name, *sorted(directory.glob(f"models/*/{name}"))]
        for candidate in candidates:
            if _is_executable(candidate):
                return candidate
    return None


def _runtime_env(executable: Path) -> dict[str, str]:
    """Newer FVPs (Corstone-310 11.27+, -320) link a bundled libpython3.9: point at it if present.

    The bundle sits at ``<install>/python`` (Arm's installer) or beside the executable (MLIA's
    copy).
    """
    for home in (executable.parent / "python", executable.parent.parent.parent / "python"):
        if (home / "lib").is_dir():
            lib = str(home / "lib")
            old = os.environ.get("LD_LIBRARY_PATH")
            return {"PYTHONHOME": str(home), "LD_LIBRARY_PATH": f"{lib}:{old}" if old else lib}
    return {}


def _other_target_named(name: str, target: FvpTarget) -> FvpTarget | None:
    for other in load_targets():
        if other != target and name in (other.executable, other.avh_executable):
            if name not in (target.executable, target.avh_executable):
                return other
    return None


def _probe_path(place: str, given: str, target: FvpTarget) -> tuple[Probe, Path | None]:
    path = Path(given).expanduser()
    names = (target.executable, target.avh_executable)
    if path.is_dir():
        hit = _in_dir(path, names)
        note = "" if hit else f"no executable {target.executable} in it or in its models/*/"
        return Probe(place, str(path), str(hit) if hit else None, note), hit
    if _is_executable(path):
        other = _other_target_named(path.name, target)
        if other is not None:
            note = f"this is the {other.platform} Ethos-{other.npu} FVP, not {target.key}"
            return Probe(place, str(path), None, note), None
        return Probe(place, str(path), str(path)), path
    note = "not an executable file" if path.exists() else "does not exist"
    return Probe(place, str(path), None, note), None


def mlia_repositories(environ: Mapping[str, str], home: Path) -> list[Path]:
    """MLIA's backend repositories, as MLIA itself would pick them, venv first."""
    repos = []
    if venv := environ.get("VIRTUAL_ENV"):
        repos.append(Path(venv).resolve() / ".mlia")
    repos.append(home / ".mlia")
    return list(dict.fromkeys(repos))


def _probe_mlia(repo: Path, target: FvpTarget) -> tuple[Probe, Path | None]:
    config = repo / MLIA_CONFIG
    place = "MLIA backend"
    if not config.is_file():
        return Probe(place, str(config), None, "no MLIA backend repository"), None
    try:
        backends = json.loads(config.read_text(encoding="utf-8")).get("backends", [])
        entry = next((b for b in backends if b.get("name") == target.mlia_backend), None)
    except (OSError, ValueError, AttributeError) as e:
        return Probe(place, str(config), None, f"unreadable: {e}"), None
    if entry is None:
        return Probe(place, str(config), None, f"no {target.mlia_backend} backend installed"), None
    settings = entry.get("settings") or {}
    if settings.get("backend_dir"):
        backend_path = repo / "backends" / settings["backend_dir"]
    elif settings.get("backend_path"):
        backend_path = Path(settings["backend_path"])
    else:
        return Probe(place, str(config), None, "backend entry has no path"), None
    name = target.avh_executable if settings.get("profile") == "AVH" else target.executable
    hit = _in_dir(backend_path, [name])
    note = "" if hit else f"{name} missing from {backend_path}"
    return Probe(place, str(config), str(hit) if hit else None, note), hit


def search_fvp(
    target: FvpTarget,
    explicit: str | os.PathLike | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    vht_dir: Path = VHT_DIR,
) -> FvpSearch:
    """Look for the FVP of ``target`` in every place, recording what each one held."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    probes: list[Probe] = []

    def found(probe: Probe, hit: Path | None) -> FvpSearch | None:
        probes.append(probe)
        if hit is None:
            return None
        install = FvpInstall(target, hit, probe.place, _runtime_env(hit))
        return FvpSearch(target, install, tuple(probes))

    if explicit is not None:  # the user said where: look nowhere else
        return found(*_probe_path("--fvp", str(explicit), target)) or FvpSearch(
            target, None, tuple(probes)
        )
    if env_dir := environ.get(ENV_FVP_DIR):
        if result := found(*_probe_path(f"${ENV_FVP_DIR}", env_dir, target)):
            return result
    else:
        probes.append(Probe(f"${ENV_FVP_DIR}", "", None, "not set"))
    search_path = environ.get("PATH", "")
    names = (target.executable, target.avh_executable)
    hit = next(filter(None, (shutil.which(n, path=search_path) for n in names)), None)
    note = "" if hit else f"neither {' nor '.join(names)} on PATH"
    if result := found(Probe("PATH", search_path, hit, note), Path(hit) if hit else None):
        return result
    for repo in mlia_repositories(environ, home):
        if result := found(*_probe_mlia(repo, target)):
            return result
    vht = vht_dir / target.avh_executable
    ok = _is_executable(vht)
    probe = Probe(str(vht_dir), str(vht), str(vht) if ok else None, "" if ok else "absent")
    if result := found(probe, vht if ok else None):
        return result
    return FvpSearch(target, None, tuple(probes))


def find_fvp(target: FvpTarget, explicit: str | os.PathLike | None = None) -> FvpInstall:
    """The FVP to run, or ``BackendUnavailable`` naming what is missing."""
    return search_fvp(target, explicit).require()


# ---- the generic inference runner --------------------------------------------------------------

_RUNNER_VERSION_RE = re.compile(r"inference_runner-sse-\d+-(\d+(?:\.\d+)*)-")


@dataclass(frozen=True)
class Runner:
    path: Path
    source: str  # "--runner" or "mlia-ethos-u <version>"
    version: str | None  # the evaluation kit release in the folder name ("26.03.0")


@dataclass(frozen=True)
class RunnerSearch:
    target: FvpTarget
    runner: Runner | None
    probes: tuple[Probe, ...]

    def require(self) -> Runner:
        if self.runner is None:
            raise BackendUnavailable(
                f"no inference runner for {self.target.key}: pass --runner PATH or "
                f"`pip install 'ethos-kws[fvp]'` (installs {RUNNER_DIST}); {DOCTOR_HINT}"
            )
        return self.runner


def _version_key(path: Path) -> tuple[int, ...]:
    m = _RUNNER_VERSION_RE.search(path.parent.name)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def runner_version(path: Path) -> str | None:
    m = _RUNNER_VERSION_RE.search(path.parent.name)
    return m.group(1) if m else None


def _runner_built_for(path: Path) -> FvpTarget | None:
    """The target whose runner folder pattern names ``path``'s folder (as in the wheel), if any."""
    for target in load_targets():
        if fnmatch.fnmatch(f"{path.parent.name}/{path.name}", target.runner_glob):
            return target
    return None


def _application_dirs(dist_paths: list[str] | None) -> list[tuple[Path, str]]:
    """``mlia/resources/backends/applications`` of installed ``mlia-ethos-u`` distributions."""
    out: list[tuple[Path, str]] = []
    where = {"path": dist_paths} if dist_paths is not None else {}
    for dist in importlib.metadata.distributions(name=RUNNER_DIST, **where):
        out.append((Path(str(dist.locate_file(RUNNER_APPS))), f"{RUNNER_DIST} {dist.version}"))
    if dist_paths is None:
        # an unusual install (no metadata on sys.path): fall back to where `mlia` would import from
        spec = importlib.util.find_spec("mlia")
        for base in (spec.submodule_search_locations or []) if spec else []:
            out.append((Path(base) / "resources" / "backends" / "applications", "mlia package"))
    return out


def search_runner(
    target: FvpTarget,
    explicit: str | os.PathLike | None = None,
    *,
    dist_paths: list[str] | None = None,
) -> RunnerSearch:
    if explicit is not None:
        path = Path(explicit).expanduser()
        built_for = _runner_built_for(path)
        if built_for is not None and built_for != target:
            note = f"built for {built_for.key}, not {target.key}"
            return RunnerSearch(target, None, (Probe("--runner", str(path), None, note),))
        if path.is_file():
            runner = Runner(path.resolve(), "--runner", runner_version(path))
            return RunnerSearch(target, runner, (Probe("--runner", str(path), str(path)),))
        probe = Probe("--runner", str(path), None, "not a file")
        return RunnerSearch(target, None, (probe,))
    probes = []
    for apps, source in _application_dirs(dist_paths):
        hits = sorted((p for p in apps.glob(target.runner_glob) if p.is_file()), key=_version_key)
        probe = Probe(source, str(apps), str(hits[-1]) if hits else None,
                      "" if hits else f"no {target.runner_glob}")
        probes.append(probe)
        if hits:
            runner = Runner(hits[-1], source, runner_version(hits[-1]))
            return RunnerSearch(target, runner, tuple(probes))
    if not probes:
        probes.append(Probe(RUNNER_DIST, "python environment", None, "not installed"))
    return RunnerSearch(target, None, tuple(probes))


def find_runner(target: FvpTarget, explicit: str | os.PathLike | None = None) -> Runner:
    return search_runner(target, explicit).require()


# ---- versions ----------------------------------------------------------------------------------

_FAST_MODELS_RE = re.compile(r"Fast Models \[(\d+(?:\.\d+)+)")
VERSION_TIMEOUT_S = 30.0


def parse_fvp_version(text: str) -> str | None:
    """``Fast Models [11.24.13 (Nov 29 2023)]`` -> ``11.24.13``."""
    m = _FAST_MODELS_RE.search(text)
    return m.group(1) if m else None


@functools.lru_cache(maxsize=16)
def _fvp_version(path: str, mtime_ns: int, env_items: tuple) -> tuple[str | None, str]:
    from .process import run_process

    try:
        outcome = run_process([path, "--version"], timeout_s=VERSION_TIMEOUT_S, env=dict(env_items))
    except OSError as e:
        return None, str(e)
    version = parse_fvp_version(outcome.output)
    first = outcome.output.strip().splitlines()[0] if outcome.output.strip() else ""
    return version, "" if version else (first or f"exit code {outcome.returncode}")


def fvp_version(install: FvpInstall) -> tuple[str | None, str]:
    """``(version, problem)`` from the FVP's own ``--version``; problem: its first line if the
    version cannot be read."""
    path = install.executable
    return _fvp_version(str(path), path.stat().st_mtime_ns, tuple(sorted(install.env.items())))


def vela_version() -> str:
    try:
        return importlib.metadata.version("ethos-u-vela")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
