"""Weight-stream decoder: one core's MLW-compressed weight stream back to OHWI int32 weights.

Vela zero-point-corrects the weights (``w - zp_w``, 9-bit signed), reorders them into the order the
NPU's weight decoder feeds the MAC array, pads that order with zeros, and compresses it with Arm's
lossless MLW codec. Decoding is therefore ``ethosu.mlw_codec.decode`` followed by the inverse of
the hardware traversal. The traversal, outermost first:

    OFM block (OFM_BLK_DEPTH per core)
      IFM block (32 deep; 16 for part-kernel-first or a 16-bit IFM; one pass for depthwise)
        sub-kernel (at most 8x8 / dilation)
          [part-kernel-first: IFM ublock]
            OFM ublock
              kernel element (padded: 4 for depthwise and part-kernel int8, 2 for part-kernel int16)
                [depth-first: IFM ublock]
                  OFM ublock z
                    IFM ublock z (1 for depthwise)

Every slot outside the real weights (channels past the OFM/IFM depth, padded kernel elements) is a
zero in the stream, so the stream length is fixed by the parameters and checked exactly.

The traversal is turned into a gather index once per parameter set (``functools.lru_cache`` on the
frozen params), so decoding a stream is one codec call plus one numpy fancy-index.

Arm's C decoder ends the process (``exit(1)``) when a stream runs past its end, so every stream
first goes through a walk of its bit structure in Python (``_check_mlw_structure``): a corrupt
stream becomes a ``CommandStreamError``. The walk costs about 2.5x the C decode; all of DS-CNN-L
(~0.5 M weights, 450 KB of streams) decodes in about 60 ms, so decode once per model load.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ethos_kws.accel import accelerator_for
from ethos_kws.errors import AcceleratorError, CommandStreamError

from .kernels import inline_kernel, kernel_or_python

try:  # the codec ships with ethos-u-vela; without it no stream can be decoded
    from ethosu import mlw_codec
except ImportError:  # pragma: no cover - ethos-u-vela is a hard dependency of the project
    mlw_codec = None

# Sub-kernels are at most 8x8 kernel elements (Vela's SubKernelMax); dilation shrinks that extent.
SUB_KERNEL_MAX = 8


# Kernel elements of a sub-kernel are padded to a multiple of this, keyed by (traversal, IFM bits).
ELEMENT_PADDING = {
    ("DEPTHWISE", 8): 4,
    ("DEPTHWISE", 16): 4,
    ("PART_KERNEL_FIRST", 8): 4,
    ("PART_KERNEL_FIRST", 16): 2,
    ("DEPTH_FIRST", 8): 1,
    ("DEPTH_FIRST", 16): 1,
}

# Bounds that keep a corrupt register file from building an absurdly large permutation.
MAX_KERNEL_EXTENT = 64
MAX_WEIGHTS = 1 << 24  # far above any real layer; keeps a corrupt register file from exhausting memory


@dataclass(frozen=True)
class WeightStreamParams:
    """Everything the hardware weight traversal depends on, read from the register file.

    macs_per_cycle: MACs/cycle of the whole NPU from the COP1 CONFIG word, ``1 << config_r[3:0]``
        (U55: 32/64/128/256; U65: 256/512, where 512 = 2 cores x 256).
    npu: "U55" | "U65" (``config_r[31:28]``: 0 = U55, 1 = U65).
    num_cores: ``PARALLEL_MODE + 1`` (2 only on U65-512; 1 otherwise).
    core: which core's stream this is: 0 for ``WEIGHT_BASE/LENGTH``, 1 for ``WEIGHT1_BASE/LENGTH``.
    op: "CONV" | "DEPTHWISE" (the operation command; FULLY_CONNECTED is a 1x1 CONV).
    kernel_h, kernel_w: undilated kernel size, ``KERNEL_HEIGHT_M1 // dilation_y + 1`` (the
        register holds the dilated extent - 1); likewise ``KERNEL_WIDTH_M1 // dilation_x + 1``.
    dilation_y, dilation_x: ``KERNEL_STRIDE`` bit [4] + 1 / bit [3] + 1.
    ifm_depth: ``IFM_DEPTH_M1 + 1`` (ignored for DEPTHWISE, whose weights are one IFM deep).
    ofm_depth: ``OFM_DEPTH_M1 + 1``: OFM channels of the whole NPU op (all cores together).
    ofm_block_depth: ``OFM_BLK_DEPTH_M1 + 1``: the block depth of the whole NPU; with 2 cores each
        core's stream is ordered in blocks of ``ceil((ofm_block_depth - core) / num_cores)``.
    part_kernel_first: ``KERNEL_STRIDE`` bit [2] (1 = part-kernel-first, 0 = depth-first).
    ifm_bits: 8 | 16 (``IFM_PRECISION`` bits [3:2]: 0 -> 8, 1 -> 16).
    """

    macs_per_cycle: int
    npu: str
    num_cores: int
    core: int
    op: str
    kernel_h: int
    kernel_w: int
    dilation_y: int
    dilation_x: int
    ifm_depth: int
    ofm_depth: int
    ofm_block_depth: int
    part_kernel_first: bool
    ifm_bits: int

    @property
    def core_ofm_depth(self) -> int:
        """OFM channels in this core's stream: the core owns channels core, core + num_cores, ..."""
        return len(range(self.core, self.ofm_depth, self.num_cores))

    @property
    def core_ofm_block_depth(self) -> int:
        """The OFM block depth of this core's traversal: the NPU's block shared out between cores."""
        return (self.ofm_block_depth + self.num_cores - 1 - self.core) // self.num_cores

    @property
    def weights_shape(self) -> tuple[int, int, int, int]:
        """Shape of the decoded weights: [OFM of this core, KH, KW, IFM] (depthwise: IFM = 1)."""
        ifm = 1 if self.op == "DEPTHWISE" else self.ifm_depth
        return (self.core_ofm_depth, self.kernel_h, self.kernel_w, ifm)


