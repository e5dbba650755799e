"""The FVP target table and the exact command line for every (platform, NPU, MAC count)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from ethos_kws.accel import ACCELERATORS, check_memory_mode, get_accelerator
from ethos_kws.backends.fvp.command import FvpCommand, build_argv
from ethos_kws.backends.fvp.targets import get_target, load_targets, target_for
from ethos_kws.errors import AcceleratorError, UserError

# (platform, accelerator) -> (executable, ethosu.num_macs, Vela memory mode), from fvp-notes.md
EXPECTED = {
    ("corstone-300", "u55-32"): ("FVP_Corstone_SSE-300_Ethos-U55", 32, "Shared_Sram"),
    ("corstone-300", "u55-64"): ("FVP_Corstone_SSE-300_Ethos-U55", 64, "Shared_Sram"),
    ("corstone-300", "u55-128"): ("FVP_Corstone_SSE-300_Ethos-U55", 128, "Shared_Sram"),
    ("corstone-300", "u55-256"): ("FVP_Corstone_SSE-300_Ethos-U55", 256, "Shared_Sram"),
    ("corstone-300", "u65-256"): ("FVP_Corstone_SSE-300_Ethos-U65", 256, "Dedicated_Sram_384KB"),
    ("corstone-300", "u65-512"): ("FVP_Corstone_SSE-300_Ethos-U65", 512, "Dedicated_Sram_384KB"),
    ("corstone-310", "u55-32"): ("FVP_Corstone_SSE-310", 32, "Shared_Sram"),
    ("corstone-310", "u55-64"): ("FVP_Corstone_SSE-310", 64, "Shared_Sram"),
    ("corstone-310", "u55-128"): ("FVP_Corstone_SSE-310", 128, "Shared_Sram"),
    ("corstone-310", "u55-256"): ("FVP_Corstone_SSE-310", 256, "Shared_Sram"),
    ("corstone-310", "u65-256"): ("FVP_Corstone_SSE-310_Ethos-U65", 256, "Dedicated_Sram_384KB"),
    ("corstone-310", "u65-512"): ("FVP_Corstone_SSE-310_Ethos-U65", 512, "Dedicated_Sram_384KB"),
    ("corstone-320", "u85-128"): ("FVP_Corstone_SSE-320", 128, "Dedicated_Sram_384KB"),
    ("corstone-320", "u85-256"): ("FVP_Corstone_SSE-320", 256, "Dedicated_Sram_384KB"),
    ("corstone-320", "u85-512"): ("FVP_Corstone_SSE-320", 512, "Dedicated_Sram_384KB"),
    ("corstone-320", "u85-1024"): ("FVP_Corstone_SSE-320", 1024, "Dedicated_Sram_384KB"),
    ("corstone-320", "u85-2048"): ("FVP_Corstone_SSE-320", 2048, "Dedicated_Sram_384KB"),
}
MPS3 = sorted(k for k in EXPECTED if k[0] != "corstone-320")
MPS4 = sorted(k for k in EXPECTED if k[0] == "corstone-320")

# runner folders in the mlia-ethos-u 0.1.0 wheel (unzip -l), one per target
WHEEL_RUNNER_DIRS = {
    ("corstone-300", "U55"): "inference_runner-sse-300-26.03.0-tflm-ethos-U55-Default-noTA",
    ("corstone-300", "U65"): "inference_runner-sse-300-26.03.0-tflm-ethos-U65-Default-noTA",
    ("corstone-310", "U55"): "inference_runner-sse-310-26.03.0-tflm-ethos-U55-Default-noTA",
    ("corstone-310", "U65"): "inference_runner-sse-310-26.03.0-tflm-ethos-U65-Default-noTA",
    ("corstone-320", "U85"): "inference_runner-sse-320-26.03.0-tflm-ethos-U85-Default-noTA",
}
OTHER_WHEEL_DIRS = [
    "inference_runner-sse-300-26.03.0-executorch-ethos-U55-Default-noTA",
    "inference_runner-sse-320-26.03.0-executorch-ethos-U85-Default-noTA",
]


def _command(platform: str, accel: str) -> FvpCommand:
    target, macs = target_for(accel, platform)
    return FvpCommand(
        target=target,
        executable=Path(f"/opt/fvp/{target.executable}"),
        runner=Path("/r/mlek_inference_runner.axf"),
        model=Path("/c/model_vela.tflite"),
        ifm=Path("/w/ifm.bin"),
        ofm=Path("/w/ofm.bin"),
        ofm_bytes=12,
        num_macs=macs,
        timelimit_s=300,
    )


@pytest.mark.parametrize("platform,accel", MPS3)
def test_exact_argv(platform, accel):
    exe, macs, _ = EXPECTED[(platform, accel)]
    assert build_argv(_command(platform, accel)) == [
        f"/opt/fvp/{exe}",
        "-a", "/r/mlek_inference_runner.axf",
        "-C", "mps3_board.visualisation.disable-visualisation=1",
        "-C", "mps3_board.telnetterminal0.start_telnet=0",
        "-C", "mps3_board.uart0.out_file=-",
        "-C", "mps3_board.uart0.shutdown_on_eot=1",
        "-C", f"ethosu.num_macs={macs}",
        "--data", "/c/model_vela.tflite@0x90000000",
        "--data", "/w/ifm.bin@0x92000000",
        "--dump", "cpu0=/w/ofm.bin@Memory:0x93000000,12",
        "--stat",
        "--timelimit", "300",
    ]  # fmt: skip


@pytest.mark.parametrize("platform,accel", MPS4)
def test_exact_argv_corstone_320(platform, accel):
    """MPS4 board: mps4_board.* parameters, the NPU under mps4_board.subsystem (as MLIA passes
    them), the HDLCD off, the output dumped from mps4_board.subsystem.cpu0's address space."""
    exe, macs, _ = EXPECTED[(platform, accel)]
    assert build_argv(_command(platform, accel)) == [
        f"/opt/fvp/{exe}",
        "-a", "/r/mlek_inference_runner.axf",
        "-C", "mps4_board.visualisation.disable-visualisation=1",
        "-C", "mps4_board.telnetterminal0.start_telnet=0",
        "-C", "mps4_board.uart0.out_file=-",
        "-C", "mps4_board.uart0.shutdown_on_eot=1",
        "-C", f"mps4_board.subsystem.ethosu.num_macs={macs}",
        "-C", "vis_hdlcd.disable_visualisation=1",
        "--data", "/c/model_vela.tflite@0x90000000",
        "--data", "/w/ifm.bin@0x92000000",
        "--dump", "mps4_board.subsystem.cpu0=/w/ofm.bin@Memory:0x93000000,12",
        "--stat",
        "--timelimit", "300",
    ]  # fmt: skip


