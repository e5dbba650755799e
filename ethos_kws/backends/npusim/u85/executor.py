"""The U85 run loop: the U55 executor's structure (sticky registers, plans built once, every
memory access checked at build time) with U85 decoding, U85 plans and the U85 memories (LUT RAM,
chain buffers), and the same data-flow check at load (``dataflow``; LUT RAM and chain buffers are
regions there)."""

from __future__ import annotations

from collections.abc import Callable

from ....errors import CommandStreamError, NotModelledError
from ..behaviours import DEFAULT, Behaviours
from ..commands import Command, require_stop
from ..container import CommandPayload
from ..dataflow import Violation, check_dataflow
from ..executor import MAX_COMMANDS, MAX_OPERATIONS, at_command, run_steps
from ..memory import Memory
from ..registers import RegisterFile
from ..stripes import schedule
from .commands import decode_u85_stream
from .ops import Context, ConvPlan, DmaPlan, ElementwisePlan, ResizePlan, ensure_regions, not_modelled, pool_plan

SYNC_OPS = frozenset({"NPU_OP_DMA_WAIT", "NPU_OP_KERNEL_WAIT", "NPU_OP_PMU_MASK", "NPU_OP_IRQ"})
PLANS: dict[str, Callable] = {
    "NPU_OP_CONV": lambda r, ctx, p: ConvPlan(r, ctx, False, p),
    "NPU_OP_DEPTHWISE": lambda r, ctx, p: ConvPlan(r, ctx, True, p),
    "NPU_OP_POOL": lambda r, ctx, p: pool_plan(r, ctx, p & 0x7),
    "NPU_OP_ELEMENTWISE": lambda r, ctx, p: ElementwisePlan(r, ctx, p & 0x3F),
    "NPU_OP_DMA_START": lambda r, ctx, p: DmaPlan(r, ctx),
    "NPU_OP_RESIZE": lambda r, ctx, p: ResizePlan(r, ctx, p & 3),
}
NOT_MODELLED_OPS = {
    "NPU_OP_BRANCH": lambda p: "NPU_OP_BRANCH (control flow)",
}


class U85Executor:
    def __init__(self, payload: CommandPayload, behaviours: Behaviours = DEFAULT,
                 max_commands: int = MAX_COMMANDS):
        self.payload = payload
        self.behaviours = behaviours  # the U55 switches that hold on U85 too (see u85/ops)
        self.commands = require_stop(decode_u85_stream(payload.words, max_commands))
        self._plans: list | None = None
        self._steps: list = []
        self._indices: list[int] = []  # position of each plan's command in ``commands``
        self._regions: dict[str, int] = {}

    @property
    def config(self):
        return self.payload.config

    def _plan(self, cmd: Command, r: RegisterFile, ctx: Context):
        with at_command(cmd):
            if cmd.name in PLANS:
                return PLANS[cmd.name](r, ctx, cmd.param)
            if cmd.name in NOT_MODELLED_OPS:
                raise not_modelled(NOT_MODELLED_OPS[cmd.name](cmd.param))
        if cmd.name in SYNC_OPS:
            return None
        raise NotModelledError(f"operation {cmd.name} at stream byte {cmd.offset} is not modelled")

    def prepare(self, mem: Memory) -> None:
        if self._plans is not None:
            return
        acc = self.config.accelerator
        ctx = Context(mem, acc.macs_per_cycle, acc.cores, self.behaviours)
        plans, indices = [], []
        r = RegisterFile()
        for index, cmd in enumerate(self.commands):
            if cmd.name == "NPU_OP_STOP":
                break
            if cmd.is_operation:
                if len(plans) >= MAX_OPERATIONS:
                    raise CommandStreamError(f"more than {MAX_OPERATIONS} operations in the stream (cap)")
                plan = self._plan(cmd, r, ctx)
                if plan is not None:
                    plans.append((cmd, plan))
                    indices.append(index)
            else:
                r.write(cmd)
        self._regions = dict(ctx.regions)
        self._indices, self._plans = indices, plans
        self._steps = schedule([plan for _cmd, plan in plans])

    def check_dataflow(self, mem: Memory, inputs, outputs, stop_at_first: bool = True) -> list[Violation]:
        """Every byte read was written first, LUTs included; every output byte is written."""
        self.prepare(mem)
        plans = [(i, cmd, plan) for i, (cmd, plan) in zip(self._indices, self._plans)]
        return check_dataflow(mem, plans, inputs, outputs, stop_at_first)

    @property
    def operations(self) -> list[Command]:
        return [cmd for cmd, _plan in self._plans or ()]

    def run(self, mem: Memory, trace: Callable[[Command], None] | None = None) -> None:
        self.prepare(mem)
        ensure_regions(mem, self._regions)
        run_steps(self._plans, self._steps, mem, trace)
