"""``NpuSimBackend``: runs a ``*_vela.tflite`` graph; NPU ops through the simulator, the CPU ops
Vela leaves behind (QUANTIZE/DEQUANTIZE) in numpy. ``make_backend`` compiles plain models first."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError, NotModelledError
from ...tflite import TfliteModel, load_tflite
from ..base import OutputTensor, RunResult, TensorSpec, check_inputs
from .behaviours import DEFAULT, Behaviours
from .container import CUSTOM_CODE, EthosUOp, is_vela_model, read_ethos_u_op
from .cpu_ops import CPU_OPS
from .executor import Executor
from .memory import Memory


@dataclass
class _NpuStep:
    op: EthosUOp
    executor: Executor


class NpuSimBackend:
    name = "npu-sim"

    def __init__(self, compiled_path: str | os.PathLike, behaviours: Behaviours = DEFAULT,
                 original_model: TfliteModel | None = None, extra: dict[str, Any] | None = None,
                 warm_up: bool = True):
        self.model = load_tflite(compiled_path)
        if not is_vela_model(self.model):
            raise ModelError(f"{compiled_path}: not a Vela-compiled model (no '{CUSTOM_CODE}' operator)")
        self.behaviours = behaviours
        # trace hook: called with (executor, command) before each operation runs (ethos_kws.npu_trace)
        self.trace: Callable[[Executor, Any], None] | None = None
        self.steps: list[tuple[Any, Any]] = []
        for op in self.model.operators():
            if op.opcode == "CUSTOM" and op.custom_code == CUSTOM_CODE:
                eop = read_ethos_u_op(self.model, op)
                self.steps.append((op, _NpuStep(eop, Executor(eop.payload, behaviours))))
            elif op.opcode in CPU_OPS:
                self.steps.append((op, CPU_OPS[op.opcode]))
            else:
                raise NotModelledError(
                    f"operator {op.index} ({op.opcode}) runs on the CPU in this Vela model; "
                    f"npu-sim executes only {', '.join(CPU_OPS)} outside the NPU"
                )
        for _op, step in self.steps:  # validate every stream now, not at the first inference
            if isinstance(step, _NpuStep):
                step.executor.prepare(self._memory(step, 1))
        sg = self.model.subgraph
        self._inputs = [int(i) for i in sg.InputsAsNumpy()]
        self._outputs = [int(i) for i in sg.OutputsAsNumpy()]
        self._sha = (original_model or self.model).sha256
        self._extra = dict(extra or {})
        cfgs = {s.executor.config.name for _, s in self.steps if isinstance(s, _NpuStep)}
        self._extra.setdefault("accel", ",".join(sorted(cfgs)))
        if warm_up:  # decode weights and scales now, so run() times an inference, not a load
            self.run_batch([[np.zeros(spec.shape, dtype=spec.dtype) for spec in self.input_specs]])

    @property
    def input_specs(self) -> list[TensorSpec]:
        return self.model.input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        return self.model.output_specs

    @property
    def executors(self) -> list[Executor]:
        return [s.executor for _, s in self.steps if isinstance(s, _NpuStep)]

    def _check_inputs(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return check_inputs(inputs, self.input_specs)

    @staticmethod
    def _memory(step: _NpuStep, batch: int) -> Memory:
        op, cfg = step.op, step.executor.config
        # SHRAM is per core: each core of a 2-core U65 loads its own LUTs
        cores = cfg.accelerator.cores
        return Memory.create(batch, op.read_only, op.scratch_bytes, op.scratch_fast_bytes,
                             op.fast_is_scratch, cfg.shram_bytes // cores)

    def _run_npu(self, step: _NpuStep, values: dict[int, np.ndarray], batch: int) -> None:
        op = step.op
        mem = self._memory(step, batch)
        scratch = mem.region(1)
        for t in op.ifms:
            data = np.ascontiguousarray(values[t.index].astype(t.dtype, copy=False))
            scratch[:, t.offset : t.offset + t.nbytes] = data.reshape(batch, -1).view(np.uint8)
        trace = self.trace
        step.executor.run(mem, trace=None if trace is None else (lambda cmd: trace(step.executor, cmd)))
        for t in op.ofms:
            raw = np.ascontiguousarray(scratch[:, t.offset : t.offset + t.nbytes])
            values[t.index] = raw.view(t.dtype).reshape((batch,) + t.shape)

    def _run_graph(self, batched_inputs: list[np.ndarray], batch: int) -> list[np.ndarray]:
        values = dict(zip(self._inputs, batched_inputs))
        for op, step in self.steps:
            if isinstance(step, _NpuStep):
                self._run_npu(step, values, batch)
            else:
                values[op.outputs[0]] = step(self.model, op, values[op.inputs[0]])
        return [values[i] for i in self._outputs]

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        if not batch:
            return []
        checked = [self._check_inputs(item) for item in batch]
        stacked = [np.stack([item[k] for item in checked]) for k in range(len(self.input_specs))]
        outs = self._run_graph(stacked, len(checked))
        return [[o[b] for o in outs] for b in range(len(checked))]

    def run(self, inputs: Sequence[np.ndarray]) -> RunResult:
        t0 = time.perf_counter()
        outs = self.run_batch([inputs])[0]
        ms = (time.perf_counter() - t0) * 1000.0
        tensors = tuple(OutputTensor(spec, o.reshape(spec.shape)) for spec, o in zip(self.output_specs, outs))
        return RunResult(self.name, self._sha, tensors, inference_ms=ms, extra=dict(self._extra))


def compile_with_vela(model_path: str | os.PathLike, accel: str, out_dir: str | os.PathLike | None = None,
                      legacy_core: bool = False, system_config: str | None = None,
                      memory_mode: str | None = None) -> Path:
    """The compiled ``*_vela.tflite`` for ``accel``, through the cached Vela adapter (copied into
    ``out_dir`` when given)."""
    from ...vela import compile_model

    res = compile_model(model_path, accel, system_config=system_config, memory_mode=memory_mode,
                        legacy_core=legacy_core, out_dir=out_dir)
    return Path(res.compiled_model)


def make_backend(model_path: str | os.PathLike, *, accel: str | None = None, legacy_core: bool | None = False,
                 system_config: str | None = None, memory_mode: str | None = None,
                 behaviours: Behaviours | None = None, litert_fc_rounding: bool = False) -> NpuSimBackend:
    """Registry factory: run a ``*_vela.tflite`` directly; compile any other model for ``accel``
    (default u55-128) first. These keyword parameters are the backend's options."""
    model = load_tflite(model_path)
    behaviours = behaviours or DEFAULT
    if litert_fc_rounding:
        behaviours = dataclasses.replace(behaviours, litert_fc_rounding=True)
    if is_vela_model(model):
        return NpuSimBackend(model_path, behaviours, extra={"compiled_model": str(model_path)})
    accel = accel or "u55-128"
    legacy = bool(legacy_core)
    compiled = compile_with_vela(model_path, accel, legacy_core=legacy,
                                 system_config=system_config, memory_mode=memory_mode)
    return NpuSimBackend(compiled, behaviours, original_model=model,
                         extra={"accel": accel, "legacy_core": legacy, "compiled_model": str(compiled)})
