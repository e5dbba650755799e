"""Issue 10, items 2, 4, 5: corrupt models, hostile .npy inputs, outputs and paths."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from advcli import cli
from hostile_files import (first_activation_with_shape, first_quantized_tensor, npy_bytes, npy_garbage_header,
                           npy_huge_header, with_dimension, with_scale)

from ethos_kws import fsutil
from ethos_kws.errors import OutputPathError, StorageFullError


@pytest.mark.parametrize("label, edit, message", [
    ("dimension -1", lambda d: with_dimension(d, first_activation_with_shape(d), 1, -1), "declares dimension -1"),
    ("dimension 2**31-1", lambda d: with_dimension(d, first_activation_with_shape(d), 1, 2**31 - 1), "over the"),
    ("NaN scale", lambda d: with_scale(d, first_quantized_tensor(d), float("nan")), "quantization scale nan"),
    ("negative scale", lambda d: with_scale(d, first_quantized_tensor(d), -1.0), "quantization scale -1.0"),
])
@pytest.mark.parametrize("command", [["model", "info", "--no-compile", "{m}"], ["run", "--model", "{m}"],
                                     ["compile", "--accel", "u55-128", "--model", "{m}", "--out", "{d}/c"]])
def test_corrupt_model_is_bad_input(label, edit, message, command, int8io_model, tmp_path):
    m = tmp_path / "bad.tflite"
    m.write_bytes(edit(int8io_model.read_bytes()))
    cli(*[a.format(m=m, d=tmp_path) for a in command], rc=2, clean=(tmp_path,), match=message)


@pytest.mark.parametrize("data, model, message", [
    (npy_garbage_header(), "int8", "unreadable .npy header"),
    (npy_huge_header(), "int8", "header declares shape (1099511627776,)"),
    (npy_bytes(np.full((1, 490), 1e308)), "float", "beyond the float32 range"),
    (npy_bytes(np.zeros((1, 490), "int8"))[:-100], "int8", ""),
])
@pytest.mark.parametrize("backend", ["cpu", "npu-sim"])
def test_hostile_npy_inputs(data, model, message, backend, int8io_model, float_io_model, tmp_path):
    x = tmp_path / "x.npy"
    x.write_bytes(data)
    m = int8io_model if model == "int8" else float_io_model
    out = cli("run", "--backend", backend, "--model", m, "--input", x, rc=2, timeout=60, match=message)
    assert out.seconds < 60


@pytest.fixture
def precious(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("precious\n")
    return f


@pytest.mark.parametrize("command", [
    ["compile", "--accel", "u55-128", "--model", "{m}", "--out", "{f}"],
    ["sweep", "--accel", "u55-128", "--model", "{m}", "--out", "{f}"],
    ["compile", "--accel", "u55-128", "--model", "{m}", "--out", "{f}/sub"],
    ["vectors", "--model", "{m}", "--count", "2", "--out", "{f}/sub"],
    ["vectors", "--model", "{m}", "--count", "2", "--out", "{f}"],
    ["model", "synth", "--arch", "ds-cnn-s", "--out", "{f}/m.tflite"],
    ["compile", "--accel", "u55-128", "--model", "{m}", "--out", "/proc/ethos-kws-hostile"],
    ["sweep", "--accel", "u55-128", "--model", "{m}", "--out", "/sys/ethos-kws-hostile"],
    ["run", "--model", "{m}", "--seed", "-1"],
    ["vectors", "--model", "{m}", "--seed", "-1", "--out", "{d}/v"],
    ["parity", "--model", "{m}", "--seed", "-1", "--accel", "u55-128", "--vectors", "2"],
    ["sweep", "--accel", "", "--model", "{m}", "--out", "{d}/s"],
    ["sweep", "--accel", ",", "--model", "{m}", "--out", "{d}/s"],
])
def test_bad_output_paths_and_flags(command, int8io_model, precious, tmp_path):
    args = [a.format(m=int8io_model, f=precious, d=tmp_path) for a in command]
    cli(*args, rc=2, keep=(precious,), clean=(tmp_path,))


def test_sweep_refuses_a_foreign_folder(int8io_model, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    cli("sweep", "--accel", "u55-128", "--model", int8io_model, "--out", home, rc=2,
        keep=(home / "thesis.tex",), match="other content")


@pytest.mark.parametrize("cache", ["{f}", "{f}/c", "/proc/ethos-kws-cache"])
def test_unusable_cache_folder(cache, int8io_model, precious, tmp_path):
    cli("compile", "--accel", "u55-128", "--model", int8io_model, "--out", tmp_path / "o",
        env={"ETHOS_KWS_CACHE": cache.format(f=precious)}, rc=2, keep=(precious,), clean=(tmp_path,))


@pytest.mark.parametrize("err, cls", [(errno.ENOSPC, StorageFullError), (errno.EROFS, OutputPathError),
                                      (errno.EACCES, OutputPathError)])
def test_write_errors_name_the_path_and_leave_nothing(err, cls, tmp_path, monkeypatch):
    """A full disk, a read-only or forbidden folder, simulated at the write (root ignores modes)."""
    import os

    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, data):
            raise OSError(err, os.strerror(err))

    monkeypatch.setattr(fsutil.os, "fdopen", lambda fd, mode: Failing(real_fdopen(fd, mode)))
    target = tmp_path / "out" / "results.json"
    with pytest.raises(cls, match=f"cannot write {target}"):
        fsutil.atomic_write_json(target, {"a": 1})
    assert list((tmp_path / "out").iterdir()) == []


def test_full_disk_inside_a_run_folder_keeps_the_old_one(tmp_path, monkeypatch):
    old = tmp_path / "run"
    old.mkdir()
    (old / "results.json").write_text("old")
    with pytest.raises(StorageFullError):
        with fsutil.atomic_dir(old, marker="results.json") as tmp:
            (tmp / "a").write_text("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (old / "results.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
