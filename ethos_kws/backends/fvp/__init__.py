"""The Corstone FVP backend: exact command lines, checked logs, measured NPU cycles.

No FVP can be bundled (Arm's EULA): ``discovery`` finds an installed one, or every entry point
raises ``BackendUnavailable`` pointing at ``ethos-kws fvp doctor``.
"""

from __future__ import annotations

__all__ = ["FvpBackend", "FvpMeasurement", "make_backend", "measure", "vela_over_fvp_cycles"]


def __getattr__(name: str):
    # on first use: every command's parser reads the target table (``targets``), which must not
    # pull in the backend and its runner
    if name in __all__:
        from . import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
