"""Issue 10, item 3 and the fuzz test: corrupted command streams and models never run silently wrong.

A flip that moves an address, a stride or a size is a clear ``CommandStreamError`` (exit 2) from the
data-flow check (``npusim/dataflow.py``); a flip in a value the hardware accepts (a scale, a clamp,
a padding amount, a zero point) may change the output and is counted. Everything runs in-process
on the Python API (fast); a handful of cases go through the CLI to check the one-line exit 2.
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from advcli import cli
from hostile_files import (DATAFLOW_REFUSAL, accepted_value, command_stream_span, flip_bit, output_tensor,
                           scratch_size, with_arena_offset)

from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.commands import CMD0, CMD1, decode_stream
from ethos_kws.backends.npusim.container import parse_payload
from ethos_kws.backends.npusim.disasm import DECODERS, disassemble, to_text
from ethos_kws.backends.npusim.u85 import isa
from ethos_kws.backends.npusim.u85.commands import U85Command
from ethos_kws.errors import CommandStreamError, NotModelledError, UserError
from ethos_kws.tflite import load_tflite

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
@pytest.fixture(scope="module")
def compiled(int8io_model, tmp_path_factory):
    """DS-CNN-L int8 compiled for u55-128 (through the contained Vela worker), its stream layout,
    a fixed input and the reference output."""
    root = tmp_path_factory.mktemp("cmdstream")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(root / "cache"))
        path = compile_with_vela(int8io_model, "u55-128", root / "out")
    data = path.read_bytes()
    start, length = command_stream_span(data)
    payload = parse_payload(data[start : start + length])
    header = length - 4 * len(payload.words)
    commands = decode_stream(payload.words, 1 << 20)
    x = (np.arange(490, dtype=np.int64).reshape(1, 490) % 100).astype(np.int8)
    ref = NpuSimBackend(path, warm_up=False).run([x]).outputs[0].data
    return {"path": path, "data": data, "stream": start + header, "commands": commands, "x": x, "ref": ref,
            "root": root}


def outcome(c, data: bytes, name: str = "case_vela.tflite") -> str:
    """"error" (bad input), "not modelled", "same" or "changed"; any other exception fails the test."""
    f = c["root"] / name
    f.write_bytes(data)
    try:
        out = NpuSimBackend(f, warm_up=False).run([c["x"]]).outputs[0].data
    except UserError:
        return "error"
    except NotModelledError:
        return "not modelled"
    return "same" if np.array_equal(out, c["ref"]) else "changed"


def payload_flip(c, cmd, bit: int) -> bytes:
    """Flip one bit of a command: bits 16..31 of the word (cmd0 param) or 32..63 (cmd1 payload)."""
    return flip_bit(c["data"], c["stream"] + cmd.offset + bit // 8, bit % 8)


def first(c, name: str, n: int = 0):
    return [cmd for cmd in c["commands"] if cmd.name == name][n]


# ---- item 3: the cases of the issue ---------------------------------------------------------------


@pytest.mark.parametrize("reg, bits", [
    ("NPU_SET_IFM2_BASE0", range(36, 52)),  # IFM2 base moved by 16 B .. 512 KiB
    ("NPU_SET_IFM_BASE0", range(36, 52)),
    ("NPU_SET_OFM_BASE0", range(36, 52)),
    ("NPU_SET_SCALE_BASE", range(36, 52)),
])
def test_moved_base_is_a_clear_error(compiled, reg, bits):
    tally = collections.Counter(outcome(compiled, payload_flip(compiled, first(compiled, reg), b)) for b in bits)
    print(reg, dict(tally))
    assert tally["changed"] == 0, f"{reg}: a moved base ran silently wrong {tally['changed']} times: {dict(tally)}"


def test_ofm_moved_to_another_region(compiled):
    """OFM_REGION 1 -> 0 (read-only), 3, 5: refused; 1 -> 2 is the same memory in Shared_Sram mode."""
    cmd = first(compiled, "NPU_SET_OFM_REGION")
    got = {b - 16: outcome(compiled, payload_flip(compiled, cmd, b)) for b in (16, 17, 18)}
    assert got[0] == "error" and got[2] == "error", got
    assert got[1] in ("error", "same"), got


def test_ofm_stride_changed(compiled):
    """A changed OFM stride scatters the result: either it lands on bytes the consumer never reads
    (an unread result) or the consumer reads bytes nothing wrote; never a silent answer."""
    tally = collections.Counter()
    for reg in ("NPU_SET_OFM_STRIDE_Y", "NPU_SET_OFM_STRIDE_C"):
        for b in range(36, 44):
            tally[outcome(compiled, payload_flip(compiled, first(compiled, reg), b))] += 1
    print(dict(tally))
    assert tally["changed"] == 0, dict(tally)


def test_ifm_padding_is_an_accepted_value(compiled):
    """Padding is a value the hardware takes: the output may change, and it is not an error."""
    cmd = next(c for c in compiled["commands"] if c.name.startswith("NPU_SET_IFM_PAD") and c.param)
    assert outcome(compiled, payload_flip(compiled, cmd, 16)) in ("same", "changed")


def _refusal(c, data: bytes, name: str) -> str:
    """The CommandStreamError a corrupted copy of the compiled model is refused with ("" if none)."""
    f = c["root"] / name
    f.write_bytes(data)
    try:
        NpuSimBackend(f, warm_up=False)
    except CommandStreamError as e:
        return str(e)
    return ""


def _with_address(c, cmd, address: int) -> bytes:
    """The compiled model with the 32-bit address of one cmd1 command replaced."""
    pos = c["stream"] + cmd.offset + 4
    return c["data"][:pos] + address.to_bytes(4, "little") + c["data"][pos + 4 :]


def _with_param(c, cmd, param: int) -> bytes:
    """The compiled model with the 16-bit parameter of one cmd0 command replaced."""
    pos = c["stream"] + cmd.offset + 2
    return c["data"][:pos] + param.to_bytes(2, "little") + c["data"][pos + 2 :]


def test_lost_operation_leaves_its_dma_unread(compiled):
    """A CONV opcode turned into a register write (SET_IFM_PAD_RIGHT, seen in the fuzz: seed 2):
    the layer is not computed, and its consumer may still find bytes an older tensor of the same
    layout left. The weights DMA'd for it are then read by nothing: refused."""
    c, found = compiled, []
    for cmd in [cmd for cmd in c["commands"] if cmd.name == "NPU_OP_CONV"]:
        pos = c["stream"] + cmd.offset
        data = c["data"][:pos] + (0x0102).to_bytes(2, "little") + c["data"][pos + 2 :]
        message = _refusal(c, data, "lost_conv_vela.tflite")
        assert message, f"a lost CONV at stream byte {cmd.offset} ran"
        found.append("never read by a later operation" in message and "DMA" in message)
    assert any(found), "no lost CONV was named by its unread DMA"


