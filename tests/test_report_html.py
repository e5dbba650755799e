"""The HTML report in a real headless Chromium, and model strings that must stay text.

Chromium is driven over ``--remote-debugging-pipe`` (DevTools protocol as NUL-framed JSON on fds
3 and 4) with the standard library only. Set ``ETHOS_KWS_SCREENSHOT_DIR`` to keep the screenshots.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import os
import re
import select
import shutil
import signal
import time
from pathlib import Path

import matplotlib.image
import pytest

from ethos_kws.report import write_report
from ethos_kws.sweeps import sweep

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE_TIMEOUT_S = 60.0

# Tensor and file names a hostile or careless model could carry.
EVIL_LAYER = '<script>alert("layer")</script> | *bold* _u_ `code` [link](http://example.com) ![img](x.png) $x$ &amp; #h'
EVIL_DEPTHWISE = "<img src=x onerror=alert(1)>"
EVIL_FILE = "<img src=x onerror=alert(2)>|*m*_[a](b)"


# ---- a tiny DevTools-protocol client ----------------------------------------------------------


class Chromium:
    FLAGS = (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--remote-debugging-pipe",
    )  # fmt: skip

    def __init__(self, exe: str, workdir: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        log = os.open(workdir / "chromium.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        args = [exe, *self.FLAGS, f"--user-data-dir={workdir / 'profile'}", "about:blank"]
        actions = [
            (os.POSIX_SPAWN_DUP2, cmd_r, 3), (os.POSIX_SPAWN_DUP2, out_w, 4),
            (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2),
        ]  # fmt: skip
        # its own session, so closing kills the wrapper script and every child process
        self.pid = os.posix_spawn(exe, args, os.environ, file_actions=actions, setsid=True)
        for fd in (cmd_r, out_w, log):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._out_r], [], [], left)[0]:
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while True:
            m = self._message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        seen = [e for e in self.events if e.get("method") == method and e.get("sessionId") == session]
        while not seen:
            m = self._message(deadline)
            self.events.append(m)
            if m.get("method") == method and m.get("sessionId") == session:
                return m
        return seen[0]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, TimeoutError, ConnectionError, RuntimeError):
            pass
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.killpg(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.1)
        try:  # helpers (zygote, renderers) still alive in the session we started
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(self._cmd_w)
        os.close(self._out_r)

    def inspect(self, page: Path, screenshot: Path) -> dict:
        """Load ``page``; return its images, console errors, scripts and text; save a screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        first_event = len(self.events)
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=s)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
        self.send("Page.navigate", {"url": page.resolve().as_uri()}, session=s)
        self.wait_for("Page.loadEventFired", s)

        def evaluate(expression: str):
            r = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                               "returnByValue": True}, session=s)
            assert "exceptionDetails" not in r, r
            return r["result"]["value"]

        images = evaluate("""Promise.all(Array.from(document.images).map(i => i.decode().then(
            () => ({w: i.naturalWidth, h: i.naturalHeight, alt: i.alt, src: i.src.slice(0, 21)}),
            e => ({w: 0, h: 0, alt: i.alt, src: i.src.slice(0, 21), error: String(e)}))))""")
        info = evaluate("""({scripts: document.scripts.length, title: document.title,
            text: document.body.textContent, handlers: Array.from(document.querySelectorAll('*'))
                .flatMap(e => Array.from(e.attributes).map(a => a.name)).filter(n => n.startsWith('on'))})""")
        size = self.send("Page.getLayoutMetrics", session=s)["cssContentSize"]
        shot = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1},
        }, session=s)  # fmt: skip
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        self.send("Target.closeTarget", {"targetId": target})
        errors = []
        for e in self.events[first_event:]:
            if e.get("sessionId") != s:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text", "error"))
        return {"images": images, "errors": errors, **info}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if exe is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium); .ci/run installs it")
    b = Chromium(exe, tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


def _keep(screenshot: Path) -> Path:
    keep = os.environ.get("ETHOS_KWS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / screenshot.name)
    return screenshot


def _check_screenshot(path: Path) -> None:
    img = matplotlib.image.imread(io.BytesIO(path.read_bytes()), format="png")
    assert img.shape[0] > 900 and img.shape[1] >= 1000
    assert img.std() > 0.05  # not a blank page


# ---- reports -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # module scope: isolate the compile cache ourselves
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture(scope="module")
def full_report(cache_env, int8io_model, fvp_logs, tmp_path_factory):
    """The real six-config sweep with an FVP section (a recorded Corstone-300 PMU report parsed by
    the FVP backend) and a real npu-sim parity run, so that every plot is on the page."""
    from ethos_kws.backends.fvp import pmu
    from ethos_kws.parity import run_parity

    result = sweep(int8io_model, accels="all").to_dict()
    c = pmu.parse_pmu((fvp_logs / "mlek_21.11_kws_dscnn_corstone300_u55.txt").read_text()).counters
    ours = next(r for r in result["results"] if r["accel"] == "u55-128")
    fvp = [{"accel": "u55-128", "platform": "corstone-300", "npu_active_cycles": c[pmu.NPU_ACTIVE],
            "npu_idle_cycles": c[pmu.NPU_IDLE], "npu_total_cycles": c[pmu.NPU_TOTAL],
            "vela_cycles_npu": ours["cycles_npu"]}]
    parity = run_parity(int8io_model, "u55-32,u55-128,u65-512", vectors=2).to_dict()
    return write_report(result, tmp_path_factory.mktemp("full") / "report", parity=parity, fvp=fvp)


def build_evil_model(folder: Path) -> Path:
    from ethos_kws.synth.net import NetBuilder

    nb = NetBuilder(seed=0)
    x = nb.input((1, 12, 10, 5))
    y = nb.conv2d(x, 16, name=EVIL_LAYER)
    y = nb.depthwise_conv2d(y, name=EVIL_DEPTHWISE)
    nb.output(y)
    path = folder / f"{EVIL_FILE}.tflite"
    path.write_bytes(nb.to_bytes("<b>evil</b>"))
    return path


@pytest.fixture(scope="module")
def evil_report(cache_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evil")
    model = build_evil_model(folder)
    result = sweep(model, accels="u55-128,u65-256", out_dir=folder / "run")
    names = {layer.name for r in result.results for layer in r.layers}
    assert {EVIL_LAYER, EVIL_DEPTHWISE} <= names  # the names survived Vela into the results
    return write_report(folder / "run", folder / "report")


def test_report_in_chromium(browser, full_report, tmp_path):
    shot = tmp_path / "report_full.png"
    page = browser.inspect(full_report / "index.html", shot)
    _keep(shot)
    assert page["errors"] == []
    pngs = sorted(p.name for p in full_report.glob("*.png"))
    assert pngs == sorted(["time_cycles.png", "memory.png", "layers.png", "compute_bound.png",
                           "parity.png", "fvp.png", "published.png", "roofline.png", "memory_map.png"])
    assert len(page["images"]) == len(pngs)
    for img in page["images"]:
        assert "error" not in img, img
        assert img["w"] > 100 and img["h"] > 100, img
        assert img["src"] == "data:image/png;base64"
    assert page["scripts"] == 1 and page["handlers"] == []
    assert page["title"] == "ethos-kws report: ds_cnn_l_int8io"
    _check_screenshot(shot)


def test_harness_sees_errors_and_broken_images(browser, tmp_path):
    """The browser check can fail: a console error and an undecodable image are reported."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>x</p><img alt="broken" src="data:image/png;base64,AAAA">'
                   '<script>console.error("boom")</script></body></html>')
    page = browser.inspect(bad, tmp_path / "bad.png")
    assert any("boom" in e for e in page["errors"])
    assert page["images"][0]["w"] == 0 and "error" in page["images"][0]


def test_hostile_names_render_as_text_in_chromium(browser, evil_report, tmp_path):
    shot = tmp_path / "report_hostile_names.png"
    page = browser.inspect(evil_report / "index.html", shot)
    _keep(shot)
    assert page["errors"] == []  # an unescaped <img onerror> would fail to load and log here
    assert page["scripts"] == 1 and page["handlers"] == []
    assert all(img["src"] == "data:image/png;base64" and img["w"] > 0 for img in page["images"])
    assert page["title"] == f"ethos-kws report: {EVIL_FILE}"
    for text in (EVIL_LAYER, EVIL_DEPTHWISE, EVIL_FILE):
        assert text in page["text"]
    _check_screenshot(shot)


class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(markup: str) -> _Elements:
    p = _Elements()
    p.feed(markup)
    p.close()
    return p


def test_hostile_names_are_text_in_the_html_source(evil_report):
    from ethos_kws.report.interactive import SCRIPT

    source = (evil_report / "index.html").read_text()
    page = _parse(source)
    tags = {t for t, _ in page.tags}
    # the only script is the sortable-table one the CSP allows by hash; no name became a script
    assert [t for t, _ in page.tags].count("script") == 1 and source.count("<script") == 1
    assert f"<script>{SCRIPT}</script>" in source
    assert "a" in tags  # the table of contents is the only link kind
    assert all(a["href"].startswith("#") for t, a in page.tags if t == "a")
    assert all(a["src"].startswith("data:image/png;base64,") for t, a in page.tags if t == "img")
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    text = "".join(page.text)
    for s in (EVIL_LAYER, EVIL_DEPTHWISE, EVIL_FILE):
        assert s in text


def test_hostile_names_are_text_in_markdown(evil_report):
    md = (evil_report / "report.md").read_text()
    assert EVIL_LAYER not in md and not re.search(r"(?<!\\)[<`]", md)  # every < and ` escaped
    # every table row keeps its column count: no name added a `|`
    for block in md.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        counts = {len([c for c in _split_row(r)]) for r in rows}
        assert len(counts) <= 1, block
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py renders report.md for this check")
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough").render(md)
    page = _parse(rendered)
    assert {t for t, _ in page.tags} <= {"h1", "h2", "h3", "p", "ul", "li", "strong", "em", "blockquote",
                                         "table", "thead", "tbody", "tr", "th", "td", "img", "code", "hr"}
    # the only images are our plots, the only code spans none
    assert sorted(a["src"] for t, a in page.tags if t == "img") == sorted(p.name for p in evil_report.glob("*.png"))
    assert not any(t == "code" for t, _ in page.tags)
    text = "".join(page.text)
    for s in (EVIL_LAYER, EVIL_DEPTHWISE, EVIL_FILE):
        assert s in text


def _split_row(row: str) -> list[str]:
    cells, cur, escaped = [], "", False
    for ch in row.strip()[1:-1]:
        if ch == "|" and not escaped:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
        escaped = ch == "\\" and not escaped
    return cells + [cur]


def test_hostile_names_do_not_break_plots(evil_report):
    from ethos_kws.report.escape import mpl_text

    assert mpl_text("$x$") == r"\$x\$"
    assert (evil_report / "layers.png").stat().st_size > 1000  # drawn, mathtext did not choke on `$x$`


def test_comparison_page_in_chromium(browser, cache_env, int8io_model, tmp_path):
    from ethos_kws.report import write_comparison

    a = sweep(int8io_model, accels="all").to_dict()
    b = sweep(int8io_model, accels="u55-128,u65-512", optimise="Size").to_dict()
    b["results"] += a["results"][:2]  # two configurations in common, two only in B
    dest, cmp = write_comparison(a, b, tmp_path / "cmp")
    # optimise differs between results of one accelerator, so every label names it
    assert cmp.configs == ("u55-32 / Performance", "u55-64 / Performance") and len(cmp.only_in_b) == 2
    page = browser.inspect(dest / "index.html", tmp_path / "compare.png")
    assert page["errors"] == [] and page["scripts"] == 0
    assert "Only in B (not compared): u55-128 / Size, u65-512 / Size" in page["text"]
