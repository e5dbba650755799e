"""WAV reading and the DS-CNN MFCC front end, in numpy (no TensorFlow at run time).

The features reproduce TensorFlow's ``audio_spectrogram`` + ``mfcc`` kernels, which the ML-zoo
DS-CNN models were trained with (Arm ML-KWS-for-MCU / ML-examples ``tflu-kws-cortex-m``: 16 kHz,
40 ms window, 20 ms stride, 40 mel bins, 10 MFCCs; TensorFlow's ``gen_audio_ops`` kernels):

* spectrogram: periodic Hann window of 640 samples, stride 320, FFT size = next power of two
  (1024), squared magnitude of bins 0..512, computed in double and stored as float32 (the op's
  output dtype, which the mfcc op then reads back into double);
* mel filterbank (TF ``MfccMelFilterbank``): 40 channels from 20 to 4000 Hz, mel = 1127 ln(1+f/700),
  applied to the *magnitude* (square root of the power), each FFT bin split between two adjacent
  triangles; bins below ``int(1.5 + 20/hz_per_bin)`` and above ``int(4000/hz_per_bin)`` unused;
* ``log(max(x, 1e-12))``, then TF ``MfccDct``: sqrt(2/40) * cos(pi/40 * i * (j + 0.5)), 10 coefficients.

WAV files: a small RIFF parser (the stdlib ``wave`` module of Python 3.11 refuses float and
WAVE_FORMAT_EXTENSIBLE files, and its errors are not actionable). Supported: integer PCM of 8
(unsigned), 16, 24 or 32 bits and IEEE float of 32 or 64 bits, plain or EXTENSIBLE, any channel
count and sample rate. Integer samples are scaled by 2**-(bits-1) (16-bit: /32768, as TF's
``decode_wav``). Other containers and codecs (FLAC, Ogg/Vorbis, AIFF, compressed WAV...) are read
with ``soundfile`` (libsndfile) when it can. Refused with a one-line ``InputDataError``: what
neither reader decodes, truncated or empty files.

What the model hears is 16 kHz mono (``AudioReader``): several channels are averaged (as librosa's
``to_mono``) and any other rate is resampled with ``soxr`` (``resample.py``). A 16 kHz mono file
takes neither step: its samples reach the MFCC front end exactly as before, so the
TensorFlow-exact path is unchanged byte for byte.

Long recordings are streamed: ``iter_windows`` reads the file block by block and keeps only one
window of MFCC frames, so memory stays bounded whatever the file length.
"""

from __future__ import annotations

import math
import os
import struct
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .errors import InputDataError

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 16000  # the model sees 1 s
WINDOW_SAMPLES = 640  # 40 ms
STRIDE_SAMPLES = 320  # 20 ms
FFT_LENGTH = 1024  # next power of two >= WINDOW_SAMPLES, as TF's spectrogram
MEL_CHANNELS = 40
MEL_LOWER_HZ = 20.0
MEL_UPPER_HZ = 4000.0
DCT_COEFFICIENTS = 10
LOG_FLOOR = 1e-12
FRAMES_PER_CLIP = 1 + (CLIP_SAMPLES - WINDOW_SAMPLES) // STRIDE_SAMPLES  # 49
FEATURE_SHAPE = (FRAMES_PER_CLIP, DCT_COEFFICIENTS)  # (49, 10)

# Sliding windows over long recordings (Arm's evaluation kit uses 1 s with a 0.5 s stride).
# 0.5 s = 25 spectrogram strides, so every window's frames lie on one global frame grid.
WINDOW_STRIDE_SAMPLES = 8000

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM",
                 0x0055: "MP3"}
_UNKNOWN_DATA_SIZE = 0xFFFFFFFF  # streaming writers leave the size unset
# sane bounds for a header; outside them the file is corrupt, not unusual
MAX_CHANNELS = 64
MIN_RATE_HZ, MAX_RATE_HZ = 1000, 768000

