"""``ethos-kws configs``: accelerators, system configs (with clocks) and memory modes."""

from __future__ import annotations

from ..accel import ACCELERATORS, memory_modes, system_configs, vela_ini_path
from .common import add_command, add_config_arg, add_json_arg, print_json, user_ini_of


def register(sub) -> None:
    p = add_command(
        sub,
        "configs",
        help="list accelerators, system configs and memory modes",
        description="List the Ethos-U accelerators ethos-kws compiles for, with their default "
        "system config and memory mode, and the system configs (clocks, AXI ports) and memory "
        "modes of the Vela ini it passes to Vela explicitly: the one inside the installed Vela "
        "(ethosu/config_files/Arm/vela.ini). U85 system configs also say how many NPU AXI ports "
        "reach each memory (Vela's <Memory>_ports_used).\n\n"
        "With --config my_soc.ini, that file's sections are listed too (read on top of Vela's own, "
        "as Vela reads several --config files).\n\n"
        "examples:\n  ethos-kws configs\n  ethos-kws configs --config my_soc.ini --json",
        func=run,
    )
    add_json_arg(p)
    add_config_arg(p)


def configs_document(user_ini=None) -> dict:
    """``user_ini``: a checked ``vela_ini.UserIni`` (``--config``)."""
    ini = user_ini.path if user_ini else None
    return {
        "vela_ini": str(vela_ini_path()),
        "user_ini": ini,
        "user_ini_sha256": user_ini.sha256 if user_ini else None,
        "accelerators": [
            {
                "accel": a.name,
                "vela_accelerator_config": a.vela_config,
                "npu": a.npu,
                "macs_per_cycle": a.macs_per_cycle,
                "cores": a.cores,
                "default_system_config": a.default_system_config,
                "default_memory_mode": a.default_memory_mode,
            }
            for a in ACCELERATORS.values()
        ],
        "system_configs": [
            {"name": s.name, "core_clock_hz": s.core_clock_hz, "axi0_port": s.axi0_port,
             "axi1_port": s.axi1_port, "axi0_ports_used": s.axi0_ports_used,
             "axi1_ports_used": s.axi1_ports_used}
            for s in system_configs(ini).values()
        ],
        "memory_modes": [{"name": k, **v} for k, v in memory_modes(ini).items()],
    }


def run(args) -> int:
    doc = configs_document(user_ini_of(args))
    if args.json:
        print_json(doc)
        return 0
    print("Accelerators (ethos-kws name, Vela --accelerator-config, defaults):")
    for a in doc["accelerators"]:
        print(
            f"  {a['accel']:<8} {a['vela_accelerator_config']:<15} {a['macs_per_cycle']:>4} MACs/cycle"
            f" {a['cores']} core{'s' if a['cores'] > 1 else ' '}  {a['default_system_config']} + {a['default_memory_mode']}"
        )
    print("\nSystem configs:")
    for s in doc["system_configs"]:
        ports = [f" ({n} ports)" if n > 1 else "" for n in (s["axi0_ports_used"], s["axi1_ports_used"])]
        print(f"  {s['name']:<30} {s['core_clock_hz'] / 1e6:>6.0f} MHz  AXI0={s['axi0_port']}{ports[0]}"
              f"  AXI1={s['axi1_port']}{ports[1]}")
    print("\nMemory modes:")
    for m in doc["memory_modes"]:
        extra = ", ".join(f"{k}={v}" for k, v in m.items() if k != "name")
        print(f"  {m['name']:<22} {extra}")
    print(f"\nVela ini: {doc['vela_ini']}")
    if doc["user_ini"]:
        print(f"your ini: {doc['user_ini']} (sha256 {doc['user_ini_sha256'][:12]}…)")
    return 0
