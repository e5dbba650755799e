"""``run --backend npu-sim --trace``: every NPU operation the simulator executed, mapped to Vela's
layers through Vela's own command-stream queue, with figures that agree with Vela's tables."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ethos_kws.backends.npusim.backend import NpuSimBackend, make_backend
from ethos_kws.cli import main
from ethos_kws.memory_map import READ_ONLY
from ethos_kws.npu_trace import trace_run
from ethos_kws.vela import compile_model

ACCELS = ("u55-32", "u55-256", "u65-512")


@pytest.mark.parametrize("accel", ACCELS)
def test_trace_maps_every_operation_to_a_vela_layer(int8io_model, accel):
    backend = make_backend(int8io_model, accel=accel)
    x = [np.arange(490, dtype=np.int64).astype(np.int8).reshape(1, 490)]
    result, trace = trace_run(backend, x)
    plain = backend.run(x)
    assert [o.data.tolist() for o in result.outputs] == [o.data.tolist() for o in plain.outputs]  # hook changes nothing
    assert backend.trace is None
    assert trace.mapped and all(op.layer_index is not None for op in trace.operations)
    executed = [cmd for ex in backend.executors for cmd in ex.operations]
    assert len(trace.operations) == len([c for c in executed if c.name != "NPU_OP_DMA_WAIT"
                                         and c.name != "NPU_OP_KERNEL_WAIT"])
    r = compile_model(int8io_model, accel)
    scheduled = [x.index for x in r.layers if x.target == "NPU" and (x.cycles or x.staging_usage_bytes)]
    assert [t.layer_index for t in trace.layers] == scheduled  # each scheduled layer, in order
    first = trace.layers[0]
    assert first.tflite_index == 1 and first.op == "Conv2D" and first.vela_cycles == r.layers[0].cycles
    assert first.ofm_write_bytes == 25 * 10 * 276  # the first conv's OFM, int8
    assert first.blocks > 0 and first.commands.get("CONV", 0) >= 1
    # the bytes DMA'd for it are its weights as Vela allocated them (read-only tensor table)
    [ro] = [a for a in r.allocations if a.memory == READ_ONLY]
    conv_weights = next(t for t in ro.tensors if t.name == "functional_1/conv2d/Conv2D")
    assert first.dma_bytes == conv_weights.size_bytes
    soft = [t for t in trace.layers if t.tflite_index == 15]
    assert len(soft) > 20 and any("ELEMENTWISE" in k for t in soft for k in t.commands)


def test_trace_without_velas_debug_database_still_lists_operations(int8io_model, tmp_path):
    r = compile_model(int8io_model, "u55-128")
    lone = tmp_path / "alone_vela.tflite"
    shutil.copy(r.compiled_model, lone)
    _, trace = trace_run(NpuSimBackend(lone), [np.zeros((1, 490), np.int8)])
    assert not trace.mapped and trace.operations and [t.layer_index for t in trace.layers] == [None]


def test_run_cli_trace(int8io_model, capsys):
    assert main(["run", "--backend", "npu-sim", "--accel", "u55-256", "--model", str(int8io_model), "--trace"]) == 0
    out = capsys.readouterr().out
    assert "NPU trace:" in out and "DEPTHWISE" in out and "functional_1/average_pooling2d/AvgPool" in out
    assert main(["run", "--backend", "npu-sim", "--accel", "u55-256", "--model", str(int8io_model),
                 "--trace", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trace"]["mapped_to_vela_layers"] and doc["trace"]["layers"][0]["op"] == "Conv2D"
    assert main(["run", "--backend", "cpu", "--model", str(int8io_model), "--trace"]) == 2
    assert "--trace needs --backend npu-sim" in capsys.readouterr().err
