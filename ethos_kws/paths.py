"""Where things live: packaged data (fvp/), the user cache, the shared test data.

The Vela ini is not ours: ``accel.vela_ini_path`` finds the one inside the installed Vela.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """A top-level data folder of the project (``fvp``).

    A wheel carries them under ``ethos_kws/_data/``; a source checkout or editable install has
    them beside the package.
    """
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ethos-kws data folder {name!r} is missing from the installation")


def cache_dir() -> Path:
    """``$ETHOS_KWS_CACHE`` or the platform's user cache folder."""
    env = os.environ.get("ETHOS_KWS_CACHE")
    if env:
        path = Path(env).expanduser()
        for p in (path, *path.parents):  # a file where the folder should be: say so, by name
            if p.exists():
                if not p.is_dir():
                    from .errors import OutputPathError

                    raise OutputPathError(f"ETHOS_KWS_CACHE={env}: {p} is a file, not a folder; "
                                          "set ETHOS_KWS_CACHE to a writable folder")
                break
        return path
    import platformdirs

    return Path(platformdirs.user_cache_dir("ethos-kws", appauthor=False))


def shared_data_dir() -> Path | None:
    """``$ETHOS_KWS_SHARED_DATA`` or ``../shared/data`` beside a source checkout, if present."""
    env = os.environ.get("ETHOS_KWS_SHARED_DATA")
    if env:
        return Path(env)
    candidate = _PKG.parent.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None
