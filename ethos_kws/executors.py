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
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import BackendUnavailable, EthosKwsError, UserError

DASK_ENV = "ETHOS_KWS_DASK"
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

    def scatter(self, data: bytes):
        """Send ``data`` (a model) to the cluster once; tasks take the returned future."""
        return self.client.scatter(data, hash=True)


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
