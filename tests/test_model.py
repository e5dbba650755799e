"""Model handling: resolution order, validation errors, fetch against a real local HTTP server, info."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ethos_kws.cli import main
from ethos_kws.errors import FetchError
from ethos_kws.model import cached_model_path, fetch_model, model_info, resolve_model
from ethos_kws.tflite import load_tflite

PAYLOAD = bytes(range(256)) * 64  # 16 KiB the test controls
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/good":
            self._send(PAYLOAD)
        elif self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(3)
            self._send(PAYLOAD)
        elif self.path == "/lfs":
            self._send(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 503816\n")
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _cache_files() -> list[Path]:
    """What a download may have left in the model cache: the model itself or a partial file."""
    d = cached_model_path().parent
    if not d.exists():
        return []
    return sorted(p for p in d.iterdir() if p.name == cached_model_path().name or ".part" in p.name)


def test_fetch_right_hash_is_cached(server, tmp_path):
    dest = tmp_path / "cache" / "m.tflite"
    got = fetch_model(f"{server}/good", expected_size=len(PAYLOAD), expected_sha256=PAYLOAD_SHA, dest=dest)
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["m.tflite"]  # no temp file left


@pytest.mark.parametrize(
    "path, message",
    [
        ("/good", "does not match"),  # served file is not the ML-zoo model: wrong hash... and size
        ("/truncated", "truncated download"),
        ("/missing", "HTTP 404"),
        ("/lfs", "Git LFS pointer"),
    ],
)
def test_fetch_failures_cache_nothing(server, path, message):
    with pytest.raises(FetchError, match=message if path != "/good" else "expected 503816"):
        fetch_model(f"{server}{path}")
    assert _cache_files() == []


def test_fetch_wrong_hash_same_size(server, tmp_path):
    dest = tmp_path / "m.tflite"
    with pytest.raises(FetchError, match="sha256 .* does not match"):
        fetch_model(f"{server}/good", expected_size=len(PAYLOAD), expected_sha256="0" * 64, dest=dest)
    assert list(tmp_path.iterdir()) == []


def test_fetch_timeout(server, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch_model(f"{server}/slow", timeout_s=0.5, dest=tmp_path / "m.tflite")
    assert time.monotonic() - t0 < 2.5
    assert list(tmp_path.iterdir()) == []


def test_cli_fetch_bad_url_exit_2(server, capsys):
    rc = main(["model", "fetch", "--url", f"{server}/missing"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "HTTP 404" in err and "Traceback" not in err
    assert _cache_files() == []


def test_offline_nothing_cached_names_model_and_env(capsys):
    # conftest points downloads at a closed port on 127.0.0.1
    with pytest.raises(FetchError) as e:
        resolve_model(None)
    assert "--model" in str(e.value) and "$ETHOS_KWS_MODEL" in str(e.value)
    rc = main(["compile", "--accel", "u55-128"])
    err = capsys.readouterr().err
    assert rc == 2 and "--model" in err and "$ETHOS_KWS_MODEL" in err and err.count("\n") == 1


def test_resolution_order(int8io_model, float_io_model, monkeypatch):
    monkeypatch.setenv("ETHOS_KWS_MODEL", str(float_io_model))
    assert resolve_model(int8io_model).path == Path(int8io_model)  # explicit beats env
    r = resolve_model(None)
    assert r.path == Path(float_io_model) and r.provenance == "ml-zoo"
    monkeypatch.delenv("ETHOS_KWS_MODEL")
    assert resolve_model(int8io_model).provenance == "derived"


def test_damaged_cache_is_not_used(monkeypatch):
    p = cached_model_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"TFL3" * 10)
    with pytest.raises(FetchError):
        resolve_model(None)
    assert not p.exists()


# ---- bad model files: one line, exit code 2 -------------------------------------------------------


def _bad_files(tmp_path: Path, real: Path) -> dict[str, tuple[Path, str]]:
    data = real.read_bytes()
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    trunc = tmp_path / "truncated.tflite"
    trunc.write_bytes(data[: len(data) // 3])
    notfb = tmp_path / "notes.tflite"
    notfb.write_text("this is not a flatbuffer at all\n")
    unreadable = tmp_path / "unreadable.tflite"
    unreadable.write_bytes(data)
    unreadable.chmod(0)
    d = tmp_path / "adir"
    d.mkdir()
    return {
        "missing": (tmp_path / "nope.tflite", "not found"),
        "directory": (d, "is a directory"),
        "empty": (empty, "is empty"),
        "truncated": (trunc, "truncated"),
        "not tflite": (notfb, "TFL3"),
        "unreadable": (unreadable, "cannot read"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "truncated", "not tflite", "unreadable"])
@pytest.mark.parametrize("command", [["model", "info"], ["compile", "--accel", "u55-128", "--model"], ["sweep", "--model"]])
def test_bad_model_one_line_exit_2(case, command, tmp_path, int8io_model, capsys):
    import os

    path, message = _bad_files(tmp_path, int8io_model)[case]
    if case == "unreadable" and os.geteuid() == 0:
        # root reads mode-000 files; make it unreadable another way: a FIFO-free dangling read error
        path.chmod(0o644)
        path.unlink()
        path.symlink_to(path)  # a symlink loop: open() fails with ELOOP
        message = "cannot read"
    argv = command + [str(path)]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_model_info_real(int8io_model, capsys):
    info = model_info(int8io_model)
    assert info.inputs[0]["shape"] == [1, 490] and info.inputs[0]["dtype"] == "int8"
    assert info.inputs[0]["zero_point"] == 101 and abs(info.inputs[0]["scale"] - 1.0809113) < 1e-6
    assert info.outputs[0]["shape"] == [1, 12] and info.outputs[0]["zero_point"] == -128
    assert info.operators["CONV_2D"] == 6 and info.operators["DEPTHWISE_CONV_2D"] == 5
    # conv + depthwise + FC + pooling; Vela's nn_macs (28,345,776) adds 24 for its softmax lowering
    assert info.macs == 28_345_752
    assert len(info.weights) == 12 and all(w.unique_values > 32 for w in info.weights)  # not clustered
    assert info.warnings == ()
    rc = main(["model", "info", str(int8io_model), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["sha256"].startswith("34c04b84") and doc["vela_cpu_ops"] == []


def test_model_info_float_io_warns(float_io_model, capsys):
    rc = main(["model", "info", str(float_io_model)])
    err = capsys.readouterr().err
    assert rc == 0
    assert "float32" in err and "QUANTIZE" in err and "DEQUANTIZE" in err


def test_unique_values_counted_per_kernel(int8io_model, tmp_path):
    """Cluster one kernel to 8 values by editing the buffer in place; info must report 8."""
    m = load_tflite(int8io_model)
    conv = next(o for o in m.operators() if o.opcode == "CONV_2D")
    t = m.tensor(conv.inputs[1])
    buf = m.model.Buffers(t.Buffer())
    start = buf.DataAsNumpy().ctypes.data - np.frombuffer(m.data, np.uint8).ctypes.data
    n = buf.DataLength()
    data = bytearray(m.data)
    w = np.frombuffer(bytes(data[start : start + n]), np.int8)
    centroids = np.linspace(-100, 100, 8).astype(np.int8)
    clustered = centroids[np.argmin(np.abs(w[:, None].astype(int) - centroids[None, :]), axis=1)]
    data[start : start + n] = clustered.tobytes()
    p = tmp_path / "clustered.tflite"
    p.write_bytes(bytes(data))
    info = model_info(p)
    assert info.weights[0].unique_values == 8 and info.provenance == "user file"
