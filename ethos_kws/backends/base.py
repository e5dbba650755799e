"""What every backend (cpu, npu-sim, fvp) shares: one protocol and one result document.

``ethos-kws run --json`` prints ``RunResult.to_dict()`` for every backend:
``{"backend", "model_sha256", "outputs": [{"name", "shape", "dtype", "scale", "zero_point",
"data"}], "scores", "top"}`` with ``data`` the raw integer values, flattened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import InputDataError
from ..tflite import TensorSpec

__all__ = ["Backend", "OutputTensor", "RunResult", "TensorSpec", "check_inputs"]


def check_inputs(inputs: Sequence[np.ndarray], specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """The one input rule of every backend: one array per model input, in input order, of the
    input's dtype exactly (no silent cast) and of its element count; each is returned reshaped to
    the input's shape, C-contiguous (so a (49, 10) MFCC array feeds a (1, 490) input anywhere)."""
    if len(inputs) != len(specs):
        raise InputDataError(f"the model has {len(specs)} input(s), got {len(inputs)}")
    out = []
    for x, spec in zip(inputs, specs):
        a = np.asarray(x)
        if a.dtype != np.dtype(spec.dtype):
            raise InputDataError(f"input {spec.name!r} must be {spec.dtype}, got {a.dtype}")
        if a.size != spec.elements:
            raise InputDataError(f"input {spec.name!r} must have shape {list(spec.shape)} "
                                 f"({spec.elements} elements), got {list(a.shape)}")
        out.append(np.ascontiguousarray(a.reshape(spec.shape)))
    return out


@dataclass(frozen=True)
class OutputTensor:
    spec: TensorSpec
    data: np.ndarray  # shaped as spec.shape, dtype spec.dtype

    def to_dict(self) -> dict[str, Any]:
        d = self.spec.to_dict()
        d["data"] = self.data.reshape(-1).tolist()
        return d


@dataclass(frozen=True)
class RunResult:
    backend: str  # "cpu", "npu-sim", "fvp"
    model_sha256: str
    outputs: tuple[OutputTensor, ...]
    inference_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific (kernels, accel, cycles)
    labels: tuple[str, ...] | None = None

    @property
    def scores(self) -> np.ndarray:
        """Dequantized first output, flattened."""
        first = self.outputs[0]
        return first.spec.dequantize(first.data).reshape(-1)

    def top(self, k: int = 1) -> list[dict[str, Any]]:
        scores = self.scores
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            {
                "index": int(i),
                "label": self.labels[i] if self.labels and i < len(self.labels) else None,
                "score": float(scores[i]),
            }
            for i in order
        ]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "backend": self.backend,
            "model_sha256": self.model_sha256,
            "outputs": [o.to_dict() for o in self.outputs],
            "scores": [float(s) for s in self.scores],
            "top": self.top(1)[0] if self.labels else None,
        }
        if self.inference_ms is not None:
            d["inference_ms"] = self.inference_ms
        d.update(self.extra)
        return d


@runtime_checkable
class Backend(Protocol):
    """Runs one model on one target. ``inputs`` are in the model's input order and dtypes."""

    name: str

    @property
    def input_specs(self) -> Sequence[TensorSpec]: ...

    @property
    def output_specs(self) -> Sequence[TensorSpec]: ...

    def run(self, inputs: Sequence[np.ndarray]) -> RunResult: ...

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """Raw outputs for many input sets; backends override this when they can vectorize."""
        ...
