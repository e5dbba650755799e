"""``ethos-kws compile``: one model, one accelerator, Vela in-process."""

from __future__ import annotations

from pathlib import Path

from ..accel import ACCELERATORS
from .common import (add_command, add_model_arg, add_output_group, add_tensor_allocator_arg, add_vela_group,
                     optimise_of, print_json, user_ini_of)


def register(sub) -> None:
    p = add_command(
        sub,
        "compile",
        help="compile a model with Vela for one accelerator",
        description="Compile a TFLite model with Vela (in-process) for one Ethos-U configuration. "
        "Keeps the compiled *_vela.tflite, Vela's summary and per-layer CSVs and its console output, "
        "and writes compile.json (cycles, time in ms, memory in bytes, ops, MAC utilization, every "
        "layer with its cycles per memory and what it is bound by, the operators left on the CPU "
        "with Vela's reason) and layers.csv (one row per Vela layer). "
        "Results are cached by content: a repeat is instant.\n\n"
        f"accelerators: {', '.join(ACCELERATORS)} (ethos-u55-128 spelling accepted)\n\n"
        "examples:\n"
        "  ethos-kws compile --accel u55-128 --model ds_cnn.tflite --out build/u55-128\n"
        "  ethos-kws compile --accel u85-256 --model ds_cnn.tflite   # Ethos_U85_SYS_DRAM_Mid + Dedicated_Sram\n"
        "  ethos-kws compile --accel u85-1024 --system-config Ethos_U85_SYS_DRAM_High --model ds_cnn.tflite",
        func=run,
    )
    add_model_arg(p)
    add_tensor_allocator_arg(add_vela_group(p, accel="required"))
    add_output_group(p, out="copy Vela's output and compile.json here (default: reports/compile/<model>/<accel>)")


def run(args) -> int:
    # imported here: every command module is imported to build the parser (start-up time)
    from ..cpu_fallback import npu_only_note
    from ..layers import bound_by_summary, flash_streaming_layers, short_name
    from ..model import resolve_model
    from ..vela import LAYERS_CSV, compile_model

    resolved = resolve_model(args.model)
    out = Path(args.out) if args.out else Path("reports") / "compile" / resolved.path.stem / args.accel
    r = compile_model(
        resolved.path, args.accel, system_config=args.system_config, memory_mode=args.memory_mode,
        optimise=optimise_of(args), arena_cache_size=args.arena_cache_size, legacy_core=bool(args.legacy_core),
        out_dir=out, tensor_allocator=args.tensor_allocator, user_ini=user_ini_of(args),
    )  # fmt: skip
    if args.json:
        print_json(r.to_dict())
        return 0
    print(f"{resolved.path.name} -> {r.accel} ({r.system_config}, {r.memory_mode}, {r.optimise}, Vela {r.vela_version} {r.compiler})")
    print(f"  cycles        {r.cycles_total:,} total, {r.cycles_npu:,} NPU")
    rate = "no NPU time" if r.inferences_per_second is None else f"{r.inferences_per_second:,.0f} inferences/s"
    print(f"  time          {r.inference_time_ms:.3f} ms at {r.core_clock_hz / 1e6:.0f} MHz ({rate})")
    print(f"  memory        SRAM {r.sram_bytes:,} B, flash {r.flash_bytes:,} B, DRAM {r.dram_bytes:,} B")
    print(f"  weights       {r.encoded_weights_bytes:,} B encoded ({r.original_weights_bytes:,} B original)")
    print(f"  ops           {r.npu_ops} NPU, {r.cpu_ops} CPU")
    for c in r.cpu_operators:
        print(f"  on the CPU    #{c.index} {c}")
    if r.cpu_ops:
        print(f"  NOTE          {npu_only_note(r.cpu_ops)}")
    print(f"  MACs          {r.macs:,} ({r.mac_utilization:.1%} of {r.macs_per_cycle} MACs/cycle peak)")
    summary = bound_by_summary(r.layers)
    if summary:
        print("  bound by      " + "; ".join(f"{k} {v['layers']} layers, {v['cycles']:,} cycles"
                                         for k, v in summary.items()))
    top = sorted((x for x in r.layers if x.cycles), key=lambda x: -x.cycles)[:5]
    if top:
        print("  top layers    " + "; ".join(f"#{x.tflite_index} {x.op} {x.cycles:,} cyc ({x.bound_by})" for x in top))
    streaming = flash_streaming_layers(r.layers)
    if streaming:
        print(f"  from flash    {len(streaming)} layers stream weights from flash: "
              + ", ".join(short_name(x["name"], 40) for x in streaming[:6]) + (" …" if len(streaming) > 6 else ""))
    print(f"  layers        {Path(r.output_dir) / LAYERS_CSV} ({len(r.layers)} rows, every cost)")
    print(f"  output        {r.compiled_model}")
    if resolved.is_synthetic:
        print("  NOTE: synthetic stand-in model — figures are representative only")
    return 0
