"""Issue 12 item 4: the executor seam on a real Dask cluster (LocalCluster, worker processes)."""

from __future__ import annotations

import os
import signal
import time

import pytest

distributed = pytest.importorskip("distributed")

from ethos_kws.cli import main  # noqa: E402
from ethos_kws.executors import SchedulerUnreachable, dask_address, dask_runner  # noqa: E402
from ethos_kws.explore import explore, parse_axes  # noqa: E402
from ethos_kws.synth import write_model  # noqa: E402
from ethos_kws.vela import compile_cache_dir  # noqa: E402

HOST_FIELDS = {"created", "host", "out_dir"}  # where and when, not what


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=50) as c:
        yield c


@pytest.fixture
def small_model(tmp_path):
    path = tmp_path / "tiny_conv.tflite"
    write_model(path, "conv2d", seed=3)
    return path


def _strip(doc):
    """An exploration without host fields and without the paths into this run's cache."""
    doc = {k: v for k, v in doc.items() if k not in HOST_FIELDS}
    for p in doc["points"]:
        if p["result"]:
            p["result"] = {k: v for k, v in p["result"].items() if k not in ("output_dir", "compiled_model")}
    return doc


def _axes():
    return parse_axes(accel="u55-64,u55-128,u65-256", optimise="Performance,Size")


def test_dask_results_equal_the_local_pool_field_for_field(cluster, small_model, tmp_path, monkeypatch):
    local = explore(small_model, _axes(), jobs=2)
    # a fresh cache: every point really runs on the cluster, and is stored by the client
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / "cache2"))
    with dask_runner(cluster.scheduler_address) as dask:
        with distributed.get_task_stream(dask.client) as stream:
            remote = explore(small_model, _axes(), dask=dask)
    assert len(remote.ok()) == 6
    ran = [t for t in stream.data if t["key"].startswith("compile_portable")]
    assert len(ran) == 6 and {t["worker"] for t in ran} <= set(cluster.scheduler_info["workers"])
    assert _strip(remote.to_dict()) == _strip(local.to_dict())
    # the client owns the cache: the compiled models are here, not on the workers' disks
    for p in remote.ok():
        assert str(compile_cache_dir()) in p.result.compiled_model
        assert os.path.getsize(p.result.compiled_model) > 0
    # and a re-run is served from it without the cluster
    again = explore(small_model, _axes())
    assert _strip(again.to_dict()) == _strip(remote.to_dict())


def test_a_killed_worker_costs_only_its_task(cluster, small_model, tmp_path, monkeypatch):
    expected = explore(small_model, _axes(), jobs=1)
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / "cache3"))
    killed = []
    with dask_runner(cluster.scheduler_address) as dask:
        pids = dask.client.run(os.getpid)

        def kill_one(_result) -> None:
            if not killed:  # one worker dies mid-run; its task runs again elsewhere
                pid = next(iter(pids.values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        remote = explore(small_model, _axes(), dask=dask, progress=kill_one)
    assert killed
    assert [p.status for p in remote.points] == ["ok"] * 6
    assert _strip(remote.to_dict()) == _strip(expected.to_dict())
    cluster.wait_for_workers(2, timeout=30)


def test_an_unreachable_scheduler_fails_within_the_timeout(small_model, capsys):
    t0 = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with dask_runner("tcp://127.0.0.1:9", timeout_s=1.0):
            pass
    assert time.monotonic() - t0 < 8
    rc = main(["explore", str(small_model), "--accel", "u55-64", "--dask", "tcp://127.0.0.1:9",
               "--dask-timeout", "1", "--out", str(small_model.parent / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "cannot reach the Dask scheduler" in err
    assert not (small_model.parent / "out").exists()


def test_a_malformed_address_is_bad_input(monkeypatch):
    from ethos_kws.errors import UserError

    with pytest.raises(UserError, match="not a scheduler address"):
        dask_address("sched:8786")
    monkeypatch.setenv("ETHOS_KWS_DASK", "tcp://h:8786")
    assert dask_address(None) == "tcp://h:8786"


def test_sweep_uses_the_seam(cluster, small_model, tmp_path):
    rc = main(["sweep", "--model", str(small_model), "--accel", "u55-64,u65-256", "--dask",
               cluster.scheduler_address, "--out", str(tmp_path / "sw"), "--json"])
    assert rc == 0 and (tmp_path / "sw" / "u65-256").is_dir()
