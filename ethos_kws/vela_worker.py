"""Vela where a crash is contained: a persistent worker process, reused while it lives.

Vela's C++ core can die by a signal on a model it does not expect (SIGSEGV, or SIGABRT on a
"double free"); in-process, that kills ethos-kws without a word. ``VelaWorker`` runs ``vela.main``
in a forked child that already has Vela imported (so a compile costs what it costs in-process, not
a new interpreter), sends the argv over a pipe and gets Vela's console text back. When the child
dies, the caller gets ``CompileError("Vela crashed (signal 11, SIGSEGV) compiling M for u55-128:
<Vela's last line>")`` and the next compile starts a new child. The child dies with its parent
(``die_with_parent``), so an interrupted ethos-kws leaves no process behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
from pathlib import Path

from .errors import CompileError

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` goes: the kernel's parent-death signal where
    there is one (Linux), and a watcher thread for the rest (and for a parent that died before
    the signal was armed)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _serve(conn, parent_pid: int) -> None:
    import faulthandler

    faulthandler.disable()  # a crash is reported by the parent, in one line
    # the CLI's SIGTERM handler (raise Terminated, to clean up on the way out) is the parent's;
    # inherited by fork, it made this child print a traceback when multiprocessing's exit hook
    # terminates it. Here SIGTERM just ends the process.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent_pid)
    from .vela import run_vela

    while True:
        try:
            argv, log_path = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", run_vela(argv, log_path=Path(log_path)))
        except CompileError as e:
            reply = ("error", str(e))
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never lost
            reply = ("error", f"Vela failed: {type(e).__name__}: {e}")
        conn.send(reply)


def fork_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else methods[0])


class VelaWorker:
    """One child process running Vela; started on first use, restarted after a crash."""

    def __init__(self) -> None:
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        import ethosu.vela.vela  # noqa: F401 - imported here once, inherited by the forked child

        ctx = fork_context()
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(theirs, os.getpid()), name="vela-worker", daemon=True)
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, ours

    def run(self, argv: list[str], log_path: Path, what: str) -> str:
        """Vela's console text, or ``CompileError`` (Vela failed, or crashed: its child died)."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self.close()
                self._start()
            try:
                self._conn.send((list(argv), str(log_path)))
                status, payload = self._conn.recv()
            except (EOFError, OSError):
                self._proc.join(5)
                code = self._proc.exitcode
                self.close()
                tail = _last_line(log_path)
                raise CompileError(
                    f"Vela crashed ({describe_exit(code)}) compiling {what}" + (f": {tail}" if tail else "")
                ) from None
            except BaseException:  # interrupted mid-compile: the child's state is unknown
                self.close()
                raise
        if status != "ok":
            raise CompileError(payload)
        return payload

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None


_worker: VelaWorker | None = None  # one per process: the point is to reuse it across compiles


def default_worker() -> VelaWorker:
    global _worker
    if _worker is None or _worker_pid != os.getpid():
        _set_worker(VelaWorker())
    return _worker


_worker_pid = 0


def _set_worker(w: VelaWorker) -> None:
    global _worker, _worker_pid
    _worker, _worker_pid = w, os.getpid()


@atexit.register
def _close_default() -> None:
    if _worker is not None and _worker_pid == os.getpid():
        _worker.close()