@dataclass(frozen=True)
class _Traversal:
    """The stream slot of every weight, and the stream length including the zero padding."""

    gather: np.ndarray  # int32, flat OHWI index -> stream position
    stream_len: int


def decode_weights(stream: bytes, params: WeightStreamParams) -> np.ndarray:
    """Decode one core's weight stream.

    Returns int32 ``[ofm_channels_of_this_core, kernel_h, kernel_w, ifm_depth]`` (depthwise:
    ``[ofm, kernel_h, kernel_w, 1]``) holding zero-point-corrected weights (``w - zp_w``).
    On a 2-core U65 core c owns OFM channels c, c+2, ... of the op (row i of the result is
    channel ``core + i * num_cores``). Raises ``CommandStreamError`` when the parameters are not
    a configuration the hardware has, or when the stream does not decode to exactly the number
    of weights (padding included) the traversal needs.
    """
    traversal = _traversal(params)
    if traversal.stream_len == 0:
        return np.zeros(params.weights_shape, dtype=np.int32)
    values = _mlw_decode(stream, traversal.stream_len)
    if values.size != traversal.stream_len:
        raise CommandStreamError(
            f"weight stream of {len(stream)} bytes decodes to {values.size} weights, but a "
            f"{params.op} with kernel {params.kernel_h}x{params.kernel_w}, IFM depth "
            f"{params.ifm_depth}, OFM depth {params.ofm_depth} (core {params.core} of "
            f"{params.num_cores}), OFM block depth {params.ofm_block_depth}, "
            f"{'part-kernel-first' if params.part_kernel_first else 'depth-first'} on "
            f"{params.npu}-{params.macs_per_cycle} needs {traversal.stream_len}"
        )
    return values[traversal.gather].reshape(params.weights_shape)


