"""Data flow through the regions: every byte an operation reads was written first.

A corrupted stream can move a base address, a stride or a size so that every access still lies
inside its region: the hardware runs it and answers wrongly. What such a stream cannot do is read
only bytes that hold data. The stream has no branches, so which bytes each operation reads and
writes is fixed when the plans are built: this pass replays those accesses once, at load, over one
boolean mask per region (numpy fancy indexing, never a per-byte loop), starting from what the
driver provides — region 0 (constant data) and the op's input tensors in the arena — and checks

* every IFM, IFM2, weight and scale byte was written (input, constant, DMA or an earlier
  operation); a DMA copies the written state with the bytes (it may move alignment padding);
* weight and scale streams (traced through DMA copies to region 0) do not cut across each other;
* (an OFM may overwrite a result nothing has read yet: Vela's PAD does, so that is not refused);
* every result (OFM) is read by a later operation or is part of an output tensor (but a
  shorter last row stripe, which Vela computes even when a VALID consumer needs fewer rows);
* one feature-map read takes no bytes of two results laid out differently in memory (OFM strides
  by magnitude, layout, element size): the stripes and parts of one tensor share its layout, so a
  moved or resized access that reaches an older tensor's stale bytes, or bytes a moved or grown
  OFM wrote over, is refused when that tensor's layout differs (a known gap when it does not);
* a feature-map read sees each result it takes bytes from as one block of the tensor it reads
  (``Tensors``): with the result's geometry, every byte at one fixed offset of the read's
  coordinates; no two overlapping blocks one of which was computed from the other (two versions
  of a layer: bytes a shrunk or moved OFM left stale); no element wider than the writer's; no
  two elements of one tile sharing a byte (a zero, lost or too small stride);
* the tiles of one feature-map read hold parts of one tensor: never a result in one tile and,
  in another, a result computed from it (a grown kernel or a lost size write reads past tile 0);
* a scale stream goes with one set of weight streams (Vela encodes them together; weights
  shared by two operations may take two scale streams, never the reverse);
* no operation with a kernel larger than 1x1 writes its OFM over its own IFM (Vela runs only
  elementwise operations in place);
* nothing writes region 0 (read-only constant data);
* a feature map or LUT read from constant data (a softmax table or scalar in region 0, directly
  or by DMA) takes no byte of a weight or scale stream;
* every DMA into a numbered region is read by a later operation, DMA or output (Vela copies only
  what is used: a lost or changed operation leaves its weights unread); LUT loads are exempt;
* every output tensor of the ``ethos-u`` op is written completely by the stream, by OFMs of
  elements no wider than its own;
* every LUT an operation's activation reads was loaded before it: U55/U65 SHRAM's LUT slots and
  U85's LUT RAM (region ``LUT``) start unwritten and hold data only where a DMA copied written
  bytes into them. (U85 chain buffers ``CB<n>`` are regions like the others.)

A violation is a ``CommandStreamError`` naming the command (index in the stream and byte offset),
the operand and the first byte offset at fault.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import CommandStreamError, NotModelledError
from .featuremap import NHWC
from .memory import READ_ONLY_REGION, SHRAM, Memory

Where = np.ndarray | slice  # byte offsets (any shape) or a [lo, hi) range
NO_OP = -1
MAX_TRACKED_BYTES = 1 << 27  # 128 MiB of regions (a KWS arena is well under 1 MiB)
# element_keys: y, x, c in 20-bit fields (a dimension is at most 2^16), the byte in 3 bits; the
# difference of two keys then decodes to one (dy, dx, dc, db) and back
KEY_FIELD, KEY_BYTE = 20, 3


def element_keys(where: Where) -> np.ndarray | int:
    """Per byte of a feature-map access ``[h, w, c]`` or ``[h, w, c, esize]``: its element's
    (y, x, c) and the byte within it, packed into one int64 (-1 for a plain byte range)."""
    if not isinstance(where, np.ndarray) or where.ndim not in (3, 4):
        return -1
    h, w, c = where.shape[:3]
    y = np.arange(h, dtype=np.int64)[:, None, None] << (2 * KEY_FIELD + KEY_BYTE)
    x = np.arange(w, dtype=np.int64)[None, :, None] << (KEY_FIELD + KEY_BYTE)
    k = y + x + (np.arange(c, dtype=np.int64)[None, None, :] << KEY_BYTE)
    if where.ndim == 4:
        k = k[..., None] + np.arange(where.shape[3], dtype=np.int64)
    return np.broadcast_to(k, where.shape)


def split_key_delta(d: int) -> tuple[int, int, int, int]:
    """(dy, dx, dc, db) of the difference of two ``element_keys``."""
    db = (d + 4) % 8 - 4
    d = (d - db) >> KEY_BYTE
    half = 1 << (KEY_FIELD - 1)
    dc = (d + half) % (1 << KEY_FIELD) - half
    d = (d - dc) >> KEY_FIELD
    dx = (d + half) % (1 << KEY_FIELD) - half
    return (d - dx) >> KEY_FIELD, dx, dc, db


@dataclass(frozen=True)
class Access:
    what: str  # "IFM", "IFM2", "weights", "DMA source", ...
    region: int | str
    where: Where


@dataclass(frozen=True)
class Violation:
    command: int  # index among the decoded commands
    offset: int  # byte offset of the command in the register stream
    name: str
    message: str

    def text(self) -> str:
        return f"command {self.command} ({self.name} at stream byte {self.offset}): {self.message}"


def _first_unwritten(mask: np.ndarray, where: Where) -> int | None:
    got = mask[where]
    if got.all():
        # a range past the end (a LUT slot beyond SHRAM) holds nothing there
        return len(mask) if isinstance(where, slice) and where.stop > len(mask) else None
    if isinstance(where, slice):
        return where.start + int(np.argmin(got))
    return int(where.reshape(-1)[int(np.argmin(got.reshape(-1)))])


class WrittenBytes:
    """Per region (regions that alias share arrays): which bytes hold data, and which operation
    wrote each one last (``NO_OP`` for inputs, constants and DMA); SHRAM has a mask only (what
    an operation reads there is a LUT, and only a DMA writes it)."""

    def __init__(self, mem: Memory):
        tracked = sum({id(a): a.shape[1] for a in mem.regions.values()}.values())
        if tracked > MAX_TRACKED_BYTES:  # 9 bytes of bookkeeping per byte: bounded like the regions
            raise NotModelledError(f"regions of {tracked} bytes exceed the data-flow check's limit "
                                   f"({MAX_TRACKED_BYTES} bytes)")
        self.masks: dict[int, np.ndarray] = {}
        self.writers: dict[int, np.ndarray] = {}
        self.sources: dict[int, np.ndarray] = {}  # the region 0 byte each byte was copied from, or -1
        # the OFM element (and byte of it) each byte holds, packed by ``element_keys``: which part
        # of its writer's result it is
        self.keys: dict[int, np.ndarray] = {}
        self.copiers: dict[int, np.ndarray] = {}  # the DMA (plan position) that put each byte there, or -1
        seen: dict[int, tuple[np.ndarray, ...]] = {}
        for index, array in mem.regions.items():
            key = id(array)
            if key not in seen:
                n = array.shape[1]
                const = index == READ_ONLY_REGION
                seen[key] = (np.full(n, const, dtype=bool), np.full(n, NO_OP, dtype=np.int32),
                             np.arange(n, dtype=np.int32) if const else np.full(n, -1, dtype=np.int32),
                             np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int32))
            (self.masks[index], self.writers[index], self.sources[index], self.keys[index],
             self.copiers[index]) = seen[key]
        self.shram = np.zeros(mem.shram.shape[1], dtype=bool)

    def mark(self, region: int | str, where: Where, writer: int = NO_OP) -> None:
        if region == SHRAM:
            self.shram[where] = True
            return
        self.masks[region][where] = True
        self.writers[region][where] = writer
        self.sources[region][where] = -1
        self.keys[region][where] = element_keys(where) if writer != NO_OP else -1
        self.copiers[region][where] = -1

    def _mask(self, region: int | str) -> np.ndarray:
        return self.shram if region == SHRAM else self.masks[region]

    def copy(self, src: Access, dst: Access, by: int) -> None:
        """A DMA (plan position ``by``): the destination holds data where the source did, from
        the same writers."""
        if SHRAM in (src.region, dst.region):  # a LUT load: only the written state moves
            self._mask(dst.region)[dst.where] = self._mask(src.region)[src.where]
            if dst.region != SHRAM:
                self.writers[dst.region][dst.where] = NO_OP
                self.sources[dst.region][dst.where] = -1
                self.keys[dst.region][dst.where] = -1
                self.copiers[dst.region][dst.where] = -1
            return
        for arrays in (self.masks, self.writers, self.sources, self.keys):
            arrays[dst.region][dst.where] = arrays[src.region][src.where].copy()
        self.copiers[dst.region][dst.where] = by

    def constant_block(self, access: Access) -> tuple[int, int] | None:
        """The region 0 bytes a [lo, hi) read holds, when they are one contiguous copy of them."""
        if access.region == SHRAM or not isinstance(access.where, slice) or access.where.stop <= access.where.start:
            return None
        src = self.sources[access.region][access.where]
        if src[0] < 0 or src[-1] - src[0] != len(src) - 1 or (len(src) > 1 and not (np.diff(src) == 1).all()):
            return None
        return int(src[0]), int(src[-1]) + 1

    def unwritten(self, access: Access) -> int | None:
        return _first_unwritten(self._mask(access.region), access.where)

    def keys_of(self, access: Access) -> np.ndarray:
        return self.keys[access.region][access.where]

    def copiers_of(self, access: Access) -> np.ndarray | None:
        """Which DMA put each byte an access covers there (-1: none, or overwritten since)."""
        return None if access.region == SHRAM else self.copiers[access.region][access.where]

    def constants_of(self, access: Access) -> np.ndarray:
        """The region 0 bytes (copied or in place) an access reads."""
        if access.region == SHRAM:
            return np.zeros(0, dtype=np.int32)
        src = self.sources[access.region][access.where]
        return src[src >= 0]

    def writers_of(self, access: Access) -> np.ndarray | None:
        """Who wrote each byte an access covers (``NO_OP`` for inputs, constants and DMA)."""
        return None if access.region == SHRAM else self.writers[access.region][access.where]


def _byte_set(where: Where) -> np.ndarray:
    return np.arange(where.start, where.stop, dtype=np.int64) if isinstance(where, slice) else where.reshape(-1)


def shared_byte(written: WrittenBytes, a: Access, b: Access) -> int | None:
    """A byte two accesses both cover (regions that alias are one memory), or None."""
    if SHRAM in (a.region, b.region) or written.masks[a.region] is not written.masks[b.region]:
        return None
    ia, ib = _byte_set(a.where), _byte_set(b.where)
    if not ia.size or not ib.size or ia.max() < ib.min() or ib.max() < ia.min():
        return None
    hit = np.intersect1d(ia, ib)
    return int(hit[0]) if hit.size else None


def _unwritten_message(a: Access, bad: int) -> str:
    if a.what.startswith("LUT"):
        return (f"{a.what} reads {a.region} byte {bad}, which no DMA loaded before it: a LUT used "
                f"before it is written (a corrupt ACTIVATION, DMA destination or length)")
    return (f"{a.what} reads region {a.region} byte {bad}, which nothing wrote before it (not an "
            f"input, constant, DMA or earlier operation): a corrupt address, stride or size")


def layout_of(plan) -> tuple | None:
    """How a plan's OFM lies in memory (region, strides, layout, element size): the stripes and
    the parts (concatenations, PAD's border) of one tensor share it."""
    fm = getattr(plan, "ofm", None)
    if fm is None:
        return None
    # by magnitude: Vela's MIRROR_PAD writes the mirrored parts of one tensor with negative strides
    # (40-bit two's complement)
    size = [min(s, (1 << 40) - s) for s in (fm.stride_x, fm.stride_y, fm.stride_c)]
    return (fm.region, *size, fm.layout, fm.bits)


def _operand(plan, what: str):
    """The feature map (registers) behind a plan's IFM, IFM2 or OFM access, if it has one (U85's
    ELEMENTWISE keeps its inputs as ``operands``)."""
    if what not in ("IFM", "IFM2", "OFM"):
        return None
    fm = getattr(plan, what.lower(), None)
    if fm is None:
        fm = next((f for kind, _index, f in getattr(plan, "operands", ()) if kind == "map" and f.name == what), None)
    return fm


def _tensor_access(a: Access) -> bool:
    return isinstance(a.where, np.ndarray) and a.where.ndim in (3, 4)


def _collapsed_axis(a: Access, fm) -> str | None:
    """How a feature-map read's neighbouring elements in one tile share bytes: "all its rows (or
    columns) from the same bytes" (a zero STRIDE_Y or STRIDE_X, or a lost stride write: one row
    or column read for all) or "overlapping rows (columns, channels)" (a stride smaller than the
    row, column or element it steps over). Every element of a tensor has bytes of its own, so
    neither is a read of one. (Across tiles it is valid: Vela's legacy core replicates edge
    rows for RESIZE with tile bases equal.)"""
    if fm is None or not _tensor_access(a):
        return None
    tail = (0,) * (a.where.ndim - 3)
    h, w, c = a.where.shape[:3]
    first = a.where[(0, 0, 0) + tail]
    rows, columns = h > 1 and fm.height0 > 1, w > 1 and fm.width0 > 1
    if rows and a.where[(1, 0, 0) + tail] == first:
        return "all its rows from the same bytes"
    if columns and a.where[(0, 1, 0) + tail] == first:
        return "all its columns from the same bytes"
    w0 = min(w, fm.width0)
    if rows and np.intersect1d(a.where[0, :w0], a.where[1, :w0]).size:
        return "overlapping rows"
    if columns and np.intersect1d(a.where[0, 0], a.where[0, 1]).size:
        return "overlapping columns"
    if c > 1 and np.unique(a.where[0, 0]).size < a.where[0, 0].size:
        return "overlapping channels"
    return None


class Tensors:
    """Which tensor each result (OFM) belongs to, judged where feature maps are read.

    Per result: the geometry its OFM addresses elements with, its element size, its shape and
    the results it was computed from (ancestry, as a bit set). Per written byte ``WrittenBytes``
    keeps which element of which result it holds. A read with the geometry of a result it takes
    bytes from sees that result as one block of the tensor: every byte at one fixed offset of
    the read's coordinates (a stripe, a depth slice, a concatenated part). A moved base, a
    changed stride or size breaks that offset; and two blocks at overlapping offsets, one
    computed from the other, are two versions of a layer (bytes a shrunk or moved OFM left
    stale), never one tensor: Vela's stripes of one tensor are computed from its input, not
    from each other."""

    def __init__(self, n: int):
        self.geometry = np.full(n + 1, -1, dtype=np.int64)  # [pos + 1], -1: not comparable
        self.bits = np.zeros(n + 1, dtype=np.int64)
        self.shape = np.zeros((n + 1, 3), dtype=np.int64)
        self.ancestors = [0] * (n + 1)  # bit p + 1: computed (transitively) from result p
        self._ids: dict[tuple, int] = {}
        self._offset = np.zeros(n + 1, dtype=np.int64)  # scratch: one key offset per result
        self._seen = np.zeros(n + 1, dtype=bool)  # scratch: the results one read takes

    def geometry_id(self, fm, shape: tuple[int, ...]) -> int:
        """Equal ids address equal (y, x, c) alike: region, layout, element size and the strides
        the layout uses. An access across tiles is piecewise: never comparable."""
        if fm is None or len(shape) < 3 or fm.height0 < shape[0] or fm.width0 < shape[1]:
            return -1
        key = (fm.region, fm.layout, fm.bits, fm.stride_y, fm.stride_x if fm.layout == NHWC else fm.stride_c)
        return self._ids.setdefault(key, len(self._ids))

    def present(self, w: np.ndarray) -> np.ndarray:
        """The results (positions) among writers ``w``."""
        self._seen[:] = False
        self._seen[w.reshape(-1) + 1] = True
        self._seen[0] = False
        return np.flatnonzero(self._seen) - 1

    def ancestry(self, results: Iterable[int]) -> int:
        bits = 0
        for p in results:
            bits |= self.ancestors[p + 1] | (1 << (p + 1))
        return bits

    def wrote(self, pos: int, fm, a: Access, ancestry: int) -> None:
        self.ancestors[pos + 1] = ancestry
        if fm is None or not _tensor_access(a):
            return
        self.geometry[pos + 1] = self.geometry_id(fm, a.where.shape)
        self.bits[pos + 1] = fm.bits
        self.shape[pos + 1] = a.where.shape[:3]

    def across_tiles(self, fm, a: Access, w: np.ndarray) -> tuple[int, int] | None:
        """(older, newer): a read whose tiles hold a result in one tile and, in another, a result
        computed from it. Vela's tiles hold parts of one tensor (a rolling buffer's stripes, an
        edge replicated for padding), never a tensor beside its own descendant: a grown kernel or
        a lost size write that reaches past tile 0 into whatever the other tile bases address."""
        h, w_ = a.where.shape[:2]
        if fm.height0 >= h and fm.width0 >= w_:
            return None
        tile = np.broadcast_to(fm.tile_map(h, w_).reshape((h, w_) + (1,) * (a.where.ndim - 2)), a.where.shape)
        held = [(t, p) for t in range(4) for p in self.present(w[tile == t]).tolist()]  # (tile, result)
        for (t1, p), (t2, q) in itertools.product(held, repeat=2):
            if t1 != t2 and self.ancestors[q + 1] >> (p + 1) & 1:
                return p, q
        return None

    def narrower_writer(self, fm, results: np.ndarray) -> int | None:
        """A result whose elements are narrower than the read's: a wide read of bytes written as
        8-bit elements (Vela narrows, e.g. an int32 read as int8 bytes, never widens)."""
        if fm is None or not results.size:
            return None
        narrow = results[(self.bits[results + 1] > 0) & (self.bits[results + 1] < fm.bits)]
        return int(narrow[0]) if narrow.size else None

    def misplaced(self, fm, a: Access, w: np.ndarray, keys: np.ndarray) -> tuple[str, int, int] | None:
        """("offset", result, -1): a result whose bytes lie at different offsets of the read's
        coordinates; ("stale", older, newer): two overlapping blocks, newer computed from older."""
        g = self.geometry_id(fm, a.where.shape)
        if g < 0:
            return None
        same = self.geometry[w + 1] == g
        if not same.any():
            return None
        ws = w[same]
        delta = keys[same] - element_keys(a.where)[same]
        self._offset[ws + 1] = delta
        bad = self._offset[ws + 1] != delta
        if bad.any():
            return "offset", int(ws[int(np.argmax(bad))]), -1
        group = self.present(ws)
        if len(group) < 2:
            return None
        lo = -np.array([split_key_delta(int(self._offset[p + 1]))[:3] for p in group], dtype=np.int64)
        hi = lo + self.shape[group + 1]
        overlap = ((lo[:, None] < hi[None, :]) & (lo[None, :] < hi[:, None])).all(axis=2)
        for i, j in zip(*np.nonzero(np.triu(overlap, 1))):
            older, newer = int(group[i]), int(group[j])  # group is in stream order
            if self.ancestors[newer + 1] >> (older + 1) & 1:
                return "stale", older, newer
        return None


def accesses(plan) -> tuple[list[Access], list[Access]]:
    """(reads, writes) of one plan. Every operation plan describes its accesses: one that did not
    would be invisible to the check (its output "never written", its reads unchecked), so a plan
    without ``accesses`` is a gap of ours, named, never skipped."""
    fn = getattr(plan, "accesses", None)
    if fn is None:
        raise NotModelledError(f"the data-flow check has no access description for {type(plan).__name__}")
    return fn()


def check_dataflow(mem: Memory, plans: Iterable[tuple[int, object, object]],
                   inputs: Sequence[tuple[int, int]], outputs: Sequence[tuple[str, int, int, int]],
                   stop_at_first: bool = True) -> list[Violation]:
    """Replay the accesses of ``plans`` ((command index, command, plan) in stream order).

    ``inputs``: [lo, hi) byte ranges of region 1 the driver fills before the stream runs;
    ``outputs``: (tensor name, lo, hi, bits of its elements): ranges of region 1 the stream must
    write completely.
    Raises the first violation unless ``stop_at_first`` is False (disasm lists them all)."""
    found: list[Violation] = []

    def fault(v: Violation) -> None:
        if stop_at_first:
            raise CommandStreamError(v.text())
        found.append(v)

    written = WrittenBytes(mem)
    for lo, hi in inputs:
        written.mark(1, slice(lo, hi))
    results: dict[int, tuple[int, object, Access]] = {}  # plan position -> its OFM write
    plans = list(plans)
    used = np.zeros(len(plans) + 1, dtype=bool)  # [pos + 1]: the result of plan pos was read
    used[0] = True  # [0]: NO_OP, inputs and constants: never "unread"

    copied = np.zeros(len(plans) + 1, dtype=bool)  # [pos + 1]: bytes the DMA at pos put there were read
    copies: list[tuple[int, int, object, Access]] = []  # DMAs into numbered regions (not LUT loads)
    fm_constants: list[tuple[int, object, str, np.ndarray]] = []  # region 0 bytes a feature map reads

    def note_read(a: Access) -> None:
        w = written.writers_of(a)
        if w is not None:
            used[w + 1] = True  # a boolean scatter: faster than np.unique on every access
            copied[written.copiers_of(a) + 1] = True

    layouts = [layout_of(plan) for _i, _c, plan in plans]
    seen = np.zeros(len(plans) + 1, dtype=bool)  # scratch: the results one access reads

    def mixed_layouts(a: Access) -> tuple[int, int] | None:
        """Two results of different memory layouts in one feature-map read: the read spans two
        tensors (a moved or resized access reading stale bytes of an older tensor, or bytes a
        moved or grown OFM wrote over)."""
        w = written.writers_of(a)
        if w is None or not a.what.startswith("IFM"):
            return None
        seen[:] = False
        seen[w.reshape(-1) + 1] = True
        seen[0] = False
        found = np.flatnonzero(seen) - 1
        first = layouts[found[0]] if len(found) else None
        for p in found[1:]:
            if layouts[p] != first:
                return int(found[0]), int(p)
        return None

    tensors = Tensors(len(plans))

    def command_at(p: int) -> str:
        i, c, _plan = plans[p]
        return f"command {i} at stream byte {c.offset}"

    def tensor_fault(a: Access, fm) -> str | None:
        """The rules of ``Tensors`` for one feature-map read (None: it reads one tensor)."""
        shared = _collapsed_axis(a, fm)
        if shared is not None:
            return (f"{a.what} reads {shared} (a zero, unset or too small stride): a corrupt stride or a "
                    f"lost register write")
        w = written.writers_of(a)
        if w is None or not _tensor_access(a):
            return None
        if fm is not None:
            pair = tensors.across_tiles(fm, a, w)
            if pair is not None:
                return (f"{a.what} reads the OFM of {command_at(pair[0])} in one tile and, in another, that of "
                        f"{command_at(pair[1])}, computed from it: a corrupt kernel size, tile size or tile "
                        f"base reads past its tensor")
        narrow = tensors.narrower_writer(fm, tensors.present(w))
        if narrow is not None:
            return (f"{a.what} reads {fm.bits}-bit elements from bytes the OFM of {command_at(narrow)} wrote "
                    f"as {int(tensors.bits[narrow + 1])}-bit elements: a corrupt address or precision "
                    f"reads another tensor")
        bad = tensors.misplaced(fm, a, w, written.keys_of(a))
        if bad is None:
            return None
        kind, p, q = bad
        if kind == "offset":
            return (f"{a.what} takes the bytes of the OFM of {command_at(p)} at shifting positions (not one "
                    f"block of the tensor it reads): a corrupt address, stride or size")
        return (f"{a.what} reads, for overlapping elements, the OFM of {command_at(p)} and that of "
                f"{command_at(q)}, computed from it: two versions of a layer (stale bytes a corrupt OFM "
                f"address or size left)")

    constants: list[tuple[int, int, int, object, str]] = []  # weight/scale streams, as region 0 bytes
    partners: dict[tuple[int, int], tuple[frozenset, int, object]] = {}  # scale block -> its weights
    last = None
    for pos, (index, cmd, plan) in enumerate(plans):
        reads, writes = accesses(plan)
        streams: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # is scale -> this op's blocks
        for a in reads:
            if not a.what.endswith(" stream") or a.where.stop <= a.where.start:
                continue
            block = written.constant_block(a)
            if block is None:
                fault(Violation(index, cmd.offset, cmd.name,
                                f"{a.what} at region {a.region} bytes {a.where.start}..{a.where.stop} is not "
                                f"one copy of constant data (weights and scales come from region 0, "
                                f"directly or by DMA): a corrupt base address or length"))
            else:
                constants.append((*block, index, cmd, a.what))
                streams[a.what.endswith("scale stream")].append(block)
        # a scale stream belongs to the weights it was encoded with (Vela encodes them together;
        # weights shared by two operations may take two scale streams, never the reverse)
        mate = frozenset(streams[False])
        for block in streams[True]:
            first = partners.setdefault(block, (mate, index, cmd))
            if first[0] != mate:
                fault(Violation(index, cmd.offset, cmd.name,
                                f"the scale stream at region 0 bytes {block[0]}..{block[1]} goes with other "
                                f"weights than it does for command {first[1]} at stream byte {first[2].offset}: "
                                f"a corrupt scale or weight base address (or a lost write of one)"))
        for a in writes:
            if a.region == READ_ONLY_REGION:
                fault(Violation(index, cmd.offset, cmd.name,
                                f"{a.what} writes region {READ_ONLY_REGION} (read-only constant data): a "
                                f"corrupt region"))
        if getattr(plan, "is_copy", False):  # a copy: may move padding too; the data keeps its state
            written.copy(reads[0], writes[0], pos)
            note_read(reads[0])
            if isinstance(writes[0].region, int) and isinstance(reads[0].region, int):
                copies.append((pos, index, cmd, writes[0]))
            else:  # a LUT load: a table from constant data, never a weight or scale stream
                const = written.constants_of(reads[0])
                if const.size:
                    fm_constants.append((index, cmd, "DMA source (a LUT)", const))
            continue
        sources: set[int] = set()  # the results this operation is computed from
        for a in reads:
            bad = written.unwritten(a)
            if bad is not None:
                fault(Violation(index, cmd.offset, cmd.name, _unwritten_message(a, bad)))
            mixed = mixed_layouts(a)
            if mixed is not None:
                (i1, c1, _p1), (i2, c2, _p2) = plans[mixed[0]], plans[mixed[1]]
                fault(Violation(index, cmd.offset, cmd.name,
                                f"{a.what} reads bytes of two feature maps laid out differently (the OFM of "
                                f"command {i1} at stream byte {c1.offset} and that of command {i2} at stream "
                                f"byte {c2.offset}): a corrupt address, stride or size reads another "
                                f"tensor's bytes"))
            if a.what.startswith("IFM"):
                message = tensor_fault(a, _operand(plan, a.what))
                if message is not None:
                    fault(Violation(index, cmd.offset, cmd.name, message))
                const = written.constants_of(a)
                if const.size:
                    fm_constants.append((index, cmd, a.what, const))
            w = written.writers_of(a)
            if w is not None:
                sources.update(tensors.present(w).tolist())
            note_read(a)
        ancestry = tensors.ancestry(sources)
        # An operation with a kernel reads each IFM element for several OFM elements: Vela runs
        # only elementwise operations (and DMA copies) in place, keeping a kernel operation's IFM
        # and OFM live together, so an OFM over its own IFM is a corrupt address (or an operation
        # made of another's registers by a corrupt opcode)
        kernel = getattr(plan, "k", None)
        ifm = next((a for a in reads if a.what == "IFM"), None)
        if kernel is not None and kernel.height * kernel.width > 1 and ifm is not None and writes:
            hit = shared_byte(written, ifm, writes[0])
            if hit is not None:
                fault(Violation(index, cmd.offset, cmd.name,
                                f"the OFM of this {kernel.height}x{kernel.width} kernel operation writes "
                                f"region {writes[0].region} byte {hit}, which its own IFM reads: a corrupt "
                                f"address (only elementwise operations run in place)"))
        for a in writes:
            is_result = a.what == "OFM"
            # An OFM overwriting a result nobody read yet is not refused: valid streams do it (Vela's
            # PAD writes the border and then the interior over the same bytes, legacy core, seen in
            # the op matrix's pad_int8). Unread results are still caught at the end (never read).
            written.mark(a.region, a.where, pos if is_result else NO_OP)
            if is_result:
                results[pos] = (index, cmd, a)
                tensors.wrote(pos, _operand(plan, "OFM"), a, ancestry)
        last = (index, cmd)
    for name, lo, hi, bits in outputs:
        out = Access("output", 1, slice(lo, hi))
        bad = written.unwritten(out)
        if bad is not None:
            index, cmd = last if last is not None else (0, None)
            fault(Violation(index, cmd.offset if cmd else 0, cmd.name if cmd else "NPU_OP_STOP",
                            f"output tensor {name!r} (region 1 bytes {lo}..{hi}) is not written "
                            f"completely by the stream: byte {bad} never is"))
        # Vela writes an output tensor with OFMs of its element size or narrower ones (a byte
        # shuffle, e.g. an int32 TRANSPOSE moved as int8), never wider: bytes of a wider result
        # are stale (a corrupt OFM size or precision left the output incomplete)
        holders = tensors.present(written.writers_of(out))
        wider = holders[tensors.bits[holders + 1] > bits]
        if wider.size:
            q = int(wider[0])
            fault(Violation(plans[q][0], plans[q][1].offset, plans[q][1].name,
                            f"output tensor {name!r} ({bits}-bit elements, region 1 bytes {lo}..{hi}) holds "
                            f"bytes this OFM wrote as {int(tensors.bits[q + 1])}-bit elements: a corrupt OFM "
                            f"size, address or precision left the output incomplete"))
        note_read(out)
    # Vela lays out each weight and scale stream in region 0 once (DMA copies them to SRAM
    # whole): two streams overlap only when they are the same stream. A partial overlap, traced
    # back through the DMA copies, is a moved base or a changed length.
    constants.sort(key=lambda c: (c[0], c[1]))
    lo0 = hi0 = -1  # the block reaching furthest so far
    for lo, hi, index, cmd, what in constants:
        if lo >= hi0:
            lo0, hi0 = lo, hi
            continue
        if (lo, hi) != (lo0, hi0):
            fault(Violation(index, cmd.offset, cmd.name,
                            f"{what} holds region 0 bytes {lo}..{hi}, which cut across another weight or "
                            f"scale stream ({lo0}..{hi0}): a corrupt base address or length"))
            break
        if hi > hi0:
            lo0, hi0 = lo, hi
    # A constant feature map (a scalar or a table in region 0) is its own tensor there: one that
    # takes bytes of a weight or scale stream reads from a moved address.
    streams = np.zeros(mem.regions[READ_ONLY_REGION].shape[1], dtype=bool)
    for lo, hi, *_rest in constants:
        streams[lo:hi] = True
    for index, cmd, what, const in fm_constants:
        hit = const[streams[const]]
        if hit.size:
            fault(Violation(index, cmd.offset, cmd.name,
                            f"{what} reads region 0 byte {int(hit[0])}, part of a weight or scale stream, as "
                            f"feature-map or LUT data: a corrupt address or region"))
            break
    # A DMA whose bytes nothing reads: Vela copies only what a later operation, DMA or output
    # uses (weights for the next operation, a feature map to its consumer's memory), so a lost
    # or changed operation (a flipped opcode) or a corrupt DMA destination left it unread. LUT
    # loads are not in ``copies``: a LUT is read through the activation, not a feature map.
    for pos, index, cmd, a in copies:
        if not copied[pos + 1]:
            first = a.where.start if isinstance(a.where, slice) else int(a.where.min())
            fault(Violation(index, cmd.offset, cmd.name,
                            f"DMA to region {a.region} byte {first} is never read by a later operation, DMA "
                            f"or output: a lost or changed operation (a corrupt opcode) or a corrupt DMA "
                            f"destination"))
            break
    # A result nothing reads: Vela emits no dead operation, so its OFM address is wrong (or the
    # address its consumer reads from is).
    def remainder_stripe(pos: int) -> bool:
        """The last, shorter row stripe of a striped layer whose consumer needs fewer rows (a VALID
        pool of an odd height): Vela computes it all the same (seen: u55-64, an 8 KiB arena)."""
        g = tensors.geometry[pos + 1]
        earlier = [q for q in results if q < pos and type(plans[q][2]) is type(plans[pos][2])]
        if g < 0 or not earlier:
            return False
        q = earlier[-1]
        shape, prev = tensors.shape[pos + 1], tensors.shape[q + 1]
        return bool(used[q + 1] and tensors.geometry[q + 1] == g and (prev[1:] == shape[1:]).all()
                    and prev[0] > shape[0])

    for pos, (index, cmd, a) in results.items():
        if not used[pos + 1] and not remainder_stripe(pos):
            first = a.where.start if isinstance(a.where, slice) else int(a.where.min())
            fault(Violation(index, cmd.offset, cmd.name,
                            f"OFM written at region {a.region} byte {first} is never read by a later "
                            f"operation nor part of an output tensor: a corrupt OFM address, stride "
                            f"or region, or a corrupt IFM address of its consumer"))
    return found