def test_constant_feature_map_moved_onto_weights(compiled):
    """An IFM2 in region 0 (a softmax constant) moved onto a weight stream (seen in the fuzz: seed
    1, a moved IFM2_BASE0): refused as reading weights as feature-map data."""
    c = compiled
    dma = next(cmd for cmd in c["commands"] if cmd.name == "NPU_SET_DMA0_SRC")  # a weight stream in region 0
    region, moved = None, 0
    for cmd in c["commands"]:
        if cmd.name == "NPU_SET_IFM2_REGION":
            region = cmd.param & 7
        if cmd.name == "NPU_SET_IFM2_BASE0" and region == 0:
            message = _refusal(c, _with_address(c, cmd, dma.address + 16), "moved_const_vela.tflite")
            assert "part of a weight or scale stream" in message, message
            moved += 1
    assert moved, "the stream has no region 0 IFM2 (the softmax constants)"


def test_lut_source_moved_onto_weights(compiled):
    """The source of a LUT load (a DMA to SHRAM) moved onto the weights of the last conv (seen in
    the fuzz: seed 6, a flipped DMA0_SRC): refused as reading a weight stream as LUT data."""
    c, region, moved = compiled, None, 0
    for cmd in c["commands"]:
        if cmd.name == "NPU_SET_DMA0_SRC":
            src = cmd
        if cmd.name == "NPU_SET_DMA0_DST_REGION":
            region = cmd.param
        if cmd.name == "NPU_OP_DMA_START" and region is not None and region & 0x100:  # to SHRAM
            message = _refusal(c, _with_address(c, src, src.address - 256), "moved_lut_vela.tflite")
            assert "part of a weight or scale stream, as feature-map or LUT data" in message, message
            moved += 1
    assert moved, "the stream has no LUT load (softmax on U55 has one)"


