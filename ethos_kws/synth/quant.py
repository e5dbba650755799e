"""Quantization choices for synthetic models: affine int8 activations, symmetric int8 weights.

Scales are rounded to ``SCALE_DIGITS`` significant digits so tiny floating-point differences in
calibration (BLAS blocking, thread counts) cannot change a model's bytes.
"""

from __future__ import annotations

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127  # symmetric weights use [-127, 127], as TFLite's quantizer does
SCALE_DIGITS = 6
KMEANS_ITERATIONS = 12


def round_scale(scale: float) -> float:
    return float(np.float32(float(f"{scale:.{SCALE_DIGITS - 1}e}")))


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point that cover [lo, hi] with 0 exactly representable."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    scale = round_scale((hi - lo) / (INT8_MAX - INT8_MIN))
    zp = int(np.clip(np.round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return scale, zp


def quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zp, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return (q.astype(np.float64) - zp) * scale


def fake_quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return dequantize(quantize(x, scale, zp), scale, zp)


def _peaks(w: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is None:
        peak = np.array([np.abs(w).max()])
    else:
        peak = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    return np.where(peak > 0, peak, 1.0)


def _broadcast(v: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return v.reshape(shape)


def quantize_weights(w: np.ndarray, axis: int | None, clusters: int | None = None):
    """Symmetric int8 weights and their scales, per slice along ``axis`` (per channel) or per
    tensor (``axis=None``). With ``clusters=K`` the weights are first normalized by their slice's
    peak and clustered to K shared int8 values, so the kernel holds at most K distinct values
    whatever the per-channel scales are."""
    scales = np.array([round_scale(p / WEIGHT_MAX) for p in _peaks(w, axis)])
    normalized = w / _broadcast(scales, w.ndim, axis)
    if clusters is not None:
        normalized = cluster(normalized, clusters)
    q = np.clip(np.round(normalized), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, scales


def dequantize_weights(q: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    return q.astype(np.float64) * _broadcast(scales, q.ndim, axis)


def cluster(values: np.ndarray, k: int) -> np.ndarray:
    """1-D k-means seeded at quantiles (deterministic): each value replaced by its centroid."""
    flat = values.reshape(-1)
    centroids = np.unique(np.quantile(flat, (np.arange(k) + 0.5) / k))
    for _ in range(KMEANS_ITERATIONS):
        assign = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
        sums = np.bincount(assign, weights=flat, minlength=centroids.size)
        counts = np.bincount(assign, minlength=centroids.size)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    assign = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
    return centroids[assign].reshape(values.shape)
