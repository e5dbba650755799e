"""Keyword spotting on recordings: MFCC front end + any backend, one file or many.

A clip of up to 1 s gives one result (label, score, top 3). Longer recordings are scanned as Arm's
ML embedded evaluation kit does (``KwsClassifier``): a 1 s window every ``stride_ms`` (default
500 ms; the last window zero-padded to the end of the audio), each window's posteriors averaged
with those of the windows before it (``average_windows``, the kit's result history), and every
window whose averaged top label is a keyword (not ``_silence_``/``_unknown_``) scoring at or above
the threshold is a detection. Repeated detections of one word in overlapping windows are one
utterance: they merge into one event with a start and end time and its peak score.

Windows are streamed from the files (bounded memory) and run through ``backend.run_batch`` in
chunks that span files, so many short clips still make full batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .audio import (
    CLIP_SAMPLES, SAMPLE_RATE_HZ, AudioInfo, FeatureWindow, iter_windows, stride_samples_for, wav_info,
)
from .backends.base import Backend
from .backends.base import top_k as ranked
from .errors import InputDataError, UserError
from .inputs import features_to_input
from .labels import NON_KEYWORDS, labels_for

DEFAULT_THRESHOLD = 0.7  # Arm ML embedded evaluation kit's KWS score threshold
DEFAULT_STRIDE_MS = 500.0  # the kit's 0.5 s window stride
DEFAULT_AVERAGE_MS = 500.0  # posteriors averaged over the windows of the last 0.5 s
WINDOW_CHUNK = 32  # windows per run_batch call
WINDOW_S = CLIP_SAMPLES / SAMPLE_RATE_HZ
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc"})


@dataclass(frozen=True)
class Detector:
    """The streaming settings: window stride, posterior averaging, threshold."""

    threshold: float = DEFAULT_THRESHOLD
    stride_ms: float = DEFAULT_STRIDE_MS
    average_ms: float = DEFAULT_AVERAGE_MS

    def __post_init__(self):
        if not (0.0 <= self.threshold <= 1.0):
            raise UserError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if not (self.average_ms >= 0):
            raise UserError(f"--average-ms must be 0 or more, got {self.average_ms}")
        stride_samples_for(self.stride_ms)  # validates

    @property
    def stride_samples(self) -> int:
        return stride_samples_for(self.stride_ms)

    @property
    def average_windows(self) -> int:
        """How many windows' posteriors are averaged (the latest included); at least 1."""
        return max(1, int(round(self.average_ms / self.stride_ms)))


@dataclass(frozen=True)
class WindowScore:
    index: int
    start_s: float
    top: tuple[dict[str, Any], ...]  # backends.base.top_k: {"index", "label", "score"}, best first
    scores: tuple[float, ...] = ()  # averaged posteriors of every label, in output order

    @property
    def label(self) -> str:
        return self.top[0]["label"]

    @property
    def score(self) -> float:
        return self.top[0]["score"]

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "label": self.label, "score": self.score,
                "top": [dict(t) for t in self.top],
                "scores": list(self.scores)}


@dataclass(frozen=True)
class Event:
    """One utterance: consecutive overlapping detections of the same keyword."""

    label: str
    start_s: float
    end_s: float
    score: float  # the peak averaged score
    peak_s: float  # start of the window with the peak
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "start_s": self.start_s, "end_s": self.end_s,
                "score": self.score, "peak_s": self.peak_s, "windows": self.windows}


def merge_events(detections: Sequence[WindowScore], duration_s: float) -> tuple[Event, ...]:
    """Detections of one label whose 1 s windows overlap or touch become one event."""
    events: list[Event] = []
    for w in detections:
        end = max(min(w.start_s + WINDOW_S, duration_s), w.start_s)
        last = events[-1] if events else None
        if last is not None and last.label == w.label and w.start_s <= last.end_s + 1e-9:
            peak = w.score > last.score
            events[-1] = Event(last.label, last.start_s, max(last.end_s, end),
                               w.score if peak else last.score, w.start_s if peak else last.peak_s,
                               last.windows + 1)
        else:
            events.append(Event(w.label, w.start_s, end, w.score, w.start_s, 1))
    return tuple(events)


