"""Parse what an FVP run prints: PMU counters, the runner's transfer lines, errors, ``--stat``.

Every counter format seen in recorded console output is accepted (fixtures in
``shared/data/fvp-logs``):

- MLIA-bundled generic inference runner: ``<metrics>BASE64</metrics>``, the base64 a JSON list of
  profiling groups with ``samples[].name`` / ``samples[].value[0]``;
- evaluation kit text, current (2022-04+): ``INFO - NPU ACTIVE: 404973 cycles``;
- evaluation kit text, 2021: ``INFO - NPU ACTIVE cycles: 680611`` (and ``NPU total cycles``);
- evaluation kit text, 2021-03: tab-indented ``Active NPU cycles: 680400``;
- ``ethosu_pmu_cycle_cntr : N`` / ``ethosu_pmu_cntrK : N`` (ExecuTorch, Zephyr), with the event
  names taken from an ``Ethos-U PMU Events:[...]`` line when one is printed.

Counter names are normalised to the evaluation kit's spelling (``NPU ACTIVE``, ``NPU TOTAL``,
``NPU AXI0_RD_DATA_BEAT_RECEIVED``...), without the driver's ``ETHOSU_PMU_`` prefix (the U85
runner prints ``NPU ETHOSU_PMU_SRAM_RD_DATA_BEAT_RECEIVED``: ``NPU SRAM_RD_DATA_BEAT_RECEIVED``).
Nothing is inferred: a counter the log does not print is absent, never computed from others.

Each family names its memory-port counters its own way (``PORT_COUNTERS``): U55/U65 by AXI port
(AXI0 is the SRAM port, AXI1 the flash/DRAM one), U85 by the memory behind the port (SRAM, EXT)
and it also counts EXT writes. Nothing maps one family's names onto another's here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Mapping

from ...errors import BackendError

NPU_ACTIVE = "NPU ACTIVE"
NPU_IDLE = "NPU IDLE"
NPU_TOTAL = "NPU TOTAL"
AXI0_READ = "NPU AXI0_RD_DATA_BEAT_RECEIVED"
AXI0_WRITE = "NPU AXI0_WR_DATA_BEAT_WRITTEN"
AXI1_READ = "NPU AXI1_RD_DATA_BEAT_RECEIVED"
SRAM_READ = "NPU SRAM_RD_DATA_BEAT_RECEIVED"  # Ethos-U85
SRAM_WRITE = "NPU SRAM_WR_DATA_BEAT_WRITTEN"
EXT_READ = "NPU EXT_RD_DATA_BEAT_RECEIVED"
EXT_WRITE = "NPU EXT_WR_DATA_BEAT_WRITTEN"
INFERENCE_GROUP = "Inference"
REQUIRED_COUNTERS = (NPU_ACTIVE, NPU_IDLE, NPU_TOTAL, AXI0_READ, AXI0_WRITE, AXI1_READ)


@dataclass(frozen=True)
class PortCounters:
    """The counters of one family's memory ports, named by what they count: beats read from and
    written to the SRAM, read from (and, where counted, written to) the external memory."""

    sram_read: str
    sram_write: str
    ext_read: str
    ext_write: str | None  # the U55/U65 runners count no AXI1 writes

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.sram_read, self.sram_write, self.ext_read, self.ext_write) if n)


_AXI_PORTS = PortCounters(AXI0_READ, AXI0_WRITE, AXI1_READ, None)
PORT_COUNTERS: dict[str, PortCounters] = {
    "U55": _AXI_PORTS,
    "U65": _AXI_PORTS,
    "U85": PortCounters(SRAM_READ, SRAM_WRITE, EXT_READ, EXT_WRITE),
}


def port_counters(npu: str) -> PortCounters:
    try:
        return PORT_COUNTERS[npu.upper()]
    except KeyError:
        raise BackendError(f"no PMU counter names known for Ethos-{npu}") from None


def required_counters(npu: str) -> tuple[str, ...]:
    """What a finished inference must have printed on that family's runner."""
    return (NPU_ACTIVE, NPU_IDLE, NPU_TOTAL, *port_counters(npu).names)

# ---- PMU counters ------------------------------------------------------------------------------