def expected_stream_length(params: WeightStreamParams) -> int:
    """Number of weights (zero padding included) the traversal reads for these parameters."""
    return _traversal(params).stream_len


def _mlw_decode(stream: bytes, expected: int) -> np.ndarray:
    if mlw_codec is None:  # pragma: no cover
        raise CommandStreamError("ethosu.mlw_codec is not importable; install ethos-u-vela")
    # Arm's C decoder calls exit(1) when a stream runs past its end, and trusts zero-run lengths
    # when it allocates: walk the bit structure first, so a corrupt stream is an error, not the
    # end of the process or of its memory.
    _check_mlw_structure(stream, expected)
    try:
        decoded = mlw_codec.decode(bytearray(stream))  # the codec accepts only bytearray
    except Exception as exc:  # the C codec reports malformed input as a generic exception
        raise CommandStreamError(f"weight stream of {len(stream)} bytes is not valid MLW: {exc}") from exc
    return np.asarray(decoded, dtype=np.int32)


# MLW bitstream fields (Arm's mlw_codec): a slice header starts with a 3-bit ZDIV.
_ZDIV_DISABLE = 6  # no zero runs in this slice
_ZDIV_EOS = 7  # end of stream; the decoder byte-aligns and may find another stream
_WDIV_UNCOMPRESSED = 7


def _check_mlw_structure(stream: bytes, expected: int) -> None:
    """Walk the MLW bit structure without decoding values; raise if the decoder would overrun.

    This mirrors the bit consumption of Arm's decoder exactly (header fields, palette, unary
    chunks and remainders, in the decoder's read order), so a stream passes iff the decoder
    ends inside the buffer. It also bounds the decoded length: zero runs are counted from their
    unary parts plus the largest possible remainder, so the bound exceeds the true length by at
    most 2^ZDIV - 1 per run (ZDIV <= 3 from any encoder; 8x covers it).
    """
    n_bytes = len(stream)
    # A legal stream is never much longer than its weights stored raw (9 bits each) plus headers
    # (Arm's encoder sizes its buffer 2 bytes a weight + 1 KiB), plus 16-byte range alignment.
    if n_bytes > 2 * expected + 1024 + 16:
        raise CommandStreamError(f"weight stream of {n_bytes} bytes is too long for {expected} weights")
    cap = 8 * expected + (1 << 16)
    n_bits = 8 * n_bytes
    # window[i] = the 32 bits starting at byte i: any field (<= 15 bits) at any bit offset is one
    # list lookup, a shift and a mask. Fields are read LSB first, as the codec writes them.
    raw = np.frombuffer(bytes(stream) + bytes(4), dtype=np.uint8).astype(np.uint32)
    words = raw[:-3] | raw[1:-2] << 8 | raw[2:-1] << 16 | raw[3:] << 24
    window = words.tolist()  # the headers, read here
    chunks_window = words.astype(np.int64)  # the chunks, read by the compiled walk
    pos = 0
    total_bound = 0
    palsize = palbits = 0
    try:
        while True:
            zdiv = _field(window, pos, 3, n_bits)
            pos += 3
            while zdiv == _ZDIV_EOS:
                pos += (8 - (pos & 7)) & 7
                if pos >= n_bits:
                    break
                zdiv = _field(window, pos, 3, n_bits)
                pos += 3
            if pos >= n_bits:
                if pos > n_bits:
                    raise _Overrun(pos)
                return
            use_zero_run = zdiv != _ZDIV_DISABLE
            header = _field(window, pos, 15, n_bits)
            n_values = header + 1
            pos += 15
            flags = _field(window, pos, 5, n_bits)
            pos += 5
            wdiv, trunc, new_palette = flags & 7, flags >> 3 & 1, flags >> 4 & 1
            if new_palette:
                pal = _field(window, pos, 13, n_bits)  # 5 direct offset, 5 size, 3 bits
                pos += 13
                palsize = pal >> 5 & 31
                palsize += palsize > 0
                palbits = (pal >> 10) + 2
                pos += palsize * palbits
            uncompressed = wdiv == _WDIV_UNCOMPRESSED
            if uncompressed:
                wdiv = (palsize - 1).bit_length() if palsize > 0 else palbits
            pos, zeros_bound, overrun = _WALK_CHUNKS(
                chunks_window, pos, n_bits, n_values, n_values + new_palette, wdiv, uncompressed,
                trunc, zdiv if use_zero_run else -1,
            )  # fmt: skip
            if overrun >= 0:
                raise _Overrun(overrun)
            total_bound += n_values + zeros_bound
            if total_bound > cap:
                raise CommandStreamError(
                    f"weight stream of {n_bytes} bytes decodes to more than {cap} weights "
                    f"({expected} expected)"
                )
    except _Overrun as overrun:
        raise CommandStreamError(
            f"weight stream of {n_bytes} bytes is truncated or corrupt (MLW decoding runs past its end "
            f"at bit {overrun.args[0]})"
        ) from None


