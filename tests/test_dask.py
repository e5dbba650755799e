"""Issue 12 item 4: the executor seam on a real Dask cluster (LocalCluster, worker processes)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time

import pytest

distributed = pytest.importorskip("distributed")

from ethos_kws.cli import main  # noqa: E402
from ethos_kws.executors import SchedulerUnreachable, dask_address, dask_runner  # noqa: E402
from ethos_kws.explore import explore, parse_axes  # noqa: E402
from ethos_kws.synth import write_model  # noqa: E402
from ethos_kws.vela import compile_cache_dir  # noqa: E402

HOST_FIELDS = {"created", "host", "out_dir"}  # where and when, not what


WORKER_CACHE: list[str] = []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # the workers' own cache: apart from the client's (as on another machine), never the user's
    cache = str(tmp_path_factory.mktemp("worker-cache"))
    WORKER_CACHE[:] = [cache]
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=50, env={"ETHOS_KWS_CACHE": cache}) as c:
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


# ---- parity batches, FVP runs and accuracy batches go through the same seam ---------------------

PARITY_HOST_FIELDS = ("npu_host_ms", "cpu_host_ms")


def _parity_doc(report):
    doc = report.to_dict()
    doc.pop("cpu_total_ms", None)
    for r in doc["results"]:
        for k in PARITY_HOST_FIELDS:
            r.pop(k, None)
    return doc


def test_parity_batches_on_local_processes_and_dask_equal_this_process(cluster, small_model, tmp_path,
                                                                      monkeypatch):
    from ethos_kws.parity import run_parity

    accels = "u55-64,u55-256,u65-256"
    here = run_parity(small_model, accels, vectors=4, jobs=1)
    local = run_parity(small_model, accels, vectors=4, jobs=2)
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / "cache2"))  # nothing compiled yet on this side
    worker_entries = _worker_compiles()
    with dask_runner(cluster.scheduler_address) as dask:
        with distributed.get_task_stream(dask.client) as stream:
            remote = run_parity(small_model, accels, vectors=4, dask=dask)
    ran = [t for t in stream.data if t["key"].startswith("npu_batch")]
    assert len(ran) == 3  # one unit per configuration, on the cluster's workers
    # compiled once per configuration, through the compile seam; the batches compile nothing
    assert len([t for t in stream.data if t["key"].startswith("compile_portable")]) == 3
    assert _worker_compiles() == worker_entries
    assert len(list((tmp_path / "cache2" / "compile").iterdir())) == 3  # the client's cache holds them
    assert [r.accel for r in remote.results] == accels.split(",")
    assert _parity_doc(here) == _parity_doc(local) == _parity_doc(remote)
    assert remote.passed and all(r.bit_exact_fraction == 1.0 for r in remote.results)
    assert remote.results[0].vela_ini_sha256 and len({r.vela_ini_sha256 for r in remote.results}) == 1


def _worker_compiles() -> set[str]:
    folder = os.path.join(WORKER_CACHE[0], "compile")
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def test_a_killed_worker_costs_only_its_parity_batch(cluster, small_model, tmp_path, monkeypatch):
    """WorkPool on Dask: a worker killed while it holds a batch; the scheduler runs the batch
    again on another worker, and every configuration's row is the one of a run without a kill."""
    from ethos_kws.parity import run_parity

    accels = "u55-64,u55-128,u55-256,u65-256"
    expected = run_parity(small_model, accels, vectors=4, jobs=1)
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / "cache4"))
    killed = []
    with dask_runner(cluster.scheduler_address) as dask:
        pids = dask.client.run(os.getpid)

        def kill_a_busy_worker(label, done, total) -> None:
            if killed or not label.startswith("u") or done < 1:
                return
            busy = [w for w, keys in dask.client.processing().items()
                    if any(str(k).startswith("npu_batch") for k in keys)]
            if busy:  # a worker holding a batch dies; its batch runs again elsewhere
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])

        remote = run_parity(small_model, accels, vectors=4, dask=dask, progress=kill_a_busy_worker)
    assert killed
    assert [r.accel for r in remote.results] == accels.split(",")
    assert _parity_doc(remote) == _parity_doc(expected)
    cluster.wait_for_workers(2, timeout=30)


