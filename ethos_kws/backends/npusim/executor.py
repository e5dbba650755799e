"""The run loop: registers are written in order; each operation becomes a plan, built once.

Plans (index arrays, decoded weights and scales) depend only on the register file at their
position in the stream, so they are built on the first run and reused for every later inference
and batch item. The stream has no branches; decoding caps the command count, every plan checks
its memory accesses before it runs, so a malformed stream ends in ``CommandStreamError`` and a
valid one using something not modelled in ``NotModelledError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ...errors import CommandStreamError, NotModelledError
from .behaviours import DEFAULT, Behaviours
from .commands import Command, decode_stream, require_stop
from .container import CommandPayload
from .dataflow import Violation, check_dataflow
from .memory import Memory
from .ops.conv import ConvPlan
from .ops.dma import DmaPlan
from .ops.elementwise import ElementwisePlan
from .ops.pool import PoolPlan
from .registers import RegisterFile
from .stripes import schedule

MAX_COMMANDS = 1 << 20
MAX_OPERATIONS = 1 << 16  # bounds run time: a real network has hundreds or a few thousand
# operations that only order work in time (a sequential model completes everything in order)
SYNC_OPS = frozenset({"NPU_OP_DMA_WAIT", "NPU_OP_KERNEL_WAIT", "NPU_OP_PMU_MASK", "NPU_OP_IRQ"})


def _num_cores(r: RegisterFile, payload: CommandPayload) -> int:
    n = r.param("PARALLEL_MODE") + 1
    cores = payload.config.accelerator.cores
    if n > cores:
        raise CommandStreamError(f"PARALLEL_MODE {n - 1} on a {cores}-core {payload.config.name}")
    return n


@contextmanager
def at_command(cmd: Command) -> Iterator[None]:
    """Name the operation in every error raised while planning or running it. A numpy error from a
    register combination no valid stream produces becomes a ``CommandStreamError``, never a crash;
    ``NotModelledError`` keeps its kind."""
    where = f"{cmd.name} at stream byte {cmd.offset}"
    try:
        yield
    except (CommandStreamError, NotModelledError) as e:
        raise type(e)(f"{where}: {e}") from None
    except (ValueError, IndexError, OverflowError, MemoryError) as e:
        raise CommandStreamError(f"{where}: unsupported register values ({e})") from None


def _make_plan(cmd: Command, r: RegisterFile, mem: Memory, payload: CommandPayload,
               behaviours: Behaviours):
    name = cmd.name
    with at_command(cmd):
        if name == "NPU_OP_CONV":
            return ConvPlan(r, mem, payload.config, behaviours, False, _num_cores(r, payload))
        if name == "NPU_OP_DEPTHWISE":
            return ConvPlan(r, mem, payload.config, behaviours, True, _num_cores(r, payload))
        if name == "NPU_OP_POOL":
            return PoolPlan(r, mem, cmd.param, behaviours)
        if name == "NPU_OP_ELEMENTWISE":
            return ElementwisePlan(r, mem, cmd.param, behaviours)
        if name == "NPU_OP_DMA_START":
            return DmaPlan(r, mem)
    if name in SYNC_OPS:
        return None
    raise NotModelledError(f"operation {name} at stream byte {cmd.offset} is not modelled")


class Executor:
    def __init__(self, payload: CommandPayload, behaviours: Behaviours = DEFAULT,
                 max_commands: int = MAX_COMMANDS):
        self.payload = payload
        self.behaviours = behaviours
        self.commands = require_stop(decode_stream(payload.words, max_commands))
        self._plans: list[tuple[Command, object]] | None = None
        self._steps: list = []  # how run() executes the plans (``stripes.schedule``)
        self._indices: list[int] = []  # position of each plan's command in ``commands``

    @property
    def config(self):
        return self.payload.config

    def _build(self, mem: Memory) -> list:
        plans = []
        r = RegisterFile()
        for index, cmd in enumerate(self.commands):
            if cmd.name == "NPU_OP_STOP":
                break
            if cmd.is_operation:
                if len(plans) >= MAX_OPERATIONS:
                    raise CommandStreamError(f"more than {MAX_OPERATIONS} operations in the stream (cap)")
                plan = _make_plan(cmd, r, mem, self.payload, self.behaviours)
                if plan is not None:
                    plans.append((cmd, plan))
                    self._indices.append(index)
            else:
                r.write(cmd)
        return plans

    def prepare(self, mem: Memory) -> None:
        """Check every operation against the register file and region sizes; build the plans."""
        if self._plans is None:
            self._indices = []
            self._plans = self._build(mem)
            self._steps = schedule([plan for _cmd, plan in self._plans])

    def check_dataflow(self, mem: Memory, inputs, outputs, stop_at_first: bool = True) -> list[Violation]:
        """Every byte read was written first; every output byte is written (see ``dataflow``)."""
        self.prepare(mem)
        plans = [(i, cmd, plan) for i, (cmd, plan) in zip(self._indices, self._plans)]
        return check_dataflow(mem, plans, inputs, outputs, stop_at_first)

    @property
    def operations(self) -> list[Command]:
        return [cmd for cmd, _plan in self._plans or ()]

    def run(self, mem: Memory, trace: Callable[[Command], None] | None = None) -> None:
        self.prepare(mem)
        run_steps(self._plans, self._steps, mem, trace)


def run_steps(plans: list, steps: list, mem: Memory, trace: Callable[[Command], None] | None) -> None:
    """The schedule (``stripes``), or with a trace every plan on its own, each named in errors."""
    if trace is None:
        # one try around the loop, not a context per step: its set-up cost was a tenth of a
        # small model's inference; the failing step is known by its index all the same
        i = 0
        try:
            for i, step in enumerate(steps):
                step(mem)
        except Exception:
            with at_command(plans[i][0]):
                raise
        return
    for cmd, plan in plans:
        trace(cmd)
        with at_command(cmd):
            plan.run(mem)
