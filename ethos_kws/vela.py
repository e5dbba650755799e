"""The Vela adapter (``ethos_kws.compile`` in the API): compile in-process, normalize Vela's CSVs into one result, cache by content.

Vela reports memory in KiB and time in seconds; ``CompileResult`` carries bytes, milliseconds and
hertz, with the unit in every field name. A compile is keyed by everything that can change its
output (model bytes, accelerator, system config, memory mode, optimise, arena cache size, Vela
version, ini content, compiler), so a repeated or interrupted sweep reuses finished work.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .accel import (
    Accelerator,
    check_memory_mode,
    check_memory_mode_fits,
    check_system_config_fits,
    get_accelerator,
    get_system_config,
    vela_ini_path,
)
from .cpu_fallback import CpuOperator, cpu_operators
from .errors import CompileError, UserError
from .fsutil import atomic_dir, atomic_write_json, atomic_write_text
from .layers import LayerResult, layers_csv_text, parse_layers
from .memory_map import Allocation, parse_allocations
from .records import Record, check_schema, metric, versioned
from .paths import cache_dir
from .tflite import load_tflite
from .vela_debug import debug_db_path, layer_bytes
from .vela_ini import INI_FILE_NAME, UserIni

OPTIMISE_CHOICES = ("Performance", "Size")
TENSOR_ALLOCATORS = ("LinearAlloc", "Greedy", "HillClimb")  # Vela 5.2 --tensor-allocator
DEFAULT_TENSOR_ALLOCATOR = "HillClimb"  # Vela's default
CACHE_FORMAT = 9  # bump when CompileResult or the cache layout changes (8: legacy compiles before
# reset_vela_state could carry an earlier compile's state: never reuse them; 9: the per-layer lists
# in their own detail.json)
KIB = 1024
LAYERS_CSV = "layers.csv"  # every layer, every cost, written beside Vela's own CSVs


@functools.lru_cache(maxsize=1)
def vela_version() -> str:
    # once per process: every cache key asks, and the metadata lookup scans sys.path
    return importlib.metadata.version("ethos-u-vela")


@dataclass(frozen=True)
class CompileResult(Record):
    """One Vela compile, normalized. The ``metric`` metadata is where each figure's label, unit and
    direction are defined; the report, ``results.csv``, ``check`` and ``compare`` read it."""

    accel: str
    system_config: str
    memory_mode: str
    optimise: str
    arena_cache_size_bytes: int | None = metric("arena cache size", "bytes")
    compiler: str  # "regor" (Vela's default core) or "legacy" (--debug-force-legacy-core)
    core_clock_hz: float = metric("core clock", "hz")
    macs_per_cycle: int = metric("MACs per cycle", "count")
    cycles_npu: int = metric("cycles (NPU)", "cycles", better="lower", gate=True)
    cycles_total: int = metric("cycles (total)", "cycles", better="lower", gate=True, short="cycles")
    inference_time_ms: float = metric("inference time", "ms", better="lower", short="time ms")
    # None when Vela estimates no NPU time (every operator on the CPU): its CSV then says nan
    inferences_per_second: float | None = metric("inferences/s", "per_s", better="higher", short="inf/s")
    sram_bytes: int = metric("SRAM", "bytes", better="lower", gate=True, short="SRAM KiB")
    flash_bytes: int = metric("flash", "bytes", better="lower", gate=True, short="flash KiB")
    dram_bytes: int = metric("DRAM", "bytes", better="lower", gate=True, short="DRAM KiB")
    npu_ops: int = metric("NPU ops", "count", better="lower")
    cpu_ops: int = metric("CPU ops", "count", better="lower")
    cpu_op_names: tuple[str, ...]
    macs: int = metric("MACs", "count")
    mac_utilization: float = metric("MAC utilization", "ratio", better="higher", short="MAC util")
    encoded_weights_bytes: int = metric("encoded weights", "bytes", better="lower")
    original_weights_bytes: int = metric("original weights", "bytes")
    vela_version: str
    model_sha256: str
    model_path: str
    compiled_model: str
    output_dir: str
    cache_key: str
    layers: tuple[LayerResult, ...] = field(default_factory=tuple)
    inference_time_source: str = "vela"  # inference_time_ms is Vela's estimate of the NPU's time
    cpu_operators: tuple[CpuOperator, ...] = field(default_factory=tuple)  # with Vela's reasons
    ini_sha256: str = ""  # the Vela ini compiled with (part of the gate's identity check)
    # peak bytes per core clock cycle of each memory, as Vela computed them from the ini
    memory_bytes_per_cycle: dict[str, float] = field(default_factory=dict)
    allocations: tuple[Allocation, ...] = field(default_factory=tuple)  # Vela's tensor allocation
    tensor_allocator: str = DEFAULT_TENSOR_ALLOCATOR
    vela_ini: str = ""  # the user's --config ini, or Vela's own when none was given
    vela_ini_sha256: str = ""  # sha256 of that file (ini_sha256 covers everything Vela read)
    axi0_port: str = ""  # the system config's memories, as the ini maps them
    axi1_port: str = ""
    axi0_bytes_per_cycle: float | None = None  # peak bandwidth of those memories, per core cycle
    axi1_bytes_per_cycle: float | None = None


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
    tensor_allocator: str | None = None  # None: Vela's default (HillClimb)
    user_ini_path: str = ""  # --config, for messages and results; the text is what counts
    user_ini_text: str = ""  # carried, so a worker without the file can compile

    @property
    def accelerator(self) -> Accelerator:
        return get_accelerator(self.accel)

    def ini_sha256(self) -> str:
        """Everything Vela reads as configuration: its own ini, then the user's."""
        return _ini_digest(_vela_ini_stamp(), self.user_ini_text)

    def vela_ini_sha256(self) -> str:
        if self.user_ini_text:
            return _ini_digest(None, self.user_ini_text)
        return _ini_digest(_vela_ini_stamp(), "")

    def ini_parser(self):
        """Vela's ini and the user's, read as one (as Vela reads them), from the carried text.
        Shared and read-only: do not modify it."""
        return _ini_parser(_vela_ini_stamp(), self.user_ini_text, self.user_ini_path)

    def cache_key(self) -> str:
        key = {
            "format": CACHE_FORMAT,
            "model_sha256": self.model_sha256,
            "accel": self.accel,
            "system_config": self.system_config,
            "memory_mode": self.memory_mode,
            "optimise": self.optimise,
            "arena_cache_size": self.arena_cache_size,
            "legacy_core": self.legacy_core,
            "tensor_allocator": self.tensor_allocator,
            "vela_version": vela_version(),
            "ini_sha256": self.ini_sha256(),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def vela_argv(self, out_dir: Path, user_ini_file: Path | None = None) -> list[str]:
        """``user_ini_file``: where the carried user ini was written (required when there is one)."""
        if self.user_ini_text and user_ini_file is None:
            raise ValueError("a spec with a user ini needs the file it was written to")
        argv = [
            self.model_path,
            "--accelerator-config", self.accelerator.vela_config,
            "--config", str(vela_ini_path()),
            *(["--config", str(user_ini_file)] if self.user_ini_text else []),
            "--system-config", self.system_config,
            "--memory-mode", self.memory_mode,
            "--optimise", self.optimise,
            "--output-dir", str(out_dir),
            "--verbose-performance",
            "--verbose-allocation",  # the tensor allocation behind the memory map
            "--enable-debug-db",  # bytes per layer and memory, for the roofline
        ]  # fmt: skip
        if self.arena_cache_size is not None:
            argv += ["--arena-cache-size", str(self.arena_cache_size)]
        if self.legacy_core:
            argv.append("--debug-force-legacy-core")
        if self.tensor_allocator is not None:
            argv += ["--tensor-allocator", self.tensor_allocator]
        return argv


def _vela_ini_stamp() -> tuple:
    """What identifies the content of Vela's own ini (path, mtime, size): the key of the two
    memos below, so it is read and hashed once per process, not once per spec (a 96-point
    exploration asks for 96 cache keys)."""
    path = vela_ini_path()
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _ini_digest(vela_stamp: tuple | None, user_text: str) -> str:
    """sha256 of Vela's ini (when ``vela_stamp``), then "\0" and the user's ini text (when any)."""
    h = hashlib.sha256(Path(vela_stamp[0]).read_bytes() if vela_stamp else b"")
    if user_text:
        h.update((b"\0" if vela_stamp else b"") + user_text.encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _ini_parser(vela_stamp: tuple, user_text: str, user_path: str):
    import configparser

    cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cp.optionxform = str
    cp.read_string(Path(vela_stamp[0]).read_text(), source="vela.ini")
    if user_text:
        cp.read_string(user_text, source=user_path or "user.ini")
    return cp


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
    tensor_allocator: str | None = None,
    user_ini: "UserIni | None" = None,
) -> CompileSpec:
    """``user_ini``: the checked ``--config`` ini (``vela_ini.load_user_ini``)."""
    acc = accel if isinstance(accel, Accelerator) else get_accelerator(accel)
    ini = user_ini.path if user_ini else None
    system_config = system_config or acc.default_system_config
    get_system_config(system_config, ini)
    check_system_config_fits(acc, system_config, ini)
    memory_mode = check_memory_mode(memory_mode or acc.default_memory_mode, ini)
    check_memory_mode_fits(system_config, memory_mode, ini)
    if tensor_allocator is not None:
        matches = [t for t in TENSOR_ALLOCATORS if t.lower() == str(tensor_allocator).lower()]
        if not matches:
            raise UserError(f"unknown --tensor-allocator {tensor_allocator!r}; choose {', '.join(TENSOR_ALLOCATORS)}")
        tensor_allocator = matches[0]
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
        optimise, arena_cache_size, legacy_core, tensor_allocator,
        user_ini.path if user_ini else "", user_ini.text if user_ini else "",
    )  # fmt: skip