def test_parity_cli_takes_jobs_and_an_unreachable_scheduler_fails_fast(small_model, capsys):
    assert main(["parity", "--model", str(small_model), "--accel", "u55-64,u55-128", "--count", "3",
                 "--jobs", "2", "--json"]) == 0
    assert '"bit_exact_fraction": 1.0' in capsys.readouterr().out
    t0 = time.monotonic()
    rc = main(["parity", "--model", str(small_model), "--accel", "u55-64", "--dask", "tcp://127.0.0.1:1",
               "--dask-timeout", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and time.monotonic() - t0 < 20
    assert err.count("\n") == 0 and "cannot reach the Dask scheduler" in err and "Traceback" not in err
    assert main(["parity", "--model", str(small_model), "--jobs", "0"]) == 2


def test_fvp_runs_spread_over_dask_workers_equal_the_local_runs(cluster, tmp_path, fvp_logs, int8io_model):
    """The FVP here is the TEST DOUBLE of test_fvp_process.py (no FVP can be installed here): it
    checks the seam, not a measurement."""
    from test_fvp_process import FakeFvp, success_log

    from ethos_kws.sweeps import measure_fvp, sweep

    fake = FakeFvp(tmp_path / "test-double")
    fake.configure(log=success_log(fvp_logs), dump_hex="00" * 12)
    one = sweep(int8io_model, accels="u55-128", out_dir=None, jobs=1)
    # the recorded log is u55-128's: the same configuration twice makes two FVP runs
    result = dataclasses.replace(one, results=(*one.results, *one.results))
    opts = dict(fvp=str(fake.path), runner=str(fake.runner))
    local = measure_fvp(result, **opts).extra["fvp"]
    with dask_runner(cluster.scheduler_address) as dask:
        with distributed.get_task_stream(dask.client) as stream:
            remote = measure_fvp(result, dask=dask, **opts).extra["fvp"]
    # each worker ran the model from its own cache (no shared file system needed), and its paths
    # say whose they are: never taken for the client's
    host = socket.gethostname()
    assert all(r["argv"][r["argv"].index("--data") + 1].startswith(f"{host}:{WORKER_CACHE[0]}") for r in remote)
    assert all(r["compiled_model"].startswith(f"{host}:{WORKER_CACHE[0]}") and r["runner"].startswith(f"{host}:/")
               and r["measured_on"].startswith(f"{host} (Dask worker tcp://") for r in remote)
    assert not any(r.get("measured_on") for r in local) and local[0]["compiled_model"].startswith("/")
    assert len([t for t in stream.data if t["key"].startswith("fvp_measurement")]) == 2
    where = ("fvp_wall_s", "argv", "compiled_model", "fvp_executable", "runner", "measured_on")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in where} for r in rows]  # noqa: E731
    assert [r["accel"] for r in remote] == ["u55-128", "u55-128"]
    assert strip(remote) == strip(local) and remote[0]["npu_active_cycles"] == 680611


def test_the_users_ini_reaches_the_workers_as_text(cluster, tmp_path, fvp_logs, int8io_model):
    """--config on the cluster: the ini's text travels with each FVP run, so a worker without the
    file compiles with the very ini the sweep used (its sha256 in every row)."""
    from test_fvp_process import FakeFvp, success_log
    from test_user_ini import MY_SOC

    from ethos_kws.sweeps import measure_fvp, sweep
    from ethos_kws.vela_ini import load_user_ini

    ini_path = tmp_path / "client-only" / "my_soc.ini"
    ini_path.parent.mkdir()
    ini_path.write_text(MY_SOC)
    ini = load_user_ini(ini_path)
    fake = FakeFvp(tmp_path / "test-double")
    fake.configure(log=success_log(fvp_logs), dump_hex="00" * 12)
    result = sweep(int8io_model, accels="u55-128", system_config="My_SoC", user_ini=ini, jobs=1)
    assert result.results[0].vela_ini_sha256 == ini.sha256
    ini_path.unlink()  # from here on, no file holds the ini: only the text the units carry
    with dask_runner(cluster.scheduler_address) as dask:
        rows = measure_fvp(result, dask=dask, fvp=str(fake.path), runner=str(fake.runner), user_ini=ini).extra["fvp"]
    assert rows[0]["vela_ini_sha256"] == ini.sha256 and rows[0]["system_config"] == "My_SoC"
    assert rows[0]["core_clock_hz"] == 250e6


def test_accuracy_batches_on_local_processes_and_dask_equal_this_process(cluster, tmp_path, audio_dir,
                                                                        int8io_model, monkeypatch):
    import hashlib

    from test_accuracy import _speech_commands

    from ethos_kws.accuracy import build_runs, evaluate
    from ethos_kws.dataset import load_dataset
    from ethos_kws.executors import WorkPool

    dataset = load_dataset(_speech_commands(tmp_path, audio_dir, copies=1), "test", None)
    sha = hashlib.sha256(int8io_model.read_bytes()).hexdigest()
    runs = build_runs(int8io_model, sha, ["cpu", "npu-sim"], ["u55-64", "u65-256"], {"kernels": "tflm"})

    def doc(pool, cache):
        monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / cache))  # every clip computed again
        d = evaluate(dataset, runs, pool=pool, progress=False, batch_clips=3)
        assert d["computed_clips"] == d["clips"] == len(dataset.clips)
        return [{k: v for k, v in r.items() if k != "cache_rejected_files"} for r in d["runs"]], d["executor"]

    here, where = doc(None, "c1")
    with WorkPool(jobs=2) as pool:
        local, where_local = doc(pool, "c2")
    with dask_runner(cluster.scheduler_address) as dask:
        with distributed.get_task_stream(dask.client) as stream:
            remote, where_remote = doc(WorkPool(dask=dask), "c3")
    assert len([t for t in stream.data if t["key"].startswith("score_batch")]) == -(-len(dataset.clips) // 3)
    assert (where, where_local, where_remote) == ("this process", "2 local processes",
                                                  f"Dask cluster at {cluster.scheduler_address}")
    assert here == local == remote
    assert all(r["top1"] == 1.0 for r in remote) and remote[1]["scores_differ_from_cpu"] == 0
