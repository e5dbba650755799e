"""The ``*_vela.tflite`` container: the ``ethos-u`` custom op, its regions and its COP1 payload.

Inputs of the custom op: 0 command stream, 1 ``read_only`` (region 0), 2 ``scratch`` (region 1, the
arena holding the op's IFMs/OFMs), 3 ``scratch_fast`` (region 2; the same tensor as scratch in
Shared_Sram mode), then the IFMs. Arena offsets come from the ``OfflineMemoryAllocation`` metadata.
The command stream tensor starts with ``'COP1'`` and driver actions; CONFIG carries ``config_r``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...accel import Accelerator, accelerator_for
from ...errors import AcceleratorError, CommandStreamError, ModelError
from ...tflite import TfliteModel, numpy_dtype

CUSTOM_CODE = "ethos-u"
FOURCC = int.from_bytes(b"COP1", "little")

# Driver action tags (Vela's driver_actions.DACommands)
DA_CONFIG, DA_CMD_STREAM, DA_READ_APB, DA_DUMP_SHRAM, DA_NOP = 0x01, 0x02, 0x03, 0x04, 0x05
PRODUCTS = {0: "U55", 1: "U65", 2: "U85"}  # config_r [31:28]


@dataclass(frozen=True)
class NpuConfig:
    """What ``config_r`` says about the accelerator the stream was compiled for."""

    config_word: int
    macs_per_cycle: int
    npu: str
    shram_bytes: int
    cmd_stream_version: int

    @classmethod
    def from_word(cls, word: int) -> NpuConfig:
        product = (word >> 28) & 0xF
        if product not in PRODUCTS:
            raise CommandStreamError(f"COP1 config_r 0x{word:08x}: unknown product {product}")
        macs = 1 << (word & 0xF)
        npu = PRODUCTS[product]
        # U55/U65: [15:8] SHRAM KiB. U85 has no SHRAM; those bits count AXI ports and weight
        # decoders, so its internal buffer size comes from the accelerator table.
        shram = ((word >> 8) & 0xFF) * 1024 if npu != "U85" else 0
        cfg = cls(word, macs, npu, shram, (word >> 4) & 0xF)
        if npu == "U85":
            cfg = cls(word, macs, npu, cfg.accelerator.shram_bytes, cfg.cmd_stream_version)
        cfg.accelerator  # an unknown (family, MACs) pair is a malformed header  # noqa: B018
        return cfg

    @property
    def name(self) -> str:
        return self.accelerator.name

    @property
    def accelerator(self) -> Accelerator:
        """The configuration of the accelerator table the header names."""
        try:
            return accelerator_for(self.npu, self.macs_per_cycle)
        except AcceleratorError as e:
            raise CommandStreamError(f"COP1 config_r 0x{self.config_word:08x}: {e}") from None


@dataclass(frozen=True)
class CommandPayload:
    config: NpuConfig
    words: np.ndarray  # uint32 register command stream (after the driver actions)


def parse_payload(data: bytes) -> CommandPayload:
    """Parse the COP1 driver payload: CONFIG, NOPs, then one CMD_STREAM with its words."""
    if len(data) % 4:
        raise CommandStreamError(f"command stream tensor is {len(data)} bytes, not a multiple of 4")
    words = np.frombuffer(data, dtype="<u4")
    if len(words) == 0 or int(words[0]) != FOURCC:
        raise CommandStreamError("command stream does not start with the 'COP1' driver header")
    config = None
    i = 1
    n = len(words)
    while i < n:
        tag = int(words[i])
        action, reserved, param = tag & 0xFF, (tag >> 8) & 0xFF, tag >> 16
        if action == DA_CONFIG:
            if i + 2 >= n:
                raise CommandStreamError("truncated COP1 header: CONFIG without config_r/id_r")
            config = NpuConfig.from_word(int(words[i + 1]))
            i += 3
        elif action == DA_NOP:
            i += 1
        elif action == DA_CMD_STREAM:
            length = (reserved << 16) | param
            if config is None:
                raise CommandStreamError("COP1 header has no CONFIG action before the command stream")
            if i + 1 + length > n:
                raise CommandStreamError(
                    f"truncated command stream: header says {length} words, {n - i - 1} present"
                )
            return CommandPayload(config, words[i + 1 : i + 1 + length].copy())
        elif action in (DA_READ_APB, DA_DUMP_SHRAM):
            i += 1  # debug actions: nothing to execute
        else:
            raise CommandStreamError(f"unknown COP1 driver action 0x{action:02x} at word {i}")
    raise CommandStreamError("COP1 payload has no CMD_STREAM action")


@dataclass(frozen=True)
class ArenaTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # in the scratch arena (region 1)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class EthosUOp:
    """One ``ethos-u`` custom operator with everything needed to run it."""

    op_index: int
    payload: CommandPayload
    read_only: bytes
    scratch_bytes: int
    scratch_fast_bytes: int
    fast_is_scratch: bool  # Shared_Sram: regions 1 and 2 are one memory
    ifms: tuple[ArenaTensor, ...]
    ofms: tuple[ArenaTensor, ...]


def offline_offsets(model: TfliteModel, subgraph: int = 0) -> np.ndarray | None:
    """Arena offsets of one subgraph's tensors (-1: not in the arena). Vela writes one table for
    the whole model: [version, subgraph count, offset count, offsets of subgraph 0's tensors, then
    subgraph 1's, ...], so a later subgraph's offsets start after every earlier subgraph's."""
    raw = model.metadata("OfflineMemoryAllocation")
    if raw is None:
        return None
    arr = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4")
    if len(arr) < 3 or arr[2] != len(arr) - 3:
        raise ModelError("corrupt OfflineMemoryAllocation metadata (count does not match its length)")
    counts = [model.model.Subgraphs(i).TensorsLength() for i in range(model.model.SubgraphsLength())]
    if subgraph >= len(counts):
        raise ModelError(f"subgraph {subgraph} does not exist")
    start = 3 + sum(counts[:subgraph])
    if subgraph > 0 and (arr[1] != len(counts) or len(arr) < start + counts[subgraph]):
        raise ModelError(f"OfflineMemoryAllocation metadata has no offsets for subgraph {subgraph}")
    return arr[start : start + counts[subgraph]]


def compiled_accelerators(model: TfliteModel) -> list[str]:
    """The accelerator configurations named by the COP1 headers of a Vela model's ethos-u
    operators (one per operator; a model compiled by any Vela, ours or a vendor's)."""
    names = []
    for op in model.operators():
        if op.opcode == "CUSTOM" and op.custom_code == CUSTOM_CODE:
            data = model.tensor_data(op.inputs[0]) if op.inputs else None
            if data is None:
                raise ModelError(f"ethos-u operator {op.index} has an empty command stream tensor")
            name = parse_payload(data.tobytes()).config.name
            if name not in names:
                names.append(name)
    return names


def check_accel_matches(model: TfliteModel, accel: str | None) -> str:
    """The configuration a compiled model runs on: its COP1 header's. ``accel`` (if given) must
    agree; a disagreement is the user's error, never silently ignored."""
    from ...accel import get_accelerator

    names = compiled_accelerators(model)
    if len(names) != 1:
        raise ModelError(f"{model.path.name}: ethos-u operators compiled for different accelerators ({', '.join(names)})")
    if accel is not None and get_accelerator(accel).name != names[0]:
        raise AcceleratorError(f"{model.path.name} was compiled for {names[0]} (its COP1 header); "
                               f"--accel {accel} disagrees: drop --accel or recompile the original model")
    return names[0]


def is_vela_model(model: TfliteModel) -> bool:
    return any(op.opcode == "CUSTOM" and op.custom_code == CUSTOM_CODE for op in model.operators())


def _arena_tensor(model: TfliteModel, index: int, offsets: np.ndarray, subgraph: int = 0) -> ArenaTensor:
    spec = model.tensor_spec(index, subgraph)
    if index >= len(offsets) or offsets[index] < 0:
        raise ModelError(f"tensor {spec.name!r} of the ethos-u op has no arena offset")
    dtype = numpy_dtype(model.tensor(index, subgraph).Type())
    return ArenaTensor(index, spec.name, tuple(spec.shape), dtype, int(offsets[index]))


def _size(model: TfliteModel, index: int, subgraph: int = 0) -> int:
    spec = model.tensor_spec(index, subgraph)
    return int(np.prod(spec.shape, dtype=np.int64)) if spec.shape else 0


def read_ethos_u_op(model: TfliteModel, op, subgraph: int = 0) -> EthosUOp:
    """The ethos-u operator ``op`` of ``subgraph``: its tensor indices are that subgraph's (a
    CALL_ONCE init subgraph has its own command stream, read-only data and arena offsets)."""
    if len(op.inputs) < 4:
        raise ModelError(f"ethos-u operator {op.index} has {len(op.inputs)} inputs; expected at least 4")
    offsets = offline_offsets(model, subgraph)
    if offsets is None:
        raise ModelError("Vela model has no OfflineMemoryAllocation metadata")
    cmd_idx, ro_idx, scratch_idx, fast_idx = op.inputs[:4]
    cmd = model.tensor_data(cmd_idx, subgraph)
    if cmd is None:
        raise ModelError("ethos-u operator has an empty command stream tensor")
    ro = model.tensor_data(ro_idx, subgraph)
    # An input outside the arena (offset -1) is one the stream cannot address: Regor passes a
    # TRANSPOSE_CONV's output_shape model input to the U85 op, its value fixed at compile time.
    ifms = tuple(_arena_tensor(model, i, offsets, subgraph) for i in op.inputs[4:]
                 if not (0 <= i < len(offsets) and offsets[i] == -1))
    ofms = tuple(_arena_tensor(model, i, offsets, subgraph) for i in op.outputs)
    scratch = max([_size(model, scratch_idx, subgraph)] + [t.offset + t.nbytes for t in ifms + ofms])
    return EthosUOp(
        op_index=op.index,
        payload=parse_payload(cmd.tobytes()),
        read_only=ro.tobytes() if ro is not None else b"",
        scratch_bytes=scratch,
        scratch_fast_bytes=_size(model, fast_idx, subgraph),
        fast_is_scratch=fast_idx == scratch_idx,
        ifms=ifms,
        ofms=ofms,
    )
