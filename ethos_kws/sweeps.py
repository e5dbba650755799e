"""Compile one model for many accelerator configurations in parallel processes.

Finished configurations come from the content-addressed compile cache, so a repeated sweep is
instant and an interrupted one resumes where it stopped. Output: ``results.json``
(``{"model": {...}, "results": [...]}``), ``results.csv`` (one row per configuration) and each
configuration's Vela output in ``<out>/<accel>/``.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Sequence

from .accel import Accelerator, parse_accelerator_list
from .vela import CompileResult, CompileSpec, cached_result, compile_spec, export_result, make_spec, warn
from .errors import EthosKwsError
from .fsutil import atomic_dir, atomic_write_json, atomic_write_text
from .model import ResolvedModel, model_info, resolve_model
from .records import versioned
from .results import CSV_COLUMNS, SweepResult

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


def _pool_context():
    # fork shares the already-imported Vela with the workers (start-up in ms, not a second);
    # platforms without fork use forkserver/spawn.
    from .vela_worker import fork_context

    return fork_context()


def _init_pool_worker(parent_pid: int) -> None:
    import faulthandler

    from .vela_worker import die_with_parent

    faulthandler.disable()  # a crash is reported by the parent, in one line
    die_with_parent(parent_pid)


def compile_all(
    specs: Sequence[CompileSpec],
    *,
    jobs: int | None = None,
    progress: Callable[[CompileResult], None] | None = None,
    errors: dict[int, EthosKwsError] | None = None,
) -> list[CompileResult]:
    """Compile every spec (cached ones straight from the cache), in the order given.

    With ``errors``, a spec that fails (Vela refused it, or crashed on it) is recorded there by
    index and left out of the list; without, the first failure is raised."""
    results: dict[int, CompileResult] = {}
    failed: dict[int, EthosKwsError] = {}
    todo = []
    problems: dict[int, list[str]] = {}
    for i, spec in enumerate(specs):
        hit = cached_result(spec, problems.setdefault(i, []))
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
    if len(todo) == 1 or jobs == 1:
        for i in todo:
            one(i)
    elif todo:
        import ethosu.vela.vela  # noqa: F401 - imported once here, inherited by forked workers

        retry = []
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context(),
                                 initializer=_init_pool_worker, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_compile_worker, specs[i]): i for i in todo}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except BrokenProcessPool:
                        retry.append(i)  # some worker died; which spec killed it is found below
                        continue
                    except EthosKwsError as e:
                        if errors is None:
                            raise
                        failed[i] = e
                        continue
                    if progress:
                        progress(results[i])
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        for i in sorted(retry):  # one at a time, each crash contained and named
            one(i)
    for i, found in problems.items():
        if i in results:
            for p in found:
                warn(p)
    if errors is not None:
        errors.update(failed)
    return [results[i] for i in range(len(specs)) if i in results]


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
) -> SweepResult:
    """Compile ``model`` for every accelerator in ``accels``; write results when ``out_dir``."""
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, allow_synthetic=allow_synthetic)
    info = model_info(resolved)
    acc_list: list[Accelerator] = parse_accelerator_list(accels)
    takers = _system_config_takers(acc_list, system_config) if system_config else set()
    specs = [
        make_spec(
            resolved.path, acc,
            system_config=system_config if acc.name in takers else None,
            memory_mode=memory_mode, optimise=optimise, arena_cache_size=arena_cache_size,
            legacy_core=legacy_core, model_sha256=info.sha256,
        )  # fmt: skip
        for acc in acc_list
    ]
    errors: dict[int, EthosKwsError] = {}
    results = compile_all(specs, jobs=jobs, progress=progress, errors=errors)
    if not results:  # nothing to show: the first failure is the answer
        raise errors[min(errors)]
    extra = {}
    if errors:  # the other rows stand; the failed ones are named in results.json and by the CLI
        extra["failed"] = [{"accel": specs[i].accel, "error": str(e)} for i, e in sorted(errors.items())]
    result = SweepResult(info, tuple(results), extra=extra)
    if out_dir is not None:
        result = write_sweep(result, Path(out_dir))
    return result


def _system_config_takers(acc_list: Sequence[Accelerator], system_config: str) -> set[str]:
    """Which rows an explicit ``--system-config`` applies to; the others keep their default.

    A config named for a family (``Ethos_U85_*``) goes to that family's rows when the sweep has
    any, so ``--accel all --system-config Ethos_U85_SYS_DRAM_High`` changes only the U85 rows;
    otherwise to every row it fits. Fitting none is an error, with the first row's reason (a U55
    cannot use a DRAM system config), never a silent fallback to the defaults.
    """
    named = next((f for f in {a.family for a in acc_list} if system_config.lower().startswith(f"ethos_{f}_")), None)
    rows = [a for a in acc_list if a.family == named] if named else list(acc_list)
    takers = {a.name for a in rows if _fits(a, system_config)}
    if not takers:
        from .accel import check_system_config_fits

        for acc in rows:
            check_system_config_fits(acc, system_config)  # raises the row's own reason
    return takers


def _fits(acc: Accelerator, system_config: str) -> bool:
    from .accel import check_system_config_fits

    try:
        check_system_config_fits(acc, system_config)
        return True
    except EthosKwsError:
        return False


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
) -> SweepResult:
    """Run each configuration once on a Corstone FVP and put the measurement beside Vela's
    estimate (``vela_over_fvp_cycles``). FVPs run one at a time: each is a heavy process."""
    from .backends.fvp.measurement import measure

    rows = []
    for r in result.results:
        m = measure(
            result.model.path, r.accel, platform=platform, system_config=r.system_config,
            fvp=fvp, runner=runner, timeout_s=timeout_s, seed=seed,
            legacy_core=r.compiler == "legacy",
        )  # fmt: skip
        row = m.to_dict(outputs=False)
        # the sweep's own estimate too: the FVP runner may need another memory mode than the sweep's
        row["sweep_cycles_total"] = r.cycles_total
        rows.append(row)
        if progress:
            progress(row)
    return SweepResult(result.model, result.results, result.out_dir, result.created, result.host, {**result.extra, "fvp": rows})
