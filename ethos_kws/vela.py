"""The Vela adapter (``ethos_kws.compile`` in the API): compile in-process, normalize Vela's CSVs into one result, cache by content.

Vela reports memory in KiB and time in seconds; ``CompileResult`` carries bytes, milliseconds and
hertz, with the unit in every field name. A compile is keyed by everything that can change its
output (model bytes, accelerator, system config, memory mode, optimise, arena cache size, Vela
version, ini content, compiler), so a repeated or interrupted sweep reuses finished work.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .accel import (
    Accelerator,
    check_memory_mode,
    check_system_config_fits,
    get_accelerator,
    get_system_config,
    memory_modes,
    vela_ini_path,
)
from .errors import CompileError, UserError
from .fsutil import atomic_dir, atomic_write_json
from .paths import cache_dir
from .tflite import load_tflite

OPTIMISE_CHOICES = ("Performance", "Size")
CACHE_FORMAT = 3  # bump when CompileResult or the cache layout changes
KIB = 1024


def vela_version() -> str:
    return importlib.metadata.version("ethos-u-vela")


@dataclass(frozen=True)
class LayerResult:
    name: str
    op: str
    cycles: int
    macs: int
    mac_utilization: float


@dataclass(frozen=True)
class CompileResult:
    accel: str
    system_config: str
    memory_mode: str
    optimise: str
    arena_cache_size_bytes: int | None
    compiler: str  # "regor" (Vela's default core) or "legacy" (--debug-force-legacy-core)
    core_clock_hz: float
    macs_per_cycle: int
    cycles_npu: int
    cycles_total: int
    inference_time_ms: float
    inferences_per_second: float
    sram_bytes: int
    flash_bytes: int
    dram_bytes: int
    npu_ops: int
    cpu_ops: int
    cpu_op_names: tuple[str, ...]
    macs: int
    mac_utilization: float
    encoded_weights_bytes: int
    original_weights_bytes: int
    vela_version: str
    model_sha256: str
    model_path: str
    compiled_model: str
    output_dir: str
    cache_key: str
    layers: tuple[LayerResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_op_names"] = list(self.cpu_op_names)
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompileResult":
        d = dict(d)
        d["cpu_op_names"] = tuple(d.get("cpu_op_names", ()))
        d["layers"] = tuple(LayerResult(**x) for x in d.get("layers", ()))
        return cls(**d)


@dataclass(frozen=True)
class CompileSpec:
    """Everything that determines Vela's output, resolved to explicit values."""

    model_path: str
    model_sha256: str
    accel: str
    system_config: str
    memory_mode: str
    optimise: str = "Performance"
    arena_cache_size: int | None = None
    legacy_core: bool = False

    @property
    def accelerator(self) -> Accelerator:
        return get_accelerator(self.accel)

    def cache_key(self) -> str:
        ini = vela_ini_path().read_bytes()
        key = {
            "format": CACHE_FORMAT,
            "model_sha256": self.model_sha256,
            "accel": self.accel,
            "system_config": self.system_config,
            "memory_mode": self.memory_mode,
            "optimise": self.optimise,
            "arena_cache_size": self.arena_cache_size,
            "legacy_core": self.legacy_core,
            "vela_version": vela_version(),
            "ini_sha256": hashlib.sha256(ini).hexdigest(),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def vela_argv(self, out_dir: Path) -> list[str]:
        argv = [
            self.model_path,
            "--accelerator-config", self.accelerator.vela_config,
            "--config", str(vela_ini_path()),
            "--system-config", self.system_config,
            "--memory-mode", self.memory_mode,
            "--optimise", self.optimise,
            "--output-dir", str(out_dir),
            "--verbose-performance",
        ]  # fmt: skip
        if self.arena_cache_size is not None:
            argv += ["--arena-cache-size", str(self.arena_cache_size)]
        if self.legacy_core:
            argv.append("--debug-force-legacy-core")
        return argv


def make_spec(
    model_path: str | os.PathLike,
    accel: str | Accelerator,
    *,
    system_config: str | None = None,
    memory_mode: str | None = None,
    optimise: str = "Performance",
    arena_cache_size: int | None = None,
    legacy_core: bool = False,
    model_sha256: str | None = None,
) -> CompileSpec:
    acc = accel if isinstance(accel, Accelerator) else get_accelerator(accel)
    system_config = system_config or acc.default_system_config
    get_system_config(system_config)
    check_system_config_fits(acc, system_config)
    memory_mode = check_memory_mode(memory_mode or acc.default_memory_mode)
    if optimise not in OPTIMISE_CHOICES:
        matches = [o for o in OPTIMISE_CHOICES if o.lower() == str(optimise).lower()]
        if not matches:
            raise UserError(f"unknown --optimise {optimise!r}; choose Performance or Size")
        optimise = matches[0]
    if arena_cache_size is not None and arena_cache_size <= 0:
        raise UserError(f"--arena-cache-size must be a positive number of bytes, got {arena_cache_size}")
    if model_sha256 is None:
        model_sha256 = load_tflite(model_path).sha256
    return CompileSpec(
        str(Path(model_path).resolve()), model_sha256, acc.name, system_config, memory_mode,
        optimise, arena_cache_size, legacy_core,
    )  # fmt: skip


def compile_cache_dir() -> Path:
    return cache_dir() / "compile"


ENTRY_DIGESTS = "digests.json"  # sha256 of every other file of a cache entry


def entry_digests(folder: Path) -> dict[str, str]:
    return {f.name: _sha256_file(f) for f in sorted(folder.iterdir()) if f.is_file() and f.name != ENTRY_DIGESTS}


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _CorruptEntry(Exception):
    pass


def _verify_entry(entry: Path, key: str) -> CompileResult:
    """The entry's result, after checking every file against its recorded sha256 and every
    field of compile.json against its type; ``_CorruptEntry`` naming the first problem."""
    try:
        recorded = json.loads((entry / ENTRY_DIGESTS).read_text())
    except (OSError, ValueError, RecursionError):
        raise _CorruptEntry(f"no readable {ENTRY_DIGESTS}") from None
    if not isinstance(recorded, dict) or "compile.json" not in recorded:
        raise _CorruptEntry(f"{ENTRY_DIGESTS} does not list the entry's files")
    try:
        actual = entry_digests(entry)
    except OSError as e:
        raise _CorruptEntry(f"unreadable file ({e.strerror})") from None
    for name in sorted(set(recorded) | set(actual)):
        if recorded.get(name) != actual.get(name):
            what = "missing" if name not in actual else "not recorded" if name not in recorded else "changed"
            raise _CorruptEntry(f"{name} {what}")
    try:
        result = CompileResult.from_dict(json.loads((entry / "compile.json").read_text()))
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        raise _CorruptEntry(f"compile.json does not describe a compile ({type(e).__name__})") from None
    problem = _type_problem(result)
    if problem:
        raise _CorruptEntry(f"compile.json: {problem}")
    if result.cache_key != key:
        raise _CorruptEntry("compile.json belongs to another entry")
    stored = Path(result.compiled_model)
    if stored.parent != Path(result.output_dir) or stored.name not in actual or not stored.name.endswith(".tflite"):
        raise _CorruptEntry("compiled_model points outside the entry")
    compiled = entry / stored.name
    # the paths are the entry's own, wherever the cache folder now is
    return replace(result, output_dir=str(entry), compiled_model=str(compiled))


_FIELD_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "int | None": (int, type(None))}


