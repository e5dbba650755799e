"""Acceptance: every real clip classified as its file-name label, through the CLI, by both models;
sliding windows over a long recording; labels and threshold handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ethos_kws.audio import read_wav
from ethos_kws.backends.cpu import CpuBackend
from ethos_kws.classify import classify_wav
from ethos_kws.cli import main
from ethos_kws.errors import UserError
from ethos_kws.labels import DS_CNN_LABELS, labels_for, load_labels

from test_audio import make_wav

NOT_A_KEYWORD = {"noise"}  # background noise: the model's answer is not defined
PREFIX_TO_LABEL = {"silence": "_silence_"}


def _expected(clip) -> str | None:
    prefix = clip.stem.split("_")[0]
    return None if prefix in NOT_A_KEYWORD else PREFIX_TO_LABEL.get(prefix, prefix)


def _classify_json(capsys, *argv) -> dict:
    capsys.readouterr()
    rc = main(["classify", *map(str, argv), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


@pytest.mark.parametrize("model_fixture", ["int8io_model", "float_io_model"])
def test_every_clip_is_classified_as_its_file_name_label(request, audio_dir, capsys, model_fixture):
    model = request.getfixturevalue(model_fixture)
    clips = sorted(audio_dir.glob("*.wav"))
    checked = 0
    for clip in clips:
        want = _expected(clip)
        doc = _classify_json(capsys, clip, "--model", model)
        assert doc["backend"] == "cpu" and len(doc["top"]) == 3 and len(doc["windows"]) == 1
        assert doc["top"][0]["label"] == doc["label"]
        if want is None:
            continue
        assert doc["label"] == want, f"{clip.name}: {doc['label']} ({doc['score']:.3f})"
        assert want in DS_CNN_LABELS
        checked += 1
    assert checked == len(clips) - 1 >= 9


def test_long_recording_reports_each_detection_with_its_time(tmp_path, audio_dir, int8io_model, capsys):
    names = ["yes_tflm", "silence_tflm", "no_tflm", "silence_tflm", "left_mlek"]
    x = np.concatenate([read_wav(audio_dir / f"{n}.wav") for n in names])
    rec = make_wav(tmp_path / "rec.wav", x)
    doc = _classify_json(capsys, rec, "--model", int8io_model)
    assert doc["duration_s"] == 5.0 and len(doc["windows"]) == 9
    assert [w["start_s"] for w in doc["windows"]] == [i * 0.5 for i in range(9)]
    found = {(d["label"], d["time_s"]) for d in doc["detections"]}
    assert {("yes", 0.0), ("no", 2.0), ("left", 4.0)} <= found
    assert all(d["score"] >= 0.7 and d["label"] in ("yes", "no", "left") for d in doc["detections"])
    # each window is exactly the 1 s clip the model would see on its own
    assert doc["windows"][4]["top"] == _classify_json(capsys, audio_dir / "no_tflm.wav", "--model", int8io_model)["top"]
    strict = _classify_json(capsys, rec, "--model", int8io_model, "--threshold", "1.0")
    assert strict["detections"] == []
    capsys.readouterr()
    assert main(["classify", str(rec), "--model", str(int8io_model)]) == 0
    text = capsys.readouterr().out
    assert "9 of 1 s every 0.5 s" in text and "2.00 s  no" in text


def test_custom_labels_file(tmp_path, audio_dir, int8io_model, capsys):
    f = tmp_path / "labels.txt"
    f.write_text("\n".join(f"L{i}" for i in range(12)) + "\n\n")
    assert load_labels(f) == tuple(f"L{i}" for i in range(12))
    doc = _classify_json(capsys, audio_dir / "yes_tflm.wav", "--model", int8io_model, "--labels", f)
    assert doc["label"] == "L2"  # "yes" is output 2
    f.write_text("a\nb\n")
    assert main(["classify", str(audio_dir / "yes_tflm.wav"), "--model", str(int8io_model),
                 "--labels", str(f)]) == 2
    assert "2 labels for a model with 12 outputs" in capsys.readouterr().err
    with pytest.raises(UserError, match="has 2 labels but the model outputs 12"):
        labels_for(12, f)
    assert labels_for(7) is None and labels_for(12) == DS_CNN_LABELS


def test_bad_threshold_and_bad_clip_exit_2(tmp_path, audio_dir, int8io_model, capsys):
    assert main(["classify", str(audio_dir / "yes_tflm.wav"), "--model", str(int8io_model),
                 "--threshold", "1.5"]) == 2
    assert "--threshold must be between 0 and 1" in capsys.readouterr().err
    bad = tmp_path / "x.wav"
    bad.write_text("not audio")
    assert main(["classify", str(bad), "--model", str(int8io_model)]) == 2
    err = capsys.readouterr().err
    assert "not a WAV file" in err and err.count("\n") == 1


def test_classify_api_uses_run_batch(int8io_model, audio_dir):
    b = CpuBackend(int8io_model)
    calls = []
    real = b.run_batch
    b.run_batch = lambda batch: calls.append(len(batch)) or real(batch)
    r = classify_wav(audio_dir / "up_mlek.wav", b)
    assert calls == [1] and r.best.label == "up" and r.to_dict()["detections"][0]["label"] == "up"


def test_44khz_stereo_recording_is_resampled_and_says_so(tmp_path, audio_dir, int8io_model, capsys):
    import soxr

    x = soxr.resample(read_wav(audio_dir / "yes_tflm.wav").astype(np.float64), 16000, 44100)
    stereo = np.round(np.stack([x, 0.9 * x], 1) * 32767).astype("<i2")
    p = make_wav(tmp_path / "yes44.wav", raw=stereo.tobytes(), rate=44100, channels=2)
    doc = _classify_json(capsys, p, "--model", int8io_model)
    assert doc["label"] == "yes"
    assert doc["audio"]["resampled"] and doc["audio"]["downmixed"]
    assert doc["audio"]["source_rate_hz"] == 44100 and doc["audio"]["source_channels"] == 2
    assert main(["classify", str(p), "--model", str(int8io_model)]) == 0
    out = capsys.readouterr().out
    assert "resampled 44100 Hz -> 16000 Hz (soxr HQ)" in out and "2 channels averaged" in out


def test_batch_of_files_and_a_folder_give_one_table_and_one_json_document(tmp_path, audio_dir,
                                                                             int8io_model, capsys):
    clips = sorted(audio_dir.glob("*.wav"))
    doc = _classify_json(capsys, audio_dir, clips[0], "--model", int8io_model)
    assert doc["count"] == len(clips) + 1 == len(doc["results"])
    by_name = {}
    for r in doc["results"]:
        by_name.setdefault(r["clip"], r)
    for clip in clips:
        want = _expected(clip)
        if want is not None:
            assert by_name[str(clip)]["label"] == want, clip.name
    # batching across files gives the same scores as one file at a time
    single = _classify_json(capsys, clips[3], "--model", int8io_model)
    assert by_name[str(clips[3])]["top"] == single["top"]
    capsys.readouterr()
    assert main(["classify", str(clips[0]), str(clips[1]), "--model", str(int8io_model)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2 files") and out[1].split()[:3] == ["file", "label", "score"]
    assert clips[0].name in out[2] and clips[1].name in out[3]
    assert main(["classify", str(tmp_path), "--model", str(int8io_model)]) == 2
    assert "holds no audio files" in capsys.readouterr().err
    assert main(["classify", str(clips[0]), str(tmp_path / "none.wav"), "--model", str(int8io_model)]) == 2
    assert "not found" in capsys.readouterr().err


def test_streaming_detection_merges_repeated_detections_into_events(tmp_path, audio_dir, int8io_model,
                                                                     capsys):
    names = ["silence_tflm", "yes_tflm", "silence_tflm", "silence_tflm", "no_tflm", "silence_tflm"]
    x = np.concatenate([read_wav(audio_dir / f"{n}.wav") for n in names])
    rec = make_wav(tmp_path / "rec.wav", x)
    doc = _classify_json(capsys, rec, "--model", int8io_model, "--stride-ms", "100", "--average-ms", "300")
    assert doc["stride_s"] == 0.1 and doc["average_windows"] == 3 and len(doc["windows"]) == 51
    events = doc["events"]
    assert [e["label"] for e in events] == ["yes", "no"], events
    yes, no = events
    # several windows see each word, yet each is one event around where the word is
    assert yes["windows"] > 1 and no["windows"] > 1
    assert 0.0 <= yes["start_s"] <= 1.0 < yes["end_s"] <= 2.9
    assert 3.0 <= no["start_s"] <= 4.0 < no["end_s"] <= 5.9
    assert len(doc["detections"]) == yes["windows"] + no["windows"]
    # the averaged posterior of window i is the mean of windows i-2..i of the unaveraged run
    raw = _classify_json(capsys, rec, "--model", int8io_model, "--stride-ms", "100", "--average-ms", "0")
    s = np.array([w["scores"] for w in raw["windows"]])
    np.testing.assert_allclose(doc["windows"][10]["scores"], s[8:11].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(doc["windows"][0]["scores"], s[0], atol=1e-12)
    report = tmp_path / "rep"
    capsys.readouterr()
    assert main(["classify", str(rec), "--model", str(int8io_model), "--stride-ms", "100",
                 "--report", str(report)]) == 0
    assert (report / "timeline.png").stat().st_size > 5000
    assert "Keyword detection" in (report / "index.html").read_text()
    assert main(["classify", str(rec), "--model", str(int8io_model), "--stride-ms", "30"]) == 2
    assert "multiple of 20 ms" in capsys.readouterr().err


def test_merge_events_joins_overlapping_windows_of_one_label_only():
    from ethos_kws.classify import WindowScore, merge_events

    def w(i, t, lab, s):
        return WindowScore(i, t, ({"index": 0, "label": lab, "score": s},))

    ev = merge_events([w(0, 0.0, "yes", 0.8), w(1, 0.5, "yes", 0.9), w(2, 1.0, "no", 0.8),
                       w(6, 3.0, "no", 0.75), w(9, 4.5, "no", 0.95)], duration_s=5.2)
    assert [(e.label, e.start_s, e.end_s, e.windows, e.score, e.peak_s) for e in ev] == [
        ("yes", 0.0, 1.5, 2, 0.9, 0.5), ("no", 1.0, 2.0, 1, 0.8, 1.0),
        ("no", 3.0, 4.0, 1, 0.75, 3.0), ("no", 4.5, 5.2, 1, 0.95, 4.5)]


# ---- classify --sequence: a recording streamed through a stateful model ------------------------

@pytest.fixture(scope="module")
def streaming_model(tmp_path_factory):
    """A generated streaming KWS layer (resource-variable frame history) taking 2 MFCC frames of
    10 coefficients per invocation."""
    from ethos_kws.synth.opcases import streaming_kws

    p = tmp_path_factory.mktemp("stream") / "stream.tflite"
    p.write_bytes(streaming_kws(coefficients=10, frames=2, in_scale=0.5, in_zp=0))
    return p


def _expected_stream(model, wav, frames):
    """Step by step by hand: the MFCC frames of the whole file (zero samples completing the last
    step), 2 per invocation of one TFLite Micro interpreter."""
    from ethos_kws.audio import STRIDE_SAMPLES, WINDOW_SAMPLES, mfcc_frames
    from ethos_kws.inputs import features_to_input

    x = read_wav(wav)
    n = 1 + (x.size - WINDOW_SAMPLES) // STRIDE_SAMPLES
    n += -n % frames
    x = np.concatenate([x, np.zeros(WINDOW_SAMPLES + (n - 1) * STRIDE_SAMPLES, np.float32)])
    mf = mfcc_frames(x)[:n]
    cpu = CpuBackend(model, kernels="tflm")
    spec, out = cpu.input_specs[0], cpu.output_specs[0]
    return np.array([out.dequantize(cpu.run([features_to_input(mf[i:i + frames], spec)]).outputs[0].data).ravel()
                     for i in range(0, n, frames)])


@pytest.mark.parametrize("backend", ["cpu", "npu-sim"])
def test_sequence_streams_the_recording_with_state_carried(tmp_path, audio_dir, streaming_model, capsys,
                                                           backend):
    x = np.concatenate([read_wav(audio_dir / f"{n}.wav") for n in ("yes_tflm", "no_tflm")])
    rec = make_wav(tmp_path / "rec.wav", x[:31000])  # not a whole number of steps: the last is padded
    doc = _classify_json(capsys, rec, rec, "--model", streaming_model, "--sequence", "--backend", backend,
                         "--average-ms", "0", "--threshold", "1")
    a, b = doc["results"]
    steps = _expected_stream(streaming_model, rec, 2)
    assert a["sequence"] == {"frames_per_step": 2, "steps": len(steps)} and a["stride_s"] == 0.04
    got = np.array([w["scores"] for w in a["windows"]])
    np.testing.assert_array_equal(got, steps)
    assert [w["start_s"] for w in a["windows"][:3]] == pytest.approx([0.0, 0.04, 0.08])
    # the state is reset per file: the same recording twice gives the same stream
    assert [w["scores"] for w in b["windows"]] == [w["scores"] for w in a["windows"]]
    # and it is carried: each step alone, from a fresh state, gives other scores
    cpu = CpuBackend(streaming_model, kernels="tflm")
    spec = cpu.input_specs[0]
    from ethos_kws.audio import mfcc_frames
    from ethos_kws.inputs import features_to_input
    alone = []
    for i in range(1, 6):
        cpu.reset()
        f = mfcc_frames(read_wav(rec))[2 * i:2 * i + 2]
        alone.append(cpu.output_specs[0].dequantize(cpu.run([features_to_input(f, spec)]).outputs[0].data).ravel())
    assert not np.array_equal(np.array(alone), steps[1:6])


def test_sequence_averages_steps_and_merges_events(tmp_path, audio_dir, streaming_model, capsys):
    rec = make_wav(tmp_path / "rec.wav", read_wav(audio_dir / "yes_tflm.wav"))
    raw = _classify_json(capsys, rec, "--model", streaming_model, "--sequence", "--average-ms", "0")
    doc = _classify_json(capsys, rec, "--model", streaming_model, "--sequence", "--average-ms", "120",
                         "--threshold", "0")
    assert doc["average_windows"] == 3
    s = np.array([w["scores"] for w in raw["windows"]])
    np.testing.assert_allclose(doc["windows"][5]["scores"], s[3:6].mean(axis=0), atol=1e-12)
    # threshold 0: every step whose top label is a keyword detects; touching steps merge
    events = doc["events"]
    assert events and sum(e["windows"] for e in events) == len(doc["detections"])
    assert all(e["end_s"] - e["start_s"] == pytest.approx(0.04 * e["windows"]) for e in events[:-1])
    capsys.readouterr()
    assert main(["classify", str(rec), "--model", str(streaming_model), "--sequence"]) == 0
    assert "steps of 2 frames (40 ms)" in capsys.readouterr().out


def test_sequence_refuses_a_stateless_model_or_a_frame_mismatch(tmp_path, audio_dir, int8io_model, capsys):
    from ethos_kws.synth.opcases import streaming_kws

    clip = audio_dir / "yes_tflm.wav"
    capsys.readouterr()
    assert main(["classify", str(clip), "--model", str(int8io_model), "--sequence"]) == 2
    assert "keeps no state" in capsys.readouterr().err
    odd = tmp_path / "odd.tflite"
    odd.write_bytes(streaming_kws(coefficients=8))  # 8 values per invocation: not 10-value frames
    assert main(["classify", str(clip), "--model", str(odd), "--sequence"]) == 2
    assert "not a whole number of 10-coefficient MFCC frames" in capsys.readouterr().err
    # 40 values per frame (a micro-wake-word style (1, 3, 40) input): a whole number of values,
    # but not MFCC frames: refused rather than fed 12 frames
    mel = tmp_path / "mel.tflite"
    mel.write_bytes(streaming_kws(coefficients=40))
    assert main(["classify", str(clip), "--model", str(mel), "--sequence"]) == 2
    assert "(1, 1, 1, 40) is not a whole number" in capsys.readouterr().err