# (format, bits) -> (numpy dtype of one stored sample, scale to [-1, 1), offset)
_SAMPLE_CODECS = {
    (WAVE_FORMAT_PCM, 8): ("u1", 1.0 / 128.0, -128.0),
    (WAVE_FORMAT_PCM, 16): ("<i2", 1.0 / 32768.0, 0.0),
    (WAVE_FORMAT_PCM, 24): (None, 1.0 / 8388608.0, 0.0),  # 3-byte, unpacked by hand
    (WAVE_FORMAT_PCM, 32): ("<i4", 1.0 / 2147483648.0, 0.0),
    (WAVE_FORMAT_IEEE_FLOAT, 32): ("<f4", 1.0, 0.0),
    (WAVE_FORMAT_IEEE_FLOAT, 64): ("<f8", 1.0, 0.0),
}


@dataclass(frozen=True)
class WavInfo:
    path: Path
    sample_rate_hz: int
    channels: int
    bits_per_sample: int
    format_tag: int  # PCM or IEEE float (EXTENSIBLE resolved to its sub-format)
    num_samples: int  # per channel
    data_offset: int  # byte offset of the first sample

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz

    @property
    def encoding(self) -> str:
        kind = "float" if self.format_tag == WAVE_FORMAT_IEEE_FLOAT else "PCM"
        return f"{self.bits_per_sample}-bit {kind}"


def _bad(path: Path, why: str) -> InputDataError:
    return InputDataError(f"{path}: {why}")


