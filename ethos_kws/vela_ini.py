"""The user's own Vela ini (``--config my_soc.ini``): read, checked and carried by content.

Vela takes several ``--config`` files and reads them as one; ethos-kws passes Vela's own
``Arm/vela.ini`` first and the user's second, so both sets of sections exist. A compile carries
the user's ini *text* (not only its path), so a worker on another machine can write it out again,
and its sha256 joins the cache key and every result. Problems are ``UserError`` naming the file,
the section and the key, found here before Vela runs.
"""

from __future__ import annotations

import configparser
import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

MEMORIES = ("Sram", "Dram", "OnChipFlash", "OffChipFlash")
PORTS = ("Axi0", "Axi1")
INI_FILE_NAME = "user_config.ini"  # the name the user's ini is written under beside a compile
# keys whose value Vela reads as a number (architecture_features._read_config callers)
_NUMERIC_SUFFIXES = ("_clock_scale", "_burst_length", "_read_latency", "_write_latency", "_ports_used")


@dataclass(frozen=True)
class UserIni:
    path: str  # as given, resolved (for messages and the result's ``vela_ini``)
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_user_ini(path: str | Path | None) -> UserIni | None:
    """The checked ini at ``path`` (None when no ``--config`` was given)."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    if p.suffix != ".ini":
        raise UserError(f"--config {path}: Vela reads only files ending in .ini")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--config {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    check_ini_text(text, str(path))
    return UserIni(str(p.resolve()), text)


def check_ini_text(text: str, where: str) -> None:
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cp.optionxform = str
    try:
        cp.read_string(text, source=where)
    except configparser.Error as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"--config {where}: not a valid ini file: {first}") from None
    if not cp.sections():
        raise UserError(f"--config {where}: no [System_Config.*] or [Memory_Mode.*] section")
    for section in cp.sections():
        kind = section.split(".", 1)[0]
        if kind not in ("System_Config", "Memory_Mode") or "." not in section:
            raise UserError(f"--config {where}: unknown section [{section}]; Vela reads [System_Config.NAME] "
                            "and [Memory_Mode.NAME]")
        for key, value in cp[section].items():
            _check_key(where, section, kind, key, value)


def _check_key(where: str, section: str, kind: str, key: str, value: str) -> None:
    def bad(expected: str) -> UserError:
        return UserError(f"--config {where}: [{section}] {key} = {value!r}: expected {expected}")

    if key == "inherit":
        return
    if kind == "System_Config":
        if key in ("axi0_port", "axi1_port") and value not in MEMORIES:
            raise bad(" or ".join(MEMORIES))
        if key == "core_clock" or key.endswith(_NUMERIC_SUFFIXES):
            try:
                number = float(value)
            except ValueError:
                raise bad("a number") from None
            if number <= 0 and key in ("core_clock",) or number < 0:
                raise bad("a positive number")
    else:
        if key.endswith("_mem_area") and value not in PORTS:
            raise bad("Axi0 or Axi1")
        if key == "arena_cache_size":
            try:
                if int(float(value)) < 0:
                    raise ValueError
            except ValueError:
                raise bad("a number of bytes >= 0") from None


def user_ini_here(ini: UserIni | None) -> str | None:
    """The path of ``ini`` on this machine, for a unit of work that got the ini as text (a Dask
    worker shares no file system with the client): the user's own file when it holds that text,
    else a copy kept once per content in this machine's cache. Its text, hence its sha256 and the
    compile's cache key, is the client's."""
    if ini is None:
        return None
    try:
        if Path(ini.path).read_text(encoding="utf-8") == ini.text:
            return ini.path
    except (OSError, UnicodeDecodeError):
        pass
    from .fsutil import unit_input_file

    return str(unit_input_file("unit-inis", ini.sha256, Path(ini.path).name or "user.ini", ini.text.encode("utf-8")))
