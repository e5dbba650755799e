"""Scale/bias streams: 10 bytes per output channel, ``[int40 bias | uint32 scale | 6-bit shift]``.

Each stream is padded to 16 bytes; the stream of core c on a 2-core U65 holds channels c, c+2, ...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import CommandStreamError

ENTRY_BYTES = 10


@dataclass(frozen=True)
class ScaleStream:
    bias: np.ndarray  # int64 [channels]
    scale: np.ndarray  # int64 [channels] (uint32 values)
    shift: np.ndarray  # int64 [channels]


def decode_scales(stream: bytes, channels: int, what: str = "scale stream") -> ScaleStream:
    need = channels * ENTRY_BYTES
    if len(stream) < need:
        raise CommandStreamError(
            f"{what}: {len(stream)} bytes hold fewer than the {channels} channels x 10 bytes the op needs"
        )
    raw = np.frombuffer(stream[:need], dtype=np.uint8).reshape(channels, ENTRY_BYTES).astype(np.int64)
    bias = sum(raw[:, i] << (8 * i) for i in range(5))
    bias = np.where(bias >= (1 << 39), bias - (1 << 40), bias)
    scale = sum(raw[:, 5 + i] << (8 * i) for i in range(4))
    shift = raw[:, 9] & 0x3F
    return ScaleStream(bias, scale, shift)


def interleave(parts: list[np.ndarray]) -> np.ndarray:
    """Per-core arrays (core c has channels c, c+n, ...) back to channel order."""
    n = len(parts)
    total = sum(len(p) for p in parts)
    out = np.empty((total,) + parts[0].shape[1:], dtype=parts[0].dtype)
    for c, part in enumerate(parts):
        out[c::n] = part
    return out
