"""Run an FVP as a child process that can never outlive us.

The FVP runs in its own session (process group). Two limits apply: ``--timelimit`` inside the FVP
(see ``command.py``) and a host timeout here; on the host timeout, an interrupt or any error, the
whole group gets SIGTERM, then SIGKILL, so no simulator or helper (xterm, telnet) is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

TERM_GRACE_S = 3.0


@dataclass(frozen=True)
class ProcessOutcome:
    argv: tuple[str, ...]
    returncode: int | None  # None when we killed it
    output: str  # stdout and stderr, interleaved as printed
    wall_s: float
    timed_out: bool
    pid: int


def _kill_group(pgid: int) -> None:
    """SIGTERM the group, give it a moment, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _drain(proc: subprocess.Popen) -> bytes:
    """What the killed process printed; gives up if something outside the group holds the pipe."""
    try:
        out, _ = proc.communicate(timeout=2 * TERM_GRACE_S)
        return out or b""
    except subprocess.TimeoutExpired:
        if proc.stdout:
            proc.stdout.close()
        proc.wait()
        return b""


def run_process(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> ProcessOutcome:
    """Run ``argv`` to completion or until ``timeout_s``; raises OSError if it cannot start."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=cwd,
        start_new_session=True,  # own process group: killpg reaches every descendant
    )
    timed_out = False
    try:
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            out = _drain(proc)
    except BaseException:
        _kill_group(proc.pid)
        with contextlib.suppress(Exception):
            proc.communicate(timeout=TERM_GRACE_S)
        raise
    finally:
        # the leader may be gone while children it forked still hold the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return ProcessOutcome(
        argv=tuple(argv),
        returncode=None if timed_out else proc.returncode,
        output=out.decode("utf-8", errors="replace"),
        wall_s=time.monotonic() - start,
        timed_out=timed_out,
        pid=proc.pid,
    )
