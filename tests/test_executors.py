"""Issue 12 item 4: a local worker process killed mid-run costs only the units it held (WorkPool).

The units here are plain functions of this module; with fork (the pool's start method on Linux)
the workers inherit it. Each kill is a real SIGKILL of a real worker process of the pool.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ethos_kws.executors import UnitFailed, WorkPool


def _square_killing_its_worker_once(i: int, marker_dir: str, victim: int) -> int:
    """Unit ``victim`` kills the process it runs in, the first time only (a marker file says)."""
    marker = Path(marker_dir) / f"killed-{i}"
    if i == victim and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return i * i


def _square_killing_its_worker_always(i: int, victim: int) -> int:
    if i == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    return i * i


def test_a_killed_local_worker_costs_only_its_task_retried_once(tmp_path):
    finished = []
    with WorkPool(jobs=2) as pool:
        out = pool.run(_square_killing_its_worker_once, [(i, str(tmp_path), 3) for i in range(8)],
                       on_done=lambda i, r: finished.append(i))
        assert (tmp_path / "killed-3").exists()  # a worker really died
        assert out == [i * i for i in range(8)]  # no row wrong, none missing
        assert sorted(finished) == list(range(8))  # each unit recorded exactly once
        # the pool works on afterwards, at full size
        assert pool.run(_square_killing_its_worker_once, [(i, str(tmp_path), -1) for i in range(4)]) == [0, 1, 4, 9]


def test_a_unit_that_kills_every_worker_it_runs_on_is_named(tmp_path):
    with WorkPool(jobs=2) as pool:
        with pytest.raises(UnitFailed, match=r"_square_killing_its_worker_always 3 of 5 failed: the local worker "
                                             r"process running it died \(it was run again, alone, and died again\)"):
            pool.run(_square_killing_its_worker_always, [(i, 2) for i in range(5)])
        assert pool.run(_square_killing_its_worker_always, [(i, -1) for i in range(3)]) == [0, 1, 4]
