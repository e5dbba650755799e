"""``ethos-kws accuracy``: the Speech Commands recipe, every clip labelled on cpu and npu-sim x all
configurations, confusion matrices in the report, NPU-vs-CPU bit differences, a verified resumable
cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ethos_kws.accel import ACCELERATORS
from ethos_kws.accuracy import ScoreCache
from ethos_kws.audio import read_wav
from ethos_kws.cli import main
from ethos_kws.dataset import (
    BACKGROUND_NOISE_DIR, SILENCE_LABEL, UNKNOWN_LABEL, clip_audio, load_dataset, which_set,
)
from ethos_kws.errors import InputDataError

from test_audio import make_wav

WORDS_IN_SHARED_AUDIO = ("yes", "no", "up", "down", "left", "right", "off", "stop")


def _speech_commands(tmp_path, audio_dir, copies=2, listed=True):
    """A Speech Commands layout from the shared clips: word folders, background noise, test list."""
    root = tmp_path / "sc"
    rel = []
    for clip in sorted(audio_dir.glob("*.wav")):
        word = clip.stem.split("_")[0]
        if word not in WORDS_IN_SHARED_AUDIO:
            continue
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(copies):
            name = f"{word}/{clip.stem.replace('_', '')}{i:02d}_nohash_0.wav"
            shutil.copy(clip, root / name)
            rel.append(name)
    noise = root / BACKGROUND_NOISE_DIR
    noise.mkdir()
    # two seconds of recorded background silence: random 1 s cuts at random volumes
    x = read_wav(audio_dir / "silence_tflm.wav")
    make_wav(noise / "room.wav", np.concatenate([x, x[::-1]]))
    if listed:
        (root / "testing_list.txt").write_text("\n".join(rel) + "\n")
        (root / "validation_list.txt").write_text("")
    return root


def _json(capsys, *argv) -> dict:
    capsys.readouterr()
    rc = main([*map(str, argv), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_every_clip_is_labelled_as_its_name_on_cpu_and_every_npu_configuration(
        tmp_path, audio_dir, int8io_model, capsys):
    root = _speech_commands(tmp_path, audio_dir)
    report = tmp_path / "report"
    doc = _json(capsys, "accuracy", root, "--model", int8io_model, "--kernels", "tflm",
                "--backends", "cpu,npu-sim", "--accel", "u55,u65", "--report", report)  # npu-sim: U55/U65
    n_words = 2 * len(WORDS_IN_SHARED_AUDIO)
    assert doc["clips"] == n_words + 2 and doc["counts"][SILENCE_LABEL] == 2  # ceil(10 % of 16)
    assert doc["split_source"] == "testing_list.txt" and doc["computed_clips"] == doc["clips"]
    names = [r["config"] for r in doc["runs"]]
    assert names == ["cpu (tflm)"] + [f"npu-sim {a}" for a in ACCELERATORS]  # U55, U65 and U85
    for r in doc["runs"]:
        assert r["top1"] == 1.0 and r["correct"] == r["clips"] and r["misclassified"] == [], r["config"]
        m = np.array(r["confusion"])
        assert m.shape == (12, 12) and np.trace(m) == m.sum() == doc["clips"]
        recall = {c["label"]: c["recall"] for c in r["per_class"]}
        assert recall["yes"] == 1.0 and recall["on"] is None  # no "on" clips in the set
        if r["backend"] == "npu-sim":  # bit exact against TFLite Micro
            assert r["compared_with"] == "cpu (tflm)"
            assert r["scores_differ_from_cpu"] == 0 and r["labels_differ_from_cpu"] == 0
    assert (report / "confusion.png").stat().st_size > 10000
    html = (report / "index.html").read_text()
    assert "Accuracy" in html and "npu-sim u65-512: per class" in html

    # resumable: a second run reads every clip back from the verified cache
    again = _json(capsys, "accuracy", root, "--model", int8io_model, "--kernels", "tflm",
                  "--backends", "cpu,npu-sim", "--accel", "u55-128")
    assert again["computed_clips"] == 0 and again["cached_clips"] == doc["clips"]
    assert again["runs"][1]["confusion"] == doc["runs"][3]["confusion"]


def test_cache_entries_are_verified_and_a_bad_one_is_recomputed(tmp_path, audio_dir, int8io_model, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path / "cache"))
    root = _speech_commands(tmp_path, audio_dir, copies=1)
    first = _json(capsys, "accuracy", root, "--model", int8io_model, "--backends", "cpu", "--limit", "5")
    assert first["computed_clips"] == 5
    from ethos_kws.paths import cache_dir

    files = sorted((cache_dir() / "accuracy").rglob("*.json"))
    assert files
    for f in files:  # tamper with one output value of every batch file, keep the JSON valid
        d = json.loads(f.read_text())
        d["entries"][0][2][0] += 1
        f.write_text(json.dumps(d))
    second = _json(capsys, "accuracy", root, "--model", int8io_model, "--backends", "cpu", "--limit", "5")
    assert second["computed_clips"] == 5 and second["runs"][0]["cache_rejected_files"] == len(files)
    assert second["runs"][0]["confusion"] == first["runs"][0]["confusion"]
    # a changed clip is never answered from the cache
    clip = next((root / "yes").glob("*.wav"))
    shutil.copy(audio_dir / "no_tflm.wav", clip)
    third = _json(capsys, "accuracy", root, "--model", int8io_model, "--backends", "cpu")
    wrong = [m["clip"] for m in third["runs"][0]["misclassified"]]
    assert wrong == [f"yes/{clip.name}"] and third["computed_clips"] >= 1


def test_recipe_unknown_and_silence_shares_split_rule_and_limit(tmp_path):
    root = tmp_path / "sc"
    rng = np.random.default_rng(0)
    for word in ("yes", "no", "dog", "cat"):
        (root / word).mkdir(parents=True)
        for i in range(40):
            make_wav(root / word / f"{word}{i:03d}abc_nohash_{i % 3}.wav", rng.uniform(-0.1, 0.1, 200))
    (root / BACKGROUND_NOISE_DIR).mkdir()
    make_wav(root / BACKGROUND_NOISE_DIR / "white.wav", rng.uniform(-0.5, 0.5, 48000))
    ds = load_dataset(root, "test")  # no lists: TensorFlow's hash rule
    assert ds.split_source.startswith("hash")
    words = [c for c in ds.clips if c.label_name in ("yes", "no")]
    unknown = [c for c in ds.clips if c.label_name == UNKNOWN_LABEL]
    silence = [c for c in ds.clips if c.label_name == SILENCE_LABEL]
    assert all(which_set(c.clip_id) == "test" for c in words + unknown)
    assert len(unknown) == min(-(-len(words) // 10), 80) and len(silence) == -(-len(words) // 10)
    assert {c.clip_id.split("/")[0] for c in unknown} <= {"dog", "cat"}
    # speakers (the name before _nohash_) never straddle splits
    assert which_set("yes/abc_nohash_0.wav") == which_set("no/abc_nohash_7.wav")
    for s in silence:
        a = clip_audio(s)
        assert a.shape == (16000,) and 0 <= s.volume < 1 and 0 <= s.offset <= 32000
        full = read_wav(s.noise)
        np.testing.assert_array_equal(a, np.clip(full[s.offset:s.offset + 16000] * np.float32(s.volume), -1, 1))
    assert load_dataset(root, "test") == ds  # reproducible
    sub = load_dataset(root, "test", limit=5)
    assert len(sub.clips) == 5 and set(sub.clips) <= set(ds.clips) and sub.total == len(ds.clips)
    (root / "testing_list.txt").write_text("yes/yes000abc_nohash_0.wav\ndog/dog001abc_nohash_1.wav\n")
    listed = load_dataset(root, "test")
    assert [c.clip_id for c in listed.clips if c.label_name != SILENCE_LABEL] == [
        "yes/yes000abc_nohash_0.wav", "dog/dog001abc_nohash_1.wav"]


def test_bad_datasets_and_flags_exit_2(tmp_path, int8io_model, capsys):
    def err(*argv):
        capsys.readouterr()
        assert main(["accuracy", *map(str, argv), "--model", str(int8io_model)]) == 2
        e = capsys.readouterr().err
        assert e.count("\n") == 1
        return e

    assert "dataset folder not found" in err(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    assert "no word folders" in err(tmp_path / "empty")
    (tmp_path / "sc" / "dog").mkdir(parents=True)
    make_wav(tmp_path / "sc" / "dog" / "a_nohash_0.wav", np.zeros(100))
    (tmp_path / "sc" / "testing_list.txt").write_text("dog/a_nohash_0.wav\n")
    assert "no clips of the ten keywords" in err(tmp_path / "sc")
    assert "unknown backend" in err(tmp_path / "sc", "--backends", "cpu,gpu")
    assert "--limit must be at least 1" in err(tmp_path / "sc", "--limit", "0")
    with pytest.raises(InputDataError):
        load_dataset(tmp_path / "sc", "train")


def test_score_cache_ignores_files_of_another_configuration(tmp_path):
    from ethos_kws.accuracy import ModelRun

    a = ModelRun("cpu", "cpu", (), "a" * 64, b"x")
    b = ModelRun("cpu", "cpu", (("kernels", "tflm"),), "a" * 64, b"x")
    assert a.cache_key != b.cache_key
    ca = ScoreCache(a, tmp_path)
    ca.put([("k1", "s1", [1, 2, 3])])
    f = next((tmp_path / a.cache_key).glob("*.json"))
    (tmp_path / b.cache_key).mkdir()
    shutil.copy(f, tmp_path / b.cache_key / f.name)
    assert ScoreCache(a, tmp_path).get("k1") == ("s1", [1, 2, 3])
    cb = ScoreCache(b, tmp_path)
    assert cb.get("k1") is None and cb.rejected == 1
