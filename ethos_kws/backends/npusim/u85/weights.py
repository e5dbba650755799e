"""U85 weight streams: the per-core weight traversal of regor's U85 weight encoder, inverted.

The compression is the same lossless MLW codec as on U55 (``ethosu.mlw_codec`` decodes U85's
standard-weight-decoder streams; the npusim U55 decoder's structure walk guards it). What differs
is the order of the values, outermost first:

    OFM block (OFM_BLK_DEPTH)
      IFM block (zig-zag: forward on even OFM blocks, backward on odd ones; one pass for depthwise)
        sub-kernel (8x8 / dilation)
          IFM ublock outer (part-kernel-first: the whole IFM block at once)
            OFM ublock (ACC_FORMAT microblock; depth = MACs / 8 / (ublock H*W))
              stride phase y, x (part-kernel-first and depthwise; depth-first uses 1x1)
                kernel element (boustrophedon: odd rows right to left), padded to a multiple of
                5 (part-kernel int8) / 10 (depthwise, part-kernel int16) / 1 (depth-first)
                  IFM ublock inner (steps of 8, 16 when 2:4 sparse; 1 for depthwise)
                    OFM ublock z: this core's groups of 4 channels (core c: 4c.., step 4*cores)
                      IFM z (8, 16 when sparse; 1 for depthwise)

2:4 sparse streams (WEIGHT_FORMAT SPARSE_2_4, chosen by Vela when every group of four IFM
weights has two zeros) hold the same values, zeros included, in steps of 16 IFM channels; the
IFM block is 128 deep for depth-first and part-kernel-first elements pad to 10.

Depthwise on configurations above 256 MACs (or 16-bit) adds zero padding per sub-kernel. Every
slot outside the real weights is a zero, so the decoded count is fixed and checked exactly.

Fast-weight-decoder streams (WEIGHT_FORMAT FWD; Vela picks them when its decode-time estimate
beats the standard decoder's, i.e. for weights that compress poorly: few zeros, many distinct
values) are one stream for all cores, in the same traversal: with several cores, blocks of
``OFM ublock depth x IFM ublock depth x kernel-element rounding / cores`` slots taken from each
core's order in turn. The stream is a 256-bit header (bit 0 raw mode, bit 1 two-bit LUT, bits
104-111 a signed zero adjust, from bit 112 sixteen 9-bit LUT entries, sign in the lowest bit)
followed by one fixed-width field per slot, least significant bit first: a 2-bit or 4-bit LUT
index, or in raw mode the weight plus the zero adjust as an 8-bit two's complement value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ....errors import CommandStreamError
from ..weights import _mlw_decode

DEPTH_FIRST, PART_KERNEL, DEPTHWISE = "DEPTH_FIRST", "PART_KERNEL_FIRST", "DEPTHWISE"
INTERLEAVE = 4  # OFM channels a core takes at a time within an OFM ublock
SUB_KERNEL_MAX = 8
MAX_WEIGHTS = 1 << 24
# OFM micro-blocks (H, W) per MAC configuration, from ACC_FORMAT's microblock field
MICROBLOCKS = {0: (1, 1), 1: (1, 2), 2: (1, 4), 3: (2, 2), 4: (2, 4), 5: (4, 4)}
VALID_UBLOCKS = {
    128: {(1, 2, 8), (1, 1, 16)},
    256: {(1, 2, 16), (1, 4, 8), (2, 2, 8)},
    512: {(2, 2, 16), (1, 4, 16)},
    1024: {(2, 2, 32), (1, 4, 32), (2, 4, 16)},
    2048: {(2, 2, 64), (1, 4, 64), (4, 4, 16)},
}


def ofm_ublock(macs: int, microblock: int) -> tuple[int, int, int]:
    """(H, W, depth) of the OFM micro-block ACC_FORMAT selects on a ``macs`` configuration."""
    if microblock not in MICROBLOCKS:
        raise CommandStreamError(f"ACC_FORMAT microblock {microblock} is not defined")
    h, w = MICROBLOCKS[microblock]
    ub = (h, w, macs // 8 // (h * w))
    if ub not in VALID_UBLOCKS.get(macs, ()):
        raise CommandStreamError(f"OFM micro-block {h}x{w} does not exist on a {macs}-MAC Ethos-U85")
    return ub


def ifm_block_depth(traversal: str, macs: int, ifm_bits: int, ublock_depth: int, sparse: bool) -> int:
    """The IFM block depth of regor's U85 block config (not a register: fixed per case)."""
    if traversal == PART_KERNEL:
        return 16
    if ifm_bits == 32 or (macs in (128, 256) and ublock_depth == 16 and not sparse):
        return 32
    if sparse and ifm_bits == 8:
        return 128
    return 64


