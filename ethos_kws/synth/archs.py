"""The architectures ``build_model`` knows: one table of single-op models and DS-CNN sizes.

Every architecture is a function ``(NetBuilder, **options) -> None`` plus the defaults of its
options; ``build`` checks user options against those defaults so a misspelt or inapplicable
option is an error, not silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from . import reference
from .net import ACTIVATION_CODES, NetBuilder


class SynthOptionError(UserError):
    """An unknown architecture, option or impossible shape for the model builder."""


def _conv2d(nb: NetBuilder, input_shape, out_channels, kernel, stride, dilation, padding, activation):
    x = nb.input(input_shape)
    nb.output(nb.conv2d(x, out_channels, kernel, stride, dilation, padding, activation))


def _depthwise(nb: NetBuilder, input_shape, kernel, stride, dilation, padding, activation):
    x = nb.input(input_shape)
    nb.output(nb.depthwise_conv2d(x, kernel, stride, dilation, padding, activation))


def _pool(kind):
    def build(nb: NetBuilder, input_shape, filter, stride, padding, activation):
        x = nb.input(input_shape)
        nb.output(nb.pool(x, kind, filter, stride, padding, activation))
    return build


def _fc(nb: NetBuilder, input_shape, units, activation, per_channel):
    x = nb.input(input_shape)
    nb.output(nb.fully_connected(x, units, activation, per_channel))


def _softmax(nb: NetBuilder, input_shape, beta):
    # 16/255 spans about [-8, 8]: from one-hot to flat distributions over random inputs
    x = nb.input(input_shape, scale=0.0627451, zero_point=0)
    nb.output(nb.softmax(x, beta))


def _elementwise(kind):
    def build(nb: NetBuilder, input_shape, other_shape, activation):
        a = nb.input(input_shape)
        b = nb.input(other_shape or input_shape)
        nb.output(nb.elementwise(kind, a, b, activation))
    return build


def _reshape(nb: NetBuilder, input_shape, new_shape):
    x = nb.input(input_shape)
    nb.output(nb.reshape(x, new_shape))


@dataclass(frozen=True)
class DsCnnSize:
    channels: int
    blocks: int
    conv_stride: tuple[int, int]
    first_dw_stride: tuple[int, int]


# ML-zoo / "Hello Edge" DS-CNN sizes; L matches ds_cnn_l_*.tflite (49x10 -> 25x10 -> 13x5)
DS_CNN_SIZES = {
    "ds-cnn-s": DsCnnSize(64, 4, (2, 2), (1, 1)),
    "ds-cnn-m": DsCnnSize(172, 4, (2, 1), (2, 2)),
    "ds-cnn-l": DsCnnSize(276, 5, (2, 1), (2, 2)),
}
DS_CNN_INPUT = (1, 490)
DS_CNN_FEATURES = (1, 49, 10, 1)  # 49 MFCC frames x 10 coefficients
DS_CNN_LABELS = 12
# The ML-zoo model's input quantization, so MFCC features quantize the same way for both
DS_CNN_INPUT_QUANT = (1.0809113, 101)
SOFTMAX_LOGIT_STD = 3.0


def _ds_cnn(size: DsCnnSize):
    def build(nb: NetBuilder):
        x = nb.input(DS_CNN_INPUT, *DS_CNN_INPUT_QUANT)
        x = nb.reshape(x, DS_CNN_FEATURES)
        x = nb.conv2d(x, size.channels, (10, 4), size.conv_stride, padding="same", activation="relu")
        for i in range(size.blocks):
            stride = size.first_dw_stride if i == 0 else (1, 1)
            x = nb.depthwise_conv2d(x, (3, 3), stride, padding="same", activation="relu")
            x = nb.conv2d(x, size.channels, (1, 1), padding="valid", activation="relu")
        _, h, w, c = x.shape
        x = nb.pool(x, "avg", (h, w), (h, w), "valid")
        x = nb.reshape(x, (1, c))
        x = nb.fully_connected(x, DS_CNN_LABELS, logit_std=SOFTMAX_LOGIT_STD)
        nb.output(nb.softmax(x))
    return build


@dataclass(frozen=True)
class Arch:
    build: Callable[..., None]
    defaults: dict[str, Any]
    summary: str


_CONV_DEFAULTS = {"kernel": (3, 3), "stride": (1, 1), "dilation": (1, 1), "padding": "same", "activation": "relu"}
ARCHS: dict[str, Arch] = {
    "conv2d": Arch(_conv2d, dict(input_shape=(1, 12, 10, 5), out_channels=20, **_CONV_DEFAULTS),
                   "one CONV_2D"),
    "depthwise": Arch(_depthwise, dict(input_shape=(1, 12, 10, 20), **_CONV_DEFAULTS),
                      "one DEPTHWISE_CONV_2D (depth multiplier 1)"),
    "avgpool": Arch(_pool("avg"), {"input_shape": (1, 12, 10, 20), "filter": (3, 3), "stride": (2, 2),
                                      "padding": "same", "activation": "none"}, "one AVERAGE_POOL_2D"),
    "maxpool": Arch(_pool("max"), {"input_shape": (1, 12, 10, 20), "filter": (2, 2), "stride": (2, 2),
                                      "padding": "valid", "activation": "none"}, "one MAX_POOL_2D"),
    "fc": Arch(_fc, {"input_shape": (1, 40), "units": 12, "activation": "none", "per_channel": False},
               "one FULLY_CONNECTED"),
    "softmax": Arch(_softmax, {"input_shape": (1, 12), "beta": 1.0}, "one SOFTMAX (output 1/256, -128)"),
    "add": Arch(_elementwise("add"), {"input_shape": (1, 6, 5, 20), "other_shape": None, "activation": "none"},
                "one ADD of two inputs"),
    "mul": Arch(_elementwise("mul"), {"input_shape": (1, 6, 5, 20), "other_shape": None, "activation": "none"},
                "one MUL of two inputs"),
    "reshape": Arch(_reshape, {"input_shape": (1, 6, 5, 20), "new_shape": (1, 600)}, "one RESHAPE"),
    **{name: Arch(_ds_cnn(size), {}, f"DS-CNN {name[-1].upper()}: {size.channels} channels, "
                  f"{size.blocks} depthwise-separable blocks") for name, size in DS_CNN_SIZES.items()},
}

CONV_ARCHS = {"conv2d", "depthwise"}
_PAIR_OPTIONS = {"kernel", "stride", "dilation", "filter"}
_SHAPE_OPTIONS = {"input_shape", "other_shape", "new_shape"}


def _pair(name: str, value) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise SynthOptionError(f"{name} must be one or two positive integers, got {value}")
    return value


def _shape(name: str, value) -> tuple[int, ...]:
    value = tuple(int(v) for v in value)
    if not value or min(value) < 1 or value[0] != 1:
        raise SynthOptionError(f"{name} must be positive dimensions with batch 1, got {value}")
    return value


def resolve_options(arch: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full option set for ``arch``: defaults overridden by ``options`` (None = default)."""
    if arch not in ARCHS:
        raise SynthOptionError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    spec = ARCHS[arch]
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(spec.defaults))
    if unknown:
        allowed = ", ".join(spec.defaults) or "none"
        raise SynthOptionError(f"option {unknown[0]!r} does not apply to {arch} (options: {allowed})")
    opts = {**spec.defaults, **given}
    for k, v in opts.items():
        if k in _PAIR_OPTIONS:
            opts[k] = _pair(k, v)
        elif k in _SHAPE_OPTIONS and v is not None:
            opts[k] = _shape(k, v)
    _check(arch, opts)
    return opts


