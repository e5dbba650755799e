"""Finding the FVP and the runner, the no-FVP path, and ``ethos-kws fvp doctor``.

Executables here are TEST DOUBLES (tiny scripts named like the real FVP so the search finds them);
they print a version line and nothing else, and no test treats their output as a result.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from ethos_kws.backends.fvp.discovery import (
    ENV_FVP_DIR,
    find_fvp,
    parse_fvp_version,
    search_fvp,
    search_runner,
)
from ethos_kws.backends.fvp.targets import get_target
from ethos_kws.errors import BackendUnavailable

U55_300 = "FVP_Corstone_SSE-300_Ethos-U55"
VERSION_DOUBLE = f"#!{sys.executable}\n# TEST DOUBLE for an FVP executable: only answers --version\nprint('Fast Models [11.27.19 (Sep 10 2024)]')\n"


@pytest.fixture
def target():
    return get_target("corstone-300", "U55")


def double(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VERSION_DOUBLE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def env(**kw) -> dict[str, str]:
    return {"PATH": "/nonexistent", **kw}


def search(target, tmp_path, explicit=None, **environ):
    return search_fvp(target, explicit, environ=env(**environ), home=tmp_path / "home",
                      vht_dir=tmp_path / "VHT")  # fmt: skip


# ---- FVP ---------------------------------------------------------------------------------------


def test_nothing_installed(target, tmp_path):
    s = search(target, tmp_path)
    assert s.install is None
    assert [p.place for p in s.probes] == [f"${ENV_FVP_DIR}", "PATH", "MLIA backend", str(tmp_path / "VHT")]
    with pytest.raises(BackendUnavailable) as e:
        s.require()
    msg = str(e.value)
    assert "\n" not in msg and U55_300 in msg and "ethos-kws fvp doctor" in msg


def test_explicit_file_any_name(target, tmp_path):
    exe = double(tmp_path / "my_fvp_wrapper")
    s = search(target, tmp_path, explicit=exe)
    assert s.install.executable == exe and s.install.source == "--fvp"


def test_explicit_install_tree(target, tmp_path):
    exe = double(tmp_path / "FVP_Corstone_SSE-300/models/Linux64_GCC-9.3" / U55_300)
    s = search(target, tmp_path, explicit=tmp_path / "FVP_Corstone_SSE-300")
    assert s.install.executable == exe


def test_explicit_path_is_authoritative(target, tmp_path):
    on_path = double(tmp_path / "bin" / U55_300)
    s = search_fvp(target, tmp_path / "missing", environ={"PATH": str(on_path.parent)},
                   home=tmp_path, vht_dir=tmp_path)  # fmt: skip
    assert s.install is None and [p.note for p in s.probes] == ["does not exist"]


def test_explicit_file_of_another_target(target, tmp_path):
    exe = double(tmp_path / "FVP_Corstone_SSE-310")
    s = search(target, tmp_path, explicit=exe)
    assert s.install is None and "corstone-310 Ethos-U55" in s.probes[0].note


def test_not_executable(target, tmp_path):
    exe = tmp_path / "d" / U55_300
    exe.parent.mkdir()
    exe.write_text("")
    assert search(target, tmp_path, explicit=exe.parent).install is None


def test_env_dir_before_path(target, tmp_path):
    a = double(tmp_path / "a" / U55_300)
    b = double(tmp_path / "b" / U55_300)
    s = search_fvp(target, environ={ENV_FVP_DIR: str(a.parent), "PATH": str(b.parent)},
                   home=tmp_path, vht_dir=tmp_path)  # fmt: skip
    assert s.install.executable == a and s.install.source == f"${ENV_FVP_DIR}"
    s = search_fvp(target, environ={"PATH": f"/nope:{b.parent}"}, home=tmp_path, vht_dir=tmp_path)
    assert s.install.executable == b and s.install.source == "PATH"


def test_avh_name_on_path(target, tmp_path):
    vht = double(tmp_path / "bin" / "VHT_Corstone_SSE-300_Ethos-U55")
    s = search_fvp(target, environ={"PATH": str(vht.parent)}, home=tmp_path, vht_dir=tmp_path)
    assert s.install.executable == vht


def _mlia_repo(root: Path, backends: list) -> Path:
    root.mkdir(parents=True)
    (root / "mlia_config.json").write_text(json.dumps({"backends": backends}))
    return root


def test_mlia_copied_backend(target, tmp_path):
    repo = _mlia_repo(tmp_path / "home" / ".mlia", [
        {"name": "vela", "settings": {}},
        {"name": "corstone-300", "settings": {"profile": "default", "backend_dir": "corstone_300"}},
    ])  # fmt: skip
    exe = double(repo / "backends" / "corstone_300" / U55_300)
    s = search(target, tmp_path)
    assert s.install.executable == exe and s.install.source == "MLIA backend"


def test_mlia_avh_backend_path_and_venv_first(target, tmp_path):
    vht = double(tmp_path / "VHTimage" / "VHT_Corstone_SSE-300_Ethos-U55")
    venv = tmp_path / "venv"
    _mlia_repo(venv / ".mlia", [
        {"name": "corstone-300", "settings": {"profile": "AVH", "backend_path": str(vht.parent)}},
    ])  # fmt: skip
    home_repo = _mlia_repo(tmp_path / "home" / ".mlia", [
        {"name": "corstone-300", "settings": {"profile": "default", "backend_dir": "corstone_300"}},
    ])  # fmt: skip
    double(home_repo / "backends" / "corstone_300" / U55_300)
    s = search(target, tmp_path, VIRTUAL_ENV=str(venv))
    assert s.install.executable == vht


def test_mlia_config_unreadable(target, tmp_path):
    repo = tmp_path / "home" / ".mlia"
    repo.mkdir(parents=True)
    (repo / "mlia_config.json").write_text("{not json")
    s = search(target, tmp_path)
    assert s.install is None and "unreadable" in s.probes[2].note


def test_opt_vht(target, tmp_path):
    vht = double(tmp_path / "VHT" / "VHT_Corstone_SSE-300_Ethos-U55")
    assert search(target, tmp_path).install.executable == vht


def test_bundled_python_runtime(target, tmp_path):
    root = tmp_path / "FVP_Corstone_SSE-310"
    exe = double(root / "models/Linux64_GCC-9.3" / U55_300)
    (root / "python" / "lib").mkdir(parents=True)
    install = search(target, tmp_path, explicit=root).install
    assert install.executable == exe
    assert install.env["PYTHONHOME"] == str(root / "python")
    assert install.env["LD_LIBRARY_PATH"].split(":")[0] == str(root / "python" / "lib")


def test_find_fvp_default_environment_has_none(target, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    if Path("/opt/VHT").exists():
        pytest.skip("/opt/VHT exists on this machine")
    with pytest.raises(BackendUnavailable, match="fvp doctor"):
        find_fvp(target)


def test_version_parsing():
    assert parse_fvp_version("Fast Models [11.24.13 (Nov 29 2023)]\nCopyright 2000-2023 ARM Limited.") == "11.24.13"
    assert parse_fvp_version("FVP_Corstone_SSE-320: error while loading shared libraries") is None


# ---- runner ------------------------------------------------------------------------------------


def _fake_wheel(site: Path, versions: list[str]) -> None:
    """An installed-distribution layout like the mlia-ethos-u wheel's (metadata + runner folders)."""
    info = site / "mlia_ethos_u-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlia-ethos-u\nVersion: 0.1.0\n")
    for v in versions:
        for npu in ("U55", "U65"):
            d = site / f"mlia/resources/backends/applications/inference_runner-sse-300-{v}-tflm-ethos-{npu}-Default-noTA"
            d.mkdir(parents=True)
            (d / "mlek_inference_runner.axf").write_bytes(b"test double, not an ELF")