def compile_cache_dir() -> Path:
    return cache_dir() / "compile"


ENTRY_DIGESTS = "digests.json"  # sha256 of every other file of a cache entry


def entry_digests(folder: Path) -> dict[str, str]:
    return {name: _sha256_file(folder / name) for name in _entry_files(folder)}


def _entry_files(folder: Path) -> list[str]:
    """The names of an entry's files, ``digests.json`` aside (one scandir, no stat per file)."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and e.name != ENTRY_DIGESTS)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _CorruptEntry(Exception):
    pass


# the per-layer lists of a compile: most of compile.json's size and of the time to read it back.
# A cache entry keeps them in DETAIL_JSON, so a caller that only tabulates the totals (explore) reads
# a few KiB of JSON per entry; the file is still checked against its digest. An exported folder's
# compile.json holds everything.
DETAIL_FIELDS = ("layers", "allocations")
DETAIL_JSON = "detail.json"


def _verify_entry(entry: Path, key: str, detail: bool = True) -> CompileResult:
    """The entry's result, after checking every file against its recorded sha256 and every
    field of compile.json against its type; ``_CorruptEntry`` naming the first problem."""
    try:
        recorded = json.loads((entry / ENTRY_DIGESTS).read_text())
    except (OSError, ValueError, RecursionError):
        raise _CorruptEntry(f"no readable {ENTRY_DIGESTS}") from None
    if not isinstance(recorded, dict) or "compile.json" not in recorded:
        raise _CorruptEntry(f"{ENTRY_DIGESTS} does not list the entry's files")
    parsed = ("compile.json", DETAIL_JSON) if detail else ("compile.json",)
    try:
        # every file hashed once; the JSON parsed from the very bytes that were hashed
        names = _entry_files(entry)
        data = {name: (entry / name).read_bytes() for name in parsed if name in names}
        actual = {name: hashlib.sha256(data[name]).hexdigest() if name in data else _sha256_file(entry / name)
                  for name in names}
    except OSError as e:
        raise _CorruptEntry(f"unreadable file ({e.strerror})") from None
    for name in sorted(set(recorded) | set(actual)):
        if recorded.get(name) != actual.get(name):
            what = "missing" if name not in actual else "not recorded" if name not in recorded else "changed"
            raise _CorruptEntry(f"{name} {what}")
    if DETAIL_JSON not in actual:
        raise _CorruptEntry(f"{DETAIL_JSON} missing")
    try:
        doc = json.loads(data["compile.json"])
        check_schema(doc, "compile.json")
        if not isinstance(doc, dict) or any(k in doc for k in DETAIL_FIELDS):
            raise ValueError("per-layer lists outside detail.json")
        if detail:
            more = json.loads(data[DETAIL_JSON])
            check_schema(more, DETAIL_JSON)
            if not isinstance(more, dict):
                raise ValueError(DETAIL_JSON)
            doc.update({k: more[k] for k in DETAIL_FIELDS if k in more})
        result = CompileResult.from_dict(doc)
    except (ValueError, TypeError, KeyError, RecursionError, UserError) as e:
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


_FIELD_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                "int | None": (int, type(None)), "float | None": (int, float, type(None)),
                "str | None": (str, type(None))}


def _type_problem(record: Any, where: str = "") -> str | None:
    """The first field of a (nested) result record whose value is not of its declared type."""
    import dataclasses
    import math

    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        want = _FIELD_TYPES.get(str(f.type))
        if want is not None:
            if isinstance(value, bool) and bool not in want or not isinstance(value, want):
                return f"{where}{f.name} is {value!r}, not {f.type}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"{where}{f.name} is {value!r}"
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    problem = _type_problem(item, f"{where}{f.name}[{i}].")
                    if problem:
                        return problem
                elif str(f.type) == "tuple[str, ...]" and not isinstance(item, str):
                    return f"{where}{f.name}[{i}] is {item!r}, not a string"
    return None


def cached_result(spec: CompileSpec, problems: list[str] | None = None, *, detail: bool = True) -> CompileResult | None:
    """The verified cache entry of ``spec``, or None. A corrupt entry is removed (and named in
    ``problems``): it is compiled again, never used. ``detail=False`` leaves out the per-layer
    lists (``DETAIL_FIELDS``), for callers that only tabulate the totals."""
    key = spec.cache_key()
    entry = compile_cache_dir() / key
    if not entry.is_dir():
        return None
    try:
        result = _verify_entry(entry, key, detail)
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
    tensor_allocator: str | None = None,
    user_ini: UserIni | None = None,
) -> CompileResult:
    """Compile one model for one accelerator with Vela, in-process; cached by content."""
    spec = make_spec(
        model_path, accel, system_config=system_config, memory_mode=memory_mode,
        optimise=optimise, arena_cache_size=arena_cache_size, legacy_core=legacy_core,
        tensor_allocator=tensor_allocator, user_ini=user_ini,
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
            if f.name not in ("compile.json", DETAIL_JSON, ENTRY_DIGESTS):  # compile.json: written whole below
                shutil.copy2(f, tmp / f.name)
        atomic_write_json(tmp / "compile.json", versioned(exported.to_dict()))

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
        result = _compile_into(spec, tmp, key, contained)
        final = _finish_entry(result, tmp, entry)
    return final


def _compile_into(spec: CompileSpec, out: Path, key: str, contained: bool) -> CompileResult:
    """Vela's output, layers.csv and the user's ini (when any) in ``out``; the result names them.
    (layers.csv is made per compile, though an exploration never reads it: a compile's folder,
    the cache entry for ``compile_model`` without ``out_dir``, promises it.)"""
    user_ini = None
    if spec.user_ini_text:
        user_ini = out / INI_FILE_NAME
        atomic_write_text(user_ini, spec.user_ini_text)
    log_path = out / "vela_output.txt"
    argv = spec.vela_argv(out, user_ini)
    if contained and _disposable_process():
        contained = False
    if contained:
        log = run_vela_contained(argv, log_path, f"{Path(spec.model_path).name} for {spec.accel}")
    else:
        log = run_vela(argv, log_path=log_path)
    result = parse_vela_output(spec, out, log, key)
    atomic_write_text(out / LAYERS_CSV, layers_csv_text(result.layers))
    return result


def _finish_entry(result: CompileResult, tmp: Path, entry: Path, doc: dict | None = None) -> CompileResult:
    """``doc``: ``result.to_dict()`` when the caller has it (a worker's compile): not made again."""
    final = replace(result, output_dir=str(entry), compiled_model=str(entry / Path(result.compiled_model).name))
    if doc is None:
        doc = final.to_dict()
    doc = versioned({**doc, "output_dir": final.output_dir, "compiled_model": final.compiled_model})
    # compact: json's C encoder (an indented document is encoded in Python, several times slower,
    # and every point of an exploration writes one); exports write theirs indented
    atomic_write_json(tmp / DETAIL_JSON, versioned({k: doc.pop(k, []) for k in DETAIL_FIELDS}), indent=None)
    atomic_write_json(tmp / "compile.json", doc, indent=None)
    atomic_write_json(tmp / ENTRY_DIGESTS, entry_digests(tmp))
    return final


def compile_portable(spec: CompileSpec, model_bytes: bytes, key: str, client_vela: str) -> tuple[dict, dict[str, bytes]]:
    """One compile on a machine that shares no file system with the client (a Dask worker):
    the model arrives as bytes, the result and every output file go back as bytes, and the client
    stores them (``store_portable``). Vela runs in this process: the worker is the containment."""
    if vela_version() != client_vela:
        raise CompileError(f"this worker has Vela {vela_version()}, the client {client_vela}: install the same version")
    from .backends import model_file_from_bytes

    # the model is kept once per content on this worker (checked against its sha256): every
    # compile of an exploration reuses that file, and what is parsed from it per process
    model = model_file_from_bytes(model_bytes, spec.model_sha256, Path(spec.model_path).name)
    with tempfile.TemporaryDirectory(prefix="ethos-kws-remote-") as d:
        out = Path(d) / "out"
        out.mkdir()
        result = _compile_into(replace(spec, model_path=str(model)), out, key, contained=False)
        files = {f.name: f.read_bytes() for f in sorted(out.iterdir()) if f.is_file()}
    return result.to_dict(), files


def store_portable(spec: CompileSpec, result_doc: dict, files: dict[str, bytes], *, detail: bool = True) -> CompileResult:
    """Put a worker's compile into this machine's cache; the paths become this machine's.
    ``detail=False``: the result returned lacks the per-layer lists (``DETAIL_FIELDS``), as
    ``cached_result(detail=False)``'s; they are stored all the same, and checked when read."""
    key = spec.cache_key()
    entry = compile_cache_dir() / key
    with atomic_dir(entry) as tmp:
        for name, data in files.items():
            if Path(name).name != name or name in ("compile.json", DETAIL_JSON, ENTRY_DIGESTS):
                raise CompileError(f"a worker returned an unexpected file {name!r}")
            (tmp / name).write_bytes(data)
        # the worker's document, with this machine's paths: read (and so checked) once, and
        # written as it came rather than serialised again (a client stores every point of an
        # exploration, while its workers compile)
        doc = {k: v for k, v in result_doc.items() if k != "schema_version"}
        doc.update(model_path=spec.model_path, vela_ini=spec.user_ini_path or str(vela_ini_path()))
        result = CompileResult.from_dict(doc if detail else {k: v for k, v in doc.items() if k not in DETAIL_FIELDS})
        problem = _type_problem(result)
        if problem:
            raise CompileError(f"a worker returned a compile this client cannot read: {problem}")
        final = _finish_entry(result, tmp, entry, doc)
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


def _import_vela():
    """Import Vela with the real stdout in place. Vela's ``stats_writer`` binds ``sys.stdout`` as a
    default argument (``f=sys.stdout``) at import time; imported while a caller had replaced
    ``sys.stdout`` (pytest's capture, a notebook, contextlib.redirect_stdout), every later legacy-core
    compile would print its summary to that stream, closed by then ("I/O operation on closed
    file"). Rebinding such defaults to ``sys.__stdout__`` keeps the fd-level capture below working."""
    with contextlib.redirect_stdout(sys.__stdout__), contextlib.redirect_stderr(sys.__stderr__):
        from ethosu.vela import stats_writer, vela
    for fn in vars(stats_writer).values():
        defaults = getattr(fn, "__defaults__", None)
        if callable(fn) and defaults and any(d is not sys.__stdout__ and hasattr(d, "write") for d in defaults):
            fn.__defaults__ = tuple(sys.__stdout__ if hasattr(d, "write") else d for d in defaults)
    return vela


# Class attributes of Vela's legacy compiler that hold one compile's state for the life of the
# process (Vela's CLI compiles once per process): DebugDatabase's tables, which would otherwise
# accumulate every earlier compile's rows into each *_debug.xml.
_DEBUG_DATABASE_TABLES = ("_sourceUID", "_sourceTable", "_optimisedUID", "_optimisedTable",
                          "_queueTable", "_streamUID", "_streamTable")


def reset_vela_state() -> None:
    """Clear what one legacy compile leaves in the process before the next (the worker reuses its
    process). ``TensorAddressMap`` keeps tensor addresses by equivalence id and outlives the
    compile: compiling a conv + LOGISTIC model for u55-32 and then u55-128 in one process failed
    on its LUT tensor with "Two different addresses cannot be assigned to the same tensor" (each
    compile alone succeeds)."""
    from ethosu.vela import tensor
    from ethosu.vela.debug_database import DebugDatabase

    tensor.TensorAddressMap.address_map.clear()
    # memoised: equal constant values get one equivalence id, meant within one compile; across
    # compiles a constant took an address the map held from an earlier model's compile
    clear = getattr(tensor.create_equivalence_id, "cache_clear", None)
    if clear is not None:
        clear()
    for name in _DEBUG_DATABASE_TABLES:
        table = getattr(DebugDatabase, name, None)
        if table is not None:
            table.clear()


def run_vela(argv: list[str], log_path: Path | None = None) -> str:
    """Run ``vela.main(argv)`` in this process; return what it printed, raise on failure.
    A signal inside Vela kills this process: use ``run_vela_contained`` unless this process is
    itself a disposable worker."""
    vela = _import_vela()
    reset_vela_state()

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


def _disposable_process() -> bool:
    """A daemonic process (a Dask worker, which its nanny restarts after a crash) cannot start
    the containing worker process and needs none: a crash there costs the one unit of work."""
    import multiprocessing

    return multiprocessing.current_process().daemon


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
            value = float(s[col])
        except (KeyError, ValueError):
            raise CompileError(f"Vela summary CSV lacks a numeric {col!r} column") from None
        if not math.isfinite(value):
            raise CompileError(f"Vela summary CSV gives {col} = {s[col]!r}, not a finite number")
        return value

    cycles_total = int(round(num("cycles_total")))
    macs = int(round(num("nn_macs")))
    moved = layer_bytes(debug_db_path(out, stem))
    layers = parse_layers(layers_path, spec.model_path, moved) if layers_path.is_file() else ()
    cpu_fallback = cpu_operators(compiled, log)
    cpu_ops = tuple(c.op for c in cpu_fallback)
    bandwidth = _bytes_per_cycle(s, num("core_clock"))
    ports = _ports(spec)
    npu_ops = _count_from_log(log, "NPU operators")
    if npu_ops is None:
        npu_ops = sum(1 for layer in layers if layer.target == "NPU" and (layer.cycles or layer.macs))
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
        # Vela writes nan here when it estimates no NPU time (every operator on the CPU)
        inferences_per_second=num("inferences_per_second") if num("inference_time") > 0 else None,
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
        cpu_operators=cpu_fallback,
        ini_sha256=spec.ini_sha256(),
        memory_bytes_per_cycle=bandwidth,
        allocations=parse_allocations(log),
        tensor_allocator=spec.tensor_allocator or DEFAULT_TENSOR_ALLOCATOR,
        vela_ini=spec.user_ini_path or str(vela_ini_path()),
        vela_ini_sha256=spec.vela_ini_sha256(),
        axi0_port=ports[0],
        axi1_port=ports[1],
        axi0_bytes_per_cycle=bandwidth.get(_MEMORY_KEYS.get(ports[0], "")),
        axi1_bytes_per_cycle=bandwidth.get(_MEMORY_KEYS.get(ports[1], "")),
    )


