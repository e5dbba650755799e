"""Synthetic int8 TFLite models without TensorFlow: single-op test models and DS-CNN S/M/L.

API
---
``build_model(arch, *, seed=0, clusters=None, **shape_opts) -> bytes``
    A complete ``.tflite`` flatbuffer. Same arguments -> same bytes. ``arch`` is one of
    ``ARCHS`` (below). ``clusters=K`` clusters every conv/depthwise/FC kernel to at most K
    distinct int8 values. Unknown arch/option or an impossible shape -> ``SynthOptionError``
    (a ``UserError``). Options left as None take the default.
``write_model(path, arch, *, seed=0, clusters=None, **shape_opts) -> Path``
    The same, written atomically.
``resolve_options(arch, options) -> dict``   the full option set a build would use.
``ARCHS``   name -> Arch(build, defaults, summary).
``SINGLE_OP_CASES``, ``DS_CNN_CASES``   the test matrix (``matrix.Case``: arch, options, seed,
    clusters; ``case.id``; ``build_model(case.arch, **case.build_kwargs())``).
``NetBuilder(seed, clusters=None)``   lower level, for ad-hoc graphs (several ops, custom
    quantization): ``x = nb.input((1,8,8,3)); y = nb.conv2d(x, 20, (3,3), (2,2)); nb.output(y);
    data = nb.to_bytes("description")``. Layer methods: ``input(shape, scale=None,
    zero_point=None)``, ``conv2d(x, out_channels, kernel, stride, dilation, padding,
    activation)``, ``depthwise_conv2d(x, kernel, stride, dilation, padding, activation)``,
    ``pool(x, "avg"|"max", filter, stride, padding, activation)``, ``fully_connected(x, units,
    activation, per_channel=False)``, ``softmax(x, beta=1.0)``, ``elementwise("add"|"mul", a, b,
    activation)``, ``reshape(x, shape)``, ``output(*acts)``.

``graph.GraphBuilder``   any builtin operator, int8/int16/int32 tensors with explicit
    quantization, constants, variable tensors and extra subgraphs (CALL_ONCE), on the schema's
    object API; ``opcases.OP_CASES``: one or more generated models per operator Vela can put on
    the NPU, plus LSTM, SVDF and streaming (resource-variable) KWS layers (the operator matrix).

Architectures and options (defaults)
------------------------------------
=========  ===================================================================================
conv2d     input_shape=(1,12,10,5) out_channels=20 kernel=(3,3) stride=(1,1) dilation=(1,1)
           padding="same"|"valid" activation="relu"|"relu6"|"none"
depthwise  input_shape=(1,12,10,20) kernel stride dilation padding activation (as conv2d);
           depth multiplier 1
avgpool    input_shape=(1,12,10,20) filter=(3,3) stride=(2,2) padding="same" activation="none"
maxpool    input_shape=(1,12,10,20) filter=(2,2) stride=(2,2) padding="valid" activation="none"
fc         input_shape=(1,40) units=12 activation="none" per_channel=False
softmax    input_shape=(1,12) beta=1.0   (input scale 16/255 zp 0; output 1/256 zp -128)
add, mul   input_shape=(1,6,5,20) other_shape=None (= input_shape; may broadcast)
           activation="none"; two model inputs with different quantization
reshape    input_shape=(1,6,5,20) new_shape=(1,600)
ds-cnn-s   (no options) 64 ch, 4 blocks, first conv stride 2x2
ds-cnn-m   172 ch, 4 blocks, first conv stride 2x1, first depthwise stride 2x2
ds-cnn-l   276 ch, 5 blocks, as ds-cnn-m; same shapes/ops as ML-zoo's DS-CNN-L
=========  ===================================================================================
Pairs (kernel, stride, dilation, filter) accept an int or (h, w).

Quantization
------------
int8 activations (per tensor, asymmetric); conv/depthwise weights int8 symmetric per output
channel (zp 0, channel scales differ), FC per tensor unless ``per_channel``; int32 bias with
scale input_scale * weight_scale. Each output's scale/zero point comes from a float reference of
the layer on 16 random int8 input vectors (fake-quantized through the earlier layers), so
outputs use their range and depend on the inputs. Pools and reshape keep the input's
quantization (TFLite requires it). DS-CNN: int8 input (1,490) scale 1.0809113 zp 101 (the
ML-zoo model's), RESHAPE (1,49,10,1), CONV 10x4 SAME + ReLU, blocks of [DEPTHWISE 3x3 SAME +
ReLU, CONV 1x1 VALID + ReLU], AVERAGE_POOL over the whole map, RESHAPE, FC 12, SOFTMAX.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_bytes
from .archs import ARCHS, DS_CNN_SIZES, SynthOptionError, resolve_options
from .matrix import DS_CNN_CASES, SINGLE_OP_CASES, Case
from .net import NetBuilder

__all__ = ["ARCHS", "DS_CNN_CASES", "DS_CNN_SIZES", "SINGLE_OP_CASES", "Case", "NetBuilder", "SynthOptionError", "build_model", "describe",
           "resolve_options", "write_model"]

MAX_CLUSTERS = 255  # int8 weights in [-127, 127]


def _check_common(seed: int, clusters: int | None) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise SynthOptionError(f"seed must be a non-negative integer, got {seed!r}")
    if clusters is not None and not (isinstance(clusters, int) and 1 <= clusters <= MAX_CLUSTERS):
        raise SynthOptionError(f"clusters must be an integer from 1 to {MAX_CLUSTERS}, got {clusters!r}")


def describe(arch: str, *, seed: int = 0, clusters: int | None = None, **shape_opts: Any) -> str:
    """The description string stored in the model (names the recipe, so files are traceable)."""
    opts = resolve_options(arch, shape_opts)
    parts = [f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in opts.items()]
    return " ".join([f"ethos-kws synth {arch}", f"seed={seed}", f"clusters={clusters}", *parts])


def build_model(arch: str, *, seed: int = 0, clusters: int | None = None, **shape_opts: Any) -> bytes:
    _check_common(seed, clusters)
    opts = resolve_options(arch, shape_opts)
    nb = NetBuilder(seed, clusters)
    ARCHS[arch].build(nb, **opts)
    return nb.to_bytes(describe(arch, seed=seed, clusters=clusters, **shape_opts))


def write_model(path: str | os.PathLike, arch: str, *, seed: int = 0, clusters: int | None = None,
                **shape_opts: Any) -> Path:
    return atomic_write_bytes(path, build_model(arch, seed=seed, clusters=clusters, **shape_opts))