def test_runner_from_wheel_highest_version(target, tmp_path):
    _fake_wheel(tmp_path / "site", ["25.12.0", "26.03.0", "9.1.0"])
    r = search_runner(target, dist_paths=[str(tmp_path / "site")]).require()
    assert r.version == "26.03.0" and r.source == "mlia-ethos-u 0.1.0"
    assert r.path.parent.name == "inference_runner-sse-300-26.03.0-tflm-ethos-U55-Default-noTA"


def test_runner_wheel_without_this_target(tmp_path):
    _fake_wheel(tmp_path / "site", ["26.03.0"])
    s = search_runner(get_target("corstone-310", "U55"), dist_paths=[str(tmp_path / "site")])
    assert s.runner is None
    with pytest.raises(BackendUnavailable, match=r"--runner PATH.*ethos-kws\[fvp\].*fvp doctor"):
        s.require()


def test_runner_explicit(target, tmp_path):
    f = tmp_path / "app.axf"
    f.write_bytes(b"x")
    assert search_runner(target, f).require().path == f.resolve()
    assert search_runner(target, tmp_path / "nope.axf").runner is None


def test_runner_from_the_real_wheel_if_installed(target):
    import importlib.metadata

    try:
        importlib.metadata.distribution("mlia-ethos-u")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mlia-ethos-u is not installed in this environment (the 'fvp' extra)")
    r = search_runner(target).require()
    assert r.path.name == "mlek_inference_runner.axf" and r.path.stat().st_size > 100_000