# ini memory name -> the key of memory_bytes_per_cycle
_MEMORY_KEYS = {"Sram": "sram", "Dram": "dram", "OnChipFlash": "on_chip_flash", "OffChipFlash": "off_chip_flash"}


def _ports(spec: CompileSpec) -> tuple[str, str]:
    from .accel import ini_get

    cp = spec.ini_parser()
    section = f"System_Config.{spec.system_config}"
    return ini_get(cp, section, "axi0_port", "") or "", ini_get(cp, section, "axi1_port", "") or ""


# Vela's summary column (GiB/s) -> our memory name
_BANDWIDTH_COLUMNS = (
    ("sram_bandwidth", "sram"),
    ("dram_bandwidth", "dram"),
    ("on_chip_flash_bandwidth", "on_chip_flash"),
    ("off_chip_flash_bandwidth", "off_chip_flash"),
)


def _bytes_per_cycle(summary: dict[str, str], clock_hz: float) -> dict[str, float]:
    """Vela's peak bandwidths (GiB/s in its summary) as bytes per core clock cycle."""
    out = {}
    for col, ours in _BANDWIDTH_COLUMNS:
        try:
            out[ours] = round(float(summary[col]) * (1 << 30) / clock_hz, 6)
        except (KeyError, ValueError, ZeroDivisionError):
            continue
    return out


def _arena_cache_size(spec: CompileSpec, summary: dict[str, str]) -> int | None:
    """The fast-scratch size Vela compiled with, in bytes.

    Vela's summary CSV is not consistent here (a memory mode that sets ``arena_cache_size`` in the
    ini shows up as KiB, Vela's own default as bytes), so the explicit value and the ini win.
    """
    if spec.arena_cache_size is not None:
        return spec.arena_cache_size
    from .accel import ini_get

    size = ini_get(spec.ini_parser(), f"Memory_Mode.{spec.memory_mode}", "arena_cache_size")
    if size is not None:
        return int(float(size))
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
