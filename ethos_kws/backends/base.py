"""What every backend (cpu, npu-sim, fvp) shares: one protocol and one result document.

``ethos-kws run --json`` prints ``RunResult.to_dict()`` for every backend:
``{"backend", "model_sha256", "outputs": [{"name", "shape", "dtype", "scale", "zero_point",
"data"}], "scores", "top", "host_ms", ...}`` with ``data`` the raw integer values, flattened.

Vocabulary: ``inference_time_ms`` is always the NPU's time (estimated by Vela or measured on an
FVP; ``inference_time_source`` says which) and is absent when nobody knows it; ``host_ms`` is the
host's wall-clock time for the call. ``top`` has one shape in ``run``, ``classify`` and the API:
``[{"index", "label", "score"}, ...]``, best first (``top_k``).
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OutputTensor":
        spec = TensorSpec.from_dict(d)
        data = np.asarray(d["data"], dtype=np.dtype(spec.dtype)).reshape(spec.shape)
        return cls(spec, data)


TOP_K = 3  # entries in "top"


def top_k(scores: np.ndarray, labels: Sequence[str] | None, k: int = TOP_K) -> list[dict[str, Any]]:
    """The ``k`` best scores, best first (ties: the lower index), as ``{"index", "label",
    "score"}``: the one ``top`` shape of every command."""
    scores = np.asarray(scores).reshape(-1)
    order = np.argsort(-scores, kind="stable")[: max(0, min(k, scores.size))]
    return [
        {"index": int(i), "label": labels[i] if labels is not None and i < len(labels) else None,
         "score": float(scores[i])}
        for i in order
    ]


@dataclass(frozen=True)
class RunResult:
    backend: str  # "cpu", "npu-sim", "fvp"
    model_sha256: str
    outputs: tuple[OutputTensor, ...]
    host_ms: float | None = None  # host wall clock of the call
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific (kernels, accel, cycles)
    labels: tuple[str, ...] | None = None
    inference_time_ms: float | None = None  # the NPU's time, when known
    inference_time_source: str | None = None  # "fvp" (measured), "vela" (estimated)
    inference_ms: InitVar[float | None] = None  # deprecated spelling of host_ms (constructor only)

    def __post_init__(self, inference_ms: float | None) -> None:
        if inference_ms is not None and self.host_ms is None:
            object.__setattr__(self, "host_ms", inference_ms)

    @property
    def scores(self) -> np.ndarray:
        """Dequantized first output, flattened."""
        first = self.outputs[0]
        return first.spec.dequantize(first.data).reshape(-1)

    def top(self, k: int = TOP_K) -> list[dict[str, Any]]:
        return top_k(self.scores, self.labels, k)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "backend": self.backend,
            "model_sha256": self.model_sha256,
            "outputs": [o.to_dict() for o in self.outputs],
            "scores": [float(s) for s in self.scores],
            "top": self.top(),
        }
        if self.host_ms is not None:
            d["host_ms"] = self.host_ms
        if self.inference_time_ms is not None:
            d["inference_time_ms"] = self.inference_time_ms
            d["inference_time_source"] = self.inference_time_source
        if self.labels:
            d["labels"] = list(self.labels)
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunResult":
        """Read back ``to_dict``: the keys it derives (scores, top) are recomputed; keys that are not
        fields are the backend's ``extra``."""
        derived = {"backend", "model_sha256", "outputs", "scores", "top", "host_ms", "labels",
                   "inference_time_ms", "inference_time_source"}
        labels = d.get("labels")
        return cls(str(d["backend"]), str(d["model_sha256"]),
                   tuple(OutputTensor.from_dict(o) for o in d["outputs"]), d.get("host_ms"),
                   {k: v for k, v in d.items() if k not in derived},
                   tuple(labels) if labels is not None else None,
                   d.get("inference_time_ms"), d.get("inference_time_source"))


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
