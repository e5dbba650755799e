"""Float reference of each layer the builder emits, used only to calibrate quantization ranges.

Arrays are NHWC batches (N, H, W, C); weights use TFLite layouts (conv ``[O, KH, KW, I]``,
depthwise ``[1, KH, KW, C]``, fully connected ``[O, I]``). Padding follows TFLite: SAME gives
``ceil(in / stride)`` outputs with the odd padding element after, VALID none.
"""

from __future__ import annotations

import math

import numpy as np

PADDINGS = ("same", "valid")


def out_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        return math.ceil(size / stride)
    return (size - effective) // stride + 1


def pad_before(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "valid":
        return 0
    out = out_size(size, kernel, stride, dilation, padding)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2


def _windows(x, kernel, stride, dilation, padding, fill=0.0):
    """Yield (kh, kw, slice of the padded input seen by that kernel tap for every output)."""
    n, h, w, c = x.shape
    oh = out_size(h, kernel[0], stride[0], dilation[0], padding)
    ow = out_size(w, kernel[1], stride[1], dilation[1], padding)
    ph = pad_before(h, kernel[0], stride[0], dilation[0], padding)
    pw = pad_before(w, kernel[1], stride[1], dilation[1], padding)
    need_h = (oh - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1
    need_w = (ow - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1
    padded = np.full((n, max(need_h, ph + h), max(need_w, pw + w), c), fill, dtype=np.float64)
    padded[:, ph : ph + h, pw : pw + w, :] = x
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            y0, x0 = i * dilation[0], j * dilation[1]
            yield i, j, padded[:, y0 : y0 + (oh - 1) * stride[0] + 1 : stride[0],
                               x0 : x0 + (ow - 1) * stride[1] + 1 : stride[1], :]


def conv2d(x, w, bias, stride, dilation, padding):
    acc = None
    for i, j, win in _windows(x, w.shape[1:3], stride, dilation, padding):
        term = win @ w[:, i, j, :].T
        acc = term if acc is None else acc + term
    return acc + bias


def depthwise_conv2d(x, w, bias, stride, dilation, padding):
    acc = None
    for i, j, win in _windows(x, w.shape[1:3], stride, dilation, padding):
        term = win * w[0, i, j, :]
        acc = term if acc is None else acc + term
    return acc + bias


def avg_pool(x, filt, stride, padding):
    total = count = None
    ones = np.ones(x.shape[:3] + (1,))
    for (_, _, win), (_, _, cwin) in zip(_windows(x, filt, stride, (1, 1), padding),
                                         _windows(ones, filt, stride, (1, 1), padding)):
        total = win if total is None else total + win
        count = cwin if count is None else count + cwin
    return total / count  # TFLite divides by the taps inside the input, not the filter size


def max_pool(x, filt, stride, padding):
    out = None
    for _, _, win in _windows(x, filt, stride, (1, 1), padding, fill=-np.inf):
        out = win if out is None else np.maximum(out, win)
    return out


def fully_connected(x, w, bias):
    return x.reshape(x.shape[0], -1) @ w.T + bias


def softmax(x, beta=1.0):
    z = beta * (x - x.max(axis=-1, keepdims=True))
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "none": lambda v: v,
    "relu": lambda v: np.maximum(v, 0.0),
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
}
