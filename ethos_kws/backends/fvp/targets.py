"""The Corstone FVP target table (``fvp/targets.json``) as frozen dataclasses.

One row per (platform, NPU): the FVP executable, the MAC counts it can emulate, the parameter
prefixes, the generic inference runner to load and the Vela memory mode that runner was built for.
Corstone-300/310 carry Ethos-U55/U65 (MPS3 board), Corstone-320 the Ethos-U85 (MPS4 board).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path

from ...accel import Accelerator, get_accelerator
from ...errors import AcceleratorError, UserError
from ...paths import resource_dir

TARGETS_FILE = "targets.json"
PLATFORMS = ("corstone-300", "corstone-310", "corstone-320")
DEFAULT_PLATFORM = "corstone-300"  # for U55/U65; an NPU only one platform carries gets that one


@dataclass(frozen=True)
class MemoryMap:
    """Where the generic inference runner looks for the model, the IFM blob and puts the OFMs."""

    model_address: int
    model_max_bytes: int
    ifm_address: int
    ifm_max_bytes: int
    ofm_address: int
    ofm_max_bytes: int
    dump_instance: str  # the FVP component whose address space --dump reads ("cpu0")
    dump_memory_space: str  # "Memory"


@dataclass(frozen=True)
class FvpTarget:
    platform: str  # "corstone-300"
    npu: str  # "U55" / "U65" / "U85"
    cpu: str
    executable: str  # FVP_Corstone_SSE-300_Ethos-U55
    avh_executable: str  # VHT_Corstone_SSE-300_Ethos-U55 (Arm Virtual Hardware, /opt/VHT)
    mlia_backend: str  # name in MLIA's mlia_config.json
    num_macs: tuple[int, ...]
    default_macs: int
    board_prefix: str  # "mps3_board." (Corstone-300/310), "mps4_board." (Corstone-320)
    npu_prefix: str  # "ethosu.", "mps4_board.subsystem.ethosu."
    runner_glob: str  # inside mlia/resources/backends/applications/
    memory_mode: str  # Vela memory mode the runner expects
    memory_map: MemoryMap
    extra_params: tuple[str, ...] = ()  # further headless -C parameters ("vis_hdlcd...=1")

    @property
    def key(self) -> str:
        return f"{self.platform}/{self.npu}"

    def check_macs(self, num_macs: int) -> int:
        if num_macs not in self.num_macs:
            raise AcceleratorError(
                f"{self.executable} emulates an Ethos-{self.npu} with "
                f"{', '.join(map(str, self.num_macs))} MACs, not {num_macs}"
            )
        return num_macs


def _hex(value: str | int) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


@functools.lru_cache(maxsize=2)
def _load(path: str) -> tuple[FvpTarget, ...]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    memory_map = _memory_map(doc["memory_map"])
    return tuple(
        FvpTarget(
            platform=t["platform"],
            npu=t["npu"],
            cpu=t["cpu"],
            executable=t["executable"],
            avh_executable=t["avh_executable"],
            mlia_backend=t["mlia_backend"],
            num_macs=tuple(int(m) for m in t["num_macs"]),
            default_macs=int(t["default_macs"]),
            board_prefix=t["board_prefix"],
            npu_prefix=t["npu_prefix"],
            runner_glob=t["runner_glob"],
            memory_mode=t["memory_mode"],
            memory_map=replace(memory_map, **_memory_map_fields(t.get("memory_map", {}))),
            extra_params=tuple(t.get("extra_params", ())),
        )
        for t in doc["targets"]
    )


_ADDRESS_FIELDS = ("model_address", "ifm_address", "ofm_address")
_SIZE_FIELDS = ("model_max_bytes", "ifm_max_bytes", "ofm_max_bytes")


def _memory_map_fields(mm: dict) -> dict:
    unknown = set(mm) - set(MemoryMap.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown memory_map field(s) in {TARGETS_FILE}: {', '.join(sorted(unknown))}")
    return {
        k: _hex(v) if k in _ADDRESS_FIELDS else int(v) if k in _SIZE_FIELDS else str(v)
        for k, v in mm.items()
    }


def _memory_map(mm: dict) -> MemoryMap:
    return MemoryMap(**_memory_map_fields(mm))


def targets_path() -> Path:
    return resource_dir("fvp") / TARGETS_FILE


def load_targets(path: Path | None = None) -> tuple[FvpTarget, ...]:
    return _load(str(path or targets_path()))


def normalise_platform(platform: str | None) -> str:
    name = (platform or DEFAULT_PLATFORM).strip().lower().replace("_", "-")
    if name.isdigit():
        name = f"corstone-{name}"
    if name not in PLATFORMS:
        raise UserError(
            f"unknown FVP platform {platform!r}; choose one of: {', '.join(PLATFORMS)}"
        )
    return name


def get_target(platform: str | None, npu: str) -> FvpTarget:
    """The row for ``npu`` on ``platform``; without a platform, the first row for ``npu``
    (Corstone-300 for U55/U65, Corstone-320 for U85)."""
    if platform is None:
        for target in load_targets():
            if target.npu == npu.upper():
                return target
    name = normalise_platform(platform)
    for target in load_targets():
        if target.platform == name and target.npu == npu.upper():
            return target
    carriers = [t.platform for t in load_targets() if t.npu == npu.upper()]
    raise AcceleratorError(
        f"{name} has no Ethos-{npu} FVP"
        + (f"; Ethos-{npu} runs on {', '.join(carriers)}" if carriers else "")
    )


def target_for(accel: Accelerator | str, platform: str | None = None) -> tuple[FvpTarget, int]:
    """The FVP target for an accelerator and the ``ethosu.num_macs`` value to pass."""
    acc = accel if isinstance(accel, Accelerator) else get_accelerator(accel)
    target = get_target(platform, acc.npu)
    return target, target.check_macs(acc.macs_per_cycle)
