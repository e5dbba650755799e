"""Running the CLI the way a user does (a child process) and checking what every hostile case
must satisfy: the exit code, one stderr line and no "Traceback", no temporaries left, no child
process left running, pre-existing files byte-identical."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error(self) -> str:
        return self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""


def leftovers(*folders: Path) -> list[Path]:
    return [p for d in folders if Path(d).exists() for p in Path(d).rglob("*") if p.name.endswith((".tmp", ".part"))]


def cli(*args: str, rc: int | tuple[int, ...] = 2, env: dict | None = None, timeout: float = 120,
        keep: tuple[Path, ...] = (), clean: tuple[Path, ...] = (), match: str | None = None,
        error_line: bool = True) -> Outcome:
    """Run ``python -m ethos_kws ARGS`` and assert the hostile-input contract."""
    before = {p: p.read_bytes() for p in keep}
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ethos_kws", *map(str, args)], env=full_env, capture_output=True,
                       text=True, timeout=timeout)
    out = Outcome(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    want = (rc,) if isinstance(rc, int) else rc
    assert out.rc in want, f"exit {out.rc}, expected {want}: {out.stderr[-800:]}"
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    if out.rc != 0 and error_line:
        lines = out.stderr.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("ethos-kws: error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], f"not one error line: {out.stderr!r}"
        if match is not None:
            assert match in errors[0], errors[0]
    for path, data in before.items():
        assert path.is_file() and path.read_bytes() == data, f"{path} was changed"
    left = leftovers(*clean)
    assert not left, f"temporaries left behind: {left}"
    return out


def descendants_alive(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc), zombies excluded."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                kids.append(int(d.name))
    return kids
