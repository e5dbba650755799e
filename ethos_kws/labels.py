"""Output labels of keyword-spotting models: the 12 DS-CNN labels by default, or a user file."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputDataError

# ML-zoo DS-CNN output order (Google Speech Commands v0.02, 10 keywords + silence + unknown)
DS_CNN_LABELS: tuple[str, ...] = (
    "_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
)
NON_KEYWORDS = frozenset({"_silence_", "_unknown_"})


def load_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """One label per line, in output order; blank lines and surrounding spaces ignored."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputDataError(f"labels file not found: {p}") from None
    except IsADirectoryError:
        raise InputDataError(f"labels path is a directory, not a file: {p}") from None
    except UnicodeDecodeError:
        raise InputDataError(f"labels file is not UTF-8 text: {p}") from None
    except OSError as e:
        raise InputDataError(f"cannot read labels file {p}: {e.strerror or e}") from None
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise InputDataError(f"labels file has no labels: {p}")
    return labels


def labels_for(num_classes: int, path: str | os.PathLike | None = None) -> tuple[str, ...] | None:
    """Labels for an output of ``num_classes`` scores: the user's file (must match), else the
    DS-CNN labels when there are 12 classes, else None (scores are reported by index)."""
    if path is not None:
        labels = load_labels(path)
        if len(labels) != num_classes:
            raise InputDataError(
                f"labels file {path} has {len(labels)} labels but the model outputs {num_classes} scores"
            )
        return labels
    return DS_CNN_LABELS if num_classes == len(DS_CNN_LABELS) else None
