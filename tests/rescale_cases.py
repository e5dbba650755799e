"""Output-stage test cases shared by the fastscale and kernels tests: per-channel scales like an
int8 layer's, and accumulators on and next to rounding ties."""

from __future__ import annotations

import numpy as np

CHANNELS = 24


def params(rng, multiplier_bits: int, scale_bits: tuple[int, int]):
    """Per-channel multipliers of ``multiplier_bits`` bits and shifts giving effective scales
    ``M / 2^S`` between ``2^-scale_bits[1]`` and ``2^-scale_bits[0]`` (int8 layers: about 2^-10)."""
    m = rng.integers(1 << (multiplier_bits - 1), 1 << multiplier_bits, CHANNELS)
    s = multiplier_bits + rng.integers(scale_bits[0], scale_bits[1], CHANNELS)
    b = rng.integers(-(1 << 16), 1 << 16, CHANNELS)
    return m, s, b


def accumulators(rng, m, s, b, bound: int, rows: int = 400) -> np.ndarray:
    """(rows, channels) float32 integers within ``bound``: random, and at and next to every
    kind of tie (x.5 after the scale, and x.5 +- one accumulator step)."""
    v = rng.integers(-bound, bound + 1, (rows, CHANNELS)).astype(np.float64)
    k = rng.integers(-300, 300, (rows, CHANNELS)) + 0.5
    ties = np.round(k * np.ldexp(1.0, s) / m - b) + rng.integers(-2, 3, (rows, CHANNELS))
    v = np.concatenate([v, np.clip(ties, -bound, bound)])
    return v.astype(np.float32)