@dataclass(frozen=True)
class U85WeightParams:
    macs_per_cycle: int
    cores: int  # weight streams: one per core (standard weight decoder)
    traversal: str
    kernel_h: int
    kernel_w: int
    stride_y: int
    stride_x: int
    dilation_y: int
    dilation_x: int
    ifm_depth: int
    ofm_depth: int
    ofm_block_depth: int
    ublock_depth: int
    ifm_bits: int
    sparse: bool = False  # WEIGHT_FORMAT SPARSE_2_4: same values, IFM steps of 16
    fast: bool = False  # WEIGHT_FORMAT FWD: one fast-weight-decoder stream for every core

    @property
    def weights_shape(self) -> tuple[int, int, int, int]:
        ifm = 1 if self.traversal == DEPTHWISE else self.ifm_depth
        return (self.ofm_depth, self.kernel_h, self.kernel_w, ifm)


def _check(p: U85WeightParams) -> None:
    if p.traversal not in (DEPTH_FIRST, PART_KERNEL, DEPTHWISE):
        raise CommandStreamError(f"weight traversal {p.traversal} is not defined")
    if p.ofm_block_depth <= 0 or p.ofm_depth <= 0 or p.ifm_depth <= 0:
        raise CommandStreamError("weight stream with an empty OFM/IFM depth or OFM block")
    if p.ublock_depth % (INTERLEAVE * p.cores):
        raise CommandStreamError(f"OFM ublock depth {p.ublock_depth} does not split over {p.cores} cores")
    if max(p.kernel_h, p.kernel_w) > 64 or int(np.prod(p.weights_shape)) > MAX_WEIGHTS:
        raise CommandStreamError("weight stream larger than the simulator's limit")


def _loop_limits(p: U85WeightParams) -> tuple[int, int, int, int, int]:
    """(IFM block depth, kernel elements rounded to, IFM ublock depth, stride y, stride x)."""
    depthwise = p.traversal == DEPTHWISE
    ifm16 = p.ifm_bits == 16
    sparse = p.sparse and not depthwise
    ifm_bd = ifm_block_depth(p.traversal, p.macs_per_cycle, p.ifm_bits, p.ublock_depth, sparse)
    if p.traversal == PART_KERNEL:
        return ifm_bd, (10 if ifm16 or sparse else 5), (8 if ifm16 and not sparse else ifm_bd), p.stride_y, p.stride_x
    if p.traversal == DEPTH_FIRST:
        return ifm_bd, 1, ifm_bd, 1, 1
    return ifm_bd, 10, 1, p.stride_y, p.stride_x


