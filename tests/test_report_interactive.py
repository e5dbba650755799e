"""The report's per-layer, roofline and memory-map sections in headless Chromium: the one script runs
because the CSP allows its hash (and a changed script is refused), tables sort and filter by
configuration, every image decodes, no console errors, and a screenshot of each new section.
Set ``ETHOS_KWS_SCREENSHOT_DIR`` to keep the screenshots."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import matplotlib.image
import pytest
from test_report_html import Chromium, _keep, browser, cache_env  # noqa: F401 - fixtures

from ethos_kws.report import write_report
from ethos_kws.report.interactive import SCRIPT, script_hash
from ethos_kws.sweeps import sweep

SECTIONS = ("layers", "roofline", "memory-map")


@pytest.fixture(scope="module")
def report(cache_env, int8io_model, tmp_path_factory):  # noqa: F811
    result = sweep(int8io_model, accels="all")
    return write_report(result, tmp_path_factory.mktemp("interactive") / "report"), result


class Page:
    """One tab of the browser, with the console errors it logged."""

    def __init__(self, b: Chromium, path: Path):
        self.b = b
        self.target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.s = b.send("Target.attachToTarget", {"targetId": self.target, "flatten": True})["sessionId"]
        self.first = len(b.events)
        for domain in ("Runtime", "Log", "Page"):
            b.send(f"{domain}.enable", session=self.s)
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=self.s)
        b.send("Page.navigate", {"url": path.resolve().as_uri()}, session=self.s)
        b.wait_for("Page.loadEventFired", self.s)

    def js(self, expression: str):
        r = self.b.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                             "returnByValue": True}, session=self.s)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.b.events[self.first:]:
            if e.get("sessionId") != self.s:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", "error"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(str(p.get("args")))
        return out

    def shot(self, rect: dict, path: Path) -> Path:
        data = self.b.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": rect["y"], "width": 1280, "height": min(rect["h"], 9000), "scale": 1},
        }, session=self.s)["data"]  # fmt: skip
        path.write_bytes(base64.b64decode(data))
        return _keep(path)

    def close(self) -> None:
        self.b.send("Target.closeTarget", {"targetId": self.target})


def _section_rect(page: Page, anchor: str) -> dict:
    """From the section's heading to the next h2, with every <details> inside it opened."""
    return page.js(f"""(() => {{
        const h = document.getElementById({json.dumps(anchor)});
        let end = h.nextElementSibling;
        while (end && end.tagName !== 'H2' && end.tagName !== 'FOOTER') {{
            if (end.tagName === 'DETAILS') end.open = true;
            end = end.nextElementSibling;
        }}
        const top = h.getBoundingClientRect().top + window.scrollY;
        const bottom = end ? end.getBoundingClientRect().top + window.scrollY : document.body.scrollHeight;
        return {{y: top, h: bottom - top}};
    }})()""")


def _column(page: Page, table: str, header: str) -> list[str]:
    return page.js(f"""(() => {{
        const t = {table};
        const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.replace(/[▲▼ ]+$/, '') === {json.dumps(header)});
        return Array.from(t.tBodies[0].rows).filter(r => !r.hidden).map(r => r.cells[i].textContent);
    }})()""")


ALL_LAYERS = "Array.from(document.querySelectorAll('table.sortable')).find(t => t.parentNode.textContent.includes('Every layer of every configuration'))"


def test_new_sections_in_chromium(browser, report, tmp_path):  # noqa: F811
    dest, result = report
    html = (dest / "index.html").read_text()
    assert f"script-src {script_hash()}" in html and html.count("<script>") == 1
    page = Page(browser, dest / "index.html")
    try:
        images = page.js("""Promise.all(Array.from(document.images).map(i => i.decode().then(
            () => ({w: i.naturalWidth, alt: i.alt}), e => ({w: 0, alt: i.alt, error: String(e)}))))""")
        assert len(images) == len(list(dest.glob("*.png"))) and all(i["w"] > 100 and "error" not in i for i in images)
        assert {i["alt"] for i in images} >= {"Roofline per configuration", "Memory map per configuration"}
        # the script ran: every sortable table with several configurations got its filter
        assert page.js("document.querySelectorAll('label.filter select').length") >= 3
        assert page.js("Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes))"
                       ".filter(a => a.name.startsWith('on')).length") == 0  # listeners, no inline handlers

        # sort the every-layer table by cycles: descending on the second click
        page.js(f"{ALL_LAYERS}.tHead.rows[0].cells[6].click()")
        up = [int(c.replace(",", "")) for c in _column(page, ALL_LAYERS, "cycles")]
        page.js(f"{ALL_LAYERS}.tHead.rows[0].cells[6].click()")
        down = [int(c.replace(",", "")) for c in _column(page, ALL_LAYERS, "cycles")]
        assert up == sorted(up) and down == sorted(up, reverse=True)
        assert down[0] == max(x.cycles for r in result.results for x in r.layers)  # u55-32's first conv
        # filter it to one configuration
        page.js(f"""(() => {{ const s = {ALL_LAYERS}.previousElementSibling.querySelector('select');
                   s.value = 'u55-256'; s.dispatchEvent(new Event('change')); }})()""")
        configs = _column(page, ALL_LAYERS, "config")
        u55 = next(r for r in result.results if r.accel == "u55-256")
        assert set(configs) == {"u55-256"} and len(configs) == sum(1 for x in u55.layers if x.cycles or x.macs)
        assert _column(page, ALL_LAYERS, "cycles")[0] == "94,416"  # still sorted: its first conv

        for anchor in SECTIONS:
            rect = _section_rect(page, anchor)
            assert rect["h"] > 200, anchor
            shot = page.shot(rect, tmp_path / f"section_{anchor}.png")
            img = matplotlib.image.imread(io.BytesIO(shot.read_bytes()), format="png")
            assert img.shape[0] > 200 and img.shape[1] == 1280 and img.std() > 0.05, anchor
        time.sleep(0.2)  # let late console messages arrive
        page.js("1")
        assert page.errors() == []
    finally:
        page.close()


def test_a_changed_script_is_refused_by_the_csp(browser, report, tmp_path):  # noqa: F811
    dest, _ = report
    tampered = tmp_path / "index.html"
    tampered.write_text((dest / "index.html").read_text().replace(SCRIPT, SCRIPT.replace("sort by ", "sort: ")))
    page = Page(browser, tampered)
    try:
        assert page.js("document.querySelectorAll('label.filter').length") == 0  # it never ran
        page.js("1")
        assert any("Content Security Policy" in e for e in page.errors())
    finally:
        page.close()


def test_pages_without_sortable_tables_carry_no_script(report):
    from ethos_kws.report.document import Document, Para
    from ethos_kws.report.html import render_html

    html = render_html(Document("t", (Para("x"),)))
    assert "<script" not in html and "script-src" not in html
