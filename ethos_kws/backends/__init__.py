"""Backends: where a model runs. The table below is the only list; modules are imported lazily
so that ``ethos-kws run --backend cpu`` never pays for the NPU simulator or FVP code.

Every backend module has ``make_backend(model_path, *, option=default, ...) -> Backend``: its
keyword parameters are the backend's options, declared once. ``create_backend`` refuses an option
the backend does not declare (``UserError`` naming it and the accepted ones); the CLI passes a
backend only the flags it declares and says which given flags do not apply.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from pathlib import Path

from ..errors import BackendUnavailable, UserError
from .base import Backend

BACKENDS: dict[str, str] = {
    "cpu": "ethos_kws.backends.cpu:make_backend",
    "npu-sim": "ethos_kws.backends.npusim:make_backend",
    "fvp": "ethos_kws.backends.fvp:make_backend",
}
NPU_BACKENDS = ("npu-sim", "fvp")  # the backends that run Vela's output (parity's --npu)

# a third-party module a backend needs -> how to get it
_INSTALL_HINTS = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "ethosu": "pip install ethos-u-vela==5.2.0",
    "tflite_micro": "pip install --force-reinstall ethos-kws (it depends on tflite-micro)",
}


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def _factory(name: str):
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
    return factory


def backend_options(name: str) -> tuple[str, ...]:
    """The options backend ``name`` accepts: its factory's keyword-only parameters."""
    params = inspect.signature(_factory(name)).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_backend_options(name: str, options: dict) -> None:
    """``UserError`` for the first option ``name`` does not declare, naming the accepted ones."""
    accepted = backend_options(name)
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"backend {name!r} has no option {key!r}{hint}; it accepts: "
                            f"{', '.join(accepted) or 'no options'}")


def create_backend(name: str, model_path: str | os.PathLike, **options) -> Backend:
    """Build backend ``name`` for ``model_path``; raises UserError for an unknown name or an option
    the backend does not declare, and BackendUnavailable when the backend (or a package it needs)
    is not installed."""
    factory = _factory(name)
    check_backend_options(name, options)
    return factory(model_path, **options)


def model_file_from_bytes(model_bytes: bytes, model_sha256: str, name: str = "model.tflite"):
    """A model sent as bytes (a unit of work on another machine: no shared file system), kept once
    per content in this machine's cache under its own file ``name`` (Vela names its output after
    it) and checked against its sha256 before use."""
    import hashlib

    from ..fsutil import unit_input_file

    if hashlib.sha256(model_bytes).hexdigest() != model_sha256:
        raise BackendUnavailable(f"the model sent to this worker does not match its sha256 {model_sha256[:12]}…")
    return unit_input_file("unit-models", model_sha256, Path(name).name or "model.tflite", model_bytes)


def create_backend_from_bytes(name: str, model_bytes: bytes, model_sha256: str, **options) -> Backend:
    """``create_backend`` for a model sent as bytes (``model_file_from_bytes``)."""
    return create_backend(name, model_file_from_bytes(model_bytes, model_sha256), **options)
