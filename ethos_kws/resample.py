"""Getting any recording to what the model hears: 16 kHz mono.

* ``StreamResampler``: ``soxr`` (libsoxr, the SoX resampler) in streaming mode, at its ``HQ``
  quality (the default of ``soxr.resample`` and of librosa's ``soxr_hq``). The output is cut or
  zero-extended to exactly ``output_length`` samples, so a recording's window count is known
  before it is read and equals a whole-file ``soxr.resample`` call's length.
* ``SoundfileSource``: containers and codecs ethos-kws' own RIFF parser does not read (FLAC,
  Ogg/Vorbis, AIFF, compressed WAV...), through ``soundfile`` (libsndfile), block by block.

Both keep memory bounded by one block, whatever the recording's length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputDataError

TARGET_RATE_HZ = 16000
QUALITY = "HQ"
SOURCE_BLOCK = 16384  # source frames decoded per step


def output_length(frames: int, rate_hz: int) -> int:
    """``round(frames * 16000 / rate)``: the sample count soxr gives for the whole recording."""
    if rate_hz == TARGET_RATE_HZ:
        return frames
    return (2 * frames * TARGET_RATE_HZ + rate_hz) // (2 * rate_hz)


class StreamResampler:
    """Resamples blocks pulled from a mono float32 source to exactly ``total`` samples."""

    def __init__(self, rate_hz: int, total: int):
        import soxr

        self._stream = soxr.ResampleStream(rate_hz, TARGET_RATE_HZ, 1, dtype="float32",
                                           quality=QUALITY)
        self._left = total  # samples still to hand out
        self._pending = np.zeros(0, np.float32)
        self._flushed = False

    def read(self, n: int, source) -> np.ndarray:
        n = min(n, self._left)
        while self._pending.size < n and not self._flushed:
            block = source.read(SOURCE_BLOCK)
            last = block.size == 0
            out = self._stream.resample_chunk(block.astype(np.float32, copy=False), last=last)
            self._flushed = last
            if out.size:
                self._pending = np.concatenate([self._pending, out.astype(np.float32, copy=False)])
        if self._pending.size < n:  # soxr ended a few samples short of round(n * ratio)
            self._pending = np.concatenate([self._pending, np.zeros(n - self._pending.size, np.float32)])
        out, self._pending = self._pending[:n], self._pending[n:]
        self._left -= n
        return out


class SoundfileSource:
    """A recording libsndfile decodes, read as mono float32 source-rate blocks."""

    def __init__(self, path: Path, riff_error: InputDataError):
        try:
            import soundfile
        except ImportError:  # pragma: no cover - soundfile is a dependency
            raise riff_error from None
        self.path = path
        try:
            self._f = soundfile.SoundFile(str(path))
        except Exception:  # libsndfile cannot read it either: the RIFF parser's reason stands
            raise riff_error from None
        self.rate, self.channels, self.frames = self._f.samplerate, self._f.channels, self._f.frames
        self.encoding = f"{self._f.format} {self._f.subtype}".strip()
        if self.frames <= 0:
            self._f.close()
            raise InputDataError(f"{path}: {self.encoding} file has no audio samples")
        if not (1000 <= self.rate <= 768000) or not (1 <= self.channels <= 64):
            self._f.close()
            raise InputDataError(f"{path}: {self.rate} Hz, {self.channels} channels is not a usable recording")

    def read(self, n: int) -> np.ndarray:
        try:
            x = self._f.read(n, dtype="float64", always_2d=True)
        except Exception as e:  # a codec error inside the file
            raise InputDataError(f"{self.path}: cannot decode {self.encoding} audio ({e})") from None
        if not np.all(np.isfinite(x)):
            raise InputDataError(f"{self.path}: audio contains NaN or infinite samples")
        return x.mean(axis=1).astype(np.float32)

    def close(self) -> None:
        self._f.close()
