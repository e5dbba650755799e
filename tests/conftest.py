"""Shared fixtures. Real data comes from ../shared/data (see its PROVENANCE.md).

With ``CI`` set, a test that needs the shared data fails when it is missing instead of skipping,
so a CI machine without the data cannot pass by running nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ethos_kws.paths import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent


def _require(path: Path | None, what: str) -> Path:
    if path is not None and path.exists():
        return path
    msg = f"{what} not found (expected ../shared/data beside the checkout or $ETHOS_KWS_SHARED_DATA)"
    if os.environ.get("CI"):
        pytest.fail(msg + "; CI is set, so this is a failure, not a skip")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(shared_data_dir(), "shared test data")


@pytest.fixture(scope="session")
def int8io_model(shared_data) -> Path:
    return _require(shared_data / "models" / "ds_cnn_l_int8io.tflite", "ds_cnn_l_int8io.tflite")


@pytest.fixture(scope="session")
def float_io_model(shared_data) -> Path:
    return _require(shared_data / "models" / "ds_cnn_l_quantized.tflite", "ds_cnn_l_quantized.tflite")


@pytest.fixture(scope="session")
def audio_dir(shared_data) -> Path:
    return _require(shared_data / "audio", "shared audio clips")


@pytest.fixture(scope="session")
def fvp_logs(shared_data) -> Path:
    return _require(shared_data / "fvp-logs", "recorded FVP logs")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own compile/model cache and never sees the user's environment."""
    monkeypatch.setenv("ETHOS_KWS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("ETHOS_KWS_MODEL", raising=False)
    monkeypatch.delenv("ETHOS_KWS_FVP_DIR", raising=False)
    monkeypatch.delenv("ETHOS_KWS_DASK", raising=False)  # no test reaches a real cluster by accident
    # The tests never download: an unreachable URL makes any accidental fetch fail fast.
    monkeypatch.setenv("ETHOS_KWS_MODEL_URLS", "http://127.0.0.1:9/none")
