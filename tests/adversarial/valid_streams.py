"""Valid Vela streams for the data-flow check: random small networks of the layers KWS models use.

``random_net(seed)`` and ``big_net(seed)`` build int8 models (``NetBuilder``); compiled for several
accelerators and arena sizes they give streams striped, cascaded and laid out in many ways, which
the data-flow check must all accept. (The corpus measured while writing the placement rules:
about 1,500 streams of these, the operator matrix and DS-CNN over eleven configurations.)
"""

from __future__ import annotations

import random

from ethos_kws.synth import NetBuilder


def random_net(seed):
    rng = random.Random(seed)
    nb = NetBuilder(seed)
    h, w, c = rng.choice([4, 6, 9, 12, 16, 24, 33, 48, 64]), rng.choice([3, 5, 8, 10, 17, 32, 40]), rng.choice([1, 3, 8, 16, 20, 33, 64])
    x = nb.input((1, h, w, c))
    skip = None
    for _ in range(rng.randint(2, 7)):
        H, W, C = x.shape[1], x.shape[2], x.shape[3]
        k = rng.random()
        try:
            if k < 0.3:
                kh, kw = rng.choice([1, 2, 3, 5]), rng.choice([1, 2, 3, 5])
                kh, kw = min(kh, H), min(kw, W)
                s = rng.choice([1, 1, 2]) if H > 2 and W > 2 else 1
                y = nb.conv2d(x, rng.choice([4, 8, 16, 24, 48, 80, 130]), (kh, kw), (s, s), padding=rng.choice(["same", "valid"]), activation=rng.choice(["relu", "none", "relu6"]))
            elif k < 0.5:
                s = rng.choice([1, 2]) if H > 2 and W > 2 else 1
                y = nb.depthwise_conv2d(x, (min(3, H), min(3, W)), (s, s), padding=rng.choice(["same", "valid"]), activation="relu")
            elif k < 0.6 and H >= 2 and W >= 2:
                y = nb.pool(x, rng.choice(["avg", "max"]), (2, 2), (2, 2), padding=rng.choice(["same", "valid"]))
            elif k < 0.75 and skip is not None and skip.shape == x.shape:
                y = nb.elementwise(rng.choice(["add", "mul"]), x, skip)
            elif k < 0.82:
                y = nb.elementwise(rng.choice(["add", "mul"]), x, x)
            elif k < 0.9:
                y = nb.reshape(x, (1, 1, H * W, C))
            else:
                y = x
        except Exception:  # an impossible shape for this layer: skip it
            y = x
        skip = x
        x = y
    if rng.random() < 0.5:
        x = nb.reshape(x, (1, x.shape[1] * x.shape[2] * x.shape[3]))
        x = nb.fully_connected(x, rng.choice([5, 12, 40]))
        if rng.random() < 0.5:
            x = nb.softmax(x)
    nb.output(x)
    return nb.to_bytes(f"random net {seed}")


def big_net(seed):
    """Larger maps and chains of 3x3 convs: Vela stripes and cascades them in small arenas."""
    rng = random.Random(seed)
    nb = NetBuilder(seed)
    x = nb.input((1, rng.choice([32, 40, 49, 64]), rng.choice([10, 20, 33, 48]), rng.choice([1, 4, 8, 16])))
    first = None
    for i in range(rng.randint(3, 6)):
        k = rng.random()
        s = 2 if rng.random() < 0.25 and x.shape[1] > 8 and x.shape[2] > 8 else 1
        if k < 0.5:
            y = nb.conv2d(x, rng.choice([8, 16, 32, 64]), (3, 3), (s, s), padding=rng.choice(["same", "valid"]), activation="relu")
        elif k < 0.75:
            y = nb.depthwise_conv2d(x, (3, 3), (s, s), padding=rng.choice(["same", "valid"]), activation="relu")
        elif k < 0.85 and x.shape[1] > 4 and x.shape[2] > 4:
            y = nb.pool(x, rng.choice(["avg", "max"]), (3, 3), (1, 1) if rng.random() < 0.5 else (2, 2), padding="same")
        elif first is not None and first.shape == x.shape:
            y = nb.elementwise("add", x, first)
        else:
            y = nb.conv2d(x, x.shape[3], (1, 1), (1, 1), padding="same", activation="relu")
        if first is None or first.shape != y.shape:
            first = y if rng.random() < 0.5 else first
        x = y
    nb.output(x)
    return nb.to_bytes(f"big net {seed}")
