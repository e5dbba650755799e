"""The memory map from Vela's tensor allocation explains the SRAM figure: its peak is Vela's SRAM
use on all six configurations, the live tensors add up to it, and the operation at the peak is named."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from ethos_kws.accel import ACCELERATORS
from ethos_kws.memory_map import READ_ONLY, arena, largest, live_at, parse_allocations, peak
from ethos_kws.report import load_results, write_report
from ethos_kws.report.memory_section import op_at, peak_sentence
from ethos_kws.sweeps import sweep
from ethos_kws.vela import compile_model


@pytest.fixture(scope="module")
def run(tmp_path_factory, int8io_model):
    out = tmp_path_factory.mktemp("memmap") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        result = sweep(int8io_model, accels="all", out_dir=out)
    return result, out


def test_arena_peak_is_velas_sram_figure_on_all_six(run):
    result, _ = run
    assert [r.accel for r in result.results] == list(ACCELERATORS)
    for r in result.results:
        a = arena(r.allocations)
        assert a is not None and a.memory == "Sram", r.accel
        step, live = peak(a)
        assert live == a.peak_bytes == r.sram_bytes, r.accel  # the live tensors add up to the SRAM figure
        assert max(t.end_address for t in a.tensors) == r.sram_bytes  # and fill the arena exactly
        assert sum(t.size_bytes for t in live_at(a, step)) == live
        assert all(t.end_address - t.start_address == t.size_bytes for t in a.tensors)
        ro = [x for x in r.allocations if x.memory == READ_ONLY]
        assert ro and ro[0].peak_bytes == r.flash_bytes + r.dram_bytes - sum(  # weights: flash or DRAM
            x.peak_bytes for x in r.allocations if x.memory == "Dram")


def test_peak_op_is_named(run):
    result, _ = run
    for r in result.results:
        d = r.to_dict()
        step, _ = peak(arena(r.allocations))
        op = op_at(d, step)
        assert op is not None and op["tflite_op"] == "DEPTHWISE_CONV_2D" and op["index"] == 2
    u55 = next(r for r in result.results if r.accel == "u55-256")
    text = peak_sentence("u55-256", u55.to_dict())
    assert "96,400 B live at time step 2 during Vela row 2 (DepthwiseConv2D, TFLite op #2" in text
    assert largest(arena(u55.allocations), 1)[0].size_bytes == 72_000  # the first conv's OFM


def test_legacy_allocation_format_parses(int8io_model):
    r = compile_model(int8io_model, "u55-64", legacy_core=True)
    a = arena(r.allocations)
    assert a is not None and len(a.tensors) > 20
    assert {t.purpose for t in a.tensors} >= {"FeatureMap", "Weights"}
    assert max(t.end_address for t in a.tensors) == r.sram_bytes


def test_a_name_with_colons_stays_whole():
    log = ("Allocation, memory Sram, usage mask: FeatureMap\n"
           "Start Time - End Time  : Start Addr -   End Addr: Tensor Size: Memory Usage: Format : Name\n"
           "   0 -   3:   0x0 -   0x40:   64:   64: NHWC : a:b: c\n"
           "   2 -   5:   0x40 -  0x50:   16:   80: NHWC : next\n"
           "Allocation Peak Tensor Size: 80 bytes == 0.078125 KiB\n")
    [a] = parse_allocations(log)
    assert [t.name for t in a.tensors] == ["a:b: c", "next"] and peak(a) == (2, 80)


def test_report_has_memory_map_section_and_plot(run, tmp_path):
    dest = write_report(run[1], tmp_path / "r")
    md = (dest / "report.md").read_text()
    assert "## Memory map: why the arena is the size it is" in md
    assert "**The 10 largest tensors of each arena**" in md and "0x0–0x11940" in md
    with Image.open(io.BytesIO((dest / "memory_map.png").read_bytes())) as im:
        im.load()
    assert load_results(dest).results[0]["allocations"]
