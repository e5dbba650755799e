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
from .cpu_fallback import npu_only_note
from .errors import EthosKwsError
from .fsutil import atomic_dir, atomic_write_json, atomic_write_text
from .model import ResolvedModel, model_info, resolve_model
from .records import versioned
from .results import CSV_COLUMNS, SweepResult

__all__ = ["CSV_COLUMNS", "SweepResult", "compile_all", "measure_fvp", "sweep", "write_sweep"]

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
    specs = [
        make_spec(
            resolved.path, acc,
            # a system config or memory mode given explicitly applies to every NPU it fits
            system_config=system_config if system_config and _fits(acc, system_config) else None,
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


def format_fvp_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ("accel", "platform", "FVP active cycles", "FVP total cycles", "FVP ms", "Vela NPU cycles", "Vela/FVP")
    body = [
        (
            r["accel"], r["platform"], f"{r['npu_active_cycles']:,}", f"{r['npu_total_cycles']:,}",
            f"{r['inference_time_ms']:.3f}", f"{r['vela_cycles_npu']:,}" if r.get("vela_cycles_npu") else "n/a",
            f"{r['vela_over_fvp_cycles']:.2f}" if r.get("vela_over_fvp_cycles") else "n/a",
        )  # fmt: skip
        for r in rows
    ]
    return _table(header, body, left=2)


def format_table(results: Sequence[CompileResult]) -> str:
    """The one-screen table ``ethos-kws sweep`` prints."""
    header = ("accel", "system config", "cycles", "time ms", "inf/s", "SRAM KiB", "flash KiB", "DRAM KiB", "NPU/CPU ops", "MAC util")
    rows = [
        (
            r.accel, r.system_config, f"{r.cycles_total:,}", f"{r.inference_time_ms:.3f}",
            f"{r.inferences_per_second:,.0f}", f"{r.sram_bytes / 1024:.1f}", f"{r.flash_bytes / 1024:.1f}",
            f"{r.dram_bytes / 1024:.1f}", f"{r.npu_ops}/{r.cpu_ops}", f"{r.mac_utilization:.1%}",
        )  # fmt: skip
        for r in results
    ]
    return _table(header, rows, left=2) + cpu_fallback_lines(results)


def cpu_fallback_lines(results: Sequence[CompileResult]) -> str:
    """Below the table: the operators Vela left on the CPU, named with its reason, once per
    distinct set (every configuration of one model usually leaves the same ones)."""
    lines: list[str] = []
    seen: dict[tuple, list[str]] = {}
    for r in results:
        if r.cpu_ops:
            seen.setdefault(tuple(str(c) for c in r.cpu_operators) or r.cpu_op_names, []).append(r.accel)
    for ops, accels in seen.items():
        lines.append(f"NOTE ({', '.join(accels)}): {npu_only_note(len(ops))}")
        lines += [f"  CPU: {op}" for op in ops]
    return "".join("\n" + line for line in lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int) -> str:
    """Plain-text table: the first ``left`` columns left-aligned, numbers right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [
        "  ".join(str(x).ljust(w) if i < left else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


