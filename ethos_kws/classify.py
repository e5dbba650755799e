"""Keyword spotting on a WAV file: MFCC front end + any backend.

A clip of up to 1 s gives one result (label, score, top 3). Longer recordings are scanned as Arm's
evaluation kit does: 1 s windows at a 0.5 s stride (the last one zero-padded to the end of the
audio); every window whose top label is a keyword (not ``_silence_``/``_unknown_``) with a score at
or above the threshold is a detection, reported with its start time. Windows are streamed from
the file (bounded memory) and run through ``backend.run_batch`` in chunks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .audio import AudioInfo, FeatureWindow, iter_windows, wav_info
from .backends.base import Backend
from .errors import UserError
from .inputs import features_to_input
from .labels import NON_KEYWORDS, labels_for

DEFAULT_THRESHOLD = 0.7  # Arm ML embedded evaluation kit's KWS score threshold
WINDOW_CHUNK = 32  # windows per run_batch call


@dataclass(frozen=True)
class WindowScore:
    index: int
    start_s: float
    top: tuple[tuple[str, float], ...]  # (label, score), best first

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def score(self) -> float:
        return self.top[0][1]

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "label": self.label, "score": self.score,
                "top": [{"label": lab, "score": s} for lab, s in self.top]}


@dataclass(frozen=True)
class ClassifyResult:
    clip: Path
    duration_s: float
    backend: str
    model_sha256: str
    threshold: float
    windows: tuple[WindowScore, ...]
    audio: AudioInfo | None = None  # the file as stored, and what was done to reach 16 kHz mono

    @property
    def detections(self) -> tuple[WindowScore, ...]:
        return tuple(w for w in self.windows
                     if w.label not in NON_KEYWORDS and w.score >= self.threshold)

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
            "window_s": 1.0,
            "stride_s": 0.5,
            "detections": [{"time_s": w.start_s, "label": w.label, "score": w.score}
                           for w in self.detections],
            "windows": [w.to_dict() for w in self.windows],
        }


def _chunks(windows: Iterable[FeatureWindow], n: int) -> Iterable[list[FeatureWindow]]:
    chunk: list[FeatureWindow] = []
    for w in windows:
        chunk.append(w)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify_wav(path: str | os.PathLike, backend: Backend, *,
                 labels: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
                 top_k: int = 3, model_sha256: str | None = None) -> ClassifyResult:
    if not (0.0 <= threshold <= 1.0):
        raise UserError(f"--threshold must be between 0 and 1, got {threshold}")
    info = wav_info(path)
    specs = backend.input_specs
    if len(specs) != 1:
        raise UserError(f"classify needs a model with one input (MFCC features); it has {len(specs)}")
    out_spec = backend.output_specs[0]
    n_classes = int(np.prod(out_spec.shape))
    if labels is None:
        labels = getattr(backend, "labels", None) or labels_for(n_classes)
    if labels is None:
        raise UserError(f"the model outputs {n_classes} scores, not the 12 DS-CNN labels; "
                        "give --labels FILE with one label per output")
    if len(labels) != n_classes:
        raise UserError(f"{len(labels)} labels for a model with {n_classes} outputs")
    k = min(top_k, n_classes)
    scored: list[WindowScore] = []
    for chunk in _chunks(iter_windows(path), WINDOW_CHUNK):
        batch = [[features_to_input(w.features, specs[0], str(path))] for w in chunk]
        for w, outs in zip(chunk, backend.run_batch(batch)):
            scores = out_spec.dequantize(outs[0]).reshape(-1)
            order = np.argsort(-scores, kind="stable")[:k]
            scored.append(WindowScore(w.index, w.start_s,
                                      tuple((labels[i], float(scores[i])) for i in order)))
    return ClassifyResult(Path(path), info.duration_s, backend.name,
                          model_sha256 or getattr(backend, "model_sha256", ""), threshold,
                          tuple(scored), info)
