"""Compile one model for many accelerator configurations in parallel processes.

Finished configurations come from the content-addressed compile cache, so a repeated sweep is
instant and an interrupted one resumes where it stopped. Output: ``results.json``
(``{"model": {...}, "results": [...]}``), ``results.csv`` (one row per configuration) and each
configuration's Vela output in ``<out>/<accel>/``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .accel import Accelerator, parse_accelerator_list
from .vela import CompileResult, CompileSpec, cached_result, compile_spec, export_result, make_spec, warn
from .errors import EthosKwsError
from .executors import drain, init_pool_worker, pool_context
from .fsutil import atomic_dir, atomic_write_json, atomic_write_text
from .model import ResolvedModel, model_info, resolve_model
from .records import versioned
from .results import CSV_COLUMNS, SweepResult

if TYPE_CHECKING:
    from .executors import DaskRunner
    from .vela_ini import UserIni

__all__ = ["CSV_COLUMNS", "SweepResult", "compile_all", "format_fvp_table", "format_table", "measure_fvp",
           "sweep", "write_sweep"]


def __getattr__(name: str):
    # the terminal tables live with the other tables (report.tables); kept importable from here
    if name in ("format_table", "format_fvp_table"):
        from .report import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def default_out_dir(model: ResolvedModel) -> Path:
    return Path("reports") / "runs" / model.path.stem


def _compile_worker(spec: CompileSpec) -> CompileResult:
    # this process is the containment: a crash breaks the pool, compile_all retries in a VelaWorker
    return compile_spec(spec, contained=False)


def compile_all(
    specs: Sequence[CompileSpec],
    *,
    jobs: int | None = None,
    progress: Callable[[CompileResult], None] | None = None,
    errors: dict[int, EthosKwsError] | None = None,
    dask: "DaskRunner | None" = None,
    detail: bool = True,
) -> list[CompileResult]:
    """Compile every spec (cached ones straight from the cache), in the order given: the one
    executor seam of ethos-kws. Uncached specs run on a local process pool of ``jobs`` workers,
    or on the Dask cluster of ``dask`` (``executors.dask_runner``).

    With ``errors``, a spec that fails (Vela refused it, or crashed on it) is recorded there by
    index and left out of the list; without, the first failure is raised. ``detail=False``: cached
    results come without their per-layer lists (``vela.DETAIL_FIELDS``; faster to read back)."""
    results: dict[int, CompileResult] = {}
    failed: dict[int, EthosKwsError] = {}
    todo = []
    problems: dict[int, list[str]] = {}
    for i, spec in enumerate(specs):
        hit = cached_result(spec, problems.setdefault(i, []), detail=detail)
        if hit is not None:
            results[i] = hit
            if progress:
                progress(hit)
        else:
            todo.append(i)

    def one(i: int) -> None:  # in this process, Vela contained in the reused worker
        try:
            results[i] = compile_spec(specs[i])
        except EthosKwsError as e:
            if errors is None:
                raise
            failed[i] = e
            return
        if progress:
            progress(results[i])

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    if dask is not None and todo:
        _compile_on_dask(dask, specs, todo, results, failed, progress, raise_first=errors is None, detail=detail)
    elif len(todo) == 1 or jobs == 1:
        for i in todo:
            one(i)
    elif todo:
        from concurrent.futures import ProcessPoolExecutor  # here: a warm run (all cached) starts none
        from concurrent.futures.process import BrokenProcessPool

        import ethosu.vela.vela  # noqa: F401 - imported once here, inherited by forked workers

        from .layers import source_ops

        for path in {specs[i].model_path for i in todo}:
            try:
                source_ops(path)  # parsed once here, inherited too (every compile maps its layers to it)
            except (EthosKwsError, OSError):
                pass  # only a head start: each compile reports its own problem with the model

        retry = []
        with ProcessPoolExecutor(max_workers=jobs, mp_context=pool_context(),
                                 initializer=init_pool_worker, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_compile_worker, specs[i]): i for i in todo}

            def take(i, fut):
                try:
                    return fut.result()
                except BrokenProcessPool:
                    retry.append(i)  # some worker died; which spec killed it is found below
                    return None

            _drain(futures, take, results, failed, progress, raise_first=errors is None)
        for i in sorted(retry):  # one at a time, each crash contained and named
            one(i)
    for i, found in problems.items():
        if i in results:
            for p in found:
                warn(p)
    if errors is not None:
        errors.update(failed)
    return [results[i] for i in range(len(specs)) if i in results]


def _compile_on_dask(dask, specs, todo, results, failed, progress, *, raise_first: bool, detail: bool = True) -> None:
    """``todo`` on the cluster; each finished compile is stored in this machine's cache."""
    from .errors import CompileError
    from .vela import compile_portable, store_portable, vela_version

    models = {}
    for i in todo:
        sha = specs[i].model_sha256
        if sha not in models:
            models[sha] = dask.scatter(Path(specs[i].model_path).read_bytes())
    executor = dask.executor()
    client_vela = vela_version()
    futures = {executor.submit(compile_portable, specs[i], models[specs[i].model_sha256], specs[i].cache_key(),
                               client_vela): i for i in todo}

    def take(i, fut):
        try:
            doc, files = fut.result()
        except EthosKwsError:
            raise
        except Exception as e:  # noqa: BLE001 - a task the cluster gave up on (KilledWorker...)
            raise CompileError(f"Dask could not compile {Path(specs[i].model_path).name} for "
                               f"{specs[i].accel}: {type(e).__name__}: {e}") from None
        return store_portable(specs[i], doc, files, detail=detail)

    _drain(futures, take, results, failed, progress, raise_first=raise_first)