@pytest.mark.parametrize("platform,accel", sorted(EXPECTED))
def test_target_memory_mode_is_in_the_vela_ini(platform, accel):
    target, _ = target_for(accel, platform)
    assert target.memory_mode == EXPECTED[(platform, accel)][2]
    assert check_memory_mode(target.memory_mode) == target.memory_mode


def test_every_accelerator_has_a_target_and_a_default_platform():
    assert {a for _, a in EXPECTED} == set(ACCELERATORS)
    for name, acc in ACCELERATORS.items():
        want = "corstone-320" if acc.npu == "U85" else "corstone-300"
        assert target_for(name)[0].platform == want


def test_u85_is_only_on_corstone_320():
    with pytest.raises(AcceleratorError, match="corstone-300 has no Ethos-U85 FVP; Ethos-U85 runs on corstone-320"):
        target_for("u85-256", "corstone-300")
    with pytest.raises(AcceleratorError, match="Ethos-U55 runs on corstone-300, corstone-310"):
        target_for("u55-128", "corstone-320")


def test_never_fast_mode():
    for key in EXPECTED:
        argv = build_argv(_command(*key))
        assert not any("extra_args" in a or "--fast" in a for a in argv)


def test_u65_384k_mode_sets_the_arena_cache():
    from ethos_kws.accel import memory_modes

    assert memory_modes()["Dedicated_Sram_384KB"]["arena_cache_size"] == "393216"


def test_mac_count_the_fvp_cannot_emulate():
    with pytest.raises(AcceleratorError, match="256, 512"):
        get_target("corstone-300", "U65").check_macs(128)
    cmd = _command("corstone-300", "u55-128")
    bad = FvpCommand(**{**cmd.__dict__, "num_macs": 512})
    with pytest.raises(AcceleratorError):
        build_argv(bad)


