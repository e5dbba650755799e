"""Corruptions of an MLW weight stream shared by the weight-decoder tests (and the fuzz script
they run in a child process): bit flips, truncation, extension, or random bytes."""

from __future__ import annotations

MUTATIONS = 4


def mutate(rng, stream: bytes, mutation: int) -> bytes:
    """``stream`` with corruption ``mutation`` (0 .. MUTATIONS - 1) drawn from ``rng`` (random.Random)."""
    s = bytearray(stream)
    if mutation == 0:
        for _ in range(rng.randrange(1, 20)):
            bit = rng.randrange(len(s) * 8)
            s[bit >> 3] ^= 1 << (bit & 7)
    elif mutation == 1:
        s = s[: rng.randrange(len(s))]
    elif mutation == 2:
        s += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    else:
        s = bytearray(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
    return bytes(s)