_METRICS_RE = re.compile(r"<metrics>(.*?)</metrics>")
_PREFIX = r"^\s*(?:\[?INFO\]?\s*-?\s*)?"
# "NPU ACTIVE: 404973 cycles" (current) and "NPU ACTIVE cycles: 680611" (2021)
_TEXT_NEW_RE = re.compile(_PREFIX + r"(NPU [A-Za-z0-9_ ]*?[A-Za-z0-9_]): (\d+) (cycles|beats)\s*$")
_TEXT_OLD_RE = re.compile(_PREFIX + r"(NPU [A-Za-z0-9_ ]*?[A-Za-z0-9_]) (cycles|beats): (\d+)\s*$")
# "\tActive NPU cycles: 680400" (2021-03)
_TEXT_OLDEST_RE = re.compile(r"^\s*(Active|Idle|Total) NPU cycles:\s*(\d+)\s*$")
_PMU_CYCLE_RE = re.compile(r"\bethosu_pmu_cycle_cntr\s*:\s*(\d+)")
_PMU_EVENT_RE = re.compile(r"\bethosu_pmu_cntr(\d+)\s*:\s*(\d+)")
_PMU_EVENTS_LIST_RE = re.compile(r"Ethos-U PMU Events:\s*\[([^\]]*)\]")


def canonical_counter(name: str) -> str:
    """``NPU total`` -> ``NPU TOTAL``; ``ETHOSU_PMU_NPU_IDLE`` -> ``NPU IDLE``;
    ``NPU ETHOSU_PMU_SRAM_RD_DATA_BEAT_RECEIVED`` -> ``NPU SRAM_RD_DATA_BEAT_RECEIVED``."""
    name = " ".join(name.split())
    if name.upper().startswith("ETHOSU_PMU_"):
        event = name[len("ETHOSU_PMU_") :].upper()
        return {"NPU_IDLE": NPU_IDLE, "NPU_ACTIVE": NPU_ACTIVE}.get(event, f"NPU {event}")
    if name.upper().startswith("NPU ETHOSU_PMU_"):  # the U85 evaluation kit runner's spelling
        return canonical_counter(name[len("NPU ") :])
    head, _, rest = name.partition(" ")
    return f"{head.upper()} {rest.upper() if rest.lower() in ('active', 'idle', 'total') else rest}"


