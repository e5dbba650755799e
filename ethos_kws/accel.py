"""The accelerator table: Ethos-U55/U65/U85 MAC configurations and their default system configs.

System configs and memory modes are read from the ini that ships inside the installed Vela
(``ethosu/config_files/Arm/vela.ini``), which ethos-kws passes to Vela explicitly, so the clocks
shown here are the ones Vela compiles with and no copy of Arm's values can drift from them.
"""

from __future__ import annotations

import configparser
import functools
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import AcceleratorError

# Vela's own ini, relative to the installed ``ethosu`` package (what `vela --config Arm/vela.ini`
# names); found through the import system, never copied
VELA_INI_PARTS = ("config_files", "Arm", "vela.ini")


@dataclass(frozen=True)
class Block:
    """A height x width x depth block of feature-map elements (Vela's ``Block``)."""

    height: int
    width: int
    depth: int


@dataclass(frozen=True)
class Accelerator:
    """One Ethos-U configuration. Every fact about it lives here and nowhere else: the simulator,
    the FVP backend, Vela's argv and the reports all read this record."""

    name: str  # ethos-kws spelling, e.g. "u55-128"
    vela_config: str  # Vela --accelerator-config, e.g. "ethos-u55-128"
    npu: str  # family: "U55", "U65", "U85" (the COP1 header's product field)
    macs_per_cycle: int  # the whole NPU (both cores on a 2-core U65)
    cores: int  # U65-512 is two 256-MAC cores sharing out the OFM channels
    ofm_ublock: Block  # the MAC array's output micro-block (per core)
    ifm_ublock: Block  # the IFM micro-block the weight traversal walks (per core)
    shram_bytes: int  # internal SHRAM of the whole NPU (per core: shram_bytes // cores)
    axi_bytes_per_beat: int  # AXI data width: 64-bit on U55, 128-bit on U65 and U85
    default_system_config: str
    default_memory_mode: str

    @property
    def family(self) -> str:
        """``u55``, ``u65``, ``u85``: the selector ``--accel u55`` expands to."""
        return self.npu.lower()

    @property
    def legacy_core(self) -> bool:
        """Whether Vela's deprecated Python core (``--legacy-core``) can compile for it: not U85."""
        return self.npu != "U85"

    @property
    def macs_per_core(self) -> int:
        return self.macs_per_cycle // self.cores

    @property
    def shram_bytes_per_core(self) -> int:
        return self.shram_bytes // self.cores


# Family defaults: (npu, default system config, default memory mode, AXI bytes per beat), as Arm's
# evaluation kit and MLIA pair them.
_U55 = ("U55", "Ethos_U55_High_End_Embedded", "Shared_Sram", 8)
_U65 = ("U65", "Ethos_U65_High_End", "Dedicated_Sram", 16)
_U85 = ("U85", "Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram", 16)

# One row per configuration: name, family, MACs/cycle, cores, OFM ublock, IFM ublock, SHRAM KiB.
# Micro-blocks and core counts follow Vela's architecture_features accelerator configs; SHRAM size
# is what the COP1 header of Vela's output declares for each configuration.
_ROWS = [
    ("u55-32", _U55, 32, 1, Block(1, 1, 4), Block(1, 1, 8), 16),
    ("u55-64", _U55, 64, 1, Block(1, 1, 8), Block(1, 1, 8), 16),
    ("u55-128", _U55, 128, 1, Block(2, 1, 8), Block(2, 1, 8), 24),
    ("u55-256", _U55, 256, 1, Block(2, 2, 8), Block(2, 2, 8), 48),
    ("u65-256", _U65, 256, 1, Block(2, 2, 8), Block(2, 2, 8), 48),
    ("u65-512", _U65, 512, 2, Block(2, 2, 8), Block(2, 2, 8), 96),
    # U85 (regor's ethos_u85.cpp accelerator configs): cores 1/1/2/4/4; the OFM ublock is the
    # first of the config's OFM micro-blocks (the op's own is in ACC_FORMAT), the IFM ublock is
    # the config's ifmUBlock. U85 has no SHRAM: the figure is its IFM buffer (IB RAM); LUTs live
    # in a separate 2 KiB LUT RAM.
    ("u85-128", _U85, 128, 1, Block(1, 2, 8), Block(1, 2, 8), 8),
    ("u85-256", _U85, 256, 1, Block(1, 2, 16), Block(2, 2, 8), 16),
    ("u85-512", _U85, 512, 2, Block(2, 2, 16), Block(2, 2, 16), 16),
    ("u85-1024", _U85, 1024, 4, Block(2, 2, 32), Block(4, 2, 16), 16),
    ("u85-2048", _U85, 2048, 4, Block(2, 2, 64), Block(4, 4, 16), 32),
]