def _drain(futures, take, results, failed, progress, *, raise_first: bool) -> None:
    """``executors.drain`` with the compile seam's bookkeeping (results, failures, progress)."""
    def record(i, result):
        results[i] = result
        if progress:
            progress(result)

    drain(futures, take, record, on_error=None if raise_first else failed.__setitem__)


def sweep(
    model: str | os.PathLike | ResolvedModel | None = None,
    *,
    accels: str | Sequence[str] | None = "all",
    system_config: str | None = None,
    memory_mode: str | None = None,
    optimise: str = "Performance",
    arena_cache_size: int | None = None,
    legacy_core: bool = False,
    out_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    progress: Callable[[CompileResult], None] | None = None,
    allow_synthetic: bool = False,
    tensor_allocator: str | None = None,
    user_ini: "UserIni | None" = None,
    dask: "DaskRunner | None" = None,
) -> SweepResult:
    """Compile ``model`` for every accelerator in ``accels``; write results when ``out_dir``.

    A given ``system_config``/``memory_mode`` applies to every row: a row it cannot apply to (a
    U55 and a DRAM system config) is a failed row naming the setting, never a silent fallback to
    that row's default; the other rows are still compiled and written."""
    if dask is not None:
        dask.warm_up()  # the workers import Vela while the specs are made and looked up here
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, allow_synthetic=allow_synthetic)
    info = model_info(resolved)
    acc_list: list[Accelerator] = parse_accelerator_list(accels)
    specs: list[CompileSpec | None] = []
    refused: dict[int, EthosKwsError] = {}
    for n, acc in enumerate(acc_list):
        try:
            specs.append(make_spec(
                resolved.path, acc, system_config=system_config, memory_mode=memory_mode, optimise=optimise,
                arena_cache_size=arena_cache_size, legacy_core=legacy_core, model_sha256=info.sha256,
                tensor_allocator=tensor_allocator, user_ini=user_ini,
            ))  # fmt: skip
        except EthosKwsError as e:
            if not (system_config or memory_mode) or "unknown" in str(e):
                raise  # a typo is bad input for the whole sweep
            specs.append(None)
            refused[n] = e
    runnable = [i for i, s in enumerate(specs) if s is not None]
    errors_run: dict[int, EthosKwsError] = {}
    compiled = compile_all([specs[i] for i in runnable], jobs=jobs, progress=progress, errors=errors_run, dask=dask)
    errors = {**refused, **{runnable[k]: e for k, e in errors_run.items()}}
    by_row = iter(compiled)
    results = [next(by_row) for k in range(len(runnable)) if k not in errors_run]
    if not results:  # nothing to show: the first failure is the answer
        raise errors[min(errors)]
    extra = {}
    if errors:  # the other rows stand; the failed ones are named in results.json and by the CLI
        extra["failed"] = [{"accel": acc_list[i].name, "error": _named(str(e), system_config, memory_mode)}
                           for i, e in sorted(errors.items())]
    result = SweepResult(info, tuple(results), extra=extra)
    if out_dir is not None:
        result = write_sweep(result, Path(out_dir))
    return result


def _named(error: str, system_config: str | None, memory_mode: str | None) -> str:
    """A failed row's reason with the requested settings named (Vela's own line does not)."""
    asked = [f"--system-config {system_config}" if system_config else "",
             f"--memory-mode {memory_mode}" if memory_mode else ""]
    asked = [a for a in asked if a and a.split()[1] not in error]
    return f"{error} (with {', '.join(asked)})" if asked else error


