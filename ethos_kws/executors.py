"""Where compiles run: the local process pool (default) or a Dask distributed cluster.

``sweeps.compile_all`` is the one seam every command's compiles go through; it asks this module
for a ``DaskRunner`` when ``--dask tcp://host:8786`` (or ``$ETHOS_KWS_DASK``) is given. On Dask,
the client keeps the compile cache and the output folder: a worker gets the model as bytes and
returns the result and Vela's files as bytes (``vela.compile_portable``), so the cluster needs no
shared file system, only the same ethos-kws and Vela. A worker that dies mid-task costs that task
only: Dask's scheduler runs it again on another worker.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import BackendUnavailable, EthosKwsError, UserError

DASK_ENV = "ETHOS_KWS_DASK"
NPUSIM_THREADS_ENV = "ETHOS_KWS_NPUSIM_THREADS"  # threads one npu-sim batch may use (default: the cores, at most 4)
DEFAULT_DASK_TIMEOUT_S = 10.0
_ADDRESS_RE = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+$")


class SchedulerUnreachable(EthosKwsError):
    """No Dask scheduler answered at the address in time (exit 1: the cluster, not the input)."""


@dataclass
class DaskRunner:
    """A connected client and its ``concurrent.futures``-style executor."""

    client: Any
    address: str

    def executor(self):
        # pure=False: two points with equal arguments are still two compiles to run
        return self.client.get_executor(pure=False)

    def warm_up(self) -> None:
        """Start every worker importing Vela and the compile adapter now, in the background, while
        this process still prepares its work (a fresh worker spends about a second on it before
        its first compile). Best effort: a worker that cannot is left to fail its task."""
        with contextlib.suppress(Exception):
            self.client.run(_warm_up, wait=False)

    def scatter(self, data: bytes):
        """Send ``data`` (a model) to the cluster once; tasks take the returned future."""
        return self.client.scatter(data, hash=True)


def _warm_up() -> None:
    from .vela import _import_vela

    _import_vela()


def dask_address(flag: str | None) -> str | None:
    """``--dask`` or, when unset, ``$ETHOS_KWS_DASK``; checked for shape (bad input, exit 2)."""
    address = flag if flag is not None else os.environ.get(DASK_ENV) or None
    if address is None:
        return None
    address = address.strip()
    if not _ADDRESS_RE.match(address):
        src = "--dask" if flag is not None else f"${DASK_ENV}"
        raise UserError(f"{src} {address!r} is not a scheduler address such as tcp://host:8786")
    return address


@contextlib.contextmanager
def dask_runner(address: str | None, timeout_s: float = DEFAULT_DASK_TIMEOUT_S) -> Iterator[DaskRunner | None]:
    """A connected ``DaskRunner`` (None without ``address``); closed on the way out."""
    if address is None:
        yield None
        return
    if not timeout_s > 0:
        raise UserError(f"--dask-timeout must be a positive number of seconds, got {timeout_s}")
    import logging

    try:
        from distributed import Client
    except ImportError:
        raise BackendUnavailable("--dask needs Dask: pip install 'ethos-kws[dask]'") from None
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # an unreachable scheduler is our one line, not Dask's log
    try:
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise SchedulerUnreachable(f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s "
                                 f"({type(e).__name__})") from None
    finally:
        quiet.setLevel(level)
    try:
        yield DaskRunner(client, address)
    finally:
        with contextlib.suppress(Exception):
            client.close()


# ---- units of work other than compiles: parity batches, FVP runs, accuracy batches ---------------


def pool_context():
    """fork shares what the parent imported (Vela, numpy, a decoded model) with the workers:
    start-up in milliseconds; platforms without fork use forkserver/spawn."""
    from .vela_worker import fork_context

    return fork_context()


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return max(1, len(os.sched_getaffinity(0)))


def init_pool_worker(parent_pid: int, npusim_threads: int | None = None) -> None:
    """A local worker dies with its parent (a killed run leaves no process behind); a crash is
    reported by the parent in one line, not by faulthandler. ``npusim_threads``: the threads an
    npu-sim batch may use in this worker (the workers share the cores)."""
    import faulthandler
    import signal

    from .vela_worker import die_with_parent

    if npusim_threads is not None:
        os.environ[NPUSIM_THREADS_ENV] = str(npusim_threads)
    faulthandler.disable()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler, inherited by fork
    die_with_parent(parent_pid)


def drain(futures, take, on_result, *, on_error=None) -> None:
    """Collect finished futures (a process pool's or Dask's, both concurrent.futures-style):
    ``take(i, fut)`` gives unit i's result (None: nothing to record, e.g. retried later) and
    ``on_result(i, result)`` records it. A failure of ours (``EthosKwsError``) goes to ``on_error(i,
    e)``, or is raised without one. An interruption or a raised failure cancels what has not
    started."""
    from concurrent.futures import as_completed

    try:
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                result = take(i, fut)
            except EthosKwsError as e:
                if on_error is None:
                    raise
                on_error(i, e)
                continue
            if result is not None:
                on_result(i, result)
    except BaseException:
        for f in futures:
            f.cancel()
        raise


class UnitFailed(EthosKwsError):
    """A unit of work the executor could not finish (a local worker died, Dask gave up on it)."""


class WorkPool:
    """Where units of work run: this process (``jobs=1`` or a single unit), a local process pool
    of ``jobs`` workers, or the Dask cluster of ``dask``. ``run`` keeps the order of ``items``.

    A unit is a module-level function and picklable arguments; it gets everything it needs as
    values (model bytes, inputs), never a path on this machine, so a cluster without a shared file
    system works. Results come back to this process, which owns the cache and the output folder.

    A local worker process that dies (killed, out of memory, a crash in native code) costs only
    the units it took down: they run once more in a fresh pool, and a unit lost again runs alone,
    where a crash can only be its own (``UnitFailed`` naming it). On Dask, the scheduler runs a
    dead worker's task again on another worker.
    """

    def __init__(self, jobs: int | None = None, dask: DaskRunner | None = None, on_close=None):
        self.jobs = jobs
        self.dask = dask
        self._pool = None
        self._on_close = on_close  # e.g. closing the Dask connection this pool was opened with

    def describe(self) -> str:
        if self.dask is not None:
            return f"Dask cluster at {self.dask.address}"
        n = self._workers(2)
        return "this process" if n == 1 else f"{n} local processes"

    def _workers(self, units: int) -> int:
        return max(1, min(self.jobs or os.cpu_count() or 1, units))

    def run(self, fn, items, *, on_done=None, needs=None) -> list:
        """``fn(*item)`` for every item; ``on_done(i, result)`` as each finishes (any order).
        The first failure is raised (an ``EthosKwsError`` as it is; anything else of a worker or
        of the cluster as ``UnitFailed`` naming the unit)."""
        items = list(items)
        results: dict[int, Any] = {}

        def record(i, result):
            results[i] = result
            if on_done:
                on_done(i, result)

        if self.dask is None and self._workers(len(items)) == 1:
            for i, item in enumerate(items):
                record(i, fn(*item))
        elif self.dask is not None:
            self._submit(self.dask.executor(), fn, items, range(len(items)), record)
        else:
            lost = self._submit(self._local(len(items)), fn, items, range(len(items)), record)
            if lost:  # a worker died: the pool is broken, and every unit it still held is lost
                self._discard_pool()
                lost = self._submit(self._local(len(lost)), fn, items, lost, record)
                self._discard_pool()  # the next run gets a pool of full size again
            for i in lost:  # lost twice: alone in a fresh process, a crash is this unit's own
                try:
                    if self._submit(self._local(1), fn, items, [i], record):
                        raise UnitFailed(f"{_name(fn)} {i + 1} of {len(items)} failed: the local worker "
                                         "process running it died (it was run again, alone, and died again)")
                finally:
                    self._discard_pool()
        return [results[i] for i in range(len(items))]

    def _submit(self, executor, fn, items, which, record) -> list[int]:
        """Run ``items[i]`` for i in ``which`` on ``executor``; the units lost with a dead local
        worker (``BrokenProcessPool``), in order, for the caller to run again."""
        from concurrent.futures.process import BrokenProcessPool

        futures = {executor.submit(fn, *items[i]): i for i in which}
        lost: list[int] = []

        def take(i, fut):
            try:
                return fut.result()
            except EthosKwsError:
                raise
            except BrokenProcessPool:
                if self.dask is not None:
                    raise
                lost.append(i)
                return None
            except Exception as e:  # noqa: BLE001 - KilledWorker, a unit's own bug, ...
                where = "the Dask cluster" if self.dask is not None else "a local worker process"
                raise UnitFailed(f"{_name(fn)} {i + 1} of {len(items)} failed on {where}: "
                                 f"{type(e).__name__}: {e}") from None

        drain(futures, take, record)
        return sorted(lost)

    def _local(self, units: int):
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            workers = self._workers(units)
            threads = max(1, usable_cores() // workers)  # the workers share the cores
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(),
                                             initializer=init_pool_worker, initargs=(os.getpid(), threads))
        return self._pool

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        try:
            self._discard_pool()
        finally:
            if self._on_close is not None:
                self._on_close, closing = None, self._on_close
                closing()

    def __enter__(self) -> "WorkPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _name(fn) -> str:
    return getattr(fn, "__name__", "unit")


@contextlib.contextmanager
def work_pool(jobs: int | None = None, dask: DaskRunner | None = None) -> Iterator[WorkPool]:
    """A ``WorkPool``, closed (its local workers stopped) on the way out."""
    pool = WorkPool(jobs, dask)
    try:
        yield pool
    finally:
        pool.close()