def _type_problem(result: CompileResult) -> str | None:
    import dataclasses
    import math

    for f in dataclasses.fields(result):
        want = _FIELD_TYPES.get(str(f.type))
        value = getattr(result, f.name)
        if want is None:
            continue
        if isinstance(value, bool) or not isinstance(value, want):
            return f"{f.name} is {value!r}, not {f.type}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{f.name} is {value!r}"
    for layer in result.layers:
        if not (isinstance(layer.cycles, int) and isinstance(layer.macs, int) and isinstance(layer.name, str)):
            return f"layer {layer.name!r} has malformed fields"
    if not all(isinstance(n, str) for n in result.cpu_op_names):
        return "cpu_op_names are not names"
    return None


def cached_result(spec: CompileSpec, problems: list[str] | None = None) -> CompileResult | None:
    """The verified cache entry of ``spec``, or None. A corrupt entry is removed (and named in
    ``problems``): it is compiled again, never used."""
    key = spec.cache_key()
    entry = compile_cache_dir() / key
    if not entry.is_dir():
        return None
    try:
        result = _verify_entry(entry, key)
    except _CorruptEntry as e:
        shutil.rmtree(entry, ignore_errors=True)
        if problems is not None:
            problems.append(f"cache entry {key} was corrupt ({e}); recompiled")
        return None
    return replace(result, model_path=spec.model_path)


def warn(message: str) -> None:
    print(f"ethos-kws: warning: {message}", file=sys.stderr)


