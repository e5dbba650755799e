"""Model inputs from user files (``--input X.npy | CLIP.wav``) or a seeded generator, for any backend.

Rules for ``.npy`` (one array, one model input):
* loaded with ``allow_pickle=False``: object arrays and pickles are refused, never executed;
* the element count must equal the input's (any shape with that count is reshaped, so a (49, 10)
  MFCC array fits a (1, 490) input); bool, complex, string and structured arrays are refused;
* float arrays must be finite; for an integer input they are quantized with the input's scale and
  zero point (``clamp(round(x / scale) + zp)``), for a float input cast to float32;
* integer arrays for an integer input must lie inside that type's range; integer arrays for a
  float input are refused (ambiguous: raw quantized values or real values?).
A ``.wav`` file goes through the MFCC front end (``audio.wav_features``) and then the float rules.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import quantize, wav_features
from .backends.base import TensorSpec
from .errors import InputDataError

_NPY_MAGIC = b"\x93NUMPY"
_REFUSED_KINDS = {"b": "boolean", "c": "complex", "U": "string", "S": "bytes", "V": "structured",
                  "O": "object", "M": "datetime", "m": "timedelta"}


def quantized_input_specs(model_path: str | os.PathLike, specs: Sequence[TensorSpec]) -> list[TensorSpec]:
    """The int8 view of each input: a float input that feeds a QUANTIZE op takes that op's output
    scale and zero point (what the model really sees); other inputs are returned unchanged."""
    from .tflite import load_tflite

    twins, _ = load_tflite(model_path).int8_boundary()
    out = []
    for spec, q in zip(specs, twins):
        if np.dtype(spec.dtype).kind == "f" and q is not None:
            out.append(replace(q, name=spec.name, shape=spec.shape))
        else:
            out.append(spec)
    return out


def _check_count(specs: Sequence[TensorSpec], source: str) -> TensorSpec:
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise InputDataError(f"{source}: the model has {len(specs)} inputs ({names}); "
                             "--input supplies exactly one")
    return specs[0]


def coerce_input(array: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    """One user array -> the model input ``spec`` (shape, dtype, quantization), or InputDataError."""
    a = np.asarray(array)
    kind = a.dtype.kind
    if kind in _REFUSED_KINDS:
        raise InputDataError(f"{source}: {_REFUSED_KINDS[kind]} arrays are not accepted; "
                             f"the input {spec.name!r} is {spec.dtype}")
    want = int(np.prod(spec.shape)) if spec.shape else 1
    if a.size != want:
        raise InputDataError(f"{source}: array of shape {a.shape} ({a.size} values) does not fit "
                             f"input {spec.name!r} of shape {spec.shape} ({want} values)")
    target = np.dtype(spec.dtype)
    if kind == "f":
        if not np.all(np.isfinite(a)):
            raise InputDataError(f"{source}: array contains NaN or infinite values")
        if target.kind == "f":
            with np.errstate(over="ignore"):
                out = a.astype(target)
            if not np.all(np.isfinite(out)):  # finite in float64, inf once cast (1e308)
                raise InputDataError(f"{source}: values beyond the {spec.dtype} range of input {spec.name!r} "
                                     f"(largest magnitude {float(np.max(np.abs(a))):.3g})")
        elif target.kind in "iu":
            if spec.scale is None:
                raise InputDataError(f"{source}: float array for the unquantized {spec.dtype} "
                                     f"input {spec.name!r}; give {spec.dtype} values")
            out = quantize(a, spec.scale, spec.zero_point or 0, spec.dtype)
        else:
            raise InputDataError(f"{source}: input {spec.name!r} has unsupported type {spec.dtype}")
    else:  # integer array
        if target.kind == "f":
            raise InputDataError(f"{source}: integer array for the float input {spec.name!r}; "
                                 "give float values (e.g. MFCC features), not quantized ones")
        info = np.iinfo(target)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < info.min or hi > info.max:
            raise InputDataError(f"{source}: values {lo}..{hi} do not fit the {spec.dtype} input "
                                 f"{spec.name!r} ({info.min}..{info.max})")
        out = a.astype(target)
    return np.ascontiguousarray(out.reshape(spec.shape))


def _check_npy_header(f, path: Path) -> None:
    """Parse the header without trusting it: a garbage header is refused, and the data it
    declares must be in the file before anything is allocated for it (2**40 elements: no)."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(f)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _fortran, dtype = read(f)
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError...
        raise InputDataError(f"{path}: unreadable .npy header ({type(e).__name__})") from None
    if dtype.hasobject:
        raise InputDataError(f"{path}: object arrays (pickles) are not accepted")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    available = os.fstat(f.fileno()).st_size - f.tell()
    if declared > available:
        raise InputDataError(f"{path}: header declares shape {tuple(shape)} ({declared:,} bytes) but the file "
                             f"holds {available:,} bytes of data")
    f.seek(0)


def load_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            if f.read(6) != _NPY_MAGIC:
                raise InputDataError(f"{path}: not a .npy file (no NUMPY header)")
            f.seek(0)
            _check_npy_header(f, path)
            return np.load(f, allow_pickle=False)
    except InputDataError:
        raise
    except FileNotFoundError:
        raise InputDataError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise InputDataError(f"input path is a directory, not a file: {path}") from None
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise InputDataError(f"{path}: object arrays (pickles) are not accepted") from None
        raise InputDataError(f"{path}: unreadable .npy file ({e})") from None
    except (OSError, EOFError) as e:
        raise InputDataError(f"{path}: unreadable or truncated .npy file ({e})") from None


def load_input_file(path: str | os.PathLike, specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """``X.npy`` or ``CLIP.wav`` -> one input array per model input."""
    p = Path(path)
    spec = _check_count(specs, str(p))
    if p.suffix.lower() == ".wav":
        return [coerce_input(wav_features(p), spec, str(p))]
    if p.suffix.lower() == ".npy":
        return [coerce_input(load_npy(p), spec, str(p))]
    raise InputDataError(f"{p}: --input must be a .npy array or a .wav clip")


def features_to_input(features: np.ndarray, spec: TensorSpec, source: str = "features") -> np.ndarray:
    return coerce_input(features, spec, source)


def random_inputs(specs: Sequence[TensorSpec], seed: "int | np.random.SeedSequence",
                  quant_specs: Sequence[TensorSpec] | None = None) -> list[np.ndarray]:
    """Reproducible inputs, uniform over each input's quantized range.

    Integer inputs: uniform integers over the whole type range. Float inputs with a known
    quantization (``quant_specs``, see ``quantized_input_specs``): uniform int8 dequantized, so the
    model's QUANTIZE op sees every level; otherwise uniform in [-1, 1).
    """
    rng = np.random.default_rng(seed)
    out = []
    for i, spec in enumerate(specs):
        q = quant_specs[i] if quant_specs else spec
        dt = np.dtype(spec.dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, info.max, size=spec.shape, endpoint=True).astype(dt))
        elif np.dtype(q.dtype).kind in "iu" and q.scale is not None:
            info = np.iinfo(np.dtype(q.dtype))
            ints = rng.integers(info.min, info.max, size=spec.shape, endpoint=True)
            out.append(((ints - (q.zero_point or 0)) * q.scale).astype(dt))
        else:
            out.append(rng.uniform(-1.0, 1.0, size=spec.shape).astype(dt))
    return out
