"""A real Corstone FVP run of DS-CNN-L on u55-128: only where an FVP is installed.

Skipped (with the reason) on machines without an FVP or runner; nothing here is faked.
"""

from __future__ import annotations

import numpy as np
import pytest

from ethos_kws.backends.fvp.discovery import search_fvp, search_runner
from ethos_kws.backends.fvp.targets import target_for


def _require_fvp():
    target, _ = target_for("u55-128", "corstone-300")
    fvp = search_fvp(target)
    if fvp.install is None:
        pytest.skip(f"no {target.executable} installed (see `ethos-kws fvp doctor`)")
    runner = search_runner(target)
    if runner.runner is None:
        pytest.skip("no inference runner: pip install 'ethos-kws[fvp]' or set up --runner")


def test_ds_cnn_l_on_u55_128(int8io_model):
    _require_fvp()
    from ethos_kws.backends import create_backend
    from ethos_kws.backends.fvp import measure

    x = np.random.default_rng(0).integers(-128, 127, size=(1, 490), endpoint=True, dtype=np.int8)
    m = measure(int8io_model, "u55-128", inputs=[x], timeout_s=600)
    assert m.npu_active_cycles > 0 and m.npu_total_cycles >= m.npu_active_cycles
    assert m.axi0_read_bytes > 0 and m.axi1_read_bytes > 0
    assert m.axi0_read_bytes == m.axi0_read_beats * 8
    assert m.inference_time_ms == pytest.approx(m.npu_total_cycles / 500e6 * 1e3)
    assert 0.5 < m.vela_over_fvp_cycles < 2.0, m.vela_over_fvp_cycles
    assert m.fvp_version is not None
    cpu = create_backend("cpu", int8io_model).run([x])
    fvp_out = m.outputs[0].data.astype(np.int32)
    assert fvp_out.shape == (1, 12)
    assert np.max(np.abs(fvp_out - cpu.outputs[0].data.astype(np.int32))) <= 1