def test_scale_stream_of_another_operation(compiled):
    """A conv given the scale base of the conv before (seen in the fuzz: seed 4, a lost
    SCALE_BASE write): its weights come with another operation's scale stream. Refused."""
    c = compiled
    bases = [cmd for cmd in c["commands"] if cmd.name == "NPU_SET_SCALE_BASE"]
    tried = 0
    for before, cmd in zip(bases, bases[1:]):
        if before.address == cmd.address:
            continue
        message = _refusal(c, _with_address(c, cmd, before.address), "moved_scale_vela.tflite")
        assert message, f"the SCALE_BASE at stream byte {cmd.offset} moved onto the one before ran"
        tried += "goes with other weights" in message
    assert tried, "no moved scale base was named by its weights"


def test_kernel_reads_past_its_tile(compiled):
    """The AVERAGE pool's kernel grown by 2 columns (seen in the fuzz: seed 6, a flipped
    KERNEL_WIDTH_M1): it reads past tile 0 into bytes another tile base gives, where a result
    computed from its own IFM lies. Refused."""
    c = compiled
    kernel = None
    for cmd in c["commands"]:
        if cmd.name == "NPU_SET_KERNEL_WIDTH_M1":
            kernel = cmd
        if cmd.name == "NPU_OP_POOL" and cmd.param == 1:  # AVERAGE
            break
    else:
        pytest.fail("the stream has no AVERAGE pool")
    message = _refusal(c, _with_param(c, kernel, kernel.param + 2), "wide_kernel_vela.tflite")
    assert "in one tile and, in another" in message, message


def test_kernel_operation_in_place(compiled):
    """A 3x3 DEPTHWISE given its own IFM's address as OFM (seen in the fuzz: seed 9, an
    IFM_PAD_BOTTOM opcode turned into OP_DEPTHWISE right after the next IFM_BASE0 write, so the
    extra op read the previous op's OFM and wrote over it). Refused."""
    c, ifm, ofm, tried = compiled, None, None, 0
    for cmd in c["commands"]:
        if cmd.name == "NPU_SET_IFM_BASE0":
            ifm = cmd
        if cmd.name == "NPU_SET_OFM_BASE0":
            ofm = cmd
        if cmd.name == "NPU_OP_DEPTHWISE" and ofm.address != ifm.address:
            message = _refusal(c, _with_address(c, ofm, ifm.address), "in_place_vela.tflite")
            assert "which its own IFM reads" in message, message
            tried += 1
    assert tried, "the stream has no DEPTHWISE"


def test_output_left_incomplete(compiled):
    """The last OFM depth write one channel short (seen in the fuzz: seed 8, a flipped
    OFM_DEPTH_M1): the int8 output keeps a byte of an older int32 result. Refused."""
    c = compiled
    cmd = [cmd for cmd in c["commands"] if cmd.name == "NPU_SET_OFM_DEPTH_M1"][-1]
    message = _refusal(c, _with_param(c, cmd, cmd.param - 1), "short_output_vela.tflite")
    assert "output tensor" in message and "32-bit elements" in message, message