ACCELERATORS: dict[str, Accelerator] = {
    name: Accelerator(name, f"ethos-{name}", npu, macs, cores, ofm, ifm, shram_kib * 1024, beat,
                      sysc, mem)
    for name, (npu, sysc, mem, beat), macs, cores, ofm, ifm, shram_kib in _ROWS
}


def accelerator_for(npu: str, macs_per_cycle: int) -> Accelerator:
    """The configuration a command stream's COP1 header names (family and MACs/cycle)."""
    for acc in ACCELERATORS.values():
        if acc.npu == npu.upper() and acc.macs_per_cycle == macs_per_cycle:
            return acc
    raise AcceleratorError(f"no Ethos-{npu.upper()} configuration with {macs_per_cycle} MACs/cycle")


def families() -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.family for a in ACCELERATORS.values()))


_NAME_RE = re.compile(r"^(?:ethos[-_])?(u\d\d)[-_](\d+)$", re.IGNORECASE)


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
    """``all``, ``None``, a comma-separated string or a list of names and families (``u55``)."""
    if spec is None:
        return list(ACCELERATORS.values())
    items = spec.split(",") if isinstance(spec, str) else [s for x in spec for s in x.split(",")]
    items = [s.strip() for s in items if s.strip()]
    if not items:  # "" or ",": a typo or an empty variable, not a wish for every configuration
        raise AcceleratorError(f"--accel {spec!r} names no accelerator; give all or a list such as u55-128,u65-256")
    if items == ["all"]:
        return list(ACCELERATORS.values())
    out: list[Accelerator] = []
    for item in items:
        family = item.lower().removeprefix("ethos-")
        chosen = ([a for a in ACCELERATORS.values() if a.family == family] if family in families()
                  else [get_accelerator(item)])
        out.extend(a for a in chosen if a not in out)
    return out


@functools.lru_cache(maxsize=1)
def vela_ini_path() -> Path:
    """``ethosu/config_files/Arm/vela.ini`` of the installed Vela (found once per process: every
    spec, check and cache key asks, and the installed Vela does not move)."""
    spec = importlib.util.find_spec("ethosu")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base).joinpath(*VELA_INI_PARTS)
        if path.is_file():
            return path
    raise AcceleratorError(
        "the installed Vela has no ethosu/config_files/Arm/vela.ini; reinstall ethos-u-vela==5.2.0"
    )


@dataclass(frozen=True)
class SystemConfig:
    """One ``[System_Config.*]`` of the ini. ``*_ports_used`` is U85 vocabulary: how many AXI ports
    of the NPU reach that memory (Vela multiplies its bandwidth by it); absent means 1."""

    name: str
    core_clock_hz: float
    axi0_port: str
    axi1_port: str
    axi0_ports_used: int = 1  # e.g. Sram_ports_used=2 on Ethos_U85_SYS_DRAM_Mid
    axi1_ports_used: int = 1  # e.g. Dram_ports_used=1 on Ethos_U85_SYS_DRAM_Mid


