"""The synthetic test matrix: single-op models whose shapes cover what Vela's lowering and the NPU
treat differently (strides, dilation, SAME/VALID, sub-kernels above 8x8, channel counts that are not
multiples of 16, broadcasts, fused activations), plus the DS-CNN topologies.

Each ``Case`` builds with ``build_model(case.arch, seed=case.seed, **case.options)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    arch: str
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    clusters: int | None = None

    @property
    def id(self) -> str:
        opts = "-".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                        for k, v in sorted(self.options.items()))
        extra = f"-c{self.clusters}" if self.clusters else ""
        return f"{self.arch}{'-' + opts if opts else ''}{extra}"

    def build_kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "clusters": self.clusters, **self.options}


SINGLE_OP_CASES: tuple[Case, ...] = (
    Case("conv2d"),
    Case("conv2d", {"stride": 2}, seed=1),
    Case("conv2d", {"stride": (2, 1), "padding": "valid", "activation": "relu6"}, seed=2),
    Case("conv2d", {"input_shape": (1, 9, 7, 3), "out_channels": 33, "kernel": (5, 3), "dilation": (1, 3),
                    "activation": "none"}, seed=3),
    Case("conv2d", {"input_shape": (1, 5, 5, 70), "out_channels": 17, "kernel": 1}, seed=4),
    Case("conv2d", {"input_shape": (1, 20, 12, 2), "out_channels": 24, "kernel": (10, 4), "stride": (2, 1)}, seed=5),
    Case("conv2d", {"input_shape": (1, 13, 13, 4), "out_channels": 8, "kernel": 9, "stride": 3,
                    "padding": "valid"}, seed=6),
    Case("depthwise"),
    Case("depthwise", {"stride": 2, "padding": "valid"}, seed=1),
    Case("depthwise", {"input_shape": (1, 11, 9, 35), "dilation": 2, "activation": "relu6"}, seed=2),
    Case("avgpool"),
    Case("avgpool", {"filter": (12, 10), "stride": 1, "padding": "valid"}, seed=1),
    Case("maxpool"),
    Case("maxpool", {"filter": 3, "stride": 1, "padding": "same"}, seed=1),
    Case("fc"),
    Case("fc", {"input_shape": (1, 100), "units": 37, "per_channel": True, "activation": "relu"}, seed=1),
    Case("softmax"),
    Case("softmax", {"input_shape": (1, 40), "beta": 0.5}, seed=1),
    Case("add"),
    Case("add", {"other_shape": (1, 1, 1, 20)}, seed=1),
    Case("mul"),
    Case("mul", {"other_shape": (1, 6, 5, 1), "activation": "relu"}, seed=1),
    Case("reshape"),
    Case("reshape", {"new_shape": (1, 30, 20)}, seed=1),
)

DS_CNN_CASES: tuple[Case, ...] = (
    Case("ds-cnn-s", clusters=32),
    Case("ds-cnn-m"),
    Case("ds-cnn-l", clusters=32),
)
