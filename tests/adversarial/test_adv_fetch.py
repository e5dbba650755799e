"""Issue 10, item 8: downloads against a local HTTP server on 127.0.0.1, bounded in time."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from advcli import cli, leftovers


class _Hostile(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/slow"):  # one byte every 2 s of a 503,816-byte body
            self.send_response(200)
            self.send_header("Content-Length", "503816")
            self.end_headers()
            try:
                for _ in range(15):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(2)
            except OSError:
                pass
        elif self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_dripping_server_cannot_outlast_the_deadline(server, tmp_path):
    env = {"ETHOS_KWS_CACHE": str(tmp_path)}
    out = cli("model", "fetch", "--url", f"{server}/slow", "--timeout", "5", rc=2, env=env, timeout=30,
              clean=(tmp_path,), match="timed out after 5 s")
    assert out.seconds < 12


@pytest.mark.parametrize("args, message", [
    (["--url", "{s}/loop"], "redirect loop"),
    (["--url", "{s}/missing"], "HTTP 404"),
    (["--url", "not-a-url"], "not an http:// or https:// URL"),
    (["--url", "http://[::1/x"], "not a valid URL"),
    (["--url", "{s}/missing", "--timeout", "-1"], "--timeout"),
    (["--url", "{s}/missing", "--timeout", "nan"], "--timeout"),
    (["--url", "{s}/missing", "--timeout", "inf"], "--timeout"),
    (["--url", "{s}/missing", "--timeout", "0"], "--timeout"),
])
def test_bad_fetch_arguments_are_one_line(args, message, server, tmp_path):
    cli("model", "fetch", *[a.format(s=server) for a in args], rc=2, env={"ETHOS_KWS_CACHE": str(tmp_path)},
        timeout=30, clean=(tmp_path,), match=message)
    assert not leftovers(tmp_path)