class _Overrun(Exception):
    """The decoder would read past the end of the stream (bit position in args[0])."""


def _field(window: list, pos: int, n: int, n_bits: int) -> int:
    if pos + n > n_bits:
        raise _Overrun(pos)
    return window[pos >> 3] >> (pos & 7) & ((1 << n) - 1)


def _popcount(x: int) -> int:
    """Set bits of a non-negative int (``int.bit_count``, which the compiled walk has not)."""
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


_POPCOUNT = inline_kernel(_popcount)


def _walk_chunks(window, pos, n_bits, n_values, z_values, wdiv, uncompressed, trunc, zdiv):
    """One slice's chunks: returns (bit position after it, upper bound of its zero-run total, the
    bit position of an overrun or -1). Compiled (a DS-CNN-L load walked half a million chunks in
    Python); ``window`` is the int64 array of ``_check_mlw_structure``.

    zdiv < 0: no zero runs. Each chunk reads, in this order: the 12-bit weight unary0, the zero
    run unary, the weight unary1 (one bit per set unary0 bit), then the remainders of the symbols
    the previous chunk found. The counts follow the codec: a weight symbol ends at a code < 2
    (every code with truncation); a zero-run symbol ends at each 0 bit of its unary.
    """
    use_zero_run = zdiv >= 0
    max_symbols = 8 if uncompressed and wdiv > 5 else 12
    symbols_mask = (1 << max_symbols) - 1
    z_unary_len = 12 if 0 <= zdiv < 3 else 8
    z_mask = (1 << z_unary_len) - 1
    w_pos = z_pos = w_prev_pos = z_prev_pos = 0
    w_prev = z_prev = 0  # symbols of the previous chunk, whose remainders come now (0 = off)
    z_ones = 0
    while True:
        balance = w_pos - z_pos if use_zero_run else 0
        w_on = (balance < 8 or not use_zero_run) and w_pos < n_values
        z_on = use_zero_run and balance >= 0 and z_pos < z_values
        # every field is at most 15 bits and lies inside the stream (checked before it is read)
        unary0 = 0
        if w_on and not uncompressed:
            if pos + 12 > n_bits:
                return pos, 0, pos
            unary0 = window[pos >> 3] >> (pos & 7) & 0xFFF
            pos += 12
        z_symbols = w_symbols = 0
        if z_on:
            if pos + z_unary_len > n_bits:
                return pos, 0, pos
            ones = _POPCOUNT(window[pos >> 3] >> (pos & 7) & z_mask)
            pos += z_unary_len
            z_ones += ones
            z_symbols = z_unary_len - ones
        if w_on:
            n1 = _POPCOUNT(unary0 & symbols_mask)
            if pos + n1 > n_bits:
                return pos, 0, pos
            ones1 = _POPCOUNT(window[pos >> 3] >> (pos & 7) & ((1 << n1) - 1))
            pos += n1
            w_symbols = max_symbols if trunc else max_symbols - ones1
        w_pos += w_symbols
        z_pos += z_symbols
        if w_prev:
            n = min(w_prev, n_values - w_prev_pos)
            pos += n * wdiv
            w_prev_pos += n
        if z_prev:
            n = min(z_prev, z_values - z_prev_pos)
            pos += n * zdiv
            z_prev_pos += n
        if pos > n_bits:
            return pos, 0, n_bits
        w_prev = w_symbols if w_on else 0
        z_prev = z_symbols if z_on else 0
        if not (w_on or z_on):
            break
    zeros_bound = (z_ones << zdiv) + z_values * ((1 << zdiv) - 1) if use_zero_run else 0
    return pos, zeros_bound, -1