@dataclass(frozen=True)
class PmuReport:
    """NPU PMU counters as printed; ``counters`` uses canonical names, ``raw`` the printed ones."""

    format: str  # "mlia-metrics", "mlek-text", "mlek-text-2021", "mlek-text-2021-03", "ethosu-pmu"
    counters: Mapping[str, int]
    raw: Mapping[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int | None:
        return self.counters.get(name)

    def missing(self, names=REQUIRED_COUNTERS) -> list[str]:
        return [n for n in names if n not in self.counters]


def _put(counters: dict[str, int], name: str, value: int, source: str) -> None:
    if name in counters and counters[name] != value:
        raise BackendError(f"PMU counter {name!r} printed twice with different values ({source})")
    counters[name] = value


def _parse_metrics_tag(text: str) -> PmuReport | None:
    blobs = _METRICS_RE.findall(text)
    if not blobs:
        return None
    counters: dict[str, int] = {}
    for blob in blobs:
        try:
            groups = json.loads(base64.b64decode(blob.strip(), validate=True))
            # the runner may profile more than the inference; only "Inference" is the model
            inference = [g for g in groups if g.get("profiling_group") == INFERENCE_GROUP]
            samples = [s for g in (inference or groups) for s in g["samples"]]
            pairs = [(str(s["name"]), int(s["value"][0])) for s in samples]
        except (binascii.Error, ValueError, KeyError, IndexError, TypeError) as e:
            raise BackendError(f"unreadable <metrics> block in the runner output: {e}") from None
        for name, value in pairs:
            _put(counters, canonical_counter(name), value, "<metrics>")
    return PmuReport("mlia-metrics", counters, dict(counters))


def _parse_text(lines: list[str]) -> PmuReport | None:
    counters: dict[str, int] = {}
    raw: dict[str, int] = {}
    fmt = None
    for line in lines:
        if m := _TEXT_NEW_RE.match(line):
            name, value, fmt_here = m.group(1), int(m.group(2)), "mlek-text"
        elif m := _TEXT_OLD_RE.match(line):
            name, value, fmt_here = m.group(1), int(m.group(3)), "mlek-text-2021"
        elif m := _TEXT_OLDEST_RE.match(line):
            name, value, fmt_here = f"NPU {m.group(1)}", int(m.group(2)), "mlek-text-2021-03"
        else:
            continue
        fmt = fmt or fmt_here
        raw[name] = value
        _put(counters, canonical_counter(name), value, line.strip())
    return PmuReport(fmt, counters, raw) if fmt else None


def _parse_pmu_report(text: str) -> PmuReport | None:
    cycle = _PMU_CYCLE_RE.findall(text)
    events = _PMU_EVENT_RE.findall(text)
    if not cycle and not events:
        return None
    raw: dict[str, int] = {}
    counters: dict[str, int] = {}
    names: list[str] = []
    if m := _PMU_EVENTS_LIST_RE.search(text):
        names = [n.strip() for n in m.group(1).split(",") if n.strip()]
    if cycle:
        raw["ethosu_pmu_cycle_cntr"] = int(cycle[-1])
        # the PMU cycle counter (CCNT) is what the evaluation kit prints as NPU TOTAL
        counters[NPU_TOTAL] = int(cycle[-1])
    for index, value in events:
        raw[f"ethosu_pmu_cntr{index}"] = int(value)
        # without the event list the counter->event mapping is build-time configuration: unnamed
        if int(index) < len(names):
            _put(counters, canonical_counter(names[int(index)]), int(value), "ethosu_pmu_cntr")
    return PmuReport("ethosu-pmu", counters, raw)


def parse_pmu(text: str) -> PmuReport | None:
    """The PMU counters in a console log, or ``None`` when it printed none.

    A runner may print the same counters twice (``<metrics>`` and text); the first format in the
    order above wins, and the two must agree.
    """
    reports = [
        r
        for r in (_parse_metrics_tag(text), _parse_text(text.splitlines()), _parse_pmu_report(text))
        if r is not None
    ]
    if not reports:
        return None
    first = reports[0]
    for other in reports[1:]:
        for name, value in other.counters.items():
            if name in first.counters and first.counters[name] != value:
                raise BackendError(
                    f"PMU counter {name!r} is {first.counters[name]} in the {first.format} "
                    f"output but {value} in the {other.format} output"
                )
    return first


# ---- FVP --stat block --------------------------------------------------------------------------

_STAT_HEADER_RE = re.compile(r"^-+ (\S+) statistics: -+\s*$")
_STAT_LINE_RE = re.compile(r"^(\S.*?)\s*:\s*(.+?)\s*$")
_MIPS_RE = re.compile(r"^([\d.]+) MIPS \(\s*(\d+) Inst\)$")
_HIGHWATER_RE = re.compile(r"^(0x[0-9a-fA-F]+|\d+) bytes")


@dataclass(frozen=True)
class FvpStat:
    """The FVP's ``--stat`` block: host-side figures, never NPU cycles."""

    platform: str
    simulated_time_s: float | None
    user_time_s: float | None
    system_time_s: float | None
    wall_time_s: float | None
    performance_index: float | None
    instructions: Mapping[str, int]  # per CPU component ("cpu0", "FVP_..._300.cpu0")
    mips: Mapping[str, float]
    memory_highwater_bytes: int | None

    def to_dict(self) -> dict:
        return {
            "platform": self.platform,
            "simulated_time_s": self.simulated_time_s,
            "user_time_s": self.user_time_s,
            "system_time_s": self.system_time_s,
            "wall_time_s": self.wall_time_s,
            "performance_index": self.performance_index,
            "instructions": dict(self.instructions),
            "memory_highwater_bytes": self.memory_highwater_bytes,
        }


_STAT_SECONDS = {
    "Simulated time": "simulated_time_s",
    "User time": "user_time_s",
    "System time": "system_time_s",
    "Wall time": "wall_time_s",
}


def parse_stat(text: str) -> FvpStat | None:
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if _STAT_HEADER_RE.match(l.strip())), None)
    if start is None:
        return None
    values: dict = {k: None for k in _STAT_SECONDS.values()}
    values.update(performance_index=None, memory_highwater_bytes=None)
    instructions: dict[str, int] = {}
    mips: dict[str, float] = {}
    for line in lines[start + 1 :]:
        line = line.strip()
        if not line or set(line) == {"-"}:
            break
        m = _STAT_LINE_RE.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key in _STAT_SECONDS:
            values[_STAT_SECONDS[key]] = float(value.rstrip("s"))
        elif key == "Performance index":
            values["performance_index"] = float(value)
        elif key == "Memory highwater mark":
            if hm := _HIGHWATER_RE.match(value):
                values["memory_highwater_bytes"] = int(hm.group(1), 0)
        elif mm := _MIPS_RE.match(value):
            mips[key] = float(mm.group(1))
            instructions[key] = int(mm.group(2))
    platform = _STAT_HEADER_RE.match(lines[start].strip()).group(1)
    return FvpStat(platform=platform, instructions=instructions, mips=mips, **values)


# ---- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogError:
    kind: str
    line: str
    hint: str = ""