def _stamp(paths: tuple[str, ...]) -> tuple:
    """What identifies the files' current content for the caches below: an edited ini is re-read."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((p, None, None))
    return tuple(out)


def _read_ini(*paths: str) -> configparser.ConfigParser:
    """The ini files read as one, later files adding to (and overriding keys of) earlier ones:
    how Vela reads several ``--config`` files."""
    return _parse_ini(_stamp(paths))


@functools.lru_cache(maxsize=8)
def _parse_ini(stamp: tuple) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cp.optionxform = str  # Vela's keys are case-sensitive
    cp.read([p for p, _, _ in stamp])
    return cp


def ini_paths(ini: str | Path | None = None) -> tuple[str, ...]:
    """Vela's own ini, then the user's (``--config``) when given."""
    return (str(vela_ini_path()),) + ((str(ini),) if ini else ())


def ini_get(cp: configparser.ConfigParser, section: str, key: str, default: str | None = None) -> str | None:
    """``key`` of ``section``, following Vela's ``inherit`` (the section's own value wins)."""
    seen = set()
    while section and section not in seen and cp.has_section(section):
        seen.add(section)
        if cp.has_option(section, key):
            return cp.get(section, key)
        section = cp.get(section, "inherit", fallback="")
    return default


def system_configs(ini: str | Path | None = None) -> dict[str, SystemConfig]:
    """``ini``: the user's ini (``--config``), read on top of Vela's own."""
    return _system_configs(_stamp(ini_paths(ini)))


@functools.lru_cache(maxsize=8)
def _system_configs(stamp: tuple) -> dict[str, SystemConfig]:
    cp = _parse_ini(stamp)
    out = {}
    for section in cp.sections():
        if section.startswith("System_Config."):
            name = section.split(".", 1)[1]
            axi0, axi1 = ini_get(cp, section, "axi0_port", ""), ini_get(cp, section, "axi1_port", "")
            out[name] = SystemConfig(
                name, float(ini_get(cp, section, "core_clock", "0")), axi0, axi1,
                int(ini_get(cp, section, f"{axi0}_ports_used", "1")), int(ini_get(cp, section, f"{axi1}_ports_used", "1")),
            )  # fmt: skip
    return out


def memory_modes(ini: str | Path | None = None) -> dict[str, dict[str, str]]:
    return _memory_modes(_stamp(ini_paths(ini)))


@functools.lru_cache(maxsize=8)
def _memory_modes(stamp: tuple) -> dict[str, dict[str, str]]:
    cp = _parse_ini(stamp)
    out = {}
    for section in cp.sections():
        if section.startswith("Memory_Mode."):
            keys = {k for s in _inherit_chain(cp, section) for k in cp[s] if k != "inherit"}
            out[section.split(".", 1)[1]] = {k: ini_get(cp, section, k) for k in sorted(keys)}
    return out


def _inherit_chain(cp: configparser.ConfigParser, section: str) -> list[str]:
    chain: list[str] = []
    while section and section not in chain and cp.has_section(section):
        chain.append(section)
        section = cp.get(section, "inherit", fallback="")
    return chain


def _where(ini: str | Path | None) -> str:
    return f" (in {Path(vela_ini_path()).name} and {ini})" if ini else ""


def get_system_config(name: str, ini: str | Path | None = None) -> SystemConfig:
    configs = system_configs(ini)
    try:
        return configs[name]
    except KeyError:
        raise AcceleratorError(
            f"unknown system config {name!r}{_where(ini)}; choose one of: {', '.join(configs)}"
        ) from None


def check_memory_mode(name: str, ini: str | Path | None = None) -> str:
    modes = memory_modes(ini)
    if name not in modes:
        raise AcceleratorError(f"unknown memory mode {name!r}{_where(ini)}; choose one of: {', '.join(modes)}")
    return name


# where Vela lets each memory-mode area live (architecture_features: the mapped AXI port's memory)
_AREA_MEMORIES = {
    "const_mem_area": ("Dram", "OnChipFlash", "OffChipFlash"),
    "arena_mem_area": ("Sram", "Dram"),
    "cache_mem_area": ("Sram",),
}


def check_memory_mode_fits(system_config: str, memory_mode: str, ini: str | Path | None = None) -> None:
    """Vela's own check of a memory mode against a system config, before Vela runs: each area
    (``const_mem_area=Axi1``) maps through the config's AXI port to a memory Vela allows there."""
    sc = get_system_config(system_config, ini)
    mode = memory_modes(ini)[check_memory_mode(memory_mode, ini)]
    ports = {"axi0": sc.axi0_port, "axi1": sc.axi1_port}
    areas = [str(mode.get(a, "")).strip().lower() for a in _AREA_MEMORIES]
    if len(set(areas)) == 1 and ports.get(areas[0]) == "Sram":
        return  # Vela moves const_mem_area to an OnChipFlash with the SRAM's timing (Sram_Only)
    for area, allowed in _AREA_MEMORIES.items():
        port = mode.get(area)
        if port is None:
            continue
        memory = ports.get(port.strip().lower())
        if memory is None:
            raise AcceleratorError(f"memory mode {memory_mode!r}: {area}={port} is not Axi0 or Axi1{_where(ini)}")
        if memory not in allowed:
            raise AcceleratorError(
                f"memory mode {memory_mode!r} with system config {system_config!r} puts {area} in {memory} "
                f"({port}); Vela needs {' or '.join(allowed)} there"
            )


def check_system_config_fits(acc: Accelerator, system_config: str, ini: str | Path | None = None) -> None:
    """Vela rejects a U55 compiled against a DRAM system config; say so before it does."""
    sc = get_system_config(system_config, ini)
    if acc.npu == "U55" and sc.axi1_port.lower() == "dram":
        raise AcceleratorError(
            f"system config {system_config!r} puts DRAM on AXI1, which {acc.name} (Ethos-U55) "
            "cannot use; pick a U55 system config (see `ethos-kws configs`)"
        )
