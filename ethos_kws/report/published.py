"""Published reference figures for DS-CNN on Ethos-U55-128, to show beside ours.

Source: Arm ML embedded evaluation kit, release 21.11 (November 2021), ``docs/use_cases/kws.md``
(the DS-CNN clustered INT8 run on Corstone-300 with Ethos-U55-128: PMU counters, tensor arena) and
``docs/sections/memory_considerations.md`` (Vela's memory summary; 70.77 KiB SRAM in releases of
early 2021, 146.31 KiB from 21.08), https://review.mlplatform.org/ml/ethos-u/ml-embedded-evaluation-kit;
accuracy from Arm ML-zoo's DS-CNN Clustered INT8 README. These are someone else's measurements of a
different build of the model on a different toolchain; the report labels them "published" and
never mixes them into our tables.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLISHED_ACCEL = "u55-128"
PUBLISHED_SOURCE = (
    "Arm ML embedded evaluation kit 21.11 (Nov 2021), docs/use_cases/kws.md and "
    "docs/sections/memory_considerations.md: DS-CNN clustered INT8 on Ethos-U55-128, Corstone-300 "
    "FVP (review.mlplatform.org/ml/ethos-u/ml-embedded-evaluation-kit); accuracy: Arm ML-zoo "
    "DS-CNN Clustered INT8 README; published figures, not measured by ethos-kws"
)
PUBLISHED_CLOCK_HZ = 500e6


@dataclass(frozen=True)
class PublishedFigure:
    quantity: str
    value: float
    unit: str
    note: str = ""
    ours_field: str | None = None  # compile-result field to set beside it
    fvp_field: str | None = None  # FVP-result field to set beside it
    scale_to_ours: float = 1.0  # multiply ``value`` by this to get our field's unit


KIB = 1024.0
U55_AXI_BYTES_PER_BEAT = 8  # 64-bit AXI on U55

PUBLISHED_FIGURES: tuple[PublishedFigure, ...] = (
    PublishedFigure("NPU total cycles", 681_172, "cycles", "FVP PMU: ACTIVE 680,611 + IDLE 561",
                    ours_field="cycles_total", fvp_field="npu_total_cycles"),
    PublishedFigure("NPU active cycles", 680_611, "cycles", "FVP PMU", fvp_field="npu_active_cycles"),
    PublishedFigure("inference time", 1.36, "ms", "at 500 MHz",
                    ours_field="inference_time_ms", fvp_field="inference_time_ms"),
    PublishedFigure("inferences per second", 734, "inf/s", "at 500 MHz",
                    ours_field="inferences_per_second"),
    PublishedFigure("AXI0 read", 217_385, "beats", "8 bytes per beat on U55",
                    fvp_field="axi0_read_bytes", scale_to_ours=U55_AXI_BYTES_PER_BEAT),
    PublishedFigure("AXI0 write", 82_607, "beats", "8 bytes per beat on U55",
                    fvp_field="axi0_write_bytes", scale_to_ours=U55_AXI_BYTES_PER_BEAT),
    PublishedFigure("AXI1 read", 59_608, "beats", "8 bytes per beat on U55",
                    fvp_field="axi1_read_bytes", scale_to_ours=U55_AXI_BYTES_PER_BEAT),
    PublishedFigure("TFLM tensor arena used", 72_848, "bytes", "TFLM on the FVP"),
    PublishedFigure("Vela SRAM (early 2021)", 70.77, "KiB", "Vela of early 2021",
                    ours_field="sram_bytes", scale_to_ours=KIB),
    PublishedFigure("Vela SRAM (Sept 2021)", 146.31, "KiB", "same command, Vela of Sept 2021",
                    ours_field="sram_bytes", scale_to_ours=KIB),
    PublishedFigure("Vela off-chip flash (early 2021)", 430.78, "KiB", "Vela of early 2021",
                    ours_field="flash_bytes", scale_to_ours=KIB),
    PublishedFigure("Vela off-chip flash (Sept 2021)", 452.42, "KiB", "same command, Vela of Sept 2021",
                    ours_field="flash_bytes", scale_to_ours=KIB),
    PublishedFigure("MACs", 28.35e6, "MACs", "Hello Edge counts 56.9 M ops", ours_field="macs"),
    PublishedFigure("top-1 accuracy", 0.9401, "fraction", "Speech Commands test set (ML-zoo)"),
)
