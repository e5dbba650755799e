"""Stripes of one layer run as one matmul (npusim.stripes): the grouping rules on synthetic plans
(what may come between two stripes), and DS-CNN-L compiled by Vela, whose OFM-depth stripes are
grouped, giving the same bytes as the plans run one by one."""

from __future__ import annotations

import numpy as np
import pytest

from ethos_kws.backends.npusim import stripes
from ethos_kws.backends.npusim.backend import NpuSimBackend, compile_with_vela
from ethos_kws.backends.npusim.dataflow import Access

IFM = np.arange(0, 64)  # byte offsets of the shared IFM in region 1


class Stripe:
    """Plan-shaped test double: a CONV stripe's accesses (IFM, weights) -> OFM."""

    def __init__(self, ofm: slice, weights: slice = slice(1000, 1010), ifm=IFM, key=("conv",)):
        self.ifm_index, self.ofm, self.weights, self.key = ifm, ofm, weights, key

    def stripe_key(self):
        return self.key

    def accesses(self):
        return [Access("IFM", 1, self.ifm_index), Access("weights", 1, self.weights)], [Access("OFM", 1, self.ofm)]


class Dma:
    is_copy = True

    def __init__(self, src: slice, dst: slice):
        self.src, self.dst = src, dst

    def accesses(self):
        return [Access("DMA source", 0, self.src)], [Access("DMA destination", 1, self.dst)]


class Pool:
    def accesses(self):
        return [Access("IFM", 1, slice(2000, 2010))], [Access("OFM", 1, slice(3000, 3010))]


def weights_dma():
    return Dma(slice(0, 10), slice(1000, 1010))


def test_stripes_with_weight_dmas_between_them_are_one_group():
    plans = [weights_dma(), Stripe(slice(100, 110)), weights_dma(), Stripe(slice(110, 120)),
             weights_dma(), Stripe(slice(120, 130)), Pool()]
    assert stripes._groups(plans) == [[1, 3, 5]]


@pytest.mark.parametrize("between,why", [
    (Dma(slice(0, 4), slice(60, 64)), "a DMA writes IFM bytes"),
    (Dma(slice(0, 4), slice(105, 106)), "a DMA writes the first stripe's OFM"),
    (Pool(), "another operation comes between"),
])
def test_what_comes_between_can_split_a_group(between, why):
    plans = [Stripe(slice(100, 110)), between, Stripe(slice(110, 120))]
    assert stripes._groups(plans) == [], why


def test_a_read_of_an_earlier_stripe_s_ofm_ends_the_group():
    reads_ofm = Dma(slice(0, 4), slice(500, 504))
    reads_ofm.accesses = lambda: ([Access("DMA source", 1, slice(102, 104))], [Access("DMA destination", 1, slice(500, 504))])
    assert stripes._groups([Stripe(slice(100, 110)), reads_ofm, Stripe(slice(110, 120))]) == []
    weights_in_ofm = Stripe(slice(110, 120), weights=slice(105, 108))
    assert stripes._groups([Stripe(slice(100, 110)), weights_in_ofm]) == []


def test_members_share_the_ifm_bytes_and_key_and_do_not_write_it():
    assert stripes._groups([Stripe(slice(100, 110)), Stripe(slice(110, 120), ifm=IFM + 1)]) == []
    assert stripes._groups([Stripe(slice(100, 110)), Stripe(slice(110, 120), key=("other",))]) == []
    assert stripes._groups([Stripe(slice(100, 110)), Stripe(slice(60, 70))]) == []  # OFM over the IFM
    assert stripes._groups([Stripe(slice(60, 70)), Stripe(slice(110, 120))]) == []
    # a group ends where a rule breaks; the stripes after it may form the next group
    plans = [Stripe(slice(100, 110)), Stripe(slice(110, 120)), Dma(slice(0, 4), slice(0, 4)),
             Stripe(slice(120, 130)), Stripe(slice(130, 140))]
    assert stripes._groups(plans) == [[0, 1], [3, 4]]


# u55-64 and u85-256 stripe every layer by OFM depth, u65-512 only the first
@pytest.mark.parametrize("accel,layers", [("u55-64", 6), ("u65-512", 1), ("u85-256", 6)])
def test_dscnn_groups_give_the_bytes_of_the_plain_schedule(int8io_model, tmp_path, accel, layers):
    sim = NpuSimBackend(compile_with_vela(int8io_model, accel, tmp_path / accel))
    grouped = [g for ex in sim.executors for g in stripes._groups([p for _c, p in ex._plans])]
    assert len(grouped) == layers and sum(len(g) for g in grouped) >= 2 * layers
    rng = np.random.default_rng(5)
    batch = [[rng.integers(-128, 128, (1, 490), dtype=np.int8)] for _ in range(6)]
    fused = sim.run_batch(batch)
    for ex in sim.executors:
        ex._steps = [plan.run for _cmd, plan in ex._plans]
    plain = sim.run_batch(batch)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a[0], b[0])
    assert len({a[0].tobytes() for a in fused}) > 1  # the inputs give different scores