@lru_cache(maxsize=512)
def traversal(p: U85WeightParams) -> tuple[np.ndarray, ...]:
    """Per core: the flat OHWI index of every stream slot (-1 = a zero the encoder pads with)."""
    _check(p)
    depthwise = p.traversal == DEPTHWISE
    ifm16 = p.ifm_bits == 16
    sparse = p.sparse and not depthwise
    ifm_bd, round_to, ifm_ub, sy, sx = _loop_limits(p)
    dw_pad = 0 if (not ifm16 and p.macs_per_cycle <= 256) else (2 if p.macs_per_cycle <= 512 else 6)
    dec_x, dec_y = SUB_KERNEL_MAX // p.dilation_x, SUB_KERNEL_MAX // p.dilation_y
    inner = 1 if depthwise else (16 if sparse else 8)
    kh, kw, idepth = p.kernel_h, p.kernel_w, (1 if depthwise else p.ifm_depth)
    D, n = p.ublock_depth, p.cores
    streams = []
    for s in range(n):
        ofm_rel = np.array([z + i for z in range(INTERLEAVE * s, D, INTERLEAVE * n)
                            for i in range(INTERLEAVE)], dtype=np.int64)
        ifm_rel = np.arange(inner, dtype=np.int64)
        pieces: list[np.ndarray] = []
        total = 0

        def pad(count: int) -> None:
            nonlocal total
            if count > 0:
                pieces.append(np.full(count, -1, dtype=np.int64))
                total += count

        inc = -ifm_bd
        ifm_z0 = 0
        for ofm_b in range(0, p.ofm_depth, p.ofm_block_depth):
            inc = -inc
            clipped_ofm = min(p.ofm_block_depth, p.ofm_depth - ofm_b)
            ifm_b = ifm_z0
            while 0 <= ifm_b < (1 if depthwise else idepth):
                ifm_z0 = ifm_b
                clipped_ifm = min(ifm_bd, idepth - ifm_b)
                for skx in range(0, kw, dec_x):
                    sub_w = min(kw - skx, dec_x)
                    for sky in range(0, kh, dec_y):
                        sub_h = min(kh - sky, dec_y)
                        for ifm_outer in range(0, 1 if depthwise else clipped_ifm, ifm_ub):
                            for ofm_outer in range(0, clipped_ofm, D):
                                remaining = -(-(sub_w * sub_h) // round_to) * round_to
                                ofm_z = ofm_b + ofm_outer + ofm_rel
                                ofm_ok = ofm_z < p.ofm_depth
                                for py in range(sy):
                                    khs = (sub_h + sy - 1 - py) // sy
                                    for px in range(sx):
                                        kws = (sub_w + sx - 1 - px) // sx
                                        for ky in range(khs):
                                            for kx in range(kws):
                                                x = kx if ky % 2 == 0 else kws - 1 - kx
                                                wx = skx + px + x * sx
                                                wy = sky + py + ky * sy
                                                remaining -= 1
                                                for ifm_inner in range(0, ifm_ub, inner):
                                                    ifm_z = ifm_b + ifm_outer + ifm_inner + ifm_rel
                                                    ok = ofm_ok[:, None] & (ifm_z < idepth)[None, :]
                                                    flat = ((ofm_z[:, None] * kh + wy) * kw + wx) * idepth + ifm_z[None, :]
                                                    pieces.append(np.where(ok, flat, -1).reshape(-1))
                                                    total += pieces[-1].size
                                                if depthwise and remaining % round_to == 0:
                                                    pad(dw_pad * D // n)
                                                if total > MAX_WEIGHTS:
                                                    raise CommandStreamError("weight traversal larger than the simulator's limit")
                                if remaining > 0:
                                    pad((remaining + (dw_pad if depthwise else 0)) * ifm_ub * D // n)
                ifm_b += inc
        streams.append(np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64))
    return tuple(streams)


# Vela's encoder pulls a fast-weight stream from its multi-core interleaver in chunks of this many
# slots; the interleaver's saved state at a chunk boundary shapes the order, so it is replayed
FWD_CHUNK = 128 * 1024
FWD_HEADER_BITS = 256
FWD_ZERO_ADJUST_BIT, FWD_LUT_BIT, FWD_LUT_ENTRIES, FWD_LUT_ENTRY_BITS = 104, 112, 16, 9


def _fwd_interleave(orders: tuple[np.ndarray, ...], block: int) -> np.ndarray:
    """The single FWD stream's slot order: ``block`` slots from each core's order in turn, as
    regor's interleaver emits them when its encoder asks for FWD_CHUNK slots at a time."""
    n = len(orders)
    cursor = [0] * n
    pieces: list[np.ndarray] = []
    core, emitted = 0, 0  # the interleaver's state kept between chunks
    while True:
        offset, got, full = 0, block, False
        while offset < FWD_CHUNK and got and not full:
            for s in range(core, n):
                want = min(block - emitted, FWD_CHUNK - offset)
                piece = orders[s][cursor[s]:cursor[s] + want]
                cursor[s] += piece.size
                pieces.append(piece)
                got = piece.size
                offset += got
                if offset == FWD_CHUNK:
                    # regor records a short piece as a partly emitted block, even when it ended one
                    core, emitted = (s, got) if got < block else (s + 1, 0)
                    full = True
                    break
                emitted = 0
            else:
                core = 0
        if not full:
            break
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


@lru_cache(maxsize=512)
def fwd_order(p: U85WeightParams) -> np.ndarray:
    """The flat OHWI index of every slot of a FWD stream (-1 = padding)."""
    orders = traversal(p)
    if p.cores == 1:
        return orders[0]
    _, round_to, ifm_ub, _, _ = _loop_limits(p)
    return _fwd_interleave(orders, p.ublock_depth * ifm_ub * round_to // p.cores)


def _fwd_decode(data: bytes, count: int) -> np.ndarray:
    """The ``count`` weights of a fast-weight-decoder stream (header, then fixed-width fields)."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    if bits.size < FWD_HEADER_BITS:
        raise CommandStreamError(f"FWD weight stream of {len(data)} bytes is shorter than its 32-byte header")
    raw, lut2 = bool(bits[0]), bool(bits[1])
    if raw and lut2:
        raise CommandStreamError("FWD weight stream header selects both raw mode and the 2-bit LUT")
    if bits[2:FWD_ZERO_ADJUST_BIT].any():
        raise CommandStreamError("FWD weight stream header has reserved bits set")

    def field(start: int, width: int, n: int) -> np.ndarray:
        return bits[start:start + n * width].reshape(n, width).astype(np.int64) @ (1 << np.arange(width))

    width = 8 if raw else (2 if lut2 else 4)
    need = FWD_HEADER_BITS + count * width
    if bits.size < need:
        raise CommandStreamError(f"FWD weight stream of {len(data)} bytes holds fewer than {count} "
                                 f"{width}-bit weights")
    values = field(FWD_HEADER_BITS, width, count)
    if raw:
        adjust = int(field(FWD_ZERO_ADJUST_BIT, 8, 1)[0])
        adjust = adjust - 256 if adjust >= 128 else adjust
        return (np.where(values >= 128, values - 256, values) - adjust).astype(np.int32)
    folded = field(FWD_LUT_BIT, FWD_LUT_ENTRY_BITS, FWD_LUT_ENTRIES)
    lut = np.where(folded & 1, -(folded >> 1), folded >> 1)
    return lut[values].astype(np.int32)


def decode_weights(streams: list[bytes], p: U85WeightParams) -> np.ndarray:
    """Decode the weight streams of one operation (one per core; one FWD stream for all cores)
    into OHWI int32 weights (``w - zp``)."""
    if p.fast and p.traversal == DEPTHWISE:
        raise CommandStreamError("WEIGHT_FORMAT FWD with a depthwise weight traversal")
    orders = (fwd_order(p),) if p.fast else traversal(p)
    if len(streams) != len(orders):
        raise CommandStreamError(f"{len(streams)} weight streams for {len(orders)} "
                                 f"{'FWD stream' if p.fast else 'cores'}")
    decode = _fwd_decode if p.fast else _mlw_decode
    size = int(np.prod(p.weights_shape))
    out = np.zeros(size, dtype=np.int32)
    seen = np.zeros(size, dtype=bool)
    for core, (data, order) in enumerate(zip(streams, orders)):
        values = decode(data, order.size) if order.size else np.zeros(0, dtype=np.int32)
        if values.size != order.size:
            raise CommandStreamError(
                f"U85 weight stream of core {core} ({len(data)} bytes) decodes to {values.size} "
                f"weights; a {p.traversal} op with kernel {p.kernel_h}x{p.kernel_w}, IFM depth "
                f"{p.ifm_depth}, OFM depth {p.ofm_depth}, OFM block depth {p.ofm_block_depth}, "
                f"ublock depth {p.ublock_depth} on U85-{p.macs_per_cycle} needs {order.size}")
        real = order >= 0
        if np.any(values[~real] != 0):
            raise CommandStreamError(f"U85 weight stream of core {core}: non-zero value in a padding slot")
        out[order[real]] = values[real]
        seen[order[real]] = True
    if not seen.all():
        raise CommandStreamError("U85 weight streams do not cover every weight of the operation")
    return out.reshape(p.weights_shape)
