"""A Google Speech Commands folder as the 12-class evaluation set the DS-CNN models were trained for.

The recipe is the one of TensorFlow's speech_commands example, ``input_data.py``
(tensorflow/tensorflow, ``tensorflow/examples/speech_commands/input_data.py``), which Arm's
ML-KWS-for-MCU (``ARM-software/ML-KWS-for-MCU``, ``input_data.py``, ``train.py``) trained the DS-CNN
models with and ML-zoo's DS-CNN models come from:

* layout: one folder per word of 1 s 16 kHz clips; ``_background_noise_/`` holds long noise
  recordings; ``testing_list.txt`` / ``validation_list.txt`` list the clips of the two held-out
  splits (relative paths, ``word/file.wav``). Without the lists, TensorFlow's ``which_set`` rule
  decides: SHA-1 of the file name up to ``_nohash_``, modulo 2^27, as a percentage (10 % validation,
  10 % testing), so every recording of one speaker stays in one split.
* labels, in output order: ``_silence_``, ``_unknown_``, then the ten wanted words
  ``yes, no, up, down, left, right, on, off, stop, go``.
* wanted words keep their label; every other word folder is ``_unknown_``. Unknown clips are
  added at ``unknown_percentage`` (10 %) of the split's wanted-word count (rounded up), drawn after
  a seeded shuffle (seed 59185, TensorFlow's ``RANDOM_SEED``).
* ``_silence_`` clips are added at ``silence_percentage`` (10 %), rounded up. Each one is, as
  TensorFlow's ``get_data`` builds silence in every mode: a random 1 s cut of a random background
  noise file, times a volume uniform in [0, 1), clipped to [-1, 1] (the foreground volume is 0).
  TensorFlow draws those with an unseeded ``np.random``; here every silence clip has its own
  seeded generator (seed 59185, split, index), so the set is the same on every run and machine.

TensorFlow walks the folder with ``glob`` (file-system order); here paths are sorted, so the
unknown/silence draw is reproducible. ``--limit N`` takes the first N clips of one more seeded
shuffle of the whole split, so a subset keeps the class mix.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import CLIP_SAMPLES
from .errors import InputDataError
from .labels import DS_CNN_LABELS

SILENCE_LABEL, UNKNOWN_LABEL = "_silence_", "_unknown_"
WANTED_WORDS = DS_CNN_LABELS[2:]
BACKGROUND_NOISE_DIR = "_background_noise_"
RANDOM_SEED = 59185  # TensorFlow's speech_commands RANDOM_SEED
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
SILENCE_PERCENTAGE = 10.0
UNKNOWN_PERCENTAGE = 10.0
VALIDATION_PERCENTAGE = 10.0
TESTING_PERCENTAGE = 10.0
SPLITS = {"test": "testing_list.txt", "validation": "validation_list.txt"}
_SPLIT_CODE = {"validation": 1, "test": 2}
RECIPE_VERSION = 1  # bump when the selection or silence synthesis changes (invalidates caches)

RECIPE = {
    "summary": "12 classes (_silence_, _unknown_, yes, no, up, down, left, right, on, off, stop, go); "
               "unknown = other words at 10 % of the split's keyword clips, silence = random 1 s cuts "
               "of _background_noise_ at a uniform [0, 1) volume, 10 %; the recipe of TensorFlow's "
               "speech_commands input_data.py, as used by ARM-software/ML-KWS-for-MCU.",
    "silence_percentage": SILENCE_PERCENTAGE,
    "unknown_percentage": UNKNOWN_PERCENTAGE,
    "random_seed": RANDOM_SEED,
    "sources": [
        "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/examples/speech_commands/input_data.py",
        "https://github.com/ARM-software/ML-KWS-for-MCU/blob/master/input_data.py",
    ],
    "version": RECIPE_VERSION,
}


@dataclass(frozen=True)
class Clip:
    """One evaluation item; picklable (it travels to executor workers)."""

    clip_id: str  # "yes/0a7c2a8d_nohash_0.wav" or "_silence_/test-0003"
    label: int  # index into the 12 labels
    path: str | None = None  # a word clip's file
    noise: str | None = None  # a silence clip's background noise file ...
    offset: int = 0  # ... its first sample (16 kHz) ...
    volume: float = 0.0  # ... and its volume

    @property
    def label_name(self) -> str:
        return DS_CNN_LABELS[self.label]


@dataclass(frozen=True)
class Dataset:
    root: Path
    split: str
    clips: tuple[Clip, ...]
    total: int  # clips in the split before --limit
    split_source: str  # "testing_list.txt" or "hash (which_set)"

    def counts(self) -> dict[str, int]:
        out = {lab: 0 for lab in DS_CNN_LABELS}
        for c in self.clips:
            out[c.label_name] += 1
        return out


def which_set(filename: str, validation_percentage: float = VALIDATION_PERCENTAGE,
              testing_percentage: float = TESTING_PERCENTAGE) -> str:
    """TensorFlow's split rule: 'validation', 'test' or 'training'."""
    base = re.sub(r"_nohash_.*$", "", os.path.basename(filename))
    h = int(hashlib.sha1(base.encode("utf-8")).hexdigest(), 16)
    pct = (h % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if pct < validation_percentage:
        return "validation"
    if pct < validation_percentage + testing_percentage:
        return "test"
    return "training"


def _read_list(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputDataError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    return {line.strip().replace("\\", "/") for line in text.splitlines() if line.strip()}


def _word_clips(root: Path) -> dict[str, list[str]]:
    """word -> sorted relative paths of its .wav files (the background noise folder excluded)."""
    out: dict[str, list[str]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name == BACKGROUND_NOISE_DIR:
            continue
        files = sorted(f"{d.name}/{f.name}" for f in d.iterdir() if f.suffix.lower() == ".wav" and f.is_file())
        if files:
            out[d.name.lower()] = files
    return out


def _noise_files(root: Path) -> list[tuple[str, int]]:
    from .audio import wav_info

    d = root / BACKGROUND_NOISE_DIR
    if not d.is_dir():
        return []
    out = []
    for f in sorted(d.glob("*.wav")):
        n = wav_info(f).num_samples
        if n >= 1:
            out.append((str(f), n))
    return out


def load_dataset(root: str | os.PathLike, split: str = "test", limit: int | None = None) -> Dataset:
    root = Path(root)
    if split not in SPLITS:
        raise InputDataError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not root.is_dir():
        raise InputDataError(f"dataset folder not found: {root}")
    if limit is not None and limit < 1:
        raise InputDataError(f"--limit must be at least 1, got {limit}")
    words = _word_clips(root)
    if not words:
        raise InputDataError(f"{root}: no word folders with .wav clips (Speech Commands layout: "
                             "one folder per word, _background_noise_/, testing_list.txt)")
    list_file = root / SPLITS[split]
    if list_file.is_file():
        listed = _read_list(list_file)
        in_split = lambda rel: rel in listed  # noqa: E731
        source = list_file.name
    else:
        in_split = lambda rel: which_set(rel) == split  # noqa: E731
        source = "hash (TensorFlow which_set, 10 % validation / 10 % testing)"
    index = {w: i for i, w in enumerate(DS_CNN_LABELS)}
    wanted: list[Clip] = []
    unknown: list[Clip] = []
    for word, files in words.items():
        for rel in files:
            if not in_split(rel):
                continue
            path = str(root / rel)
            if word in WANTED_WORDS:
                wanted.append(Clip(rel, index[word], path))
            elif word not in (SILENCE_LABEL, UNKNOWN_LABEL):
                unknown.append(Clip(rel, index[UNKNOWN_LABEL], path))
    if not wanted:
        raise InputDataError(f"{root}: the {split} split ({source}) holds no clips of the ten keywords")
    random.Random(f"{RANDOM_SEED}-{split}-unknown").shuffle(unknown)
    n_unknown = min(len(unknown), int(math.ceil(len(wanted) * UNKNOWN_PERCENTAGE / 100)))
    clips = wanted + unknown[:n_unknown]
    noises = _noise_files(root)
    n_silence = int(math.ceil(len(wanted) * SILENCE_PERCENTAGE / 100))
    if noises:
        for i in range(n_silence):
            rng = np.random.default_rng([RANDOM_SEED, _SPLIT_CODE[split], i])
            noise, length = noises[int(rng.integers(len(noises)))]
            offset = int(rng.integers(0, max(length - CLIP_SAMPLES, 0) + 1))
            volume = float(rng.uniform(0.0, 1.0))
            clips.append(Clip(f"{SILENCE_LABEL}/{split}-{i:04d}", index[SILENCE_LABEL],
                              noise=noise, offset=offset, volume=volume))
    total = len(clips)
    if limit is not None and limit < total:
        order = list(range(total))
        random.Random(f"{RANDOM_SEED}-{split}-limit").shuffle(order)
        clips = [clips[i] for i in sorted(order[:limit])]
    return Dataset(root, split, tuple(clips), total, source)


def clip_audio(clip: Clip, noise_cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The clip's 1 s of 16 kHz mono audio (float32), as the model's front end reads it."""
    from .audio import read_wav

    if clip.path is not None:
        return read_wav(clip.path, max_samples=CLIP_SAMPLES)
    cache = noise_cache if noise_cache is not None else {}
    if clip.noise not in cache:
        cache[clip.noise] = read_wav(clip.noise)
    noise = cache[clip.noise][clip.offset : clip.offset + CLIP_SAMPLES]
    # TensorFlow: clip(background * volume + foreground * 0, -1, 1), in float32
    return np.clip(noise * np.float32(clip.volume), -1.0, 1.0).astype(np.float32)


def file_sha256(path: str, cache: dict[str, str] | None = None) -> str:
    if cache is not None and path in cache:
        return cache[path]
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    if cache is not None:
        cache[path] = h.hexdigest()
    return h.hexdigest()


def clip_fingerprint(clip: Clip, digests: dict[str, str] | None = None) -> str:
    """sha256 of what the clip's audio depends on: the file's bytes, or the noise file's bytes and
    the cut (offset, volume). A changed file gives a new fingerprint, so a stale cache entry is
    never matched."""
    src = clip.path if clip.path is not None else clip.noise
    meta = f"{file_sha256(src, digests)}|{clip.clip_id}|{clip.label}|{clip.offset}|{clip.volume!r}|{RECIPE_VERSION}"
    return hashlib.sha256(meta.encode()).hexdigest()