# (kind, pattern, hint). Checked per line; the first match names the line.
_ERROR_PATTERNS: tuple[tuple[str, re.Pattern, str], ...] = (
    (
        "npu-config-mismatch",
        re.compile(r"NPU (?:config|arch) mismatch"),
        "the FVP's ethosu.num_macs (or NPU) differs from the Vela --accelerator-config",
    ),
    (
        "missing-library",
        re.compile(r"error while loading shared libraries: (\S+)"),
        "the FVP needs a shared library it cannot find: for libpython3.9 set "
        "PYTHONHOME=<fvp>/python and LD_LIBRARY_PATH=<fvp>/python/lib (or source the FVP's "
        "scripts/runtime.sh), or install libpython3.9",
    ),
    (
        "executable-stack",
        re.compile(r"cannot enable executable stack"),
        "glibc >= 2.41 refuses this FVP build's executable-stack library: install a newer FVP, "
        "or clear the flag on the named library (patchelf --clear-execstack <lib>)",
    ),
    ("fvp-error", re.compile(r"^Error: \(E\d+\)"), ""),
    ("hard-fault", re.compile(r"hard ?fault", re.IGNORECASE), "the application crashed"),
    ("cpu-mismatch", re.compile(r"CPU mismatch!"), "the runner was built for another CPU"),
    ("runner-error", re.compile(r"^ERROR - "), ""),
    ("driver-error", re.compile(r"^E: \S+"), ""),
    ("tflm-error", re.compile(r"^TFLM - (?:Failed to |Didn't find op for )"), ""),
    ("executorch-error", re.compile(r"^E \[ExecuTorch:"), ""),
    ("app-exit", re.compile(r"^Application exit code: (?!0\.)-?\d+"), ""),
)


def find_errors(text: str) -> list[LogError]:
    out: list[LogError] = []
    for line in text.splitlines():
        stripped = line.strip()
        for kind, pattern, hint in _ERROR_PATTERNS:
            if pattern.search(stripped):
                out.append(LogError(kind, stripped, hint))
                break
    return out


_MACS_MISMATCH_RE = re.compile(r"npu\.macs_per_cc=(\d+),?\s+optimizer\.macs_per_cc=(\d+)")


def macs_mismatch(text: str) -> tuple[int, int] | None:
    """``(FVP MACs, model MACs)`` from an "NPU config mismatch" on macs_per_cc (log2 values)."""
    m = _MACS_MISMATCH_RE.search(text)
    return (1 << int(m.group(1)), 1 << int(m.group(2))) if m else None


# the U85 driver also checks the AXI port counts Vela compiled for (<Memory>_ports_used of the
# system config) against the NPU's; format string from the Corstone-320 runner ELF
_AXI_MISMATCH_RE = re.compile(r"npu\.num_axi_(sram|ext)=(\d+),?\s+optimizer\.num_axi_\1=(\d+)")


def axi_ports_mismatch(text: str) -> tuple[str, int, int] | None:
    """``("sram"|"ext", FVP ports, model ports)`` from a U85 "NPU config mismatch" on AXI ports."""
    m = _AXI_MISMATCH_RE.search(text)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


# ---- runner facts ------------------------------------------------------------------------------

_INPUT_RE = re.compile(
    r"(\d+) input tensor/s populated with (\d+) bytes with data read from 0x([0-9a-fA-F]+)"
)
_OUTPUT_RE = re.compile(r"(\d+) output tensor/s worth (\d+) bytes copied to 0x([0-9a-fA-F]+)")
_RUNNER_MACS_RE = re.compile(r"MACs/cc:\s*(\d+)")
_FVP_NPU_CONFIG_RE = re.compile(r"Creating Ethos-(U\d\d) with config [A-Z]?(\d+)")


@dataclass(frozen=True)
class Transfer:
    tensors: int
    bytes: int
    address: int


@dataclass(frozen=True)
class ConsoleLog:
    """Everything ethos-kws reads from one FVP console log."""

    pmu: PmuReport | None
    stat: FvpStat | None
    errors: tuple[LogError, ...]
    ifm: Transfer | None  # "<n> input tensor/s populated with <bytes> bytes ..."
    ofm: Transfer | None  # "<n> output tensor/s worth <bytes> bytes copied to ..."
    runner_macs: int | None  # "MACs/cc: 128" in the runner's start-up banner
    fvp_npu: tuple[str, int] | None  # "Creating Ethos-U55 with config H128"


def _transfer(pattern: re.Pattern, text: str) -> Transfer | None:
    found = pattern.findall(text)
    if not found:
        return None
    n, size, addr = found[-1]
    return Transfer(int(n), int(size), int(addr, 16))


def parse_console(text: str) -> ConsoleLog:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    macs = _RUNNER_MACS_RE.findall(text)
    npu = _FVP_NPU_CONFIG_RE.search(text)
    return ConsoleLog(
        pmu=parse_pmu(text),
        stat=parse_stat(text),
        errors=tuple(find_errors(text)),
        ifm=_transfer(_INPUT_RE, text),
        ofm=_transfer(_OUTPUT_RE, text),
        runner_macs=int(macs[-1]) if macs else None,
        fvp_npu=(npu.group(1), int(npu.group(2))) if npu else None,
    )
