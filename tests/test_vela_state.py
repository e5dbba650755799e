"""Vela's legacy compiler keeps one compile's state in class attributes for the life of the
process; ethos-kws compiles many models in one reused worker, so each compile starts clean."""

from __future__ import annotations

import numpy as np

from ethos_kws.synth.graph import GraphBuilder
from ethos_kws.synth.opcases import _conv_weights
from ethos_kws.vela import compile_model


def _conv_logistic() -> bytes:
    """CONV_2D then int8 LOGISTIC (a LUT): the LUT's address differs between u55-32 and u55-128."""
    rng = np.random.default_rng(0)
    g = GraphBuilder()
    x = g.activation("x", (1, 8, 8, 16), "int8", lo_hi=(-4, 4))
    in_scale = float(g.subgraphs[0].tensors[x].quantization.scale[0])
    w, ws, b, bs = _conv_weights(rng, 24, 3, 3, 16, in_scale)
    h = g.activation("h", (1, 8, 8, 24), "int8", lo_hi=(-8, 8))
    g.op("CONV_2D", [x, g.const("w", w, "int8", ws, 0), g.const("b", b, "int32", bs, 0)], [h],
         version=3, padding=0, strideH=1, strideW=1)
    y = g.activation("y", (1, 8, 8, 24), "int8", scale=1 / 256, zero_point=-128)
    g.op("LOGISTIC", [h], [y])
    g.inputs, g.outputs = [x], [y]
    return g.to_bytes("conv + logistic")


def test_legacy_compiles_in_one_process_do_not_share_state(tmp_path):
    model = tmp_path / "conv_logistic.tflite"
    model.write_bytes(_conv_logistic())
    # one worker process compiles all three; the second failed ("Two different addresses ...")
    results = [compile_model(model, acc, legacy_core=True, out_dir=tmp_path / acc)
               for acc in ("u55-32", "u55-128", "u55-32")]
    # each *_debug.xml describes its own compile only (it accumulated every earlier one's rows)
    xmls = [next((tmp_path / acc).glob("*_debug.xml")).read_text() for acc in ("u55-32", "u55-128")]
    for table in ("source", "optimised", "cmdstream"):
        rows = [x.split(f"<table name='{table}'>")[1].split("</table>")[0].count("\n") for x in xmls]
        assert rows[0] == rows[1], table
    assert xmls[1].split("<table name='source'>")[1].split("</table>")[0].count('"Conv2DBias"') == 1
    assert results[0].compiled_model != results[1].compiled_model


def test_a_compile_after_another_equals_a_fresh_process_compile(tmp_path):
    """The legacy compiler memoises constant equivalence ids per process: without a reset, MEAN
    compiled for u55-64 after u55-32 got other constant addresses than in a process of its own
    (read-only data 176 instead of 224 bytes, IFM2 at 0x20), and its output was wrong."""
    import hashlib
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ethos_kws.synth.opcases import build_case

    model = tmp_path / "mean_int8.tflite"
    model.write_bytes(build_case("mean_int8"))
    here = [compile_model(model, acc, legacy_core=True) for acc in ("u55-32", "u55-64")][1]
    code = ("import sys; from ethos_kws.vela import compile_model; "
            "print(compile_model(sys.argv[1], 'u55-64', legacy_core=True).compiled_model)")
    env = dict(os.environ, ETHOS_KWS_CACHE=str(tmp_path / "fresh-cache"))
    out = subprocess.run([sys.executable, "-c", code, str(model)], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.strip().splitlines()[-1]

    def digest(p):
        return hashlib.sha256(Path(p).read_bytes()).hexdigest()

    assert digest(here.compiled_model) == digest(out)