def write_sweep(result: SweepResult, out: Path) -> SweepResult:
    """Write the run folder whole, built aside and put in place in one rename: a previous run
    there (another model, other configs) is replaced entirely or, on failure, left as it was."""
    with atomic_dir(out, marker="results.json") as tmp:
        exported = tuple(export_result(r, out / r.accel, staging=tmp / r.accel) for r in result.results)
        result = SweepResult(result.model, exported, str(out.resolve()), result.created, result.host, result.extra)
        atomic_write_json(tmp / "results.json", result.to_dict())
        atomic_write_text(tmp / "results.csv", result.csv_text())
        if "fvp" in result.extra:
            atomic_write_json(tmp / "fvp.json", versioned({"results": result.extra["fvp"]}))
    return result


def check_fvp_available(accels: str | Sequence[str] | None, *, platform=None, fvp=None, runner=None) -> None:
    """Find the FVP and runner for every requested config before any compile or measurement,
    so a machine without an FVP fails at once (``BackendUnavailable``), not after the sweep."""
    from .backends.fvp.discovery import find_fvp, find_runner
    from .backends.fvp.targets import target_for

    for acc in parse_accelerator_list(accels):
        target, _ = target_for(acc, platform)
        find_fvp(target, fvp)
        find_runner(target, runner)


def measure_fvp(
    result: SweepResult,
    *,
    platform: str | None = None,
    fvp: str | os.PathLike | None = None,
    runner: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
    jobs: int | None = 1,
    dask: "DaskRunner | None" = None,
    user_ini: "UserIni | None" = None,
) -> SweepResult:
    """Run each configuration once on a Corstone FVP and put the measurement beside Vela's
    estimate (``vela_over_fvp_cycles``). Each run is a unit of work (``executors.WorkPool``): one
    at a time by default (an FVP is a heavy process), ``jobs`` at once, or spread over the workers
    of a Dask cluster, each with its own FVP (``fvp``/``runner`` are paths on the worker).
    ``user_ini``: the sweep's ``--config`` ini; it travels as text, so a worker compiles with the
    very ini the sweep used (``vela_ini_sha256`` in each row says which)."""
    import hashlib

    from .executors import work_pool

    data = Path(result.model.path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    name = Path(result.model.path).name
    unit = fvp_measurement_remote if dask is not None else fvp_measurement
    units = [(data, sha, name, r.accel, platform, r.system_config, fvp, runner, timeout_s, seed, r.compiler == "legacy",
              user_ini) for r in result.results]
    rows: list[dict[str, Any]] = []

    def done(i: int, row: dict[str, Any]) -> None:
        # the sweep's own estimate too: the FVP runner may need another memory mode than the sweep's
        row["sweep_cycles_total"] = result.results[i].cycles_total
        if progress:
            progress(row)

    with work_pool(jobs, dask) as pool:
        rows = pool.run(unit, units, on_done=done)
    return SweepResult(result.model, result.results, result.out_dir, result.created, result.host, {**result.extra, "fvp": rows})


def fvp_measurement(model_bytes: bytes, model_sha256: str, model_name: str, accel: str, platform, system_config, fvp, runner,
                    timeout_s, seed: int, legacy_core: bool, user_ini: "UserIni | None" = None) -> dict[str, Any]:
    """One FVP run of one configuration: a unit of work (the model and the ini come as content)."""
    from .backends import model_file_from_bytes
    from .backends.fvp.measurement import measure
    from .vela_ini import user_ini_here

    m = measure(model_file_from_bytes(model_bytes, model_sha256, model_name), accel, platform=platform,
                system_config=system_config, fvp=fvp, runner=runner, timeout_s=timeout_s, seed=seed,
                legacy_core=legacy_core, vela_ini=user_ini_here(user_ini))
    return m.to_dict(outputs=False)


# the fields of an FVP row that are paths on the machine that ran it
FVP_PATH_FIELDS = ("fvp_executable", "runner", "compiled_model")


def fvp_measurement_remote(*args) -> dict[str, Any]:
    """``fvp_measurement`` on a Dask worker: its paths are that machine's, so the row says where
    it ran (``measured_on``) and each path names its machine (``host:/path``), never to be taken
    for a path on the client."""
    import socket

    row = fvp_measurement(*args)
    where = socket.gethostname()
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        where = f"{where} (Dask worker {get_worker().address})"
    host = socket.gethostname()
    row["measured_on"] = where
    for key in FVP_PATH_FIELDS:
        if row.get(key):
            row[key] = f"{host}:{row[key]}"
    row["argv"] = [f"{host}:{a}" if os.path.isabs(a) else a for a in row.get("argv") or ()]
    return row
