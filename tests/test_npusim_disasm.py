"""``ethos-kws disasm``: one decoded command per line, register names and fields, --json."""

from __future__ import annotations

import json

import pytest

from ethos_kws.backends.npusim.backend import compile_with_vela
from ethos_kws.cli import main
from ethos_kws.synth import write_model


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("disasm")
    model = write_model(root / "sm.tflite", "softmax", seed=0)
    return model, compile_with_vela(model, "u65-512", root / "out")


def test_text(compiled, capsys):
    _, path = compiled
    assert main(["disasm", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("; ethos-u operator") and "u65-512" in lines[0] and "0x10006009" in lines[0]
    body = lines[1:]
    assert body[0].split()[-2:] == ["NPU_SET_PARALLEL_MODE", "param=1"]
    assert any("NPU_OP_ELEMENTWISE" in l and "mode=SUB" in l for l in body)
    assert any("NPU_OP_POOL" in l and "mode=REDUCE_SUM" in l for l in body)
    assert any("NPU_SET_ACTIVATION " in l and "type=TABLE_0" in l and "FORCE_INT8" in l for l in body)
    assert any("NPU_SET_OFM_PRECISION" in l and "precision=S32" in l for l in body)
    assert body[-1].split()[-2] == "NPU_OP_STOP"
    offsets = [int(l.split(":")[0], 16) for l in body]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_json(compiled, capsys):
    _, path = compiled
    assert main(["disasm", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (stream,) = doc["streams"]
    assert stream["accelerator"] == "u65-512" and stream["macs_per_cycle"] == 512
    cmds = stream["commands"]
    assert len(cmds) > 50
    scale = next(c for c in cmds if c["name"] == "NPU_SET_DMA0_LEN")
    assert scale["payload"] is not None and "data" in scale["fields"]
    conv_like = [c for c in cmds if c["name"].startswith("NPU_OP_")]
    assert {c["name"] for c in conv_like} >= {"NPU_OP_ELEMENTWISE", "NPU_OP_POOL", "NPU_OP_DMA_START"}


def test_plain_model_refused(compiled, capsys):
    model, _ = compiled
    assert main(["disasm", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 'ethos-u' operator" in err[0]