@dataclass(frozen=True)
class ClassifyResult:
    clip: Path
    duration_s: float
    backend: str
    model_sha256: str
    threshold: float
    windows: tuple[WindowScore, ...]
    audio: AudioInfo | None = None  # the file as stored, and what was done to reach 16 kHz mono
    detector: Detector = field(default_factory=Detector)
    labels: tuple[str, ...] = ()

    @property
    def detections(self) -> tuple[WindowScore, ...]:
        return tuple(w for w in self.windows
                     if w.label not in NON_KEYWORDS and w.score >= self.threshold)

    @property
    def events(self) -> tuple[Event, ...]:
        return merge_events(self.detections, self.duration_s)

    @property
    def best(self) -> WindowScore:
        """The clip's answer: its only window, or for a recording the strongest detection
        (the strongest window when nothing was detected)."""
        pool = self.detections or self.windows
        return max(pool, key=lambda w: (w.score, -w.index))

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "clip": str(self.clip),
            "duration_s": round(self.duration_s, 6),
            "backend": self.backend,
            "model_sha256": self.model_sha256,
            "threshold": self.threshold,
            "audio": self.audio.to_dict() if self.audio else None,
            "label": best.label,
            "score": best.score,
            "top": best.to_dict()["top"],
            "window_s": WINDOW_S,
            "stride_s": self.detector.stride_samples / SAMPLE_RATE_HZ,
            "average_windows": self.detector.average_windows,
            "labels": list(self.labels),
            "detections": [{"time_s": w.start_s, "label": w.label, "score": w.score}
                           for w in self.detections],
            "events": [e.to_dict() for e in self.events],
            "windows": [w.to_dict() for w in self.windows],
        }


def _chunks(items: Iterable, n: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def collect_audio(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, folders expanded to their audio files (recursively, sorted, no hidden ones)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise InputDataError(f"{p}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise InputDataError(f"audio file not found: {p}")
    if not out:
        raise UserError("no audio files given")
    return out


def _resolve_labels(backend: Backend, labels: Sequence[str] | None) -> tuple[str, ...]:
    specs = backend.input_specs
    if len(specs) != 1:
        raise UserError(f"classify needs a model with one input (MFCC features); it has {len(specs)}")
    n_classes = int(np.prod(backend.output_specs[0].shape))
    if labels is None:
        labels = getattr(backend, "labels", None) or labels_for(n_classes)
    if labels is None:
        raise UserError(f"the model outputs {n_classes} scores, not the 12 DS-CNN labels; "
                        "give --labels FILE with one label per output")
    if len(labels) != n_classes:
        raise UserError(f"{len(labels)} labels for a model with {n_classes} outputs")
    return tuple(labels)


def classify_files(paths: Sequence[str | os.PathLike], backend: Backend, *,
                   labels: Sequence[str] | None = None, detector: Detector | None = None,
                   top_k: int = 3, model_sha256: str | None = None) -> list[ClassifyResult]:
    """Classify every file; all headers are checked before any inference runs."""
    detector = detector or Detector()
    labels = _resolve_labels(backend, labels)
    infos = [wav_info(p) for p in paths]
    spec, out_spec = backend.input_specs[0], backend.output_specs[0]
    k = min(top_k, len(labels))
    n_avg = detector.average_windows
    raw: list[list[tuple[FeatureWindow, np.ndarray]]] = [[] for _ in paths]

    def tagged() -> Iterator[tuple[int, FeatureWindow]]:
        for i, p in enumerate(paths):
            for w in iter_windows(p, stride_samples=detector.stride_samples):
                yield i, w

    for chunk in _chunks(tagged(), WINDOW_CHUNK):
        batch = [[features_to_input(w.features, spec, str(paths[i]))] for i, w in chunk]
        for (i, w), outs in zip(chunk, backend.run_batch(batch)):
            raw[i].append((w, out_spec.dequantize(outs[0]).reshape(-1).astype(np.float64)))
    sha = model_sha256 or getattr(backend, "model_sha256", "")
    results = []
    for path, info, wins in zip(paths, infos, raw):
        scores = np.stack([s for _w, s in wins])
        # causal moving average over the latest n_avg windows (fewer at the start: no zero history)
        csum = np.cumsum(np.vstack([np.zeros((1, scores.shape[1])), scores]), axis=0)
        lo = np.maximum(np.arange(len(wins)) - n_avg + 1, 0)
        avg = (csum[1:] - csum[lo]) / (np.arange(len(wins)) - lo + 1)[:, None] if n_avg > 1 else scores
        scored = []
        for (w, _s), a in zip(wins, avg):
            scored.append(WindowScore(w.index, w.start_s, tuple(ranked(a, labels, k)),
                                      tuple(float(v) for v in a)))
        results.append(ClassifyResult(Path(path), info.duration_s, backend.name, sha,
                                      detector.threshold, tuple(scored), info, detector, labels))
    return results


def classify_wav(path: str | os.PathLike, backend: Backend, *,
                 labels: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
                 top_k: int = 3, model_sha256: str | None = None,
                 stride_ms: float = DEFAULT_STRIDE_MS,
                 average_ms: float = DEFAULT_AVERAGE_MS) -> ClassifyResult:
    detector = Detector(threshold, stride_ms, average_ms)
    return classify_files([path], backend, labels=labels, detector=detector, top_k=top_k,
                          model_sha256=model_sha256)[0]