def _read_exact(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise _bad(path, f"truncated WAV file (ends inside the {what})")
    return b


def _parse_header(f: BinaryIO, path: Path, file_size: int) -> WavInfo:
    head = f.read(12)
    if len(head) < 12 or head[0:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        if len(head) == 0:
            raise _bad(path, "file is empty, not a WAV file")
        if head[0:4] == b"RIFF" and len(head) < 12:
            raise _bad(path, "truncated WAV header")
        raise _bad(path, "not a WAV file (no RIFF/WAVE header)")
    fmt = None
    pos = 12
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            if fmt is None:
                raise _bad(path, "truncated WAV header (no 'fmt ' chunk)")
            raise _bad(path, "WAV file has no 'data' chunk (no audio)")
        cid, size = chunk[0:4], struct.unpack("<I", chunk[4:8])[0]
        pos += 8
        if cid == b"fmt ":
            if size < 16:
                raise _bad(path, f"malformed WAV 'fmt ' chunk ({size} bytes, need 16)")
            body = _read_exact(f, size + (size & 1), path, "'fmt ' chunk")
            fmt = _parse_fmt(body[:size], path)
            pos += size + (size & 1)
        elif cid == b"data":
            if fmt is None:
                raise _bad(path, "malformed WAV: 'data' chunk before 'fmt ' chunk")
            remaining = file_size - pos
            if size == _UNKNOWN_DATA_SIZE:  # RF64 and streaming writers: the data runs to EOF
                size = remaining
            elif size > remaining:
                raise _bad(
                    path,
                    f"truncated WAV file (data chunk declares {size} bytes, only {remaining} present)",
                )
            tag, channels, rate, bits, block_align = fmt
            num = size // block_align
            if num == 0:
                raise _bad(path, "WAV file has no audio samples (empty data chunk)")
            return WavInfo(path, rate, channels, bits, tag, num, pos)
        else:
            skip = size + (size & 1)
            if pos + skip > file_size:
                raise _bad(path, f"truncated WAV file (chunk {cid!r} runs past the end)")
            f.seek(skip, os.SEEK_CUR)
            pos += skip


def _parse_fmt(body: bytes, path: Path) -> tuple[int, int, int, int, int]:
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise _bad(path, "malformed WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk")
        tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        name = _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")
        raise _bad(path, f"compressed WAV ({name}) is not supported; convert it to 16-bit PCM")
    if (tag, bits) not in _SAMPLE_CODECS:
        kind = "float" if tag == WAVE_FORMAT_IEEE_FLOAT else "PCM"
        raise _bad(path, f"{bits}-bit {kind} WAV is not supported; use 8/16/24/32-bit PCM or 32/64-bit float")
    if channels < 1 or channels > MAX_CHANNELS:
        raise _bad(path, f"malformed WAV 'fmt ' chunk ({channels} channels)")
    if rate < MIN_RATE_HZ or rate > MAX_RATE_HZ:
        raise _bad(path, f"WAV sample rate {rate} Hz is outside {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz")
    if block_align != channels * bits // 8:
        raise _bad(path, f"malformed WAV 'fmt ' chunk (block align {block_align} for "
                         f"{channels} channel(s) of {bits} bits)")
    return tag, channels, rate, bits, block_align


class WavReader:
    """A WAV file as stored (any rate), read block by block as mono float32 in [-1, 1)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise _bad(self.path, "is a directory, not a WAV file")
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            raise InputDataError(f"WAV file not found: {self.path}") from None
        except OSError as e:
            raise InputDataError(f"cannot read {self.path}: {e.strerror or e}") from None
        try:
            size = os.fstat(self._f.fileno()).st_size
            self.info = _parse_header(self._f, self.path, size)
        except BaseException:
            self._f.close()
            raise
        self._left = self.info.num_samples

    def __enter__(self) -> "WavReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` sample frames, mono float32 (channels averaged); empty at the end."""
        n = min(n, self._left)
        if n <= 0:
            return np.zeros(0, np.float32)
        width = self.info.bits_per_sample // 8 * self.info.channels
        raw = self._f.read(n * width)
        if len(raw) < n * width:  # the file shrank under us
            raise _bad(self.path, "truncated WAV file (data ends early)")
        self._left -= n
        return _decode(raw, self.info, self.path)


def _decode(raw: bytes, info: WavInfo, path: Path) -> np.ndarray:
    dtype, scale, offset = _SAMPLE_CODECS[(info.format_tag, info.bits_per_sample)]
    if dtype is None:  # 24-bit little endian: sign-extend 3 bytes into int32
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        values = np.where(ints >= 1 << 23, ints - (1 << 24), ints).astype(np.float64)
    else:
        values = np.frombuffer(raw, dtype).astype(np.float64)
    if info.format_tag == WAVE_FORMAT_IEEE_FLOAT and not np.all(np.isfinite(values)):
        raise _bad(path, "float WAV contains NaN or infinite samples")
    if info.channels > 1:  # average in float64 before the one rounding to float32
        values = values.reshape(-1, info.channels).mean(axis=1)
    return ((values + offset) * scale).astype(np.float32)


@dataclass(frozen=True)
class AudioInfo:
    """A recording as stored and as the model hears it (16 kHz mono, ``num_samples`` long)."""

    path: Path
    source_rate_hz: int
    source_channels: int
    source_samples: int  # per channel, at the source rate
    encoding: str  # "16-bit PCM", "FLAC 24-bit"...
    num_samples: int  # 16 kHz mono samples the front end sees
    reader: str  # "wav" (ethos-kws' RIFF parser) or "soundfile"

    sample_rate_hz = SAMPLE_RATE_HZ  # of what the model hears

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE_HZ

    @property
    def resampled(self) -> bool:
        return self.source_rate_hz != SAMPLE_RATE_HZ

    @property
    def downmixed(self) -> bool:
        return self.source_channels != 1

    @property
    def conversion(self) -> str:
        """What was done to reach 16 kHz mono, for the output; empty when nothing."""
        from .resample import QUALITY

        steps = []
        if self.downmixed:
            steps.append(f"{self.source_channels} channels averaged to mono")
        if self.resampled:
            steps.append(f"resampled {self.source_rate_hz} Hz -> {SAMPLE_RATE_HZ} Hz (soxr {QUALITY})")
        return ", ".join(steps)

    def to_dict(self) -> dict:
        return {"source_rate_hz": self.source_rate_hz, "source_channels": self.source_channels,
                "encoding": self.encoding, "resampled": self.resampled,
                "downmixed": self.downmixed, "conversion": self.conversion}


class AudioReader:
    """Any supported audio file, read block by block as 16 kHz mono float32.

    16 kHz mono WAV files are passed through untouched; anything else is downmixed and resampled
    as it streams, with the output cut or zero-extended to exactly ``round(n * 16000 / rate)``
    samples (soxr's own length for a whole-file call), so the length is known before reading.
    """

    def __init__(self, path: str | os.PathLike):
        from . import resample

        self.path = Path(path)
        try:
            self._src = WavReader(self.path)
            i = self._src.info
            rate, channels, frames, encoding, reader = (i.sample_rate_hz, i.channels, i.num_samples,
                                                        i.encoding, "wav")
        except InputDataError as e:
            if not _soundfile_may_read(self.path, e):
                raise
            self._src = resample.SoundfileSource(self.path, e)
            rate, channels, frames, encoding, reader = (self._src.rate, self._src.channels,
                                                        self._src.frames, self._src.encoding,
                                                        "soundfile")
        n = resample.output_length(frames, rate)
        if n == 0:
            self._src.close()
            raise _bad(self.path, "recording is shorter than one sample at 16 kHz")
        self.info = AudioInfo(self.path, rate, channels, frames, encoding, n, reader)
        self._resampler = None if rate == SAMPLE_RATE_HZ else resample.StreamResampler(rate, n)

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._src.close()

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` 16 kHz mono float32 samples; an empty array at the end."""
        if self._resampler is None:
            return self._src.read(n)
        return self._resampler.read(n, self._src)


def _soundfile_may_read(path: Path, error: InputDataError) -> bool:
    """Whether the RIFF parser's refusal is one libsndfile might overcome (another container or
    a compressed WAV codec), rather than a missing, empty or truncated file."""
    msg = str(error)
    return path.is_file() and ("not a WAV file" in msg or "compressed WAV" in msg)


def wav_info(path: str | os.PathLike) -> AudioInfo:
    with AudioReader(path) as r:
        return r.info


def read_wav(path: str | os.PathLike, max_samples: int | None = None) -> np.ndarray:
    """16 kHz mono samples as float32 in [-1, 1); at most ``max_samples`` (memory stays bounded)."""
    with AudioReader(path) as r:
        n = r.info.num_samples if max_samples is None else min(max_samples, r.info.num_samples)
        parts, left = [], n
        while left > 0:
            block = r.read(left)
            if block.size == 0:
                break
            parts.append(block)
            left -= block.size
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


# ---------------------------------------------------------------------------------------------
# MFCC front end


def _freq_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=None)
def _hann_window() -> np.ndarray:
    i = np.arange(WINDOW_SAMPLES, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * math.pi * i / WINDOW_SAMPLES)  # periodic, as TF


@lru_cache(maxsize=None)
def mel_weight_matrix() -> np.ndarray:
    """(513, 40) float64: magnitude bin -> mel channel, TF ``MfccMelFilterbank`` semantics.

    Each used bin i belongs to the falling edge of channel ``band[i]`` with weight ``w[i]`` and to
    the rising edge of channel ``band[i] + 1`` with ``1 - w[i]``.
    """
    bins = FFT_LENGTH // 2 + 1
    mel_low, mel_high = _freq_to_mel(MEL_LOWER_HZ), _freq_to_mel(MEL_UPPER_HZ)
    spacing = (mel_high - mel_low) / (MEL_CHANNELS + 1)
    centers = mel_low + spacing * np.arange(1, MEL_CHANNELS + 2)  # one extra for the top edge
    hz_per_bin = 0.5 * SAMPLE_RATE_HZ / (bins - 1)
    start = int(1.5 + MEL_LOWER_HZ / hz_per_bin)  # DC always excluded (HTK)
    end = int(MEL_UPPER_HZ / hz_per_bin)
    matrix = np.zeros((bins, MEL_CHANNELS), dtype=np.float64)
    for i in range(start, end + 1):
        mel = float(_freq_to_mel(i * hz_per_bin))
        # first channel whose center is not below this bin, minus one (TF's band mapper)
        band = int(np.searchsorted(centers[:MEL_CHANNELS], mel, side="left")) - 1
        if band >= 0:
            w = (centers[band + 1] - mel) / (centers[band + 1] - centers[band])
            matrix[i, band] += w
        else:
            w = (centers[0] - mel) / (centers[0] - mel_low)
        if band + 1 < MEL_CHANNELS:
            matrix[i, band + 1] += 1.0 - w
    return matrix


@lru_cache(maxsize=None)
def dct_matrix() -> np.ndarray:
    """(40, 10) float64: TF ``MfccDct`` (unnormalised DCT-II scaled by sqrt(2/N))."""
    n = MEL_CHANNELS
    j = np.arange(n, dtype=np.float64)[:, None]
    i = np.arange(DCT_COEFFICIENTS, dtype=np.float64)[None, :]
    return math.sqrt(2.0 / n) * np.cos(i * (math.pi / n) * (j + 0.5))


def _frames(audio: np.ndarray) -> np.ndarray:
    """(n, 640) overlapping frames at stride 320; audio must hold at least one window."""
    n = 1 + (audio.size - WINDOW_SAMPLES) // STRIDE_SAMPLES
    return np.lib.stride_tricks.sliding_window_view(audio, WINDOW_SAMPLES)[::STRIDE_SAMPLES][:n]


def mfcc_frames(audio: np.ndarray) -> np.ndarray:
    """MFCC of every full 640-sample frame of ``audio`` (no padding): float32 (n, 10)."""
    audio = np.asarray(audio, dtype=np.float32).astype(np.float64)
    if audio.size < WINDOW_SAMPLES:
        return np.zeros((0, DCT_COEFFICIENTS), np.float32)
    spectrum = np.fft.rfft(_frames(audio) * _hann_window(), n=FFT_LENGTH)
    # TF's spectrogram op outputs float32 and the mfcc op reads it back as double
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32).astype(np.float64)
    mel = np.sqrt(power) @ mel_weight_matrix()
    return (np.log(np.maximum(mel, LOG_FLOOR)) @ dct_matrix()).astype(np.float32)


def features(audio: np.ndarray) -> np.ndarray:
    """The model's (49, 10) float32 features of the first second of ``audio``, zero-padded."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)[:CLIP_SAMPLES]
    if audio.size < CLIP_SAMPLES:
        audio = np.concatenate([audio, np.zeros(CLIP_SAMPLES - audio.size, np.float32)])
    return mfcc_frames(audio)


def wav_features(path: str | os.PathLike) -> np.ndarray:
    """(49, 10) float32 features of the first second of a WAV file."""
    return features(read_wav(path, max_samples=CLIP_SAMPLES))


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str = "int8") -> np.ndarray:
    """``clamp(round(x / scale) + zero_point)``, rounding half away from zero (C ``round``)."""
    info = np.iinfo(np.dtype(dtype))
    v = np.asarray(x, dtype=np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


@dataclass(frozen=True)
class FeatureWindow:
    index: int
    start_s: float
    features: np.ndarray  # (49, 10) float32


def window_count(num_samples: int, stride_samples: int = WINDOW_STRIDE_SAMPLES) -> int:
    """1 s windows every ``stride_samples``; the last one reaches the end (zero-padded) of the audio."""
    extra = max(0, num_samples - CLIP_SAMPLES)
    return 1 + -(-extra // stride_samples)


def stride_samples_for(stride_ms: float) -> int:
    """A window stride in samples; it must be a whole number of 20 ms MFCC frames, so every window's
    frames lie on one global frame grid (computed once, shared by overlapping windows)."""
    frame_ms = STRIDE_SAMPLES * 1000 / SAMPLE_RATE_HZ
    frames = stride_ms / frame_ms
    if not (stride_ms > 0) or abs(frames - round(frames)) > 1e-9 or round(frames) < 1:
        raise InputDataError(f"--stride-ms must be a positive multiple of {frame_ms:g} ms (the MFCC "
                             f"frame stride), got {stride_ms:g}")
    return int(round(frames)) * STRIDE_SAMPLES


def iter_frames(path: str | os.PathLike, multiple: int = 1, block_samples: int = 32000) -> Iterator[np.ndarray]:
    """Stream the (10,) MFCC frames of a whole recording on the 20 ms grid, in order (for a
    streaming model fed a few frames per invocation). After the audio, zero samples complete the
    frame count to a multiple of ``multiple`` (at least one), as the last 1 s window is padded."""
    if multiple < 1:
        raise InputDataError(f"frames per step must be 1 or more, got {multiple}")
    with AudioReader(path) as reader:
        carry = np.zeros(0, np.float32)
        done = 0
        while True:
            block = reader.read(block_samples)
            if block.size == 0:
                need = (-done) % multiple if done else multiple
                if need:
                    size = WINDOW_SAMPLES + (need - 1) * STRIDE_SAMPLES
                    buf = np.concatenate([carry, np.zeros(max(0, size - carry.size), np.float32)])
                    yield from mfcc_frames(buf)[:need]
                return
            buf = np.concatenate([carry, block])
            new = mfcc_frames(buf)
            carry = buf[len(new) * STRIDE_SAMPLES :] if len(new) else buf
            done += len(new)
            yield from new


def iter_windows(path: str | os.PathLike, block_samples: int = 32000,
                 stride_samples: int = WINDOW_STRIDE_SAMPLES) -> Iterator[FeatureWindow]:
    """Stream the (49, 10) features of every 1 s window (``stride_samples`` apart) of a recording.

    Frames are computed once on the global 20 ms grid and shared by overlapping windows; only one
    window's frames and one block of audio are held at a time.
    """
    if stride_samples <= 0 or stride_samples % STRIDE_SAMPLES:
        raise InputDataError(f"window stride of {stride_samples} samples is not a whole number of frames")
    frames_per_stride = stride_samples // STRIDE_SAMPLES  # 25 at 0.5 s
    with AudioReader(path) as reader:
        total = window_count(reader.info.num_samples, stride_samples)
        padded_len = CLIP_SAMPLES + (total - 1) * stride_samples
        needed_frames = 1 + (padded_len - WINDOW_SAMPLES) // STRIDE_SAMPLES
        recent: deque[np.ndarray] = deque(maxlen=FRAMES_PER_CLIP)
        carry = np.zeros(0, np.float32)
        consumed = 0  # samples read so far (real audio, then zero padding)
        frames_done = 0
        emitted = 0
        while emitted < total:
            block = reader.read(block_samples)
            if block.size == 0:  # past the end: pad with zeros up to the last window's end
                pad = min(block_samples, max(0, padded_len - consumed))
                block = np.zeros(max(pad, 0), np.float32)
                if block.size == 0 and carry.size < WINDOW_SAMPLES:
                    break
            consumed += block.size
            buf = np.concatenate([carry, block])
            new = mfcc_frames(buf)
            usable = min(len(new), needed_frames - frames_done)
            new = new[:usable]
            carry = buf[len(new) * STRIDE_SAMPLES :] if len(new) else buf
            for frame in new:
                recent.append(frame)
                frames_done += 1
                first = frames_done - FRAMES_PER_CLIP  # global index of the window's first frame
                if first >= 0 and first % frames_per_stride == 0:
                    idx = first // frames_per_stride
                    yield FeatureWindow(idx, idx * stride_samples / SAMPLE_RATE_HZ,
                                        np.stack(recent))
                    emitted += 1
