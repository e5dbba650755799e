"""The Corstone FVP target table (``fvp/targets.json``) as frozen dataclasses.

One row per (platform, NPU): the FVP executable, the MAC counts it can emulate, the parameter
prefixes, the generic inference runner to load and the Vela memory mode that runner was built for.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ...accel import Accelerator, get_accelerator
from ...errors import AcceleratorError, UserError
from ...paths import resource_dir

TARGETS_FILE = "targets.json"
PLATFORMS = ("corstone-300", "corstone-310")
DEFAULT_PLATFORM = "corstone-300"


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
    npu: str  # "U55" / "U65"
    cpu: str
    executable: str  # FVP_Corstone_SSE-300_Ethos-U55
    avh_executable: str  # VHT_Corstone_SSE-300_Ethos-U55 (Arm Virtual Hardware, /opt/VHT)
    mlia_backend: str  # name in MLIA's mlia_config.json
    num_macs: tuple[int, ...]
    default_macs: int
    board_prefix: str  # "mps3_board."
    npu_prefix: str  # "ethosu."
    runner_glob: str  # inside mlia/resources/backends/applications/
    memory_mode: str  # Vela memory mode the runner expects
    memory_map: MemoryMap

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
    mm = doc["memory_map"]
    memory_map = MemoryMap(
        model_address=_hex(mm["model_address"]),
        model_max_bytes=int(mm["model_max_bytes"]),
        ifm_address=_hex(mm["ifm_address"]),
        ifm_max_bytes=int(mm["ifm_max_bytes"]),
        ofm_address=_hex(mm["ofm_address"]),
        ofm_max_bytes=int(mm["ofm_max_bytes"]),
        dump_instance=mm["dump_instance"],
        dump_memory_space=mm["dump_memory_space"],
    )
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
            memory_map=memory_map,
        )
        for t in doc["targets"]
    )


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
    name = normalise_platform(platform)
    for target in load_targets():
        if target.platform == name and target.npu == npu.upper():
            return target
    raise AcceleratorError(f"{name} has no Ethos-{npu} FVP")


def target_for(accel: Accelerator | str, platform: str | None = None) -> tuple[FvpTarget, int]:
    """The FVP target for an accelerator and the ``ethosu.num_macs`` value to pass."""
    acc = accel if isinstance(accel, Accelerator) else get_accelerator(accel)
    target = get_target(platform, acc.npu)
    return target, target.check_macs(acc.macs_per_cycle)
