"""The accelerator table: Ethos-U55/U65 MAC configurations and their default system configs.

System configs and memory modes are read from the ini in ``vela_configs/`` that ethos-kws passes to
Vela explicitly, so the clocks shown here are the ones Vela compiles with.
"""

from __future__ import annotations

import configparser
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import AcceleratorError
from .paths import resource_dir

VELA_INI_NAME = "ethos_kws.ini"


@dataclass(frozen=True)
class Accelerator:
    name: str  # ethos-kws spelling, e.g. "u55-128"
    vela_config: str  # Vela --accelerator-config, e.g. "ethos-u55-128"
    npu: str  # "U55" or "U65"
    macs_per_cycle: int  # the whole NPU (both cores on a 2-core U65)
    cores: int
    default_system_config: str
    default_memory_mode: str
    axi_bytes_per_beat: int  # AXI data width: 64-bit on U55, 128-bit on U65


_U55 = ("U55", 1, "Ethos_U55_High_End_Embedded", "Shared_Sram", 8)
_U65_1 = ("U65", 1, "Ethos_U65_High_End", "Dedicated_Sram", 16)
_U65_2 = ("U65", 2, "Ethos_U65_High_End", "Dedicated_Sram", 16)

ACCELERATORS: dict[str, Accelerator] = {
    name: Accelerator(name, f"ethos-{name}", npu, macs, cores, sysc, mem, beat)
    for name, macs, (npu, cores, sysc, mem, beat) in [
        ("u55-32", 32, _U55),
        ("u55-64", 64, _U55),
        ("u55-128", 128, _U55),
        ("u55-256", 256, _U55),
        ("u65-256", 256, _U65_1),
        ("u65-512", 512, _U65_2),
    ]
}

_NAME_RE = re.compile(r"^(?:ethos[-_])?(u55|u65)[-_](\d+)$", re.IGNORECASE)


def get_accelerator(name: str) -> Accelerator:
    """Look up ``u55-128`` or ``ethos-u55-128`` (case-insensitive)."""
    m = _NAME_RE.match(name.strip())
    key = f"{m.group(1).lower()}-{m.group(2)}" if m else name
    try:
        return ACCELERATORS[key]
    except KeyError:
        raise AcceleratorError(
            f"unknown accelerator {name!r}; choose one of: {', '.join(ACCELERATORS)}"
        ) from None


def parse_accelerator_list(spec: str | list[str] | None) -> list[Accelerator]:
    """``all``, ``None``, a comma-separated string or a list of names."""
    if spec is None:
        return list(ACCELERATORS.values())
    items = spec.split(",") if isinstance(spec, str) else [s for x in spec for s in x.split(",")]
    items = [s.strip() for s in items if s.strip()]
    if not items or items == ["all"]:
        return list(ACCELERATORS.values())
    out: list[Accelerator] = []
    for item in items:
        acc = get_accelerator(item)
        if acc not in out:
            out.append(acc)
    return out


def vela_ini_path() -> Path:
    return resource_dir("vela_configs") / VELA_INI_NAME


@dataclass(frozen=True)
class SystemConfig:
    name: str
    core_clock_hz: float
    axi0_port: str
    axi1_port: str


@functools.lru_cache(maxsize=4)
def _read_ini(path: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cp.optionxform = str  # Vela's keys are case-sensitive
    cp.read(path)
    return cp


def system_configs(ini: Path | None = None) -> dict[str, SystemConfig]:
    cp = _read_ini(str(ini or vela_ini_path()))
    out = {}
    for section in cp.sections():
        if section.startswith("System_Config."):
            name = section.split(".", 1)[1]
            s = cp[section]
            out[name] = SystemConfig(
                name, float(s["core_clock"]), s.get("axi0_port", ""), s.get("axi1_port", "")
            )
    return out


def memory_modes(ini: Path | None = None) -> dict[str, dict[str, str]]:
    cp = _read_ini(str(ini or vela_ini_path()))
    return {
        section.split(".", 1)[1]: dict(cp[section])
        for section in cp.sections()
        if section.startswith("Memory_Mode.")
    }


def get_system_config(name: str, ini: Path | None = None) -> SystemConfig:
    configs = system_configs(ini)
    try:
        return configs[name]
    except KeyError:
        raise AcceleratorError(
            f"unknown system config {name!r}; choose one of: {', '.join(configs)}"
        ) from None


def check_memory_mode(name: str, ini: Path | None = None) -> str:
    modes = memory_modes(ini)
    if name not in modes:
        raise AcceleratorError(f"unknown memory mode {name!r}; choose one of: {', '.join(modes)}")
    return name


def check_system_config_fits(acc: Accelerator, system_config: str) -> None:
    """Vela rejects a U55 compiled against a DRAM system config; say so before it does."""
    sc = get_system_config(system_config)
    if acc.npu == "U55" and sc.axi1_port.lower() == "dram":
        raise AcceleratorError(
            f"system config {system_config!r} puts DRAM on AXI1, which {acc.name} (Ethos-U55) "
            "cannot use; pick a U55 system config (see `ethos-kws configs`)"
        )