_WALK_CHUNKS = kernel_or_python(_walk_chunks)


def _check_params(p: WeightStreamParams) -> None:
    try:
        accelerator_for(p.npu, p.macs_per_cycle)
    except AcceleratorError:
        raise CommandStreamError(f"no weight traversal for {p.npu} with {p.macs_per_cycle} MACs/cycle") from None
    if p.op not in ("CONV", "DEPTHWISE"):
        raise CommandStreamError(f"operation {p.op!r} has no weight stream (expected CONV or DEPTHWISE)")
    if p.ifm_bits not in (8, 16):
        raise CommandStreamError(f"weight traversal for a {p.ifm_bits}-bit IFM is not modelled (8 or 16)")
    if p.op == "DEPTHWISE" and p.part_kernel_first:
        raise CommandStreamError("DEPTHWISE with part-kernel-first weight order is not a valid setup")
    if p.num_cores not in (1, 2) or not 0 <= p.core < p.num_cores:
        raise CommandStreamError(f"core {p.core} of {p.num_cores} is not a valid weight stream core")
    if p.dilation_y not in (1, 2) or p.dilation_x not in (1, 2):
        raise CommandStreamError(f"kernel dilation {p.dilation_y}x{p.dilation_x} is not 1 or 2")
    for name in ("kernel_h", "kernel_w"):
        if not 1 <= getattr(p, name) <= MAX_KERNEL_EXTENT:
            raise CommandStreamError(f"{name} {getattr(p, name)} outside 1..{MAX_KERNEL_EXTENT}")
    for name in ("ifm_depth", "ofm_depth", "ofm_block_depth"):
        if getattr(p, name) < 1:
            raise CommandStreamError(f"{name} {getattr(p, name)} must be at least 1")
    if int(np.prod(p.weights_shape)) > MAX_WEIGHTS:
        raise CommandStreamError(f"weight volume {p.weights_shape} exceeds {MAX_WEIGHTS} weights")


