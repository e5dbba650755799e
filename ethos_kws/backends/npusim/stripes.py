"""A layer's stripes as one matmul: the run schedule of a command stream.

Vela splits a convolution whose weights do not fit the NPU's buffers into OFM-depth stripes: one
CONV per slice of output channels, each reading the same IFM with its own weight stream (DMA'd
just before it on U55/U65). Run one by one, every stripe converts the same IFM again and runs a
narrow matmul. Here consecutive stripes are grouped when the stream proves, at load, that grouping
cannot change a byte of the result:

* every member reads the same IFM bytes the same way (``stripe_key`` and the byte index);
* nothing from the first member up to the last writes a byte of that IFM (so reading it at the
  last member reads what every member read);
* no operation between a member and the last one reads or writes that member's OFM (so writing
  the OFMs at the last member, in stream order, leaves the memory as the stream does);
* only DMAs come between members, and the members' output stages read nothing at write time.

Each member still decodes its weights and scales at its own place in the stream (a DMA may have
just brought them), so the group runs with exactly the operands the stripes would. At the last
member the IFM is read once; compiled output stages with one zero point and clamp run as one
matmul and one output stage over all the channels, otherwise each member computes on the shared
IFM in turn. A trace (per-command callback) runs the plain schedule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .kernels import IntegerStage
from .ops.conv import accumulate

Step = Callable[[object], None]  # run(mem)


class _Masks:
    """Byte masks per region, grown as needed: what a group must not see written or read."""

    def __init__(self):
        self._masks: dict = {}

    def mark(self, region, where) -> None:
        hi = _end(where)
        mask = self._masks.get(region)
        if mask is None or mask.size < hi:
            grown = np.zeros(max(hi, 0 if mask is None else mask.size), dtype=bool)
            if mask is not None:
                grown[: mask.size] = mask
            self._masks[region] = mask = grown
        mask[where] = True

    def hit(self, region, where) -> bool:
        mask = self._masks.get(region)
        if mask is None:
            return False
        if isinstance(where, slice):
            return bool(mask[where].any())
        idx = np.asarray(where).reshape(-1)
        idx = idx[idx < mask.size]
        return bool(mask[idx].any())


def _end(where) -> int:
    if isinstance(where, slice):
        return where.stop
    return int(np.max(where)) + 1 if np.size(where) else 0


def _stripe_key(plan):
    key = getattr(plan, "stripe_key", None)
    return None if key is None else key()


def _member_of(first, key, plan) -> bool:
    return _stripe_key(plan) == key and np.array_equal(plan.ifm_index, first.ifm_index)


def _groups(plans: list) -> list[list[int]]:
    """Index lists of the stripe groups (two or more members) in ``plans``."""
    groups, i = [], 0
    while i < len(plans):
        first = plans[i]
        key = _stripe_key(first)
        if key is None:
            i += 1
            continue
        ifm, ofms = _Masks(), _Masks()
        reads, writes = first.accesses()
        for a in reads:
            if a.what == "IFM":
                ifm.mark(a.region, a.where)
        for a in writes:  # (an OFM over its own IFM: the next member's IFM read hits it)
            ofms.mark(a.region, a.where)
        group = [i]
        for j in range(i + 1, len(plans)):
            plan = plans[j]
            member = _member_of(first, key, plan)
            if not member and not getattr(plan, "is_copy", False):
                break
            reads, writes = plan.accesses()
            if any(ofms.hit(a.region, a.where) for a in reads):
                break  # it reads an OFM the group has not written yet
            if any(ifm.hit(a.region, a.where) or (not member and ofms.hit(a.region, a.where)) for a in writes):
                break  # it changes the IFM, or an OFM the group will write after it
            if member:
                group.append(j)
                for a in writes:
                    ofms.mark(a.region, a.where)
        if len(group) > 1:
            groups.append(group)
        i = group[-1] + 1
    return groups


class StripeGroup:
    """The members of one group (see the module docstring) and the fused operands, cached by the
    identity of the members' operands (each member caches its own by the bytes it decoded)."""

    def __init__(self, members: list):
        self.members = members
        self._operands: list = [None] * len(members)
        self._key: tuple | None = None
        self._fused = None

    def stash(self, index: int) -> Step:
        member = self.members[index]

        def step(mem) -> None:
            self._operands[index] = member.operands(mem)
        return step

    def _fusion(self, operands: list):
        if self._key is not None and all(a is b for a, b in zip(self._key, operands)):
            return self._fused
        wmats, stages = [o[0] for o in operands], [o[-1] for o in operands]
        fused = None
        if all(w.dtype == wmats[0].dtype for w in wmats):
            stage = IntegerStage.concat(stages)
            if stage is not None:
                fused = (np.ascontiguousarray(np.concatenate(wmats, axis=1)), stage)
        self._key, self._fused = tuple(operands), fused
        return fused

    def run(self, mem) -> None:
        operands = self._operands
        last = self.members[-1]
        operands[-1] = last.operands(mem)
        fused = self._fusion(operands)
        if fused is None:
            for member, ops in zip(self.members, operands):
                member.compute(mem, member.read_ifm(mem, ops), ops)
            return
        wmat, stage = fused
        xp = last.read_ifm(mem, operands[-1])
        acc = accumulate(xp, wmat, last.k, last.h, last.w, wmat.shape[1], last.ifm_depth, False, exact=False)
        values = stage.apply(acc)
        first = 0
        for member in self.members:
            member.out.write(mem, member.ofm_io, values[..., first : first + member.c])
            first += member.c


def schedule(plans: list) -> list[Step]:
    """One step per plan, in stream order: its own ``run``, or its part of a stripe group."""
    steps: list[Step] = [plan.run for plan in plans]
    for indices in _groups(plans):
        group = StripeGroup([plans[i] for i in indices])
        for n, i in enumerate(indices[:-1]):
            steps[i] = group.stash(n)
        steps[indices[-1]] = group.run
    return steps
