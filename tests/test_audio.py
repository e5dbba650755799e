"""MFCC front end against TensorFlow's goldens; WAV reading of every format, refusals, streaming."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from ethos_kws import audio
from ethos_kws.audio import (
    CLIP_SAMPLES, FEATURE_SHAPE, WavReader, features, iter_windows, quantize, read_wav, wav_features,
    window_count,
)
from ethos_kws.cli import main
from ethos_kws.errors import InputDataError
from ethos_kws.tflite import load_tflite


def make_wav(path, samples=None, *, rate=16000, channels=1, bits=16, fmt=1, extensible=False,
             raw=None, data_size=None):
    """A WAV file from float samples in [-1, 1) (or raw data bytes)."""
    if raw is None:
        x = np.asarray(samples, dtype=np.float64)
        if fmt == 3:
            raw = x.astype("<f4" if bits == 32 else "<f8").tobytes()
        elif bits == 8:
            raw = np.clip(np.round(x * 128) + 128, 0, 255).astype("u1").tobytes()
        elif bits == 24:
            v = np.clip(np.round(x * 2**23), -(2**23), 2**23 - 1).astype("<i4")
            raw = b"".join(int(i).to_bytes(3, "little", signed=True) for i in v)
        else:
            dt = {16: "<i2", 32: "<i4"}[bits]
            raw = np.clip(np.round(x * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(dt).tobytes()
    block = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt_body = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt_body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", fmt) + guid_tail
    else:
        fmt_body = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"  # an extra chunk readers must skip
    body += b"data" + struct.pack("<I", len(raw) if data_size is None else data_size) + raw
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _int8_input_quant(int8io_model):
    spec = load_tflite(int8io_model).input_specs[0]
    return spec.scale, spec.zero_point


def test_front_end_reproduces_tensorflow_goldens(audio_dir, int8io_model):
    scale, zp = _int8_input_quant(int8io_model)
    goldens = sorted((audio_dir / "tf_mfcc").glob("*.npy"))
    assert len(goldens) == len(list(audio_dir.glob("*.wav"))) >= 10
    for golden in goldens:
        ref = np.load(golden)
        ours = wav_features(audio_dir / f"{golden.stem}.wav")
        assert ours.shape == FEATURE_SHAPE == ref.shape and ours.dtype == np.float32
        err = float(np.abs(ours - ref).max())
        assert err <= 0.01, f"{golden.stem}: max abs error {err}"
        q_ours, q_ref = quantize(ours, scale, zp), quantize(ref, scale, zp)
        steps = np.abs(q_ours.astype(int) - q_ref.astype(int))
        assert (steps == 0).mean() >= 0.99, golden.stem
        assert steps.max() <= 1, golden.stem


def test_front_end_constants_follow_tensorflow_kernels():
    w = audio._hann_window()
    assert w[0] == 0.0 and w[320] == 1.0 and w.size == 640  # periodic Hann: peak at N/2
    mel = audio.mel_weight_matrix()
    hz_per_bin = 8000 / 512
    used = np.nonzero(mel.sum(axis=1))[0]
    assert used[0] == int(1.5 + 20 / hz_per_bin) and used[-1] <= int(4000 / hz_per_bin)
    # every used bin splits its magnitude between at most two adjacent channels, summing to <= 1
    assert np.all((mel > 0).sum(axis=1) <= 2) and np.all(mel.sum(axis=1) <= 1 + 1e-12)
    dct = audio.dct_matrix()
    assert dct.shape == (40, 10) and np.allclose(dct[:, 0], np.sqrt(2 / 40))


def test_quantize_rounds_half_away_from_zero_and_saturates():
    q = quantize(np.array([0.5, -0.5, 1.5, -1.5, 1000.0, -1000.0]), 1.0, 0)
    assert q.tolist() == [1, -1, 2, -2, 127, -128]
    assert quantize(np.array([2.0]), 2.0, 101).tolist() == [102]


@pytest.mark.parametrize(
    "bits,fmt,extensible,tol",
    [(16, 1, False, 0.0), (8, 1, False, 1 / 128), (24, 1, False, 2**-23), (32, 1, False, 2**-31),
     (32, 3, False, 1e-7), (64, 3, False, 0.0), (16, 1, True, 0.0), (32, 3, True, 1e-7)],
)
def test_every_supported_encoding_decodes_to_the_same_audio(tmp_path, bits, fmt, extensible, tol):
    x = np.round(np.sin(np.arange(4000) * 0.05) * 0.5 * 32768) / 32768  # exact in 16-bit
    p = make_wav(tmp_path / "a.wav", x, bits=bits, fmt=fmt, extensible=extensible)
    got = read_wav(p)
    assert got.dtype == np.float32 and got.size == x.size
    assert np.abs(got - x).max() <= tol + 1e-9


def test_16_bit_scaling_is_tensorflows(tmp_path):
    p = make_wav(tmp_path / "a.wav", raw=np.array([-32768, 0, 16384, 32767], "<i2").tobytes())
    assert read_wav(p).tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(rate=100), "100 Hz is outside"),
        (dict(channels=0), "0 channels"),
        (dict(bits=12), "12-bit PCM WAV is not supported"),
        (dict(bits=16, fmt=3), "16-bit float WAV is not supported"),
        (dict(fmt=2), "compressed WAV (MS ADPCM)"),
        (dict(raw=b""), "no audio samples"),
        (dict(raw=b"\x00\x01" * 10, data_size=10_000), "truncated WAV file"),
    ],
)
def test_bad_wavs_are_refused_with_one_line(tmp_path, kwargs, needle):
    raw = kwargs.pop("raw", np.zeros(3200, "<i2").tobytes())
    p = make_wav(tmp_path / "bad.wav", raw=raw, **kwargs)
    with pytest.raises(InputDataError) as e:
        wav_features(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_float_wav_with_nan_is_refused(tmp_path):
    p = make_wav(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1]), bits=32, fmt=3)
    with pytest.raises(InputDataError, match="NaN"):
        read_wav(p)


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty"),
        (b"hello, this is not audio at all", "not a WAV file"),
        (b"RIFF\x00\x00", "truncated WAV header"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "truncated WAV file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no 'fmt ' chunk"),
    ],
)
def test_not_a_wav_or_truncated_header(tmp_path, content, needle):
    p = tmp_path / "x.wav"
    p.write_bytes(content)
    with pytest.raises(InputDataError) as e:
        read_wav(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputDataError, match="not found"):
        read_wav(tmp_path / "none.wav")
    with pytest.raises(InputDataError, match="directory"):
        read_wav(tmp_path)


def test_short_clip_is_zero_padded_and_long_clip_cut(tmp_path, audio_dir):
    x = read_wav(audio_dir / "yes_tflm.wav")
    half = make_wav(tmp_path / "half.wav", x[:8000])
    padded = np.concatenate([x[:8000], np.zeros(8000, np.float32)])
    assert np.array_equal(wav_features(half), features(padded))
    longer = make_wav(tmp_path / "long.wav", np.concatenate([x, x[:5000]]))
    assert np.array_equal(wav_features(longer), wav_features(audio_dir / "yes_tflm.wav"))


def test_streamed_windows_equal_per_window_features(tmp_path, audio_dir):
    clips = [read_wav(audio_dir / f"{n}.wav") for n in ("yes_tflm", "silence_tflm", "no_tflm")]
    x = np.concatenate(clips + [clips[0][:4800]])  # 3.3 s
    p = make_wav(tmp_path / "rec.wav", x)
    windows = list(iter_windows(p, block_samples=7000))  # blocks not aligned to frames
    assert len(windows) == window_count(x.size) == 6
    padded = np.concatenate([x, np.zeros(CLIP_SAMPLES + 5 * 8000 - x.size, np.float32)])
    for w in windows:
        start = w.index * 8000
        assert w.start_s == start / 16000
        # equal up to BLAS summation order (matmuls over different frame counts)
        np.testing.assert_allclose(w.features, features(padded[start : start + CLIP_SAMPLES]),
                                   rtol=0, atol=1e-4, err_msg=f"window {w.index}")
    assert window_count(16000) == 1 and window_count(100) == 1 and window_count(24000) == 2
    assert window_count(24001) == 3


def test_long_file_is_streamed_with_bounded_memory(tmp_path):
    seconds = 120
    rng = np.random.default_rng(0)
    p = make_wav(tmp_path / "long.wav", raw=rng.integers(-3000, 3000, 16000 * seconds).astype("<i2").tobytes())
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_windows(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == window_count(16000 * seconds) == 2 * seconds - 1
    # decoding the whole file to float64 alone would take 15 MB
    assert peak < 6_000_000, peak


def test_reader_reads_in_blocks(tmp_path):
    p = make_wav(tmp_path / "a.wav", np.linspace(-0.5, 0.5, 1000))
    with WavReader(p) as r:
        assert r.info.num_samples == 1000 and r.info.encoding == "16-bit PCM"
        parts = [r.read(300) for _ in range(5)]
    assert [a.size for a in parts] == [300, 300, 300, 100, 0]


def test_features_cli_writes_float32_49x10(tmp_path, audio_dir, capsys):
    out = tmp_path / "f.npy"
    assert main(["features", str(audio_dir / "no_tflm.wav"), "--out", str(out)]) == 0
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (49, 10)
    assert np.abs(got - np.load(audio_dir / "tf_mfcc" / "no_tflm.npy")).max() <= 0.01
    capsys.readouterr()
    assert main(["features", str(audio_dir / "no_tflm.wav"), "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["shape"] == [49, 10] and np.allclose(doc["features"], got)


def test_features_cli_bad_wav_exits_2(tmp_path, capsys):
    p = make_wav(tmp_path / "st.wav", raw=np.zeros(64, "<i2").tobytes(), bits=12)
    assert main(["features", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ethos-kws: error:") and "12-bit" in err and "\n" not in err


# ---------------------------------------------------------------------------------------------
# Any rate and channel count in, 16 kHz mono out (soxr); 16 kHz mono untouched


def test_16khz_mono_keeps_the_tensorflow_exact_path_byte_for_byte(audio_dir):
    """No resampler, no downmix: the front end sees int16 / 32768 exactly, and the goldens hold."""
    for clip in sorted(audio_dir.glob("*.wav")):
        info = audio.wav_info(clip)
        assert not info.resampled and not info.downmixed and info.conversion == ""
        with WavReader(clip) as r:
            raw = np.frombuffer(r._f.read(r.info.num_samples * 2), "<i2")
        expect = (raw.astype(np.float64) / 32768.0).astype(np.float32)
        got = read_wav(clip)
        assert got.tobytes() == expect.tobytes(), clip.name
        assert wav_features(clip).tobytes() == features(expect[:CLIP_SAMPLES]).tobytes()


def test_stereo_is_averaged_and_identical_channels_give_the_mono_features(tmp_path, audio_dir):
    x = read_wav(audio_dir / "yes_tflm.wav").astype(np.float64)
    both = make_wav(tmp_path / "st.wav", raw=np.round(np.stack([x, x], 1) * 32768).astype("<i2").tobytes(),
                    channels=2)
    info = audio.wav_info(both)
    assert info.downmixed and not info.resampled and "2 channels averaged" in info.conversion
    assert wav_features(both).tobytes() == wav_features(audio_dir / "yes_tflm.wav").tobytes()
    left_only = make_wav(tmp_path / "l.wav", raw=np.round(np.stack([x, 0 * x], 1) * 32768).astype("<i2").tobytes(),
                         channels=2)
    np.testing.assert_allclose(read_wav(left_only), x / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_to_16khz_with_soxr(tmp_path, audio_dir, rate):
    import soxr

    x = read_wav(audio_dir / "yes_tflm.wav")
    src = soxr.resample(x.astype(np.float64), 16000, rate)  # the clip as a `rate` recording
    p = make_wav(tmp_path / f"r{rate}.wav", src, rate=rate, bits=32, fmt=3)
    info = audio.wav_info(p)
    assert info.resampled and info.source_rate_hz == rate and info.num_samples == 16000
    assert f"{rate} Hz -> 16000 Hz (soxr HQ)" in info.conversion
    got = read_wav(p)
    # streaming equals soxr's one-shot call of the same rates
    whole = soxr.resample(src.astype(np.float32), rate, 16000)
    np.testing.assert_allclose(got[: whole.size], whole, atol=1e-5)
    if rate > 16000:  # band-limited round trip: the MFCCs are those of the original clip
        assert np.abs(wav_features(p) - wav_features(audio_dir / "yes_tflm.wav")).max() < 0.5


def test_resampled_long_recording_streams_with_exact_window_count(tmp_path, audio_dir):
    import soxr

    x = np.concatenate([read_wav(audio_dir / f"{n}.wav") for n in ("yes_tflm", "no_tflm", "silence_tflm")])
    src = soxr.resample(x.astype(np.float64), 16000, 44100)
    p = make_wav(tmp_path / "rec44.wav", src, rate=44100)
    windows = list(iter_windows(p, block_samples=7000))
    assert len(windows) == window_count(audio.wav_info(p).num_samples) == 5


def test_flac_is_read_through_soundfile(tmp_path, audio_dir):
    import soundfile

    x = read_wav(audio_dir / "no_tflm.wav")
    p = tmp_path / "no.flac"
    soundfile.write(str(p), x, 16000, subtype="PCM_16")
    info = audio.wav_info(p)
    assert info.reader == "soundfile" and "FLAC" in info.encoding and not info.resampled
    assert wav_features(p).tobytes() == wav_features(audio_dir / "no_tflm.wav").tobytes()