# ---- no FVP: every entry point says so, nothing is compiled or measured --------------------------


@pytest.fixture
def no_fvp(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    if Path("/opt/VHT").exists():
        pytest.skip("/opt/VHT exists on this machine")


def test_create_backend_without_fvp(no_fvp, int8io_model, tmp_path):
    from ethos_kws.backends import create_backend
    from ethos_kws.paths import cache_dir

    def compiled():
        return sorted((cache_dir() / "compile").glob("*")) if (cache_dir() / "compile").exists() else []

    before = compiled()
    with pytest.raises(BackendUnavailable) as e:
        create_backend("fvp", int8io_model, accel="u55-256")
    assert "\n" not in str(e.value) and "ethos-kws fvp doctor" in str(e.value)
    assert compiled() == before  # failed before compiling anything


def test_measure_without_fvp(no_fvp, int8io_model):
    from ethos_kws.backends.fvp import measure

    with pytest.raises(BackendUnavailable, match="FVP_Corstone_SSE-310_Ethos-U65"):
        measure(int8io_model, "u65-512", platform="corstone-310")


def test_cli_run_without_fvp_exits_2(no_fvp, int8io_model, capsys):
    from ethos_kws.cli import main

    rc = main(["run", "--backend", "fvp", "--model", str(int8io_model), "--accel", "u55-128"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "fvp doctor" in err[0] and U55_300 in err[0]


def test_doctor_without_fvp(no_fvp, capsys):
    from ethos_kws.cli import main

    assert main(["fvp", "doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ready"] is False and doc["ready_targets"] == []
    assert len(doc["targets"]) == 5 and all(t["fvp"]["path"] is None for t in doc["targets"])
    u85 = doc["targets"][4]
    assert (u85["platform"], u85["npu"], u85["executable"]) == ("corstone-320", "U85", "FVP_Corstone_SSE-320")
    assert u85["num_macs"] == [128, 256, 512, 1024, 2048] and u85["memory_mode"] == "Dedicated_Sram_384KB"
    assert any("`mlia backend install corstone-320`" in f for f in doc["fix"])
    assert any("Corstone-320" in f and "PYTHONHOME" in f for f in doc["fix"])
    assert any("FVP executable(s) not found" in m for m in doc["missing"])
    assert any("arm-ecosystem-fvps" in f for f in doc["fix"])
    assert any("EULA" in f for f in doc["fix"])
    assert main(["fvp", "doctor"]) == 0
    text = capsys.readouterr().out
    assert "Missing:" in text and "To fix:" in text and U55_300 in text
    assert "corstone-320 Ethos-U85  [not ready]" in text and "FVP_Corstone_SSE-320 not found" in text


def test_doctor_finds_a_double_and_asks_its_version(no_fvp, monkeypatch, tmp_path, capsys):
    from ethos_kws.cli import main

    exe = double(tmp_path / "fvp" / U55_300)
    runner = tmp_path / "runner_test_double.axf"
    runner.write_bytes(b"x")
    monkeypatch.setenv(ENV_FVP_DIR, str(exe.parent))
    assert main(["fvp", "doctor", "--json", "--runner", str(runner)]) == 0
    doc = json.loads(capsys.readouterr().out)
    t = doc["targets"][0]
    assert (t["platform"], t["npu"], t["ready"]) == ("corstone-300", "U55", True)
    assert t["fvp"]["path"] == str(exe) and t["fvp"]["version"] == "11.27.19"
    assert t["fvp"]["source"] == f"${ENV_FVP_DIR}"
    assert doc["ready_targets"] == ["corstone-300/U55"]
    assert any("FVP_Corstone_SSE-310" in m for m in doc["missing"])


def test_doctor_reports_an_fvp_that_cannot_start(no_fvp, tmp_path, fvp_logs, capsys):
    from ethos_kws.cli import main

    message = (fvp_logs / "fvp_error_missing_libpython39.txt").read_text().splitlines()[1]
    exe = tmp_path / "fvp" / U55_300
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/sh\n# TEST DOUBLE: an FVP whose libraries are missing\necho '{message}' >&2\nexit 127\n")
    exe.chmod(0o755)
    assert main(["fvp", "doctor", "--json", "--fvp", str(exe)]) == 0
    doc = json.loads(capsys.readouterr().out)
    t = doc["targets"][0]
    assert t["ready"] is False and "libpython3.9" in t["fvp"]["problem"]
    assert any("PYTHONHOME" in f for f in doc["fix"])


def test_explicit_runner_built_for_another_target(tmp_path):
    f = tmp_path / "inference_runner-sse-300-26.03.0-tflm-ethos-U55-Default-noTA" / "mlek_inference_runner.axf"
    f.parent.mkdir()
    f.write_bytes(b"x")
    assert search_runner(get_target("corstone-300", "U55"), f).runner.version == "26.03.0"
    s = search_runner(get_target("corstone-300", "U65"), f)
    assert s.runner is None and s.probes[0].note == "built for corstone-300/U55, not corstone-300/U65"


# ---- Corstone-320 / Ethos-U85 ------------------------------------------------------------------

U85_320 = "FVP_Corstone_SSE-320"


@pytest.fixture
def u85_target():
    return get_target("corstone-320", "U85")


def test_corstone_320_install_tree_with_its_bundled_python(u85_target, tmp_path):
    root = tmp_path / "FVP_Corstone_SSE-320"
    exe = double(root / "models/Linux64_GCC-9.3" / U85_320)
    (root / "python" / "lib").mkdir(parents=True)
    install = search(u85_target, tmp_path, ETHOS_KWS_FVP_DIR=str(root)).install
    assert install.executable == exe and install.source == f"${ENV_FVP_DIR}"
    assert install.env["PYTHONHOME"] == str(root / "python")


def test_corstone_320_mlia_backend(u85_target, tmp_path):
    repo = tmp_path / "home" / ".mlia"
    exe = double(repo / "backends" / "corstone_320" / "models/Linux64_GCC-9.3" / U85_320)
    (repo / "mlia_config.json").write_text(json.dumps({"backends": [
        {"name": "corstone-320", "settings": {"backend_dir": "corstone_320", "profile": "default"}}]}))
    assert search(u85_target, tmp_path).install.executable == exe


def test_corstone_320_avh_image(u85_target, tmp_path):
    vht = double(tmp_path / "VHT" / "VHT_Corstone_SSE-320")
    assert search(u85_target, tmp_path).install.executable == vht


def test_a_corstone_300_fvp_is_not_taken_for_u85(u85_target, tmp_path):
    s = search(u85_target, tmp_path, explicit=double(tmp_path / U55_300))
    assert s.install is None and "corstone-300 Ethos-U55 FVP, not corstone-320/U85" in s.probes[0].note


def test_u85_runner_from_the_installed_wheel(u85_target):
    """mlia-ethos-u 0.1.0 (the pinned range >=0.1,<0.2) ships the Corstone-320 Ethos-U85 runner."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("mlia-ethos-u")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mlia-ethos-u is not installed in this environment (the 'fvp' extra)")
    r = search_runner(u85_target).require()
    assert r.path.parent.name == "inference_runner-sse-320-26.03.0-tflm-ethos-U85-Default-noTA"
    assert r.source == f"mlia-ethos-u {version}" and r.version == "26.03.0"
    assert r.path.read_bytes()[:4] == b"\x7fELF"


def test_u55_runner_refused_for_u85(u85_target, tmp_path):
    f = tmp_path / "inference_runner-sse-300-26.03.0-tflm-ethos-U55-Default-noTA" / "mlek_inference_runner.axf"
    f.parent.mkdir()
    f.write_bytes(b"x")
    s = search_runner(u85_target, f)
    assert s.runner is None and s.probes[0].note == "built for corstone-300/U55, not corstone-320/U85"


def test_doctor_ready_for_corstone_320(no_fvp, monkeypatch, tmp_path, capsys):
    from ethos_kws.cli import main

    exe = double(tmp_path / "fvp" / U85_320)
    monkeypatch.setenv(ENV_FVP_DIR, str(exe.parent))
    assert main(["fvp", "doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    t = next(t for t in doc["targets"] if t["platform"] == "corstone-320")
    assert t["ready"] is True and t["fvp"]["path"] == str(exe) and t["fvp"]["version"] == "11.27.19"
    assert t["runner"]["path"].endswith("inference_runner-sse-320-26.03.0-tflm-ethos-U85-Default-noTA/mlek_inference_runner.axf")
    assert doc["ready_targets"] == ["corstone-320/U85"]


def test_cli_run_u85_without_fvp_names_corstone_320(no_fvp, int8io_model, capsys):
    from ethos_kws.cli import main

    rc = main(["run", "--backend", "fvp", "--model", str(int8io_model), "--accel", "u85-512"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and U85_320 in err[0] and "corstone-320" in err[0]
