"""``NpuSimBackend``: runs a ``*_vela.tflite`` graph as it is deployed: the ``ethos-u`` operators on
the simulator, every other operator on TFLite Micro's kernels (``cpu_side``), in graph order, with
tensors passed between them and state carried between invocations. ``make_backend`` compiles plain
models first."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl
from ai_edge_litert import schema_py_generated as fb

from ...accel import get_accelerator
from ...errors import InputNotModelledError, ModelError, NotModelledError, UserError
from ...executors import NPUSIM_THREADS_ENV, usable_cores
from ...tflite import TfliteModel, load_tflite
from ..base import OutputTensor, RunResult, TensorSpec, check_inputs
from . import cpu_side
from .behaviours import DEFAULT, Behaviours
from .container import CUSTOM_CODE, EthosUOp, check_accel_matches, is_vela_model, read_ethos_u_op
from .executor import Executor
from .families import require_simulated, require_simulated_stream
from .u85.executor import U85Executor
from .memory import Memory

# Batches below this run the BLAS single-threaded (all of them, now): the matmuls of one inference
# are small, and waking a second BLAS thread costs more than it saves (25 ms instead of 0.7 ms for
# a 125x276x276 product on a busy 2-core machine); a batch of 64 ran faster single-threaded too
# (102 against 75 inferences/s on DS-CNN-L, u55-32, on the shared machine)
SINGLE_THREAD_BATCH = 1 << 30
# A stateless batch is split across this process's cores, one part per thread, each on its own
# copy of the loaded graph (plans keep per-run buffers, so one copy serves one thread): the heavy
# steps (BLAS matmuls, the compiled kernels, array copies) release the GIL. On the 2-core machine,
# DS-CNN-L u55-32 batch 64: 746 inf/s in one thread, 1,486 in two.
MIN_PART = 4  # inferences per thread: a smaller part does not pay for the hand-over
MAX_THREADS = 4  # each thread holds one more copy of the graph (weights decoded, plans, regions)


def default_threads() -> int:
    """Threads a batch may use: $ETHOS_KWS_NPUSIM_THREADS (set to 1 in local worker processes
    that share the cores), else this process's cores, at most ``MAX_THREADS``."""
    text = os.environ.get(NPUSIM_THREADS_ENV, "").strip()
    if not text:
        return min(MAX_THREADS, usable_cores())
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"${NPUSIM_THREADS_ENV}={text!r}: give a whole number of threads, 1 or more")
    return int(text)


CPU_ONLY_NOTE = "Vela placed no operator on the NPU: the whole model ran on TFLite Micro (CPU side)"


def check_stream_dataflow(op: EthosUOp, executor, mem: Memory, stop_at_first: bool = True) -> list:
    """Replay the stream's accesses from the op's inputs (see ``dataflow``), on every family."""
    inputs = [(t.offset, t.offset + t.nbytes) for t in op.ifms]
    outputs = [(t.name, t.offset, t.offset + t.nbytes, 8 * np.dtype(t.dtype).itemsize) for t in op.ofms]
    return executor.check_dataflow(mem, inputs, outputs, stop_at_first)


def make_executor(payload, behaviours: Behaviours = DEFAULT):
    """The run loop of the stream's NPU family (COP1 product): U55/U65 or U85."""
    return (U85Executor if payload.config.npu == "U85" else Executor)(payload, behaviours)


@dataclass
class _NpuStep:
    op: EthosUOp
    executor: Executor | U85Executor


@dataclass
class _ResourceStep:
    """VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE / CALL_ONCE (see ``cpu_side``)."""

    kind: str
    op: Any  # fb.OperatorT
    subgraph: int


# an ethos-u operator's first inputs: command stream, read-only data, scratch, fast scratch
_NPU_FIXED_INPUTS = 4


def _tensor_name(t) -> str:
    n = t.name
    return n.decode(errors="replace") if isinstance(n, bytes) else str(n)


