"""Issue 10, item 6: interrupted sweeps leave no process, no temporary, no mixed run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from advcli import ROOT, cli, descendants_alive, leftovers


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_the_sweep(sig, int8io_model, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ETHOS_KWS_CACHE": str(tmp_path / "cache")}
    p = subprocess.Popen([sys.executable, "-m", "ethos_kws", "sweep", "--jobs", "2", "--accel", "all", "--legacy-core",
                          "--model", str(int8io_model), "--out", str(tmp_path / "run")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    kids: list[int] = []
    while time.monotonic() < deadline and len(kids) < 2 and p.poll() is None:
        kids = descendants_alive(p.pid)
        time.sleep(0.01)
    if len(kids) < 2:
        p.kill()
        pytest.skip("the sweep finished before its workers could be observed")
    os.kill(p.pid, sig)
    p.wait(timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.05)
    survivors = [k for k in kids if _alive(k)]
    for k in survivors:
        os.kill(k, signal.SIGKILL)
    assert not survivors, "sweep workers outlived their parent"
    # whatever the killed run left, the next run into the same places removes it
    cli("sweep", "--jobs", "2", "--accel", "u55-128", "--model", int8io_model, "--out", tmp_path / "run",
        rc=0, env={"ETHOS_KWS_CACHE": str(tmp_path / "cache")})
    assert not leftovers(tmp_path)


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _run_folder_with_dead_temporaries(tmp_path):
    """A run folder holding what a write-out killed half way leaves: a dead process's temporary
    file and folder."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / f".results.csv.{dead.pid}.k2j3.tmp").write_text("half")
    (run / f".u55-256.{dead.pid}.a1b2.tmp").mkdir()
    return run


def test_stale_temporaries_of_dead_processes_are_removed(int8io_model, tmp_path):
    run = _run_folder_with_dead_temporaries(tmp_path)
    live = run / f".results.json.{os.getpid()}.zz99.tmp"  # a live process's: left alone
    live.write_text("mine")
    cli("sweep", "--accel", "u55-128", "--model", int8io_model, "--out", run / "inner", rc=0)
    assert sorted(p.name for p in run.iterdir()) == sorted(["inner", live.name])


def test_stale_temporaries_inside_the_out_folder_are_removed(int8io_model, tmp_path):
    """A write-out killed half way leaves them in the run folder itself: they are not "other
    content" that makes the folder look foreign; the sweep removes them and writes there."""
    run = _run_folder_with_dead_temporaries(tmp_path)
    cli("sweep", "--accel", "u55-128", "--model", int8io_model, "--out", run, rc=0, clean=(tmp_path,))
    assert (run / "results.json").is_file()


def test_sweeping_model_b_into_model_a_folder_is_consistent(int8io_model, tmp_path):
    b = tmp_path / "b.tflite"
    cli("model", "synth", "--arch", "ds-cnn-s", "--out", b, rc=0)
    run = tmp_path / "run"
    cli("sweep", "--accel", "u55-128,u55-256", "--model", int8io_model, "--out", run, rc=0)
    cli("sweep", "--accel", "u55-128", "--model", b, "--out", run, rc=0)
    doc = json.loads((run / "results.json").read_text())
    folders = sorted(p.name for p in run.iterdir() if p.is_dir())
    assert folders == ["u55-128"] == [r["accel"] for r in doc["results"]]
    assert json.loads((run / "u55-128" / "compile.json").read_text())["model_sha256"] == doc["model"]["sha256"]
