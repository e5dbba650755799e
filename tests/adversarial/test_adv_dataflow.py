"""Issue 10, item 3 on every NPU family: the data-flow check runs on U85 streams as on U55/U65,
LUTs (U55/U65 SHRAM slots, U85 LUT RAM) must be loaded by a DMA before an activation reads them,
and a stream must end in exactly one NPU_OP_STOP. Each corruption was silently wrong before (a
moved U85 base read stale or zero bytes; an unloaded LUT read zeros) or ran past the end.

The streams are a generated softmax (DMA of a LUT, POOL, ELEMENTWISE, LUT activation), compiled
for u55-128 and u85-256; each case patches words of the compiled file in place.
"""

from __future__ import annotations

import pytest
from advcli import cli
from hostile_files import DATAFLOW_REFUSAL, command_stream_span

from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.container import parse_payload
from ethos_kws.backends.npusim.disasm import DECODERS, disassemble, to_text
from ethos_kws.errors import CommandStreamError

ACCELS = ("u55-128", "u85-256")
STOP = 0x0000  # cmd0 opcode 0
DMA_WAIT = 0x0011  # the same cmd0 code on U55 and U85: a sync that moves nothing


@pytest.fixture(scope="module", params=ACCELS)
def softmax(request, tmp_path_factory):
    from ethos_kws.synth import write_model

    accel = request.param
    root = tmp_path_factory.mktemp("sm-" + accel)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ETHOS_KWS_CACHE", str(root / "cache"))
        path = compile_with_vela(write_model(root / "sm.tflite", "softmax", seed=0), accel, root / "out")
    data = path.read_bytes()
    start, length = command_stream_span(data)
    payload = parse_payload(data[start : start + length])
    commands = DECODERS[payload.config.npu](payload.words, 1 << 20)
    return {"accel": accel, "path": path, "data": data, "stream": start + length - 4 * len(payload.words),
            "commands": commands, "root": root}


def patched(c, name: str, cmd, word: int | None = None, payload: int | None = None):
    """The compiled file with one command's word (and payload word) replaced in place."""
    bad = bytearray(c["data"])
    pos = c["stream"] + cmd.offset
    if word is not None:
        bad[pos : pos + 4] = word.to_bytes(4, "little")
    if payload is not None:
        bad[pos + 4 : pos + 8] = (payload & 0xFFFFFFFF).to_bytes(4, "little")
    f = c["root"] / name
    f.write_bytes(bytes(bad))
    return f


def nth(c, name: str, n: int = 0):
    return [cmd for cmd in c["commands"] if cmd.name == name][n]


def refused(path, match: str) -> str:
    with pytest.raises(CommandStreamError, match=match) as info:
        NpuSimBackend(path, warm_up=False)
    msg = str(info.value)
    assert "stream byte" in msg, msg
    return msg


def test_original_streams_load(softmax):
    NpuSimBackend(softmax["path"], warm_up=False)
    assert not any(ln.startswith("; !") for ln in to_text(disassemble(softmax["path"])).splitlines())


@pytest.mark.parametrize("reg, n", [("NPU_SET_OFM_BASE0", -1), ("NPU_SET_OFM_BASE0", 0),
                                    ("NPU_SET_IFM_BASE0", 0), ("NPU_SET_IFM2_BASE0", 0)])
def test_moved_base(softmax, reg, n):
    """A base moved by 16 bytes stays inside the region: only the data-flow check sees it (on U85
    too, where no check ran before)."""
    cmd = nth(softmax, reg, n)
    # U85's softmax has a 32-byte arena: some moves leave it (the bounds check), the rest not
    inside = reg == "NPU_SET_IFM_BASE0" or n == -1
    refused(patched(softmax, "moved_vela.tflite", cmd, payload=cmd.payload + 0x10),
            DATAFLOW_REFUSAL if inside else DATAFLOW_REFUSAL + "|outside the region")


def test_lut_never_loaded(softmax):
    """The DMA that loads the LUT becomes a DMA_WAIT: the activation reads a LUT nothing wrote."""
    cmd = nth(softmax, "NPU_OP_DMA_START")
    msg = refused(patched(softmax, "nolut_vela.tflite", cmd, word=DMA_WAIT), "no DMA loaded")
    assert "LUT" in msg


def test_lut_table_moved(softmax):
    """The activation names the next table: its slot was never loaded."""
    cmd = next(c for c in softmax["commands"] if c.name == "NPU_SET_ACTIVATION" and c.param & 0x1F)
    # U55: type 16 + n is TABLE_n ([4:0]); U85: the table number is [7:5]
    param = cmd.param + 1 if softmax["accel"].startswith("u55") else cmd.param | 1 << 5
    refused(patched(softmax, "table_vela.tflite", cmd, word=cmd.code | param << 16), "no DMA loaded")


def test_lut_dma_destination_moved(softmax):
    cmd = nth(softmax, "NPU_SET_DMA0_DST")
    refused(patched(softmax, "lutdst_vela.tflite", cmd, payload=cmd.payload + 0x100), "no DMA loaded")


def test_disasm_marks_an_unloaded_lut(softmax):
    f = patched(softmax, "nolut2_vela.tflite", nth(softmax, "NPU_OP_DMA_START"), word=DMA_WAIT)
    out = cli("disasm", str(f), rc=0)
    assert any(ln.startswith("; ! command") and "LUT" in ln for ln in out.stdout.splitlines()), out.stdout


# ---- NPU_OP_STOP: missing, followed by commands, or a stream ending mid-command --------------------


def test_stop_missing(softmax):
    """STOP overwritten by a register write: the stream ends without it."""
    stop = softmax["commands"][-1]
    assert stop.name == "NPU_OP_STOP"
    pad_top = next(c for c in softmax["commands"] if c.name == "NPU_SET_IFM_PAD_TOP")
    f = patched(softmax, "nostop_vela.tflite", stop, word=pad_top.code)
    msg = refused(f, "without NPU_OP_STOP")
    assert f"stream byte {stop.offset}" in msg, msg
    out = cli("disasm", str(f), rc=0)
    assert "; ! command" in out.stdout and "without NPU_OP_STOP" in out.stdout


def test_commands_after_stop(softmax):
    """A STOP in the middle: what follows would never run."""
    half = len(softmax["commands"]) // 2
    cmd = next(c for c in softmax["commands"][half:] if c.payload is None)  # one word: the rest stays
    f = patched(softmax, "midstop_vela.tflite", cmd, word=STOP | 0xFFFF << 16)
    msg = refused(f, "after NPU_OP_STOP")
    assert f"NPU_OP_STOP at stream byte {cmd.offset}" in msg, msg
    cli("run", "--backend", "npu-sim", "--model", str(f), rc=2, match="NPU_OP_STOP")


def test_stream_ends_mid_command(softmax):
    """The last word becomes a cmd1 header whose payload word is missing."""
    stop = softmax["commands"][-1]
    base = nth(softmax, "NPU_SET_IFM_BASE0")
    f = patched(softmax, "midcmd_vela.tflite", stop, word=base.code | 0x4000)
    with pytest.raises(CommandStreamError) as info:
        NpuSimBackend(f, warm_up=False)
    msg = str(info.value)
    assert "truncated" in msg and f"byte {stop.offset}" in msg and "NPU_SET_IFM_BASE0" in msg, msg
    cli("disasm", str(f), rc=2, match="truncated")
