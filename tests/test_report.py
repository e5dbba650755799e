"""Reports of a real sweep (Vela in-process on the shared DS-CNN-L): files, content, optional
sections, default location, atomic rewrite, synthetic stand-in, CLI and bad inputs."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import matplotlib.image
import pytest

from ethos_kws.accel import get_accelerator
from ethos_kws.cli import main
from ethos_kws.report import ResultsError, load_results, write_report
from ethos_kws.sweeps import sweep

CORE_PLOTS = {"time_cycles.png", "memory.png", "layers.png", "compute_bound.png", "published.png", "roofline.png", "memory_map.png"}
CORE_FILES = {"index.html", "report.md", "results.csv", "results.json"} | CORE_PLOTS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, int8io_model):
    """A real six-config sweep, written the way `ethos-kws sweep --out` writes it."""
    out = tmp_path_factory.mktemp("sweep") / "run"
    with pytest.MonkeyPatch.context() as mp:  # module scope: isolate the compile cache ourselves
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        sweep(int8io_model, accels="all", out_dir=out)
    return out


@pytest.fixture(scope="module")
def doc(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory):
    return write_report(run_dir, tmp_path_factory.mktemp("report") / "rep")


def _data_uris(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_folder_holds_every_output(report):
    assert {p.name for p in report.iterdir()} == CORE_FILES  # no parity/FVP: no plots for them
    html = (report / "index.html").read_text()
    embedded = _data_uris(html)
    pngs = {p.name: p.read_bytes() for p in report.glob("*.png")}
    assert sorted(embedded) == sorted(pngs.values())  # every plot embedded, byte for byte
    for name, data in pngs.items():
        img = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert img.shape[0] > 100 and img.shape[1] > 100, name
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    # one script only: the sortable-table one, allowed by its hash in the page's CSP
    from ethos_kws.report.interactive import SCRIPT, script_hash

    assert html.lower().count("<script") == 1 and f"<script>{SCRIPT}</script>" in html
    assert f"script-src {script_hash()}\"" in html


def test_csv_and_json_carry_the_sweep_numbers(report, doc):
    rows = list(csv.DictReader(io.StringIO((report / "results.csv").read_text())))
    assert [r["accel"] for r in rows] == [r["accel"] for r in doc["results"]]
    for row, res in zip(rows, doc["results"]):
        for key in ("cycles_total", "sram_bytes", "flash_bytes", "dram_bytes", "npu_ops", "cpu_ops"):
            assert float(row[key]) == res[key], key
    kept = json.loads((report / "results.json").read_text())
    assert kept["model"] == doc["model"] and kept["results"] == doc["results"]


def test_header_names_model_provenance_vela_clocks_date_host(report, doc):
    md = (report / "report.md").read_text()
    html = (report / "index.html").read_text()
    m = doc["model"]
    for text in (m["sha256"], "derived", "5.2.0", "500 MHz", "1,000 MHz", doc["created"]):
        assert text in html, text
    assert "ds\\_cnn\\_l\\_int8io" in md  # the model name, Markdown-escaped
    assert "Ethos\\_U55\\_High\\_End\\_Embedded (500 MHz, Shared\\_Sram)" in md
    assert doc["host"].split(" ")[0] in html
    assert "SYNTHETIC" not in html


def test_tables_show_every_configuration(report, doc):
    html = (report / "index.html").read_text()
    md = (report / "report.md").read_text()
    for r in doc["results"]:
        cycles = f"{r['cycles_total']:,}"
        assert f"{r['accel']}: {cycles} cycles" in html  # the per-configuration section
        assert f"| {r['accel']} |" in md
        assert f"{r['sram_bytes'] / 1024:,.1f}" in md


def test_compute_bound_is_macs_over_macs_per_cycle(report, doc):
    html = (report / "index.html").read_text()
    for r in doc["results"]:
        bound = r["macs"] / get_accelerator(r["accel"]).macs_per_cycle
        ratio = r["cycles_total"] / bound
        assert ratio > 1.0  # no configuration beats its MAC limit
        assert f"{bound:,.0f}" in html and f"{ratio:.2f}×" in html


def test_published_figures_sit_beside_ours_labelled_published(report, doc):
    html = (report / "index.html").read_text()
    ours = next(r for r in doc["results"] if r["accel"] == "u55-128")
    section = html[html.index('id="published"'):]
    assert "PUBLISHED (Arm, 2021)" in section and "not results of this run" in section
    assert "681,172 cycles" in section  # published NPU TOTAL
    assert f"{ours['cycles_total']:,} cycles" in section  # ours beside it
    assert "published" in (report / "report.md").read_text().lower()


def test_default_folder_is_reports_model_name_under_cwd(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_report(run_dir) == tmp_path / "reports" / "ds_cnn_l_int8io"
    assert (tmp_path / "reports" / "ds_cnn_l_int8io" / "index.html").is_file()
    assert write_report(run_dir / "results.json", name="nightly") == tmp_path / "reports" / "nightly"
    with pytest.raises(ResultsError, match="plain folder name"):
        write_report(run_dir, name="../elsewhere")


def test_rewrite_is_atomic(run_dir, tmp_path, monkeypatch):
    dest = write_report(run_dir, tmp_path / "rep")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("ethos_kws.report.writer.render_markdown", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(run_dir, tmp_path / "rep")
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no half-written sibling left


def test_accepts_a_sweep_result_and_a_document(int8io_model, tmp_path, doc):
    result = sweep(int8io_model, accels="u55-64,u65-512")
    dest = write_report(result, tmp_path / "a")
    assert json.loads((dest / "results.json").read_text())["results"][1]["accel"] == "u65-512"
    dest = write_report(doc, tmp_path / "b")
    assert (dest / "index.html").is_file()


def test_synthetic_stand_in_is_loud(tmp_path):
    from ethos_kws.model import synthetic_stand_in

    result = sweep(synthetic_stand_in(), accels="u55-128")
    dest = write_report(result, tmp_path / "syn")
    html = (dest / "index.html").read_text()
    assert "[SYNTHETIC STAND-IN]</title>" in html
    assert '<div class="banner danger" role="alert">SYNTHETIC STAND-IN MODEL.' in html
    assert "> **DANGER: SYNTHETIC STAND-IN MODEL." in (dest / "report.md").read_text()


def test_missing_optional_fields_show_as_na(doc, tmp_path):
    stripped = json.loads(json.dumps(doc))
    for r in stripped["results"]:
        for key in ("layers", "macs", "vela_version", "macs_per_cycle", "dram_bytes"):
            r.pop(key, None)
    stripped.pop("host")
    dest = write_report(stripped, tmp_path / "lean")
    names = {p.name for p in dest.iterdir()}
    assert "layers.png" not in names and "compute_bound.png" not in names
    assert "memory.png" in names and "time_cycles.png" in names
    html = (dest / "index.html").read_text()
    assert "<dt>Vela version</dt><dd>n/a</dd>" in html and "<dt>host</dt><dd>n/a</dd>" in html


def test_fvp_section_from_a_recorded_fvp_log(run_dir, fvp_logs, tmp_path, doc):
    """A real Corstone-300 PMU report (ML eval kit, DS-CNN on U55-128), parsed by the FVP backend's
    parser, set beside our Vela estimate."""
    from ethos_kws.backends.fvp import pmu

    report = pmu.parse_pmu((fvp_logs / "mlek_21.11_kws_dscnn_corstone300_u55.txt").read_text())
    c = report.counters
    ours = next(r for r in doc["results"] if r["accel"] == "u55-128")
    fvp = [{
        "accel": "u55-128", "platform": "corstone-300",
        "npu_active_cycles": c[pmu.NPU_ACTIVE], "npu_idle_cycles": c[pmu.NPU_IDLE],
        "npu_total_cycles": c[pmu.NPU_TOTAL],
        "inference_time_ms": c[pmu.NPU_TOTAL] / ours["core_clock_hz"] * 1e3,
        "axi0_read_bytes": c[pmu.AXI0_READ] * 8, "axi0_write_bytes": c[pmu.AXI0_WRITE] * 8,
        "axi1_read_bytes": c[pmu.AXI1_READ] * 8, "vela_cycles_npu": ours["cycles_npu"],
    }]
    folder = tmp_path / "with_fvp"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(doc))
    (folder / "fvp.json").write_text(json.dumps(fvp))
    dest = write_report(folder, tmp_path / "fvp")
    assert "fvp.png" in {p.name for p in dest.iterdir()}
    html = (dest / "index.html").read_text()
    section = html[html.index('id="fvp"'):html.index('id="published"')]
    ratio = ours["cycles_npu"] / c[pmu.NPU_ACTIVE]
    assert f"{c[pmu.NPU_ACTIVE]:,}" in section and f"{ratio:.2f}×" in section
    assert "Vela cycles_npu ÷ FVP npu_active_cycles" in section
    published = html[html.index('id="published"'):]
    assert f"{c[pmu.AXI0_READ]:,} beats" in published  # the FVP column, converted back to beats


def test_parity_section_from_a_real_parity_run(int8io_model, doc, tmp_path):
    from ethos_kws.parity import run_parity

    parity = run_parity(int8io_model, "u55-128,u65-512", vectors=2).to_dict()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(doc))
    (tmp_path / "run" / "parity.json").write_text(json.dumps(parity))  # as a run folder holds it
    dest = write_report(tmp_path / "run", tmp_path / "par")
    assert "parity.png" in {p.name for p in dest.iterdir()}
    html = (dest / "index.html").read_text()
    section = html[html.index('id="parity"'):html.index('id="published"')]
    assert "npu: npu-sim" in section and "tolerance_lsb: 0.0" in section
    md = (dest / "report.md").read_text()
    for r in parity["results"]:
        status = "pass" if r["passed"] else "FAIL"
        row = (f"| {r['accel']} | {status} | 2 | {r['bit_exact_fraction'] * 100:.1f}% | "
               f"{r['max_abs_diff_lsb']:,.0f} | {r['mismatched_elements']:,} | {r['top1_agreement'] * 100:.1f}% |")
        assert row in md, row


def test_parity_errors_and_other_models_are_flagged(doc, tmp_path):
    parity = {"npu": "fvp", "model": {"sha256": "0" * 64}, "results": [
        {"accel": "u55-128", "vectors": 3, "error": "BackendError: <the FVP stopped>", "passed": False},
    ]}  # the shape run_parity records when a backend fails on a configuration
    dest = write_report(doc, tmp_path / "err", parity=parity)
    html = (dest / "index.html").read_text()
    assert "error: BackendError: &lt;the FVP stopped&gt;" in html
    assert "come from a different model (sha256 000000000000)" in html


def test_parity_first_difference_and_diagnosis_in_the_report(doc, tmp_path):
    parity = {"npu": "npu-sim", "results": [
        {"accel": "u55-128", "vectors": 4, "bit_exact_fraction": 0.75, "max_abs_diff_lsb": 1.0,
         "mismatched_elements": 1, "within_tolerance": False, "passed": False,
         "diagnosis": "consistent with compiler scale rounding in layer 'fc'",
         "first_differences": [{"vector": 2, "source": "random #2", "output": "Identity", "index": 7,
                                "cpu": -3, "npu": -2, "diff_lsb": 1.0}]},
        {"accel": "u65-256", "vectors": 4, "bit_exact_fraction": 1.0, "max_abs_diff_lsb": 0.0,
         "mismatched_elements": 0, "within_tolerance": True, "passed": True, "first_differences": []},
    ]}
    html = (write_report(doc, tmp_path / "diff", parity=parity) / "index.html").read_text()
    section = html[html.index('id="parity"'):]
    assert "first differing element" in section
    assert "random #2, Identity[7]: npu -2 cpu -3 (1.0 LSB); consistent with compiler scale rounding" in section


# ---- CLI --------------------------------------------------------------------------------------


def test_cli_report_run_dir_and_from(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r1")]) == 0
    assert str(tmp_path / "r1" / "index.html") in capsys.readouterr().out
    assert main(["report", "--from", str(run_dir / "results.json"), "--out", str(tmp_path / "r2"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["files"]) == CORE_FILES


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ethos-kws: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "results file not found"),
        ("", "is not JSON"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "not a sweep results document"),
        ('{"results": []}', "has no results"),
        ('{"results": [{"cycles_total": 5}]}', "results[0] has no 'accel'"),
        ('{"results": [{"accel": "u55-128", "cycles_total": "many"}]}', "results[0].cycles_total is 'many'"),
        ('{"results": [{"accel": "u55-128", "cycles_total": 5, "layers": 3}]}', "layers must be a list"),
        ('{"results": [{"accel": "u55-128", "cycles_total": 5}], "parity": 7}', "not a parity document"),
    ],
)
def test_cli_bad_results_file(tmp_path, capsys, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    err = _one_line_error(capsys, ["report", "--from", str(path), "--out", str(tmp_path / "out")])
    assert message in err
    assert not (tmp_path / "out").exists()


def test_cli_bad_run_dir_and_arguments(tmp_path, capsys):
    assert "no results.json in run folder" in _one_line_error(capsys, ["report", str(tmp_path)])
    assert "exactly one of RUN_DIR" in _one_line_error(capsys, ["report"])
    (tmp_path / "results.json").write_text("{}")
    assert "exactly one of RUN_DIR" in _one_line_error(
        capsys, ["report", str(tmp_path), "--from", str(tmp_path / "results.json")]
    )


def test_load_picks_up_sibling_sections_only_in_a_run_folder(doc, tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(doc))
    (tmp_path / "other.json").write_text(json.dumps(doc))
    (tmp_path / "parity.json").write_text(json.dumps({"results": [{"accel": "u55-128", "vectors": 1}]}))
    assert load_results(tmp_path).parity is not None
    assert load_results(tmp_path / "results.json").parity is not None
    assert load_results(tmp_path / "other.json").parity is None


def test_never_replaces_a_folder_that_is_not_a_report(run_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    err = _one_line_error(capsys, ["report", str(run_dir), "--out", str(tmp_path)])
    assert "refusing to replace" in err and (tmp_path / "notes.txt").read_text() == "mine"
    assert "refusing to replace" in _one_line_error(capsys, ["report", str(run_dir), "--out", str(run_dir)])
    monkeypatch.chdir(tmp_path)
    assert "current folder" in _one_line_error(capsys, ["report", str(run_dir), "--out", "."])
    assert (run_dir / "results.json").is_file() and (tmp_path / "notes.txt").is_file()