def compile_model(
    model_path: str | os.PathLike,
    accel: str | Accelerator,
    *,
    system_config: str | None = None,
    memory_mode: str | None = None,
    optimise: str = "Performance",
    arena_cache_size: int | None = None,
    out_dir: str | os.PathLike | None = None,
    legacy_core: bool = False,
    use_cache: bool = True,
) -> CompileResult:
    """Compile one model for one accelerator with Vela, in-process; cached by content."""
    spec = make_spec(
        model_path, accel, system_config=system_config, memory_mode=memory_mode,
        optimise=optimise, arena_cache_size=arena_cache_size, legacy_core=legacy_core,
    )  # fmt: skip
    return compile_spec(spec, out_dir=out_dir, use_cache=use_cache)


def compile_spec(
    spec: CompileSpec, *, out_dir: str | os.PathLike | None = None, use_cache: bool = True,
    contained: bool = True,
) -> CompileResult:
    """``contained=False`` runs Vela in this very process: only for a disposable worker."""
    problems: list[str] = []
    result = cached_result(spec, problems) if use_cache else None
    if result is None:
        result = _run_vela_into_cache(spec, contained)
        for p in problems:
            warn(p)
    if out_dir is not None:
        result = export_result(result, Path(out_dir))
    return result


def export_result(result: CompileResult, out_dir: Path, *, staging: Path | None = None) -> CompileResult:
    """Copy a cached compile (model, CSVs, Vela log, compile.json) into ``out_dir``, replacing a
    previous export there (never a file or a foreign folder). With ``staging``, write into that
    folder instead: the caller puts it at ``out_dir`` (a sweep replaces its run folder whole)."""
    src = Path(result.output_dir)
    exported = replace(
        result,
        output_dir=str(out_dir.resolve()),
        compiled_model=str(out_dir.resolve() / Path(result.compiled_model).name),
    )

    def fill(tmp: Path) -> None:
        for f in src.iterdir():
            if f.name != "compile.json" and f.name != ENTRY_DIGESTS:
                shutil.copy2(f, tmp / f.name)
        atomic_write_json(tmp / "compile.json", exported.to_dict())

    if staging is not None:
        staging.mkdir(parents=True, exist_ok=True)
        fill(staging)
    else:
        with atomic_dir(out_dir, marker="compile.json") as tmp:
            fill(tmp)
    return exported


def _run_vela_into_cache(spec: CompileSpec, contained: bool = True) -> CompileResult:
    key = spec.cache_key()
    entry = compile_cache_dir() / key
    with atomic_dir(entry) as tmp:
        log_path = tmp / "vela_output.txt"
        if contained:
            log = run_vela_contained(spec.vela_argv(tmp), log_path, f"{Path(spec.model_path).name} for {spec.accel}")
        else:
            log = run_vela(spec.vela_argv(tmp), log_path=log_path)
        result = parse_vela_output(spec, tmp, log, key)
        final = replace(
            result,
            output_dir=str(entry),
            compiled_model=str(entry / Path(result.compiled_model).name),
        )
        atomic_write_json(tmp / "compile.json", final.to_dict())
        atomic_write_json(tmp / ENTRY_DIGESTS, entry_digests(tmp))
    return final


@contextlib.contextmanager
def _captured_output(log_path: Path | None = None) -> Iterator["_Holder"]:
    """Send fds 1 and 2 to a file: Vela's C++ core prints below Python's sys.stdout. With
    ``log_path`` the file is kept there, so a parent can read it even if this process dies."""
    sink_cm = log_path.open("w+b") if log_path is not None else tempfile.TemporaryFile(mode="w+b")
    with sink_cm as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            out = _Holder()
            with contextlib.redirect_stdout(sys.__stdout__), contextlib.redirect_stderr(sys.__stderr__):
                try:
                    yield out
                finally:
                    sys.__stdout__.flush()
                    sys.__stderr__.flush()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            out.text = sink.read().decode("utf-8", "replace")


class _Holder:
    text = ""


def run_vela(argv: list[str], log_path: Path | None = None) -> str:
    """Run ``vela.main(argv)`` in this process; return what it printed, raise on failure.
    A signal inside Vela kills this process: use ``run_vela_contained`` unless this process is
    itself a disposable worker."""
    from ethosu.vela import vela

    rc: Any = None
    error: BaseException | None = None
    with _captured_output(log_path) as out:
        try:
            rc = vela.main(argv)
        except SystemExit as e:  # argparse and some Vela checks exit
            rc = e.code
        except Exception as e:  # noqa: BLE001 - Vela raises many types; report them as one
            error = e
    text = out.text
    if error is not None or (rc not in (0, None)):
        detail = str(error) if error is not None else _last_error_line(text) or f"exit code {rc}"
        raise CompileError(f"Vela failed: {detail.strip().splitlines()[-1] if detail.strip() else detail}")
    return text


