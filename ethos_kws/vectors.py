"""Reproducible test vectors with CPU reference outputs, in Arm ML-zoo's layout::

    OUT/testing_input/<input tensor name>/<n>.npy
    OUT/testing_output/<output tensor name>/<n>.npy
    OUT/manifest.json      (model sha256, kernels, runtime, seed, what each vector is)

Vectors 0..count-1 are uniform over the input's quantized range (``inputs.random_inputs`` with
``seed``); then one vector per ``*.wav`` in ``audio_dir`` (sorted by name): its MFCC features,
quantized like any model input. Outputs come from the CPU oracle: TFLite Micro's reference kernels
by default (``DEFAULT_ORACLE``, the same default as ``parity``, so the files hold what parity
compares the NPU against). The directory is built aside and renamed into place (``atomic_dir``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .audio import wav_features
from .backends.base import TensorSpec
from .backends.cpu import DEFAULT_ORACLE, ORACLE_KERNELS, CpuBackend  # noqa: F401 - re-exported
from .errors import InputDataError, UserError
from .fsutil import atomic_dir, atomic_save_npy, atomic_write_json
from .records import check_schema, versioned
from .inputs import features_to_input, quantized_input_specs, random_inputs

MANIFEST = "manifest.json"
MAX_COUNT = 100_000


@dataclass(frozen=True)
class VectorSet:
    out_dir: Path
    model_sha256: str
    kernels: str
    seed: int
    input_dirs: tuple[str, ...]
    output_dirs: tuple[str, ...]
    sources: tuple[dict[str, Any], ...] = field(repr=False)

    @property
    def count(self) -> int:
        return len(self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "model_sha256": self.model_sha256,
            "kernels": self.kernels,
            "seed": self.seed,
            "count": self.count,
            "input_dirs": list(self.input_dirs),
            "output_dirs": list(self.output_dirs),
            "vectors": list(self.sources),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VectorSet":
        """Read a ``manifest.json`` (or ``to_dict``) back; ``out_dir`` defaults to ``.``."""
        check_schema(d, str(d.get("out_dir", MANIFEST)))
        return cls(Path(d.get("out_dir", ".")), str(d["model_sha256"]), str(d["kernels"]), int(d["seed"]),
                   tuple(d["input_dirs"]), tuple(d["output_dirs"]), tuple(dict(v) for v in d["vectors"]))


def tensor_dir_name(name: str) -> str:
    """A tensor name as one safe path component (ML-zoo uses the bare name, e.g. ``input``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "tensor"
    return safe


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"--out {out} is a non-empty directory that does not hold ethos-kws vectors; "
                        "choose a new or empty directory")


def check_count(count: int) -> None:
    if count < 0 or count > MAX_COUNT:
        raise UserError(f"--count must be between 0 and {MAX_COUNT}, got {count}")


def write_vectors(model_path: str | os.PathLike, out_dir: str | os.PathLike, *, count: int,
                  seed: int, audio_dir: str | os.PathLike | None = None,
                  kernels: str = DEFAULT_ORACLE) -> VectorSet:
    check_count(count)
    clips = wav_clips(audio_dir) if audio_dir is not None else []
    if count == 0 and not clips:
        raise UserError("nothing to write: --count is 0 and no --audio clips")
    out = Path(out_dir)
    _check_out_dir(out)

    backend = CpuBackend(model_path, kernels)
    in_specs, out_specs = list(backend.input_specs), list(backend.output_specs)
    in_dirs = _unique([tensor_dir_name(s.name) for s in in_specs])
    out_dirs = _unique([tensor_dir_name(s.name) for s in out_specs])

    sets = random_vectors(backend.model_path, in_specs, count, seed) + clip_vectors(clips, in_specs)
    sources: list[dict[str, Any]] = [{"index": n, "source": "random", "seed": seed} for n in range(count)]
    sources += [{"index": count + i, "source": "clip", "clip": c.name} for i, c in enumerate(clips)]
    outputs = backend.run_batch(sets)

    with atomic_dir(out, marker=MANIFEST) as tmp:
        for n, (ins, outs) in enumerate(zip(sets, outputs)):
            for d, a in zip(in_dirs, ins):
                atomic_save_npy(tmp / "testing_input" / d / f"{n}.npy", a)
            for d, a in zip(out_dirs, outs):
                atomic_save_npy(tmp / "testing_output" / d / f"{n}.npy", a)
        result = VectorSet(out, backend.model_sha256, kernels, seed, tuple(in_dirs),
                           tuple(out_dirs), tuple(sources))
        manifest = result.to_dict()
        manifest.pop("out_dir")
        manifest["runtime"] = backend.run(sets[0]).extra.get("runtime")
        manifest["inputs"] = [s.to_dict() for s in in_specs]
        manifest["outputs"] = [s.to_dict() for s in out_specs]
        atomic_write_json(tmp / MANIFEST, versioned(manifest))
    return result


def wav_clips(audio_dir: str | os.PathLike) -> list[Path]:
    """The .wav files of ``--audio DIR``, sorted by name."""
    adir = Path(audio_dir)
    if not adir.is_dir():
        raise InputDataError(f"--audio {adir} is not a directory")
    clips = sorted(p for p in adir.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if not clips:
        raise InputDataError(f"--audio {adir} holds no .wav files")
    return clips


def random_vectors(model_path: str | os.PathLike, specs: Sequence[TensorSpec], count: int,
                   seed: int) -> list[list[np.ndarray]]:
    """Vectors 0..count-1, uniform over each input's quantized range. One generator per vector,
    so vector n is the same whatever ``count`` is — and the same in `vectors` and `parity`."""
    qspecs = quantized_input_specs(model_path, specs)
    return [random_inputs(specs, seed=np.random.SeedSequence([seed, n]), quant_specs=qspecs)
            for n in range(count)]


def clip_vectors(clips: Sequence[Path], specs: Sequence[TensorSpec]) -> list[list[np.ndarray]]:
    """The MFCC features of each clip as the model's (single) input."""
    if clips and len(specs) != 1:
        raise UserError(f"--audio needs a model with one (MFCC) input; it has {len(specs)}")
    return [[features_to_input(wav_features(clip), specs[0], str(clip))] for clip in clips]