def test_platform_spellings():
    assert target_for("u55-128", "310")[0].platform == "corstone-310"
    assert target_for("u55-128", "Corstone_300")[0].platform == "corstone-300"
    assert target_for("ethos-u65-512")[0].executable == "FVP_Corstone_SSE-300_Ethos-U65"
    assert target_for("u85-1024", "320")[0].executable == "FVP_Corstone_SSE-320"
    with pytest.raises(UserError, match="corstone-300, corstone-310, corstone-320"):
        target_for("u55-128", "corstone-330")


@pytest.mark.parametrize("field", ["model", "ifm", "ofm", "runner", "executable"])
@pytest.mark.parametrize("bad", ["/w/a@b.bin", "/w/a,b.bin", "/w/a=b.bin"])
def test_paths_the_fvp_syntax_cannot_carry(field, bad):
    cmd = _command("corstone-300", "u55-128")
    with pytest.raises(UserError, match="cannot carry"):
        build_argv(FvpCommand(**{**cmd.__dict__, field: Path(bad)}))


def test_output_size_and_timelimit_bounds():
    cmd = _command("corstone-300", "u55-128")
    for bad in ({"ofm_bytes": 0}, {"ofm_bytes": 16 * 1024 * 1024 + 1}, {"timelimit_s": 0}):
        with pytest.raises(UserError):
            build_argv(FvpCommand(**{**cmd.__dict__, **bad}))


def test_runner_globs_match_the_wheel_layout():
    for target in load_targets():
        want = WHEEL_RUNNER_DIRS[(target.platform, target.npu)]
        folder, binary = target.runner_glob.split("/")
        assert binary == "mlek_inference_runner.axf"
        matches = [d for d in [*WHEEL_RUNNER_DIRS.values(), *OTHER_WHEEL_DIRS] if fnmatch.fnmatch(d, folder)]
        assert matches == [want]


def test_table_facts():
    rows = {(t.platform, t.npu): t for t in load_targets()}
    assert set(rows) == set(WHEEL_RUNNER_DIRS)
    assert rows[("corstone-300", "U55")].num_macs == (32, 64, 128, 256)
    assert rows[("corstone-300", "U55")].default_macs == 128
    assert rows[("corstone-300", "U65")].num_macs == (256, 512)
    assert rows[("corstone-300", "U65")].default_macs == 512
    assert rows[("corstone-310", "U55")].avh_executable == "VHT_Corstone_SSE-310"
    u85 = rows[("corstone-320", "U85")]
    assert u85.num_macs == (128, 256, 512, 1024, 2048) and u85.default_macs == 256
    assert (u85.executable, u85.avh_executable, u85.mlia_backend) == (
        "FVP_Corstone_SSE-320", "VHT_Corstone_SSE-320", "corstone-320")
    assert (u85.board_prefix, u85.npu_prefix) == ("mps4_board.", "mps4_board.subsystem.ethosu.")
    assert u85.memory_map.dump_instance == "mps4_board.subsystem.cpu0"
    mm = u85.memory_map  # the shared dynamic-load layout; only the CPU instance differs
    assert (mm.model_address, mm.ifm_address, mm.ofm_address) == (0x90000000, 0x92000000, 0x93000000)
    for t in rows.values():
        assert t.default_macs in t.num_macs
        if t.platform != "corstone-320":
            assert (t.board_prefix, t.npu_prefix) == ("mps3_board.", "ethosu.")
            assert t.memory_map.dump_instance == "cpu0" and t.extra_params == ()
        assert get_accelerator(f"{t.npu.lower()}-{t.default_macs}").npu == t.npu


def test_runner_cache_size_is_the_384k_mode():
    """The evaluation kit runners for Dedicated_Sram reserve their NPU cache as the ELF symbol
    ``cache_arena``; its size is the arena cache the Vela memory mode must ask for."""
    import struct

    from ethos_kws.accel import memory_modes
    from ethos_kws.backends.fvp.discovery import find_runner

    for target in load_targets():
        if target.memory_mode != "Dedicated_Sram_384KB":
            continue
        size = _elf_symbol_size(find_runner(target).path, b"cache_arena", struct)
        assert size == int(memory_modes()[target.memory_mode]["arena_cache_size"]) == 0x60000, target.key


def _elf_symbol_size(path, name: bytes, struct) -> int:
    """st_size of a symbol in a 32-bit little-endian ELF (.symtab/.strtab), read with struct."""
    data = path.read_bytes()
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 16):
            st_name, _value, st_size = struct.unpack_from("<III", data, off)
            start = strtab[4] + st_name
            if data[start:data.index(b"\0", start)] == name:
                return st_size
    raise AssertionError(f"{name!r} not in {path}")