def _check(arch: str, o: dict[str, Any]) -> None:
    if "padding" in o and o["padding"] not in reference.PADDINGS:
        raise SynthOptionError(f"padding must be one of {', '.join(reference.PADDINGS)}, got {o['padding']!r}")
    if "activation" in o and o["activation"] not in ACTIVATION_CODES:
        raise SynthOptionError(f"activation must be one of {', '.join(ACTIVATION_CODES)}, got {o['activation']!r}")
    if arch in CONV_ARCHS or arch in ("avgpool", "maxpool"):
        if len(o["input_shape"]) != 4:
            raise SynthOptionError(f"{arch} needs a 4-D input_shape (1, H, W, C), got {o['input_shape']}")
        kernel = o.get("kernel", o.get("filter"))
        dilation = o.get("dilation", (1, 1))
        for axis, size in enumerate(o["input_shape"][1:3]):
            if reference.out_size(size, kernel[axis], o["stride"][axis], dilation[axis], o["padding"]) < 1:
                raise SynthOptionError(f"{arch}: kernel {kernel} does not fit input {o['input_shape']} "
                                       f"with {o['padding']} padding")
    if arch == "conv2d" and o["out_channels"] < 1:
        raise SynthOptionError("out_channels must be positive")
    if arch == "fc" and o["units"] < 1:
        raise SynthOptionError("units must be positive")
    if arch in ("add", "mul") and o["other_shape"] is not None:
        try:
            np.broadcast_shapes(o["input_shape"], o["other_shape"])
        except ValueError:
            raise SynthOptionError(f"other_shape {o['other_shape']} does not broadcast with "
                                   f"input_shape {o['input_shape']}") from None
    if arch == "reshape" and int(np.prod(o["new_shape"])) != int(np.prod(o["input_shape"])):
        raise SynthOptionError(f"new_shape {o['new_shape']} does not hold the "
                               f"{int(np.prod(o['input_shape']))} elements of {o['input_shape']}")
