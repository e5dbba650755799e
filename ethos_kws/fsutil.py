"""Atomic file output: a reader never sees a half-written file, an interrupted run leaves none.

Temporaries are named ``.NAME.PID.XXXXXXXX.tmp`` (``.part`` for downloads): the process id says
whose they are, so the next writer into the same folder removes those of processes that died
(``kill -9`` leaves no chance to clean up) and leaves a live process's alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import EthosKwsError, OutputPathError, StorageFullError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.(tmp|part|old)$")


def temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: its temporaries are as dead as it is
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` left by processes that no longer run."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMPORARY.match(e.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        p = Path(e.path)
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder; give a file name")
    _check_parents(path)
    with _output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, EthosKwsError):
            with _output_errors(path):
                raise
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def unit_input_file(kind: str, sha256: str, name: str, data: bytes) -> Path:
    """``data`` sent to a unit of work as bytes (a Dask worker shares no file system with the
    client) as a file on this machine: kept once per content in the cache, at
    ``kind/<sha256>/<name>``, and written again whenever the file there does not hold ``data``."""
    from .paths import cache_dir

    path = cache_dir() / kind / sha256 / (Path(name).name or "input")
    try:
        if path.read_bytes() == data:
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """``indent=None``: compact, and several times faster (json's C encoder takes no indent)."""
    separators = (",", ":") if indent is None else None
    return json.dumps(obj, indent=indent, separators=separators, sort_keys=False, default=_json_default) + "\n"


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, to_json(obj, indent))


def atomic_save_npy(path: str | os.PathLike, array: Any) -> Path:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def check_output_dir(path: Path, marker: str | None) -> None:
    """Refuse to replace what is not ours: a file, or a non-empty folder without ``marker``
    (the file every output folder of this kind holds, e.g. ``compile.json``)."""
    if path.is_symlink() or path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} exists and is not a folder; give --out a new or empty folder")
    if path.is_dir() and marker is not None and not (path / marker).is_file():
        with _output_errors(path, "read"):
            if any(path.iterdir()):
                raise OutputPathError(f"{path} is a folder with other content (no {marker}); "
                                      "give --out a new or empty folder")


def _check_parents(path: Path) -> None:
    """A file where a folder of the path should be is a clear error, not a confusing errno."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(f"cannot write {path}: {parent} is a file, not a folder")
            return


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL)):
            return False
        raise OSError(err, os.strerror(err), str(b))
    return True


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, marker: str | None = None) -> Iterator[Path]:
    """Build a directory in a temporary sibling and put it in place only on success, in one
    rename: a reader sees the old folder or the new one, whole, never a mix. With ``marker``, an
    existing folder is replaced only if it holds that file (see ``check_output_dir``)."""
    path = Path(path)
    _check_parents(path)
    if path.is_dir() and not path.is_symlink():
        # a dead process's temporaries inside the folder (a write-out killed half way) are not
        # "other content": they go, and cannot make an otherwise empty folder look foreign
        remove_stale_temporaries(path)
    check_output_dir(path, marker)
    with _output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        with _output_errors(path):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs are ordinary folders
            if path.exists():
                check_output_dir(path, marker)
                if _exchange(tmp, path):
                    shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
                    return
                old = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), suffix=".old", dir=path.parent))
                os.rmdir(old)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# errno -> what to do about it, for the one-line error naming the path
_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "it exists and is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENOENT: "a part of the path does not exist and cannot be created there",
    errno.ENAMETOOLONG: "the path is too long",
}


@contextlib.contextmanager
def _output_errors(path: Path, action: str = "write") -> Iterator[None]:
    """OSError -> one line naming the path and what to do (a full disk: exit 1, else exit 2)."""
    try:
        yield
    except OSError as e:
        if isinstance(e, EthosKwsError):
            raise
        hint = _HINTS.get(e.errno, e.strerror or str(e))
        where = e.filename if e.filename and not str(e.filename).startswith(str(path.parent / ".")) else path
        cls = StorageFullError if e.errno in (errno.ENOSPC, errno.EDQUOT) else OutputPathError
        raise cls(f"cannot {action} {where}: {hint}") from None