def test_stride_smaller_than_a_row(compiled):
    """A DEPTHWISE's IFM_STRIDE_Y halved (seen on a third-party MobileNetV2 for u85-256: an
    IFM_STRIDE_Y write turned into OFM_STRIDE_Y, so the IFM kept the previous op's smaller
    stride): its rows overlap in memory, every byte still written and read. Refused."""
    c, stride, named = compiled, None, []
    for cmd in c["commands"]:
        if cmd.name == "NPU_SET_IFM_STRIDE_Y":
            stride = cmd
        if cmd.name == "NPU_OP_DEPTHWISE" and stride is not None and stride.address >= 32:
            for smaller in (stride.address // 2 // 16 * 16, stride.address - 16):
                message = _refusal(c, _with_address(c, stride, smaller), "small_stride_vela.tflite")
                assert message, f"IFM_STRIDE_Y {stride.address} -> {smaller} at stream byte {stride.offset} ran"
                named.append("overlapping rows" in message)
    assert named and any(named), "no smaller IFM stride was named as overlapping rows"


def test_output_tensor_past_the_scratch_area(compiled, tmp_path):
    data = compiled["data"]
    bad = with_arena_offset(data, output_tensor(data), scratch_size(data) + 4096)
    assert outcome(compiled, bad) == "error"
    f = tmp_path / "past_vela.tflite"
    f.write_bytes(bad)
    with pytest.raises(CommandStreamError, match="not written completely"):
        NpuSimBackend(f, warm_up=False)


def test_disasm_marks_the_violating_command(compiled, tmp_path):
    cmd = first(compiled, "NPU_SET_OFM_BASE0")
    f = tmp_path / "bad_vela.tflite"
    for b in range(36, 52):
        f.write_bytes(payload_flip(compiled, cmd, b))
        if outcome(compiled, f.read_bytes()) == "error":
            break
    text = to_text(disassemble(f))
    marks = [ln for ln in text.splitlines() if ln.startswith("; ! command")]
    assert marks, "disasm shows nothing wrong"
    assert not any(ln.startswith("; !") for ln in to_text(disassemble(compiled["path"])).splitlines())
    out = cli("disasm", str(f), rc=0)
    assert "; ! command" in out.stdout


def test_cli_exit_2_names_command_and_byte(compiled, tmp_path):
    data = compiled["data"]
    f = tmp_path / "past_vela.tflite"
    f.write_bytes(with_arena_offset(data, output_tensor(data), scratch_size(data) + 4096))
    x = tmp_path / "x.npy"
    np.save(x, compiled["x"])
    cli("run", "--backend", "npu-sim", "--model", str(f), "--input", str(x), rc=2, match="byte")


def test_huge_tensor_refused_before_allocation(compiled, tmp_path):
    from hostile_files import with_dimension

    data = compiled["data"]
    f = tmp_path / "huge_vela.tflite"
    f.write_bytes(with_dimension(data, output_tensor(data), 1, 2**31 - 1))
    t0 = time.monotonic()
    with pytest.raises(UserError):
        load_tflite(f)
        NpuSimBackend(f, warm_up=False)
    assert time.monotonic() - t0 < 5


# ---- the fuzz test --------------------------------------------------------------------------------

FUZZ_SEED = int(os.environ.get("ETHOS_KWS_FUZZ_SEED", "10"))


def _command_at(commands, byte: int):
    """The command holding stream byte ``byte``."""
    lo, hi = 0, len(commands) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if commands[mid].offset <= byte:
            lo = mid
        else:
            hi = mid - 1
    return commands[lo]


FUZZ_ACCELS = ("u55-128", "u85-256")
# Structural flips no data-flow check can see, per seed: (configuration, file byte, bit)
UNDETECTABLE = {
    10: {
        # IFM_BASE0 of a softmax Newton-Raphson step moved from one 1x1x1 int32 intermediate (192)
        # to another (64), same layout, complete and still live (a later op reads it): the stream
        # then computes with another well-formed tensor, i.e. it is another valid network
        ("u55-128", 484144, 7),
        # the opcode of an IFM2_SCALE write turned into IFM_STRIDE_C = 1 for an NHWC IFM, where the
        # hardware ignores STRIDE_C: no access changes; only the lost scale write (an accepted
        # value: IFM2 keeps the previous op's scale) changes the output
        ("u85-256", 499316, 5),
    },
    1: {
        # the opcode of an IFM_ZERO_POINT write turned into SCALE_REGION, which the next operation
        # (an elementwise one) does not use and the next convolution sets again: only the lost zero
        # point (an accepted value: the IFM keeps the previous op's) changes the output
        ("u55-128", 482604, 5),
        # IFM2_BASE2 = 0 turned into IFM2_BASE0 = 0 for a 1x1 IFM2 (BASE2 unused): the softmax MUL
        # reads region 2 byte 0, the whole of another live 1x12 int32 intermediate of the same
        # layout (x - max, which a later op reads too) instead of the one at 0x80: another valid
        # network, as on seed 10
        ("u85-256", 500460, 1),
    },
    2: set(),
    3: {
        # the opcode of IFM_DEPTH_M1 = 11 turned into IFM_HEIGHT1_M1 (unused by a one-tile IFM).
        # The elementwise op it was for takes its shape from the OFM; the REDUCE_SUM after it keeps
        # the depth 1 of the op before and sums channel 0 of 12. A read of some channels of a
        # tensor is a valid slice (Vela reads channel ranges of concatenations)
        ("u55-128", 483020, 3),
        # a softmax constant's IFM_BASE0 moved by 4, into the alignment padding after a 1x1x1
        # int32 constant in region 0: the flatbuffer gives no layout of region 0's constant data,
        # and a read of a constant's neighbour bytes looks like a read of another constant
        ("u55-128", 483924, 2),
        # a softmax constant's IFM_BASE0 moved onto another whole constant in region 0 (the first
        # element of a 12 x int32 table): another valid network
        ("u55-128", 484444, 5),
        # a SUB's OFM_BASE0 moved from 0x40 to 0xc0, over the REDUCE_SUM result after its last
        # read: every later read is whole, of the same layout and written before it is read, i.e.
        # another valid allocation of the same network, whose values differ
        ("u55-128", 483536, 7),
    },
    4: set(),
    5: {
        # as 483924 on seed 3: a region 0 constant's base moved by 4 into its alignment padding
        ("u55-128", 483500, 2),
        # the opcode of the AVERAGE pool's OFM_SCALE write turned into DMA0_SKIP1, which the
        # stream's DMAs (all linear) never read: only the lost scale (an accepted value, the
        # previous op's scale stays) changes the output
        ("u55-128", 482672, 4),
        # the opcode of a conv's WEIGHT_BASE write turned into OFM_SCALE (the elementwise value,
        # unused by a conv): the conv decodes the previous conv's weights (same shape) with its own
        # scale stream, as Vela encodes weights shared by two operations; no access is out of place
        ("u85-256", 495768, 2),
    },
    6: {
        # the opcode of an OFM_SCALE write turned into WEIGHT_BASE, which the elementwise op does
        # not use and the next conv sets again: only the lost scale (an accepted value) changes it
        ("u55-128", 484280, 2),
        # the opcode of IFM_HEIGHT0_M1 turned into OFM_HEIGHT0_M1: the IFM's tile 0 keeps one row
        # and rows below it come from tile 2, whose base is tile 0's. That is exactly how Vela
        # replicates a tensor's top edge for padding with tiles, so the reads are well formed
        ("u85-256", 495404, 4),
    },
    7: set(),
    8: {
        # the opcode of an IFM_STRIDE_X write turned into IFM_BASE0 = 64: a softmax step reads the
        # whole 1x1x1 int32 result at region 2 byte 64 (same layout, complete) instead of the one at
        # 256, as 484144 on seed 10: another valid network
        ("u85-256", 502136, 2),
    },
    9: {
        # the opcode of the AVERAGE pool's OFM_SCALE write turned into IFM_STRIDE_X, which its
        # NHCWB16 IFM does not use (bricks of 16 bytes): only the lost scale changes the output
        ("u55-128", 482672, 5),
        # the opcode of an OFM_SCALE write turned into WEIGHT_BASE, as 484280 on seed 6
        ("u55-128", 483848, 2),
    },
}
STREAM_FLIPS, OTHER_FLIPS = 120, 30  # per configuration: 300 cases in all
CASE_SECONDS = 10  # one case slower than this is a hang


@pytest.fixture(scope="module")
def fuzz_models(compiled, int8io_model, tmp_path_factory):
    """DS-CNN-L compiled for each fuzzed configuration: (file bytes, stream start, commands)."""
    root = tmp_path_factory.mktemp("fuzz")
    out = {"u55-128": compiled["path"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(compiled["root"] / "cache"))
        for accel in FUZZ_ACCELS[1:]:
            out[accel] = compile_with_vela(int8io_model, accel, root / accel)
    models = {}
    for accel, path in out.items():
        data = path.read_bytes()
        start, length = command_stream_span(data)
        payload = parse_payload(data[start : start + length])
        commands = DECODERS[payload.config.npu](payload.words, 1 << 20)
        models[accel] = (path, data, start + length - 4 * len(payload.words), commands)
    return models


def _fuzz_cases(rng, data: bytes, stream: int, commands) -> list[tuple[int, int, str, str]]:
    """(file byte, bit, kind, register) of each flip: in the command stream, then anywhere."""
    cases = []
    nbytes = commands[-1].offset + 4
    for k in range(STREAM_FLIPS + OTHER_FLIPS):
        if k < STREAM_FLIPS:
            rel = rng.randrange(nbytes)
            pos, bit, cmd = stream + rel, rng.randrange(8), _command_at(commands, rel)
            kind = "accepted value" if accepted_value(cmd.name) else "address/stride/size"
            if rel - cmd.offset < 2:  # the opcode half: another register (or none) is written
                word = int.from_bytes(flip_bit(data, pos, bit)[stream + cmd.offset : stream + cmd.offset + 4], "little")
                family = CMD1 if (word >> 14) & 3 == 1 else CMD0
                if isinstance(cmd, U85Command):
                    family = isa.CMD1 if (word >> 14) & 3 == 1 else isa.CMD0
                new = family.get(word & 0x3FF, "")
                kind = "accepted value" if accepted_value(cmd.name) and accepted_value(new) else "opcode"
            cases.append((pos, bit, kind, cmd.name))
        else:
            cases.append((rng.randrange(len(data)), rng.randrange(8), "other buffers", ""))
    return cases


def _start_worker(path, x, cases, work):
    spec = work / "spec.json"
    spec.write_text(json.dumps({"model": str(path), "input": x.reshape(-1).tolist(), "shape": list(x.shape),
                                "work": str(work), "cases": [[p, b] for p, b, _k, _n in cases]}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    return subprocess.Popen([sys.executable, str(HERE / "fuzz_worker.py"), str(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_fuzz_compiled_models(fuzz_models, compiled, tmp_path):
    """Random single-bit flips of DS-CNN-L compiled for U55 and U85: per configuration 120 in the
    command stream and 30 anywhere in the file (read-only data, metadata, the flatbuffer). Each
    configuration runs in a child process (both at once), which reports every case as it goes:
    a death by a signal or a hang is caught and names its flip. Never an unexpected exception,
    never a signal, never a hang; a changed output only from a flip in a value the hardware
    accepts (counted) or, bounded, a structural flip the data-flow check cannot see."""
    rng = random.Random(FUZZ_SEED)
    t0 = time.monotonic()
    plan, workers = {}, {}
    for accel in FUZZ_ACCELS:
        path, data, stream, commands = fuzz_models[accel]
        plan[accel] = _fuzz_cases(rng, data, stream, commands)
        (tmp_path / accel).mkdir()
        workers[accel] = _start_worker(path, compiled["x"], plan[accel], tmp_path / accel)
    limit = CASE_SECONDS * len(plan[FUZZ_ACCELS[0]])
    problems, report = [], []
    for accel, proc in workers.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(1.0, limit - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            stderr = f"hang: no exit after {limit} s\n" + stderr
        lines = [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]
        done = {ln["case"]: ln for ln in lines if "got" in ln}
        started = [ln["case"] for ln in lines if "got" not in ln]
        if proc.returncode != 0 or len(done) != len(plan[accel]):
            k = started[-1] if started else None
            flip = plan[accel][k] if k is not None else None
            problems.append(f"{accel}: worker exit {proc.returncode} at case {k} (flip {flip}): {stderr[-1500:]}")
            continue
        tally: collections.Counter = collections.Counter()
        wrong, wrong_at = [], []
        for k, (pos, bit, kind, reg) in enumerate(plan[accel]):
            got, secs = done[k]["got"], done[k]["seconds"]
            if got.startswith("exception"):
                problems.append(f"{accel}: flip of file byte {pos} bit {bit} ({kind} {reg}): {got}")
            if secs > CASE_SECONDS:
                problems.append(f"{accel}: flip of file byte {pos} bit {bit} took {secs} s (a hang)")
            tally[(kind, got if not got.startswith("exception") else "exception")] += 1
            if got == "changed" and kind in ("address/stride/size", "opcode"):
                wrong.append(f"{kind} flip at file byte {pos} bit {bit} ({reg})")
                wrong_at.append((pos, bit))
        structural = sum(n for (kind, _), n in tally.items() if kind in ("address/stride/size", "opcode"))
        accepted = tally[("accepted value", "changed")] + tally[("other buffers", "changed")]
        report.append(f"{accel}: {len(plan[accel])} flips, {accepted} accepted-value/other flips changed "
                      f"the output, {len(wrong)} of {structural} structural flips silently wrong")
        report += [f"  {key[0]:<20} {key[1]:<13} {tally[key]}" for key in sorted(tally)]
        report += [f"    silently wrong: {w}" for w in wrong]
        # every silently wrong structural flip of a measured seed not named in UNDETECTABLE fails
        # the test. Measured before the placement rules of ``dataflow.Tensors``: 3 + 3 silently
        # wrong on seed 10; before the DMA and constant rules 2 + 1 (seed 1) and 1 + 1 (seed 2);
        # before the LUT-source, scale-pairing and tile-ancestry rules 4 + 0 (seed 3), 1 + 1
        # (seed 4), 2 + 1 (seed 5) and 3 + 2 (seed 6); before the in-place kernel and output
        # element-size rules 1 + 1 (seed 8) and 3 + 0 (seed 9).
        known = UNDETECTABLE.get(FUZZ_SEED, set())
        unseen = [w for w, (pos, bit) in zip(wrong, wrong_at) if (accel, pos, bit) not in known]
        # other seeds are not all measured: a small bound, so that a gap shows without failing
        # every new seed at once
        bound = 0 if FUZZ_SEED in UNDETECTABLE else max(1, structural // 50)
        if len(unseen) > bound:
            problems.append(f"{accel}: {len(unseen)} structural flips ran silently wrong: {unseen}")
    print(f"\nfuzz of the compiled models (seed {FUZZ_SEED}, {time.monotonic() - t0:.1f} s):", *report, sep="\n")
    assert not problems, "\n".join(problems)


def test_fuzz_plain_model(int8io_model, tmp_path):
    """Random bit flips of the plain model: the verifier takes it or refuses it with one
    ``ModelError``; never another exception. (Vela and LiteRT are exercised by a few CLI runs.)"""
    rng = random.Random(FUZZ_SEED + 1)
    data = int8io_model.read_bytes()
    tally: collections.Counter = collections.Counter()
    f = tmp_path / "flip.tflite"
    for _ in range(200):
        f.write_bytes(flip_bit(data, rng.randrange(len(data)), rng.randrange(8)))
        try:
            load_tflite(f)
            tally["accepted"] += 1
        except UserError:
            tally["refused"] += 1
    print("\nfuzz of the plain model:", dict(tally))
    assert sum(tally.values()) == 200


def test_fuzz_cli_sample(int8io_model, compiled, tmp_path):
    """A handful of flipped files through the CLI, as a user runs them: exit 0 or one error line
    (exit 1 or 2), never a traceback or a signal, bounded in time."""
    rng = random.Random(FUZZ_SEED + 2)
    x = tmp_path / "x.npy"
    np.save(x, compiled["x"])
    for k in range(3):
        f = tmp_path / f"flip{k}_vela.tflite"
        rel = compiled["stream"] + rng.randrange(4 * len(compiled["commands"]))
        f.write_bytes(flip_bit(compiled["data"], rel, rng.randrange(8)))
        out = cli("run", "--backend", "npu-sim", "--model", str(f), "--input", str(x), rc=(0, 1, 2), timeout=60)
        assert out.rc >= 0
    for k in range(2):
        f = tmp_path / f"flip{k}.tflite"
        data = int8io_model.read_bytes()
        f.write_bytes(flip_bit(data, rng.randrange(len(data)), rng.randrange(8)))
        out = cli("model", "info", "--no-compile", str(f), rc=(0, 2), timeout=60)
        assert out.rc >= 0


# ---- the same checks on a small generated model (no shared data needed) ---------------------------


@pytest.fixture(scope="module")
def softmax_compiled(tmp_path_factory):
    from ethos_kws.synth import write_model

    root = tmp_path_factory.mktemp("sm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(root / "cache"))
        path = compile_with_vela(write_model(root / "sm.tflite", "softmax", seed=0), "u55-128", root / "out")
    data = path.read_bytes()
    start, length = command_stream_span(data)
    payload = parse_payload(data[start : start + length])
    return path, data, start + length - 4 * len(payload.words), decode_stream(payload.words, 1 << 20)


@pytest.mark.parametrize("reg, nth, delta", [
    ("NPU_SET_OFM_BASE0", -1, 0x10),  # the last op writes beside the output tensor
    ("NPU_SET_OFM_BASE0", 0, 0x10),
    ("NPU_SET_IFM_BASE0", 0, 0x10),  # the first op reads beside its input
    ("NPU_SET_IFM2_BASE0", 0, 0x10),
])
def test_generated_model_moved_base(softmax_compiled, tmp_path, reg, nth, delta):
    path, data, stream, commands = softmax_compiled
    cmd = [c for c in commands if c.name == reg][nth]
    pos = stream + cmd.offset + 4
    bad = bytearray(data)
    bad[pos : pos + 4] = (cmd.payload + delta).to_bytes(4, "little")
    f = tmp_path / "bad_vela.tflite"
    f.write_bytes(bytes(bad))
    NpuSimBackend(path, warm_up=False)  # the original loads
    with pytest.raises(CommandStreamError, match=DATAFLOW_REFUSAL) as info:
        NpuSimBackend(f, warm_up=False)
    assert "command " in str(info.value) and "stream byte" in str(info.value)


# ---- valid streams: the data-flow check refuses none ----------------------------------------------

VALID_STREAMS = [  # (model, accelerator, compile options): the cases each rule was checked against
    ("op:pad_int8", "u55-128", {"legacy_core": True}),  # PAD: border, then interior over it
    ("op:mirror_pad_int8", "u55-128", {}),  # negative strides
    ("op:concatenation_int8", "u85-256", {}),
    ("op:resize_bilinear_int8", "u55-32", {"legacy_core": True}),  # tiles with equal bases
    ("op:transpose_int8", "u55-128", {}),
    ("op:add_broadcast_int8", "u85-256", {}),
    ("op:softmax_int16", "u65-512", {}),
    ("rnd:51", "u55-64", {"arena_cache_size": 8192, "optimise": "Size"}),  # an unread last stripe
    ("rnd:7", "u85-512", {"arena_cache_size": 16384}),
    ("big:103", "u55-128", {"arena_cache_size": 16384, "optimise": "Size"}),
    ("big:111", "u85-256", {"arena_cache_size": 16384}),
    ("big:120", "u55-64", {"legacy_core": True, "arena_cache_size": 8192}),
]


def test_valid_streams_pass_the_dataflow_check(tmp_path):
    from valid_streams import big_net, random_net

    from ethos_kws.synth import opcases
    from ethos_kws.vela import compile_model

    for name, accel, options in VALID_STREAMS:
        kind, arg = name.split(":")
        data = {"op": lambda: opcases.OP_CASES[arg].build(0), "rnd": lambda: random_net(int(arg)),
                "big": lambda: big_net(int(arg))}[kind]()
        src = tmp_path / f"{kind}_{arg}.tflite"
        src.write_bytes(data)
        compiled = compile_model(src, accel, **options).compiled_model
        NpuSimBackend(compiled, warm_up=False)  # raises CommandStreamError on a refusal
