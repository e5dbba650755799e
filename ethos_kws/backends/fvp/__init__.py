"""The Corstone FVP backend: exact command lines, checked logs, measured NPU cycles.

No FVP can be bundled (Arm's EULA): ``discovery`` finds an installed one, or every entry point
raises ``BackendUnavailable`` pointing at ``ethos-kws fvp doctor``.
"""

from __future__ import annotations

from .backend import (
    FvpBackend,
    FvpMeasurement,
    make_backend,
    measure,
    vela_over_fvp_cycles,
)

__all__ = ["FvpBackend", "FvpMeasurement", "make_backend", "measure", "vela_over_fvp_cycles"]
