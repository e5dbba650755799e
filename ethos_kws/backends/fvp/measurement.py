"""What one FVP inference measured (``FvpMeasurement``, the rows of ``fvp.json``) and ``measure``.

``measure`` feeds the seeded random input of ``inputs.random_inputs`` (uniform over the quantized
range): the same input ``ethos-kws run --backend fvp --seed S`` uses, so both measure the same run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ...accel import Accelerator
from ...records import from_record, metric, to_record
from ..base import OutputTensor

# ---- the measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FvpMeasurement:
    """One inference on a Corstone FVP: NPU PMU counters, outputs and where they came from.

    Cycles are NPU cycles only (the FVP's Cortex-M model is not cycle-accurate). Time is
    ``npu_total_cycles`` at the system config's core clock. AXI figures are beats x bus width
    (8 bytes on U55, 16 on U65 and U85; axi0 is the SRAM port, axi1 the external one, which U85
    prints as SRAM_* and EXT_*). ``vela_over_fvp_cycles`` = Vela's ``cycles_npu`` estimate /
    ``npu_active_cycles`` (> 1: Vela estimates more cycles than the FVP measured).
    """

    platform: str
    accel: str
    num_macs: int
    system_config: str
    memory_mode: str
    core_clock_hz: float = metric("core clock", "hz")
    npu_active_cycles: int = metric("NPU active", "cycles", short="FVP active cycles")
    npu_idle_cycles: int = metric("NPU idle", "cycles")
    npu_total_cycles: int = metric("NPU total (FVP)", "cycles", short="FVP total cycles")
    inference_time_ms: float = metric("inference time", "ms", short="FVP ms")
    axi0_read_beats: int = metric("AXI0 read beats", "count")
    axi0_write_beats: int = metric("AXI0 write beats", "count")
    axi1_read_beats: int = metric("AXI1 read beats", "count")
    axi0_read_bytes: int = metric("AXI0 read", "bytes")
    axi0_write_bytes: int = metric("AXI0 write", "bytes")
    axi1_read_bytes: int = metric("AXI1 read", "bytes")
    outputs: tuple[OutputTensor, ...]
    fvp_wall_s: float
    fvp_simulated_time_s: float | None
    fvp_executable: str
    fvp_source: str
    fvp_version: str | None
    runner: str
    runner_source: str
    runner_version: str | None
    vela_version: str
    pmu_format: str
    model_sha256: str
    compiled_model: str
    vela_cycles_npu: int | None = metric("Vela estimate", "cycles", short="Vela NPU cycles", default=None)
    vela_over_fvp_cycles: float | None = metric("Vela ÷ FVP", "x", short="Vela/FVP", default=None)
    argv: tuple[str, ...] = field(default_factory=tuple)
    vela_ini_sha256: str = ""  # the Vela ini the measured model was compiled with (the compile's)
    # where the run happened when it was not this machine (a Dask worker): the paths above
    # (fvp_executable, runner, compiled_model, argv) are then that machine's, prefixed with it
    measured_on: str = ""

    inference_time_source: str = "fvp"  # inference_time_ms is the FVP's NPU time (PMU cycles / clock)

    def to_dict(self, *, outputs: bool = True) -> dict[str, Any]:
        d = to_record(self)
        if not outputs:
            del d["outputs"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FvpMeasurement":
        """A row of ``fvp.json`` (written without outputs: they read back as none)."""
        return from_record(cls, {"outputs": [], **d})


def vela_over_fvp_cycles(vela_cycles_npu: int | float, measurement: FvpMeasurement) -> float:
    """Vela's NPU cycle estimate over the FVP's measured NPU ACTIVE cycles."""
    return float(vela_cycles_npu) / measurement.npu_active_cycles


def measure(
    model_path: str | os.PathLike,
    accel: Accelerator | str,
    *,
    platform: str | None = None,
    system_config: str | None = None,
    inputs: Sequence[np.ndarray] | None = None,
    fvp: str | os.PathLike | None = None,
    runner: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    legacy_core: bool = False,
    seed: int = 0,
    vela_ini: str | os.PathLike | None = None,
) -> FvpMeasurement:
    """Compile ``model_path`` for ``accel`` with the runner's memory mode and measure one inference.

    ``inputs`` default to ``inputs.random_inputs`` for ``seed``: uniform over each input's
    quantized range, the same input ``run --backend fvp --seed S`` feeds, so the two agree.
    """
    from ...inputs import quantized_input_specs, random_inputs
    from .backend import FvpBackend

    backend = FvpBackend(
        model_path,
        accel=accel,
        platform=platform,
        system_config=system_config,
        fvp=fvp,
        runner=runner,
        timeout_s=timeout_s,
        legacy_core=legacy_core,
        vela_ini=vela_ini,
    )
    if inputs is None:  # the input `run --backend fvp --seed S` feeds
        specs = list(backend.input_specs)
        inputs = random_inputs(specs, seed, quantized_input_specs(model_path, specs))
    return backend.measure(inputs)
