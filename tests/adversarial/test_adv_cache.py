"""Issue 10, item 7: the compile cache and the synthetic stand-in are never served corrupt."""

from __future__ import annotations

import json

import pytest
from advcli import cli, leftovers
from hostile_files import flip_bit

from ethos_kws.model import synthetic_stand_in
from ethos_kws.vela import compile_cache_dir, compile_model


def _damage_compiled(entry):
    p = next(entry.glob("*_vela.tflite"))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_compiled(entry):
    p = next(entry.glob("*_vela.tflite"))
    p.write_bytes(flip_bit(p.read_bytes(), p.stat().st_size // 2, 3))


def _edit_json(**fields):
    def go(entry):
        doc = entry / "compile.json"
        doc.write_text(json.dumps({**json.loads(doc.read_text()), **fields}))
    return go


def _other_model(entry):
    other = entry.parent.parent / "elsewhere" / "other_vela.tflite"
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(b"TFL3 not really")
    _edit_json(compiled_model=str(other))(entry)


def _not_json(entry):
    (entry / "compile.json").write_text('{"accel": ')


DAMAGES = {
    "truncated compiled model": _damage_compiled,
    "bit-flipped compiled model": _flip_compiled,
    "cycles_total 'lots'": _edit_json(cycles_total="lots"),
    "cycles_total float": _edit_json(cycles_total=1.5),
    "compiled_model elsewhere": _other_model,
    "compile.json not JSON": _not_json,
    "digests removed": lambda entry: (entry / "digests.json").unlink(),
    "an extra file": lambda entry: (entry / "extra.bin").write_bytes(b"x"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_corrupt_entry_is_recompiled_and_reported_once(damage, int8io_model, tmp_path, capsys):
    good = compile_model(int8io_model, "u55-128")
    good_bytes = open(good.compiled_model, "rb").read()
    entry = compile_cache_dir() / good.cache_key
    DAMAGES[damage](entry)
    # through the CLI, as a user meets it: exit 0, the right model exported, one warning
    env = {"ETHOS_KWS_CACHE": str(compile_cache_dir().parent)}
    out = cli("sweep", "--accel", "u55-128", "--model", int8io_model, "--out", tmp_path / "run", rc=0, env=env)
    warnings = [ln for ln in out.stderr.splitlines() if "was corrupt" in ln]
    assert warnings == [f"ethos-kws: warning: cache entry {good.cache_key} was corrupt ({warnings[0].split('(', 1)[1]}"]
    assert warnings[0].endswith("; recompiled")
    assert (tmp_path / "run" / "u55-128" / "ds_cnn_l_int8io_vela.tflite").read_bytes() == good_bytes
    assert isinstance(json.loads((tmp_path / "run" / "results.json").read_text())["results"][0]["cycles_total"], int)
    # the entry is whole again: the next run says nothing
    again = cli("sweep", "--accel", "u55-128", "--model", int8io_model, "--out", tmp_path / "run", rc=0, env=env)
    assert "corrupt" not in again.stderr
    assert not leftovers(compile_cache_dir(), tmp_path)


def test_moved_cache_is_still_valid(int8io_model, tmp_path, monkeypatch):
    import shutil

    good = compile_model(int8io_model, "u55-64")
    moved = tmp_path / "moved"
    shutil.copytree(compile_cache_dir().parent, moved)
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(moved))
    from ethos_kws import vela

    monkeypatch.setattr(vela, "run_vela_contained", lambda *a: pytest.fail("recompiled a valid entry"))
    hit = compile_model(int8io_model, "u55-64")
    assert hit.compiled_model.startswith(str(moved)) and hit.cycles_total == good.cycles_total


def test_bit_flipped_synthetic_stand_in_is_rebuilt(capsys):
    first = synthetic_stand_in()
    data = first.path.read_bytes()
    first.path.write_bytes(flip_bit(data, len(data) // 2, 1))
    again = synthetic_stand_in()
    assert again.sha256 == first.sha256 and again.path.read_bytes() == data
    assert "was corrupt" in capsys.readouterr().err
