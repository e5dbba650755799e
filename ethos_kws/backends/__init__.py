"""Backends: where a model runs. The table below is the only list; modules are imported lazily
so that ``ethos-kws run --backend cpu`` never pays for the NPU simulator or FVP code.

Every backend module has ``make_backend(model_path, **options) -> Backend``. Options a backend
does not use are ignored (``run`` passes the union of all backends' flags).
"""

from __future__ import annotations

import importlib
import os

from ..errors import BackendUnavailable, UserError
from .base import Backend

BACKENDS: dict[str, str] = {
    "cpu": "ethos_kws.backends.cpu:make_backend",
    "npu-sim": "ethos_kws.backends.npusim:make_backend",
    "fvp": "ethos_kws.backends.fvp:make_backend",
}

# a third-party module a backend needs -> how to get it
_INSTALL_HINTS = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "ethosu": "pip install ethos-u-vela==5.2.0",
    "tflite_micro": "pip install --force-reinstall ethos-kws (it depends on tflite-micro)",
}


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def create_backend(name: str, model_path: str | os.PathLike, **options) -> Backend:
    """Build backend ``name`` for ``model_path``; raises UserError for an unknown name and
    BackendUnavailable when the backend (or a package it needs) is not installed."""
    target = BACKENDS.get(name)
    if target is None:
        raise UserError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, _, factory_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise BackendUnavailable(
                f"backend {name!r} is not available in this installation (module {module_name} is missing)"
            ) from None
        top = missing.split(".")[0]
        hint = _INSTALL_HINTS.get(top, f"pip install {top}")
        raise BackendUnavailable(
            f"backend {name!r} needs the Python package {top!r}, which is not installed ({hint})"
        ) from None
    factory = getattr(module, factory_name, None)
    if factory is None:
        raise BackendUnavailable(f"backend {name!r}: {module_name} has no {factory_name}()")
    return factory(model_path, **options)