def run_vela_contained(argv: list[str], log_path: Path, what: str) -> str:
    """``run_vela`` in the reused worker process: a crash becomes ``CompileError``."""
    from .vela_worker import default_worker

    return default_worker().run(argv, log_path, what)


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower():
            return ln
    return lines[-1] if lines else ""


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def parse_vela_output(spec: CompileSpec, out: Path, log: str, key: str) -> CompileResult:
    stem = Path(spec.model_path).stem
    compiled = out / f"{stem}_vela.tflite"
    summary_path = out / f"{stem}_summary_{spec.system_config}.csv"
    layers_path = out / f"{stem}_per-layer.csv"
    if not compiled.is_file() or not summary_path.is_file():
        raise CompileError(f"Vela produced no compiled model for {spec.accel}; see its output:\n{log[-2000:]}")
    rows = _read_csv(summary_path)
    if len(rows) != 1:
        raise CompileError(f"unexpected Vela summary CSV {summary_path.name}: {len(rows)} rows")
    s = rows[0]
    acc = spec.accelerator

    def num(col: str) -> float:
        try:
            return float(s[col])
        except (KeyError, ValueError):
            raise CompileError(f"Vela summary CSV lacks a numeric {col!r} column") from None

    cycles_total = int(round(num("cycles_total")))
    macs = int(round(num("nn_macs")))
    layers = tuple(_layers(layers_path)) if layers_path.is_file() else ()
    compiled_model = load_tflite(compiled)
    cpu_ops = tuple(o.opcode for o in compiled_model.operators() if o.custom_code != "ethos-u")
    npu_ops = _count_from_log(log, "NPU operators")
    if npu_ops is None:
        npu_ops = sum(1 for layer in layers if layer.cycles or layer.macs)
    return CompileResult(
        accel=acc.name,
        system_config=spec.system_config,
        memory_mode=spec.memory_mode,
        optimise=spec.optimise,
        arena_cache_size_bytes=_arena_cache_size(spec, s),
        compiler="legacy" if spec.legacy_core else "regor",
        core_clock_hz=num("core_clock"),
        macs_per_cycle=acc.macs_per_cycle,
        cycles_npu=int(round(num("cycles_npu"))),
        cycles_total=cycles_total,
        inference_time_ms=num("inference_time") * 1e3,
        inferences_per_second=num("inferences_per_second"),
        sram_bytes=int(round(num("sram_memory_used") * KIB)),
        flash_bytes=int(round((num("off_chip_flash_memory_used") + num("on_chip_flash_memory_used")) * KIB)),
        dram_bytes=int(round(num("dram_memory_used") * KIB)),
        npu_ops=npu_ops,
        cpu_ops=len(cpu_ops),
        cpu_op_names=cpu_ops,
        macs=macs,
        mac_utilization=macs / (cycles_total * acc.macs_per_cycle) if cycles_total else 0.0,
        encoded_weights_bytes=int(round(num("total_npu_encoded_weights"))),
        original_weights_bytes=int(round(num("total_original_weights"))),
        vela_version=vela_version(),
        model_sha256=spec.model_sha256,
        model_path=spec.model_path,
        compiled_model=str(compiled),
        output_dir=str(out),
        cache_key=key,
        layers=layers,
    )


def _arena_cache_size(spec: CompileSpec, summary: dict[str, str]) -> int | None:
    """The fast-scratch size Vela compiled with, in bytes.

    Vela's summary CSV is not consistent here (a memory mode that sets ``arena_cache_size`` in the
    ini shows up as KiB, Vela's own default as bytes), so the explicit value and the ini win.
    """
    if spec.arena_cache_size is not None:
        return spec.arena_cache_size
    mode = memory_modes().get(spec.memory_mode, {})
    if "arena_cache_size" in mode:
        return int(float(mode["arena_cache_size"]))
    try:
        return int(float(summary["arena_cache_size"]))
    except (KeyError, ValueError):
        return None


def _count_from_log(log: str, label: str) -> int | None:
    for line in log.splitlines():
        if line.strip().startswith(label) and "=" in line:
            try:
                return int(line.split("=", 1)[1].split()[0])
            except (ValueError, IndexError):
                return None
    return None


def _layers(path: Path) -> Iterator[LayerResult]:
    for row in _read_csv(path):
        try:
            cycles = int(float(row.get("Op Cycles") or 0))
            macs = int(float(row.get("MAC Count") or 0))
            util = float(row.get("Util% (MAC)") or 0) / 100.0
        except ValueError:
            continue
        if cycles == 0 and macs == 0:
            continue  # activations Vela fused into the previous op
        yield LayerResult(
            name=row.get("Name", "").strip(),
            op=(row.get("NNG Operator") or row.get("Original Operator") or "").strip(),
            cycles=cycles,
            macs=macs,
            mac_utilization=util,
        )
