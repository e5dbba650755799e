"""The fuzz test's child process: loads and runs flipped copies of one compiled model on npu-sim.

    python fuzz_worker.py SPEC.json

SPEC: {"model": PATH, "input": [ints], "work": DIR, "cases": [[file byte, bit], ...]}. For each case
it prints one JSON line before trying it ({"case": k}) and one after ({"case": k, "got": OUTCOME,
"seconds": s}), flushed, so the parent can name the case at fault when this process dies by a
signal or hangs (neither can be caught inside the process that suffers it). OUTCOME: "error"
(UserError: bad input, exit 2), "not modelled", "same" or "changed" (against the unflipped model);
any other exception is printed as "exception: TYPE: message", the parent fails on it.

Decoded weights are memoised across cases by their bytes (a flip in the command stream leaves
them as they are): the simulator decodes the same streams for every case, the memo only saves
that time. Everything else runs exactly as ``ethos-kws run`` does.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from functools import wraps
from pathlib import Path

import numpy as np


def _memoise_weights() -> None:
    from ethos_kws.backends.npusim import weights
    from ethos_kws.backends.npusim.u85 import ops as u85_ops

    def memo(fn, key):
        cache: dict = {}

        @wraps(fn)
        def wrapper(data, params):
            k = (key(data), params)
            if k not in cache:
                cache[k] = fn(data, params)  # an exception is not memoised: it is raised each time
            return cache[k].copy()
        return wrapper

    weights.decode_weights = memo(weights.decode_weights, bytes)
    u85_ops.decode_weights = memo(u85_ops.decode_weights, lambda parts: tuple(bytes(p) for p in parts))


def outcome(path: Path, x: np.ndarray, ref: np.ndarray | None) -> str:
    from ethos_kws.backends.npusim.backend import NpuSimBackend
    from ethos_kws.errors import NotModelledError, UserError

    try:
        out = NpuSimBackend(path, warm_up=False).run([x]).outputs[0].data
    except UserError:
        return "error"
    except NotModelledError:
        return "not modelled"
    if ref is None:
        return out
    return "same" if np.array_equal(out, ref) else "changed"


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    _memoise_weights()
    data = Path(spec["model"]).read_bytes()
    work = Path(spec["work"])
    x = np.asarray(spec["input"], dtype=spec.get("dtype", "int8")).reshape(spec["shape"])
    ref = outcome(Path(spec["model"]), x, None)
    flipped = work / "flip_vela.tflite"
    for k, (pos, bit) in enumerate(spec["cases"]):
        print(json.dumps({"case": k}), flush=True)
        b = bytearray(data)
        b[pos] ^= 1 << bit
        flipped.write_bytes(bytes(b))
        t0 = time.monotonic()
        try:
            got = outcome(flipped, x, ref)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the test
            last = traceback.format_exc().strip().splitlines()[-3:]
            got = f"exception: {type(e).__name__}: {e} | {' / '.join(last)}"
        print(json.dumps({"case": k, "got": got, "seconds": round(time.monotonic() - t0, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