@lru_cache(maxsize=256)
def _traversal(p: WeightStreamParams) -> _Traversal:
    _check_params(p)
    acc = accelerator_for(p.npu, p.macs_per_cycle)
    ofm_ublock, ifm_ublock = acc.ofm_ublock.depth, acc.ifm_ublock.depth
    depthwise = p.op == "DEPTHWISE"
    order = "DEPTHWISE" if depthwise else "PART_KERNEL_FIRST" if p.part_kernel_first else "DEPTH_FIRST"
    element_pad = ELEMENT_PADDING[(order, p.ifm_bits)]
    n_ofm, kh, kw, n_ifm = p.weights_shape
    ofm_block = p.core_ofm_block_depth
    if n_ofm == 0 or ofm_block == 0:  # core 1 without channels: its stream is empty
        return _Traversal(np.zeros(0, dtype=np.int32), 0)
    ifm_block = 16 if p.part_kernel_first or p.ifm_bits == 16 else 32
    decomp_h = SUB_KERNEL_MAX // p.dilation_y
    decomp_w = SUB_KERNEL_MAX // p.dilation_x

    # Each piece is the OHWI source index of a run of stream slots (-1 = zero padding), built with
    # broadcasting over the inner loops; only blocks and sub-kernels are iterated in Python.
    pieces = []
    for ofm_block_z in range(0, n_ofm, ofm_block):
        block_ofm = min(ofm_block, n_ofm - ofm_block_z)
        # OFM ublocks cover the block; their z runs a full ublock, so a ublock may reach past the
        # block into the next one's channels (the encoder then repeats them) or past the OFM.
        ofm_z = ofm_block_z + np.arange(0, block_ofm, ofm_ublock)[:, None] + np.arange(ofm_ublock)
        for ifm_block_z in range(0, 1 if depthwise else n_ifm, ifm_block):
            if depthwise:
                ifm_z = np.zeros((1, 1), dtype=np.int64)
            else:
                # Depth-first always walks a whole IFM block; part-kernel-first clips it.
                block_ifm = min(ifm_block, n_ifm - ifm_block_z) if p.part_kernel_first else ifm_block
                ifm_z = ifm_block_z + np.arange(0, block_ifm, ifm_ublock)[:, None] + np.arange(ifm_ublock)
            for sub_y in range(0, kh, decomp_h):
                sub_h = min(decomp_h, kh - sub_y)
                for sub_x in range(0, kw, decomp_w):
                    sub_w = min(decomp_w, kw - sub_x)
                    elements = -(-sub_h * sub_w // element_pad) * element_pad
                    element = np.arange(elements)
                    ky, kx = element // sub_w, element % sub_w
                    pieces.append(
                        _sub_kernel_slots(
                            order, ofm_z, ifm_z, sub_y + ky, sub_x + kx, ky < sub_h, (n_ofm, kh, kw, n_ifm)
                        )
                    )
    source = np.concatenate(pieces)
    return _Traversal(_invert(source, n_ofm * kh * kw * n_ifm), int(source.size))


def _sub_kernel_slots(order, ofm_z, ifm_z, wy, wx, element_valid, shape):
    """Flat OHWI source of every slot of one sub-kernel, in stream order (-1 = padding).

    ofm_z: [OFM ublocks, OFM ublock z]; ifm_z: [IFM ublocks, IFM ublock z]; wy/wx/element_valid:
    [kernel elements]. The axes are broadcast into the nesting of the chosen traversal.
    """
    n_ofm, kh, kw, n_ifm = shape
    # Named axes: U = OFM ublock, E = element, I = IFM ublock, u = OFM ublock z, i = IFM ublock z.
    if order == "PART_KERNEL_FIRST":  # I U E u i
        o = ofm_z[None, :, None, :, None]
        i = ifm_z[:, None, None, None, :]
        e = (None, None, slice(None), None, None)
    else:  # depth-first and depthwise: U E I u i
        o = ofm_z[:, None, None, :, None]
        i = ifm_z[None, None, :, None, :]
        e = (None, slice(None), None, None, None)
    y, x, valid_e = wy[e], wx[e], element_valid[e]
    valid = (o < n_ofm) & (i < n_ifm) & valid_e
    flat = ((o * kh + y) * kw + x) * n_ifm + i
    return np.where(valid, flat, -1).ravel()


def _invert(source: np.ndarray, n_weights: int) -> np.ndarray:
    """Turn 'slot -> weight' into 'weight -> slot', checking that every weight has a slot."""
    gather = np.full(n_weights, -1, dtype=np.int32)  # streams stay far below 2^31 weights
    slots = np.flatnonzero(source >= 0)
    # Where an OFM ublock overhangs its block the encoder repeats channels; any copy will do, as
    # both hold the same weight.
    gather[source[slots]] = slots
    if (gather < 0).any():
        missing = int(np.flatnonzero(gather < 0)[0])
        raise CommandStreamError(f"weight traversal leaves weight {missing} without a stream slot")
    return gather
