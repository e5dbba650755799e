"""The ``fvp`` backend: the Backend protocol over one FVP run per inference.

Running and checking a process is ``run``; what a run measured is ``measurement``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ...accel import Accelerator, get_accelerator, get_system_config
from ...errors import BackendError, InputDataError, UserError
from ...fsutil import atomic_write_bytes
from ...tflite import load_tflite
from ..base import RunResult, TensorSpec
from .command import FvpCommand
from .discovery import FvpInstall, Runner, find_fvp, find_runner, fvp_version, vela_version
from .measurement import FvpMeasurement, measure, vela_over_fvp_cycles
from .run import (
    DEFAULT_TIMEOUT_S,
    HOST_TIMEOUT_GRACE_S,
    FvpRun,
    NpuCounters,
    check_run,
    input_blob,
    nbytes,
    run_inference,
    split_outputs,
)
from .targets import FvpTarget, target_for

DEFAULT_ACCEL = "u55-128"

__all__ = [
    "DEFAULT_TIMEOUT_S", "HOST_TIMEOUT_GRACE_S", "FvpBackend", "FvpMeasurement", "FvpRun",
    "NpuCounters", "check_run", "input_blob", "make_backend", "measure", "nbytes", "run_inference",
    "split_outputs", "vela_over_fvp_cycles",
]  # fmt: skip


def _prepare(
    accel: Accelerator | str,
    platform: str | None,
    fvp: str | os.PathLike | None,
    runner: str | os.PathLike | None,
    memory_mode: str | None,
) -> tuple[Accelerator, FvpTarget, int, FvpInstall, Runner]:
    acc = accel if isinstance(accel, Accelerator) else get_accelerator(accel)
    target, num_macs = target_for(acc, platform)
    if memory_mode not in (None, target.memory_mode):
        raise UserError(
            f"the {target.key} inference runner needs Vela memory mode {target.memory_mode!r}, "
            f"not {memory_mode!r}; leave --memory-mode unset for the FVP"
        )
    install = find_fvp(target, fvp)  # BackendUnavailable first: before any compile
    found_runner = find_runner(target, runner)
    return acc, target, num_macs, install, found_runner


class FvpBackend:
    """The ``fvp`` backend: one FVP run per inference (slow: seconds to minutes each)."""

    name = "fvp"

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        accel: Accelerator | str | None = None,
        platform: str | None = None,
        system_config: str | None = None,
        memory_mode: str | None = None,
        fvp: str | os.PathLike | None = None,
        runner: str | os.PathLike | None = None,
        timeout_s: float | None = None,
        legacy_core: bool | None = False,
        vela_ini: str | os.PathLike | None = None,
    ) -> None:
        """The keyword parameters are the backend's options (``make_backend`` is this class);
        ``accel`` defaults to u55-128."""
        from ...vela import compile_model
        from ...vela_ini import load_user_ini

        user_ini = load_user_ini(vela_ini)
        accel = accel or DEFAULT_ACCEL
        legacy_core = bool(legacy_core)

        acc, target, num_macs, install, found_runner = _prepare(
            accel, platform, fvp, runner, memory_mode
        )
        self.accel, self.target, self.num_macs = acc, target, num_macs
        self.install, self.runner = install, found_runner
        self.timeout_s = float(timeout_s or DEFAULT_TIMEOUT_S)
        if self.timeout_s <= 0:
            raise UserError(f"--timeout must be positive, not {timeout_s}")
        self.system_config = system_config or acc.default_system_config
        self.core_clock_hz = get_system_config(self.system_config, user_ini.path if user_ini else None).core_clock_hz
        model = load_tflite(model_path)
        self.model_sha256 = model.sha256
        self._input_specs = tuple(model.input_specs)
        self._output_specs = tuple(model.output_specs)
        self.compiled = compile_model(
            model_path,
            acc,
            system_config=self.system_config,
            memory_mode=target.memory_mode,
            legacy_core=legacy_core,
            user_ini=user_ini,
        )
        compiled_model = load_tflite(self.compiled.compiled_model)
        if compiled_model.size_bytes > target.memory_map.model_max_bytes:
            raise UserError(
                f"the compiled model is {compiled_model.size_bytes} bytes; the runner takes at "
                f"most {target.memory_map.model_max_bytes}"
            )
        self._check_io(compiled_model.input_specs, compiled_model.output_specs)

    def _check_io(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
        def layout(specs):
            return [(tuple(s.shape), s.dtype) for s in specs]

        if layout(inputs) != layout(self._input_specs) or layout(outputs) != layout(
            self._output_specs
        ):
            raise BackendError("Vela changed the model's input/output tensors; cannot map them")

    @property
    def input_specs(self) -> Sequence[TensorSpec]:
        return self._input_specs

    @property
    def output_specs(self) -> Sequence[TensorSpec]:
        return self._output_specs

    def measure(self, inputs: Sequence[np.ndarray]) -> FvpMeasurement:
        blob = input_blob(inputs, self._input_specs)
        mm = self.target.memory_map
        if len(blob) > mm.ifm_max_bytes:
            raise InputDataError(f"inputs of {len(blob)} bytes exceed the runner's IFM area")
        ofm_bytes = sum(nbytes(s) for s in self._output_specs)
        with tempfile.TemporaryDirectory(prefix="ethos-kws-fvp-") as tmp:
            work = Path(tmp)
            ifm = atomic_write_bytes(work / "ifm.bin", blob)
            cmd = FvpCommand(
                target=self.target,
                executable=self.install.executable,
                runner=self.runner.path,
                model=Path(self.compiled.compiled_model).resolve(),
                ifm=ifm,
                ofm=work / "ofm.bin",
                ofm_bytes=ofm_bytes,
                num_macs=self.num_macs,
                timelimit_s=max(1, int(round(self.timeout_s))),
            )
            run = run_inference(
                cmd,
                ifm_bytes=len(blob),
                timeout_s=self.timeout_s,
                env=dict(self.install.env),
                macs_per_core=self.accel.macs_per_cycle // self.accel.cores,
            )
        outputs = split_outputs(run.ofm, self._output_specs)
        c, beat = run.counters, self.accel.axi_bytes_per_beat
        version, _problem = fvp_version(self.install)
        m = FvpMeasurement(
            platform=self.target.platform,
            accel=self.accel.name,
            num_macs=self.num_macs,
            system_config=self.system_config,
            memory_mode=self.target.memory_mode,
            core_clock_hz=self.core_clock_hz,
            npu_active_cycles=c.active_cycles,
            npu_idle_cycles=c.idle_cycles,
            npu_total_cycles=c.total_cycles,
            inference_time_ms=c.total_cycles / self.core_clock_hz * 1e3,
            axi0_read_beats=c.axi0_read_beats,
            axi0_write_beats=c.axi0_write_beats,
            axi1_read_beats=c.axi1_read_beats,
            axi0_read_bytes=c.axi0_read_beats * beat,
            axi0_write_bytes=c.axi0_write_beats * beat,
            axi1_read_bytes=c.axi1_read_beats * beat,
            outputs=outputs,
            fvp_wall_s=run.outcome.wall_s,
            fvp_simulated_time_s=run.log.stat.simulated_time_s if run.log.stat else None,
            fvp_executable=str(self.install.executable),
            fvp_source=self.install.source,
            fvp_version=version,
            runner=str(self.runner.path),
            runner_source=self.runner.source,
            runner_version=self.runner.version,
            vela_version=vela_version(),
            pmu_format=c.format,
            model_sha256=self.model_sha256,
            compiled_model=str(self.compiled.compiled_model),
            vela_cycles_npu=self.compiled.cycles_npu,
            vela_ini_sha256=self.compiled.vela_ini_sha256,
            vela_over_fvp_cycles=self.compiled.cycles_npu / c.active_cycles,
            argv=run.outcome.argv,
        )
        return m

    def run(self, inputs: Sequence[np.ndarray]) -> RunResult:
        m = self.measure(inputs)
        return RunResult(
            backend=self.name,
            model_sha256=self.model_sha256,
            outputs=m.outputs,
            host_ms=round(m.fvp_wall_s * 1e3, 3),
            inference_time_ms=m.inference_time_ms,
            inference_time_source=m.inference_time_source,
            extra={
                "platform": m.platform,
                "accel": m.accel,
                "npu_total_cycles": m.npu_total_cycles,
                "fvp": m.to_dict(outputs=False),
            },
        )

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        return [[o.data for o in self.run(inputs).outputs] for inputs in batch]


# the registry's factory: the constructor's keyword parameters are the options, declared once
make_backend = FvpBackend
