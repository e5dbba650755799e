"""Keyword spotting on recordings: MFCC front end + any backend, one file or many.

A clip of up to 1 s gives one result (label, score, top 3). Longer recordings are scanned as Arm's
ML embedded evaluation kit does (``KwsClassifier``): a 1 s window every ``stride_ms`` (default
500 ms; the last window zero-padded to the end of the audio), each window's posteriors averaged
with those of the windows before it (``average_windows``, the kit's result history), and every
window whose averaged top label is a keyword (not ``_silence_``/``_unknown_``) scoring at or above
the threshold is a detection. Repeated detections of one word in overlapping windows are one
utterance: they merge into one event with a start and end time and its peak score.

With ``--sequence`` (``classify_stream``) a recording is one stream for a stateful (streaming)
model: each invocation takes the next few MFCC frames (as many as the model's input holds), the
model's state carried from step to step and reset per file; the steps' posteriors are averaged,
thresholded and merged as windows are.

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
    CLIP_SAMPLES, DCT_COEFFICIENTS, SAMPLE_RATE_HZ, STRIDE_SAMPLES, AudioInfo, FeatureWindow, iter_frames,
    iter_windows, stride_samples_for, wav_info,
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


def merge_events(detections: Sequence[WindowScore], duration_s: float,
                 span_s: float = WINDOW_S) -> tuple[Event, ...]:
    """Detections of one label whose spans (1 s windows, or a stream's steps) overlap or touch
    become one event."""
    events: list[Event] = []
    for w in detections:
        end = max(min(w.start_s + span_s, duration_s), w.start_s)
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
class StreamStep:
    """``classify --sequence``: each invocation of a stateful model takes the next ``frames``
    MFCC frames of the recording (20 ms apart), its state carried from the step before."""

    frames: int

    @property
    def seconds(self) -> float:
        return self.frames * STRIDE_SAMPLES / SAMPLE_RATE_HZ

    def average_steps(self, detector: Detector) -> int:
        """--average-ms in steps (the latest included); at least 1."""
        return max(1, int(round(detector.average_ms / (self.seconds * 1e3))))


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
    step: StreamStep | None = None  # a stream of steps (--sequence) instead of 1 s windows

    @property
    def detections(self) -> tuple[WindowScore, ...]:
        return tuple(w for w in self.windows
                     if w.label not in NON_KEYWORDS and w.score >= self.threshold)

    @property
    def events(self) -> tuple[Event, ...]:
        return merge_events(self.detections, self.duration_s,
                            self.step.seconds if self.step else WINDOW_S)

    @property
    def best(self) -> WindowScore:
        """The clip's answer: its only window, or for a recording the strongest detection
        (the strongest window when nothing was detected)."""
        pool = self.detections or self.windows
        return max(pool, key=lambda w: (w.score, -w.index))

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        step = self.step
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
            "window_s": step.seconds if step else WINDOW_S,
            "stride_s": step.seconds if step else self.detector.stride_samples / SAMPLE_RATE_HZ,
            "average_windows": step.average_steps(self.detector) if step else self.detector.average_windows,
            "sequence": {"frames_per_step": step.frames, "steps": len(self.windows)} if step else None,
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
    return [ClassifyResult(Path(path), info.duration_s, backend.name, sha, detector.threshold,
                           _averaged([(w.index, w.start_s) for w, _s in wins], [s for _w, s in wins],
                                     n_avg, labels, k), info, detector, labels)
            for path, info, wins in zip(paths, infos, raw)]


def _averaged(where: Sequence[tuple[int, float]], scores: Sequence[np.ndarray], n_avg: int,
              labels: tuple[str, ...], k: int) -> tuple[WindowScore, ...]:
    """Scores of consecutive windows (or steps), each the causal moving average over the latest
    ``n_avg`` (fewer at the start: no zero history)."""
    scores = np.stack(scores)
    csum = np.cumsum(np.vstack([np.zeros((1, scores.shape[1])), scores]), axis=0)
    lo = np.maximum(np.arange(len(scores)) - n_avg + 1, 0)
    avg = (csum[1:] - csum[lo]) / (np.arange(len(scores)) - lo + 1)[:, None] if n_avg > 1 else scores
    return tuple(WindowScore(i, t, tuple(ranked(a, labels, k)), tuple(float(v) for v in a))
                 for (i, t), a in zip(where, avg))


def stream_step(backend: Backend) -> StreamStep:
    """How many MFCC frames one invocation takes, for ``classify --sequence``; refuses a model
    (or backend) that would not carry state from step to step."""
    if not getattr(backend, "stateful", False):
        raise UserError("--sequence feeds a recording to a stateful (streaming) model a few frames "
                        "per invocation; this model keeps no state between invocations "
                        "(classify it without --sequence)")
    if not callable(getattr(backend, "reset", None)):
        raise UserError(f"--sequence needs a backend that carries the model's state between "
                        f"invocations and can reset it per file (cpu, npu-sim), not {backend.name}")
    shape = tuple(backend.input_specs[0].shape)
    values = int(np.prod(shape))
    # frames along an axis of 10 values, or a flat (1, N) input; a (1, 3, 40) input wants
    # 40-channel features this front end does not compute: refused, never fed 12 MFCC frames
    flat = len(shape) <= 2 and values % DCT_COEFFICIENTS == 0
    if not values or not (flat or shape[-1] == DCT_COEFFICIENTS):
        raise UserError(f"--sequence: the model's input {shape} is not a whole number of "
                        f"{DCT_COEFFICIENTS}-coefficient MFCC frames (the front end's features)")
    return StreamStep(values // DCT_COEFFICIENTS)


def classify_stream(paths: Sequence[str | os.PathLike], backend: Backend, *,
                    labels: Sequence[str] | None = None, detector: Detector | None = None,
                    top_k: int = 3, model_sha256: str | None = None) -> list[ClassifyResult]:
    """``classify --sequence``: each recording is one stream. The model's state is reset at the
    start of each file; then every invocation takes the next frames of the recording in order
    (the state carries), and each step's posteriors are averaged, thresholded and merged into
    events as windows are. All headers are checked before any inference runs."""
    detector = detector or Detector()
    labels = _resolve_labels(backend, labels)
    step = stream_step(backend)
    infos = [wav_info(p) for p in paths]
    spec, out_spec = backend.input_specs[0], backend.output_specs[0]
    k = min(top_k, len(labels))
    sha = model_sha256 or getattr(backend, "model_sha256", "")
    results = []
    for path, info in zip(paths, infos):
        backend.reset()
        frames = iter_frames(path, step.frames)
        where, scores = [], []
        for i, chunk in enumerate(_chunks(frames, step.frames)):
            x = features_to_input(np.stack(chunk), spec, str(path))
            out = backend.run([x]).outputs[0].data
            where.append((i, i * step.seconds))
            scores.append(out_spec.dequantize(out).reshape(-1).astype(np.float64))
        results.append(ClassifyResult(Path(path), info.duration_s, backend.name, sha, detector.threshold,
                                      _averaged(where, scores, step.average_steps(detector), labels, k),
                                      info, detector, labels, step))
    return results


def classify_wav(path: str | os.PathLike, backend: Backend, *,
                 labels: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
                 top_k: int = 3, model_sha256: str | None = None,
                 stride_ms: float = DEFAULT_STRIDE_MS,
                 average_ms: float = DEFAULT_AVERAGE_MS) -> ClassifyResult:
    detector = Detector(threshold, stride_ms, average_ms)
    return classify_files([path], backend, labels=labels, detector=detector, top_k=top_k,
                          model_sha256=model_sha256)[0]
