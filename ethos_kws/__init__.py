"""ethos-kws: keyword spotting on Arm Ethos-U NPUs.

The Python API mirrors the command line::

    import ethos_kws
    r = ethos_kws.compile("ds_cnn.tflite", "u55-128")          # CompileResult
    s = ethos_kws.sweep("ds_cnn.tflite", accels="all")          # SweepResult
    df = s.to_dataframe()                                        # pandas, one row per config
    info = ethos_kws.model_info("ds_cnn.tflite")                # ModelInfo
    path = ethos_kws.fetch_model()                               # ML-zoo DS-CNN Clustered INT8

Attributes are imported on first use, so ``import ethos_kws`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_API = {
    "compile": "ethos_kws.vela:compile_model",
    "compile_model": "ethos_kws.vela:compile_model",
    "CompileResult": "ethos_kws.vela:CompileResult",
    "sweep": "ethos_kws.sweeps:sweep",
    "SweepResult": "ethos_kws.sweeps:SweepResult",
    "resolve_model": "ethos_kws.model:resolve_model",
    "fetch_model": "ethos_kws.model:fetch_model",
    "model_info": "ethos_kws.model:model_info",
    "ACCELERATORS": "ethos_kws.accel:ACCELERATORS",
    "create_backend": "ethos_kws.backends:create_backend",
    "run_parity": "ethos_kws.parity:run_parity",
    "write_report": "ethos_kws.report:write_report",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'ethos_kws' has no attribute {name!r}")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