class _Graph:
    """One subgraph as steps in graph order."""

    def __init__(self, backend: NpuSimBackend, sg_index: int):
        self.index = sg_index
        m, tm = backend.graph, backend.model
        sg = m.subgraphs[sg_index]
        self.tensors = sg.tensors
        self.inputs = [int(i) for i in (sg.inputs if sg.inputs is not None else [])]
        self.outputs = [int(i) for i in (sg.outputs if sg.outputs is not None else [])]
        ops = sg.operators if sg.operators is not None else []
        names = [cpu_side.op_name(m, op) for op in ops]
        readers: dict[int, set[int]] = {}
        for i, op in enumerate(ops):
            for t in op.inputs if op.inputs is not None else []:
                readers.setdefault(int(t), set()).add(i)
        self.constants = {i: tm.tensor_data(i, sg_index) for i, t in enumerate(sg.tensors)
                          if cpu_side._has_data(m, t)}
        self.steps: list = []
        seg: cpu_side.Segment | None = None

        def flush():
            nonlocal seg
            if seg is not None:
                self._close(backend, seg, readers, ops)
                self.steps.append(seg)
            seg = None

        # Persistent tensors: Vela's Regor compiler (seen for U85) lowers a resource variable to
        # plain tensors that share a name ("0:frames") across the graph and its CALL_ONCE init
        # subgraph: an ethos-u operator reads one that no earlier operator wrote, and writes it
        # back. They live between invocations, keyed by name, like the variable they replace.
        self.persistent: set[str] = set()
        written = set(self.inputs) | set(self.constants)
        for i, (op, name) in enumerate(zip(ops, names)):
            if name == f"CUSTOM {CUSTOM_CODE}":
                for t in op.inputs[_NPU_FIXED_INPUTS:] if op.inputs is not None else []:
                    t = int(t)
                    if t >= 0 and t not in written and not sg.tensors[t].isVariable:
                        self.persistent.add(_tensor_name(sg.tensors[t]))
            written.update(int(t) for t in (op.outputs if op.outputs is not None else []))

        for i, (op, name) in enumerate(zip(ops, names)):
            if name == f"CUSTOM {CUSTOM_CODE}":
                flush()
                eop = read_ethos_u_op(tm, tm.operators(sg_index)[i], sg_index)
                self.steps.append(_NpuStep(eop, make_executor(eop.payload, backend.behaviours)))
            elif name in cpu_side.RESOURCE_OPS:
                flush()
                self.steps.append(_ResourceStep(name, op, sg_index))
            elif name in cpu_side.CONTROL_FLOW_OPS:
                raise NotModelledError(f"operator {i} ({name}): control flow on the CPU side is not modelled")
            else:
                if seg is None:
                    seg = cpu_side.Segment([], [])
                seg.ops.append(i)
                seg.names.append(name)
        flush()

    def _close(self, backend, seg: cpu_side.Segment, readers, ops) -> None:
        inside = set(seg.ops)
        produced, consumed = [], []
        for i in seg.ops:
            for t in ops[i].inputs if ops[i].inputs is not None else []:
                t = int(t)
                if t >= 0 and t not in consumed:
                    consumed.append(t)
            produced += [int(t) for t in ops[i].outputs]
        for t in consumed:
            tt = self.tensors[t]
            if t in produced or t in self.constants:
                continue
            if tt.isVariable:
                seg.stateful = True
                continue
            seg.inputs.append(t)
        seg.outputs = [t for t in produced
                       if (readers.get(t, set()) - inside) or t in self.outputs]
        if not seg.outputs:  # only side effects: keep the last result so TFLM has an output
            seg.outputs = [produced[-1]]
        cpu_side.open_segment(backend.graph, self.index, seg)
        seg.out_specs = [(cpu_side.tensor_shape(self.tensors[t]), cpu_side.tensor_dtype(self.tensors[t]))
                         for t in seg.outputs]

    @property
    def npu_steps(self) -> list[_NpuStep]:
        return [s for s in self.steps if isinstance(s, _NpuStep)]

    @property
    def stateful(self) -> bool:
        npu_state = bool(self.persistent) or any(self.tensors[t.index].isVariable
                                                 for s in self.npu_steps for t in s.op.ifms)
        return npu_state or any(isinstance(s, _ResourceStep) or (isinstance(s, cpu_side.Segment) and s.stateful)
                                for s in self.steps)


class NpuSimBackend:
    name = "npu-sim"

    def __init__(self, compiled_path: str | os.PathLike, behaviours: Behaviours = DEFAULT,
                 original_model: TfliteModel | None = None, extra: dict[str, Any] | None = None,
                 warm_up: bool = True, cpu_only_ok: bool = False, threads: int | None = None):
        self._twin_args = (compiled_path, behaviours, original_model, extra, cpu_only_ok)
        self._threads = None if threads is None else max(1, threads)
        self._twins: list[NpuSimBackend] = []  # copies of this graph for the other threads, made at the first batch
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self.model = load_tflite(compiled_path)
        has_npu = is_vela_model(self.model)
        if not has_npu and not cpu_only_ok:
            raise ModelError(f"{compiled_path}: not a Vela-compiled model (no '{CUSTOM_CODE}' operator)")
        self.behaviours = behaviours
        self._blas: threadpoolctl.ThreadpoolController | None = None  # made at the first small batch
        # trace hook: called with (executor, command) before each operation runs (ethos_kws.npu_trace)
        self.trace: Callable[[Executor, Any], None] | None = None
        self.graph = fb.ModelT.InitFromPackedBuf(self.model.data, 0)
        self.resources = cpu_side.ResourceVariables()
        # variable tensors an ethos-u operator reads (LSTM states): the NPU updates them in place
        # in the arena; their values persist between invocations as TFLM's variable tensors do
        self.variables: dict[int, np.ndarray] = {}
        self.persistent: dict[str, np.ndarray] = {}  # Regor's persistent tensors, by name (_Graph)
        self._graphs: dict[int, _Graph] = {0: _Graph(self, 0)}
        self._persistent_names = set(self._graphs[0].persistent)  # grows as subgraphs load
        main = self._graphs[0]
        self.steps = main.steps
        for step in main.npu_steps:  # validate every stream now, not at the first inference
            mem = self._memory(step, 1)
            step.executor.prepare(mem)
            check_stream_dataflow(step.op, step.executor, mem)
        self._inputs, self._outputs = main.inputs, main.outputs
        self._sha = (original_model or self.model).sha256
        self._extra = dict(extra or {})
        cfgs = {e.config.name for e in self.executors}
        if cfgs:
            self._extra.setdefault("accel", ",".join(sorted(cfgs)))
        cpu = [s.describe() for s in main.steps if isinstance(s, cpu_side.Segment)]
        cpu += [s.kind for s in main.steps if isinstance(s, _ResourceStep)]
        if cpu:
            self._extra["cpu_operators"] = cpu
        if not has_npu:
            self._extra["note"] = CPU_ONLY_NOTE
        self.stateful = main.stateful
        if warm_up:  # decode weights and scales now, so run() times an inference, not a load
            try:
                self.run_batch([[np.zeros(spec.shape, dtype=spec.dtype) for spec in self.input_specs]])
            except InputNotModelledError:
                pass  # zeros are not modelled (DIV by zero); the plans are built, real inputs decide
            self.reset()

    @property
    def threads(self) -> int:
        """Threads a batch is split over: as given, else read when a batch runs (a forked local
        worker has its own share of the cores)."""
        return default_threads() if self._threads is None else self._threads

    def _blas_threads(self, batch: int):
        """Context: the BLAS thread limit for a batch (the process's setting is restored after)."""
        if batch >= SINGLE_THREAD_BATCH:
            return contextlib.nullcontext()
        if self._blas is None:
            self._blas = threadpoolctl.ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def reset(self) -> None:
        """Back to the state after loading: resource variables cleared, CALL_ONCE pending,
        variable tensors of the CPU side zeroed."""
        for twin in self._twins:
            twin.reset()
        self.resources.reset()
        self.variables.clear()
        self.persistent.clear()
        for g in self._graphs.values():
            for s in g.steps:
                if isinstance(s, cpu_side.Segment) and s.stateful:
                    s.interpreter.reset()

    @cached_property
    def input_specs(self) -> list[TensorSpec]:
        return self.model.input_specs  # read from the flatbuffer once: run_batch checks every item

    @cached_property
    def output_specs(self) -> list[TensorSpec]:
        return self.model.output_specs

    @property
    def step_names(self) -> list[str]:
        """The main graph in execution order: "ethos-u" for an NPU operator, the operator names
        of a CPU segment joined by "+", or the resource operator."""
        return [CUSTOM_CODE if isinstance(s, _NpuStep) else s.kind if isinstance(s, _ResourceStep)
                else s.describe() for s in self.steps]

    @property
    def executors(self) -> list[Executor]:
        return [s.executor for s in self._graphs[0].npu_steps]

    def _check_inputs(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return check_inputs(inputs, self.input_specs)

    @staticmethod
    def _memory(step: _NpuStep, batch: int) -> Memory:
        op, cfg = step.op, step.executor.config
        # SHRAM is per core: each core of a 2-core U65 loads its own LUTs
        cores = cfg.accelerator.cores
        return Memory.create(batch, op.read_only, op.scratch_bytes, op.scratch_fast_bytes,
                             op.fast_is_scratch, cfg.shram_bytes // cores)

    def _run_npu(self, g: _Graph, step: _NpuStep, values: dict[int, np.ndarray], batch: int) -> None:
        op = step.op
        mem = self._memory(step, batch)
        scratch = mem.region(1)
        state = [t for t in op.ifms if g.tensors[t.index].isVariable]
        for t in op.ifms:
            if t in state:  # TFLM starts a variable tensor at its zero point
                zp = cpu_side.tensor_zero_point(g.tensors[t.index])
                x = self.variables.get(t.index)
                data = x if x is not None else np.full((batch,) + t.shape, zp, dtype=t.dtype)
            elif t.index not in values and _tensor_name(g.tensors[t.index]) in g.persistent:
                data = self.persistent.get(_tensor_name(g.tensors[t.index]))
                if data is None:
                    raise ModelError(f"persistent tensor {_tensor_name(g.tensors[t.index])!r} is read before "
                                     "its init subgraph (CALL_ONCE) wrote it")
            else:
                data = self._value(g, values, t.index, batch)
            data = np.ascontiguousarray(data.astype(t.dtype, copy=False))
            scratch[:, t.offset : t.offset + t.nbytes] = data.reshape(batch, -1).view(np.uint8)
        trace = self.trace
        step.executor.run(mem, trace=None if trace is None else (lambda cmd: trace(step.executor, cmd)))
        for t in state:
            raw = np.ascontiguousarray(scratch[:, t.offset : t.offset + t.nbytes])
            self.variables[t.index] = raw.view(t.dtype).reshape((batch,) + t.shape).copy()
        keep = self._persistent_names
        for t in op.ofms:
            raw = np.ascontiguousarray(scratch[:, t.offset : t.offset + t.nbytes])
            values[t.index] = raw.view(t.dtype).reshape((batch,) + t.shape)
            name = _tensor_name(g.tensors[t.index])
            if name in keep:
                self.persistent[name] = values[t.index].copy()

    def _graph(self, index: int) -> _Graph:
        if index not in self._graphs:
            if not 0 < index < len(self.graph.subgraphs):
                raise ModelError(f"CALL_ONCE names subgraph {index}, which the model does not have")
            self._graphs[index] = _Graph(self, index)
            self._persistent_names |= self._graphs[index].persistent
        return self._graphs[index]

    def _value(self, g: _Graph, values: dict, t: int, batch: int) -> np.ndarray:
        if t in values:
            return values[t]
        if t in g.constants:
            c = np.asarray(g.constants[t])
            return np.broadcast_to(c, (batch,) + c.shape)
        raise ModelError(f"tensor {self.graph.subgraphs[g.index].tensors[t].name!r} is read before it is written")

    def _run_resource(self, g: _Graph, step: _ResourceStep, values: dict, handles: dict, batch: int) -> None:
        op, res = step.op, self.resources
        if step.kind == "VAR_HANDLE":
            handles[int(op.outputs[0])] = res.key(op)
        elif step.kind == "READ_VARIABLE":
            t = g.tensors[int(op.outputs[0])]
            values[int(op.outputs[0])] = res.read(handles[int(op.inputs[0])], cpu_side.tensor_shape(t),
                                                  cpu_side.tensor_dtype(t), batch, cpu_side.tensor_zero_point(t))
        elif step.kind == "ASSIGN_VARIABLE":
            res.assign(handles[int(op.inputs[0])], self._value(g, values, int(op.inputs[1]), batch))
        else:  # CALL_ONCE: the init subgraph runs at the first invocation after load or reset
            index = int(op.builtinOptions.initSubgraphIndex)
            if index not in res.called_once:
                res.called_once.add(index)
                self._run_graph(self._graph(index), [], batch)

    def _run_graph(self, g: _Graph, batched_inputs: list[np.ndarray], batch: int) -> list[np.ndarray]:
        values = dict(zip(g.inputs, batched_inputs))
        handles: dict[int, tuple[str, str]] = {}
        for step in g.steps:
            if isinstance(step, _NpuStep):
                self._run_npu(g, step, values, batch)
            elif isinstance(step, _ResourceStep):
                self._run_resource(g, step, values, handles, batch)
            else:
                for t in step.inputs:
                    values[t] = self._value(g, values, t, batch)
                cpu_side.run_segment(step, values, batch, step.out_specs)
        return [self._value(g, values, i, batch) for i in g.outputs]

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """Outputs for many input sets. A stateless graph runs them side by side; a stateful one
        (resource or variable tensors) runs them as consecutive steps of one stream."""
        if not batch:
            return []
        checked = [self._check_inputs(item) for item in batch]
        if self.stateful:
            outs = []
            with self._blas_threads(1):
                for item in checked:
                    o = self._run_graph(self._graphs[0], [x[None] for x in item], 1)
                    outs.append([np.array(x[0]) for x in o])
            return outs
        with self._blas_threads(len(checked)):  # once for every thread: the limit is per process
            parts = self._split(checked)
            if len(parts) == 1:
                return self._run_stacked(checked)
            futures = [self._thread_pool().submit(twin._run_stacked, part)
                       for twin, part in zip(self._twins, parts[1:])]
            try:
                first = self._run_stacked(parts[0])
            finally:
                wait(futures)  # no thread is left running on a failure here
            return first + [out for f in futures for out in f.result()]

    def _split(self, checked: list) -> list[list]:
        """The parts of a stateless batch, one per thread (one part when it does not pay)."""
        n = min(self.threads, len(checked) // MIN_PART)
        if n < 2 or self.trace is not None:
            return [checked]  # a trace hook sees the commands in stream order: one thread
        while len(self._twins) < n - 1:
            path, behaviours, original, extra, cpu_only_ok = self._twin_args
            twin = NpuSimBackend(path, behaviours, original, extra, warm_up=False, cpu_only_ok=cpu_only_ok,
                                 threads=1)
            if twin.model.sha256 != self.model.sha256:  # the file changed since this backend loaded it
                raise ModelError(f"{path} changed on disk after it was loaded; load it again")
            self._twins.append(twin)
        size = -(-len(checked) // n)
        return [checked[k : k + size] for k in range(0, len(checked), size)]

    def _thread_pool(self) -> ThreadPoolExecutor:
        # a forked child (a local worker process) inherits the pool object but not its threads:
        # work submitted there would never run, so each process makes its own
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max(MAX_THREADS, self.threads) - 1, thread_name_prefix="npu-sim")
            self._pool_pid = os.getpid()
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def _run_stacked(self, checked: list) -> list[list[np.ndarray]]:
        """One stateless batch of checked inputs side by side, on this copy of the graph."""
        stacked = [np.stack([item[k] for item in checked]) for k in range(len(self.input_specs))]
        outs = self._run_graph(self._graphs[0], stacked, len(checked))
        return [[o[b] for o in outs] for b in range(len(checked))]

    def run(self, inputs: Sequence[np.ndarray]) -> RunResult:
        t0 = time.perf_counter()
        outs = self.run_batch([inputs])[0]
        ms = (time.perf_counter() - t0) * 1000.0
        tensors = tuple(OutputTensor(spec, o.reshape(spec.shape)) for spec, o in zip(self.output_specs, outs))
        return RunResult(self.name, self._sha, tensors, inference_ms=ms, extra=dict(self._extra))


def compile_with_vela(model_path: str | os.PathLike, accel: str, out_dir: str | os.PathLike | None = None,
                      legacy_core: bool = False, system_config: str | None = None,
                      memory_mode: str | None = None, vela_ini: str | os.PathLike | None = None) -> Path:
    """The compiled ``*_vela.tflite`` for ``accel``, through the cached Vela adapter (copied into
    ``out_dir`` when given). ``vela_ini``: the user's --config ini."""
    from ...vela import compile_model
    from ...vela_ini import load_user_ini

    res = compile_model(model_path, accel, system_config=system_config, memory_mode=memory_mode,
                        legacy_core=legacy_core, out_dir=out_dir, user_ini=load_user_ini(vela_ini))
    return Path(res.compiled_model)


def make_backend(model_path: str | os.PathLike, *, accel: str | None = None, legacy_core: bool | None = False,
                 system_config: str | None = None, memory_mode: str | None = None,
                 behaviours: Behaviours | None = None, litert_fc_rounding: bool = False,
                 vela_ini: str | os.PathLike | None = None) -> NpuSimBackend:
    """Registry factory: run a ``*_vela.tflite`` directly; compile any other model for ``accel``
    (default u55-128) first. These keyword parameters are the backend's options."""
    model = load_tflite(model_path)
    behaviours = _behaviours(behaviours, litert_fc_rounding)
    if is_vela_model(model):  # compiled here or elsewhere: it runs on its COP1 header's configuration
        require_simulated_stream(model, str(model_path))
        if legacy_core:
            raise UserError("--legacy-core selects a Vela compiler; this model is already compiled")
        header = check_accel_matches(model, accel)
        return NpuSimBackend(model_path, behaviours, extra={"accel": header, "compiled_model": str(model_path)})
    accel = accel or "u55-128"
    require_simulated(get_accelerator(accel))  # before Vela runs for a stream we cannot execute
    legacy = bool(legacy_core)
    compiled = compile_with_vela(model_path, accel, legacy_core=legacy,
                                 system_config=system_config, memory_mode=memory_mode, vela_ini=vela_ini)
    return NpuSimBackend(compiled, behaviours, original_model=model, cpu_only_ok=True,
                         extra={"accel": accel, "legacy_core": legacy, "compiled_model": str(compiled)})


def _behaviours(behaviours: Behaviours | None, litert_fc_rounding: bool) -> Behaviours:
    behaviours = behaviours or DEFAULT
    return dataclasses.replace(behaviours, litert_fc_rounding=True) if litert_fc_rounding else behaviours


def backend_for_compile(compiled_path: str | os.PathLike, accel: str, *, legacy_core: bool = False,
                        behaviours: Behaviours | None = None, litert_fc_rounding: bool = False) -> NpuSimBackend:
    """The backend ``make_backend`` builds after compiling, for Vela's output of a compile made
    elsewhere (the client's compile seam, sent to a parity batch on a Dask worker): nothing is
    compiled again. A model Vela left entirely on the CPU (no ethos-u operator) runs there."""
    require_simulated(get_accelerator(accel))
    return NpuSimBackend(compiled_path, _behaviours(behaviours, litert_fc_rounding), cpu_only_ok=True,
                         extra={"accel": accel, "legacy_core": bool(legacy_core), "compiled_model": str(compiled_path)})
