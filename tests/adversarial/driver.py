"""Adversarial driver: run the ``ethos-kws`` CLI over every category of issue 10 and count outcomes.

    PYTHONPATH=. python tests/adversarial/driver.py [--json OUT.json] [--only CATEGORY]

Every hostile file is generated here from ``shared/data/models/ds_cnn_l_int8io.tflite`` (see
``hostile_files.py``); downloads go to a local HTTP server on 127.0.0.1; each run is bounded in
time. Per category it prints: tried / clean / traceback / signal / hang / wrong success / other.

* clean: the expected exit code, at most one stderr line when it failed, no "Traceback", no
  leftover temporary, pre-existing files byte-identical, the case's own check passed;
* traceback / signal / hang: a Python traceback on stderr, death by a signal, over the time limit;
* wrong success: exit 0 where a failure was due, or a case check found silently wrong output
  (a replaced file, a corrupt cache entry served, a different simulator output);
* other: a failure with the wrong exit code or more than one stderr line.

This is a helper script, not a test (tests/adversarial/test_*.py assert the same cases).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("ETHOS_KWS_DRIVER_ROOT", HERE.parents[1]))  # the code under test
sys.path.insert(0, str(HERE))
import hostile_files as hf  # noqa: E402

DATA = Path(os.environ.get("ETHOS_KWS_SHARED_DATA", ROOT.parent / "shared" / "data"))
if not (DATA / "models").is_dir():
    DATA = Path("/work/shared/data")
MODEL = DATA / "models" / "ds_cnn_l_int8io.tflite"
FLOAT_MODEL = DATA / "models" / "ds_cnn_l_quantized.tflite"
CLIP = DATA / "audio" / "yes_tflm.wav" if (DATA / "audio" / "yes_tflm.wav").exists() else next((DATA / "audio").glob("*.wav"))
PY = sys.executable
CATEGORIES = ("vela-crash", "corrupt-model", "command-stream", "inputs", "outputs-paths",
              "interrupt", "cache", "download", "reports")
ACCEPTED_CHANGES: list[str] = []  # stream flips in values the hardware accepts that changed the output
OUTCOMES = ("clean", "traceback", "signal", "hang", "wrong success", "other")


@dataclass
class Case:
    category: str
    name: str
    argv: list[str]
    expect: tuple[int, ...] = (2,)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    keep: list[Path] = field(default_factory=list)  # must be byte-identical afterwards
    scan: list[Path] = field(default_factory=list)  # folders that must hold no *.tmp / *.part
    check: Callable[["Run"], str | None] | None = None  # a reason when silently wrong
    max_seconds: float | None = None  # slower than this counts as a hang
    findings_on_stdout: bool = False  # a failing gate: its findings on stdout, no error line


@dataclass
class Run:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float


def classify(case: Case, run: Run, before: dict[Path, bytes | None]) -> tuple[str, str]:
    if run.rc is None:
        return "hang", f"no exit after {case.timeout:g} s"
    if case.max_seconds is not None and run.seconds > case.max_seconds:
        return "hang", f"{run.seconds:.1f} s > {case.max_seconds:g} s"
    if run.rc < 0:
        return "signal", f"killed by signal {-run.rc}"
    if "Traceback" in run.stderr:
        return "traceback", run.stderr.strip().splitlines()[-1][:160]
    for p, data in before.items():
        now = p.read_bytes() if p.is_file() else None
        if now != data:
            return "wrong success", f"{p} changed"
    for d in case.scan:
        left = [str(x) for x in Path(d).rglob("*") if x.name.endswith((".tmp", ".part"))] if Path(d).exists() else []
        if left:
            return "wrong success" if run.rc == 0 else "other", f"leftover {left[0]}"
    if case.check is not None:
        why = case.check(run)
        if why:
            return "wrong success", why
    if run.rc not in case.expect:
        if run.rc == 0:
            return "wrong success", "exit 0"
        return "other", f"exit {run.rc}, expected {case.expect}: {run.stderr.strip()[-160:]}"
    if run.rc != 0 and case.findings_on_stdout:
        return ("clean", "") if not run.stderr.strip() else ("other", f"stderr: {run.stderr.strip()[-200:]!r}")
    if run.rc != 0 and len([ln for ln in run.stderr.splitlines() if ln.startswith("ethos-kws: error")]) != 1:
        return "other", f"stderr not one error line: {run.stderr.strip()[-200:]!r}"
    lines = run.stderr.strip().splitlines()
    if run.rc != 0 and not lines[-1].startswith("ethos-kws: error"):
        return "other", f"the error takes {len(lines)} stderr lines: {run.stderr.strip()[-200:]!r}"
    return "clean", ""


def run_cli(case: Case, work: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ETHOS_KWS_MODEL_URLS": "http://127.0.0.1:9/none",
           **case.env}
    env.pop("ETHOS_KWS_MODEL", None)
    t0 = time.monotonic()
    p = subprocess.Popen([PY, "-m", "ethos_kws", *case.argv], cwd=work, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=case.timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    return Run(rc, out, err, time.monotonic() - t0)


# ---- a local HTTP server with hostile endpoints ---------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/slow"):  # one byte every 2 s of a 503,816-byte body
            self.send_response(200)
            self.send_header("Content-Length", "503816")
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(2)
            except OSError:
                pass
        elif self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()
        elif self.path.startswith("/short"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
        else:
            self.send_response(404)
            self.end_headers()


def start_server() -> tuple[http.server.ThreadingHTTPServer, str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


# ---- setup helpers --------------------------------------------------------------------------------


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


class World:
    """Scratch folders, a warm golden cache and the reference outputs the checks compare with."""

    def __init__(self, base: Path):
        self.base = base
        self.golden_cache = base / "golden-cache"
        self.model_bytes = MODEL.read_bytes()
        self.model = hf.write(base / "files" / "model.tflite", self.model_bytes)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ETHOS_KWS_CACHE": str(self.golden_cache),
               "ETHOS_KWS_MODEL_URLS": "http://127.0.0.1:9/none"}
        gold = base / "gold"
        subprocess.run([PY, "-m", "ethos_kws", "compile", "--accel", "u55-128", "--model", str(self.model),
                        "--out", str(gold / "u55-128")], env=env, check=True, capture_output=True)
        subprocess.run([PY, "-m", "ethos_kws", "sweep", "--accel", "u55-128", "--out", str(gold / "synth")],
                       env=env, check=True, capture_output=True)
        self.compiled = gold / "u55-128" / "model_vela.tflite"
        self.compiled_bytes = self.compiled.read_bytes()
        self.synth_sha = json.loads((gold / "synth" / "results.json").read_text())["model"]["sha256"]
        self.input = hf.write(base / "files" / "in.npy", hf.npy_bytes(__import__("numpy").arange(490, dtype="int8").reshape(1, 490) % 100))
        r = subprocess.run([PY, "-m", "ethos_kws", "run", "--backend", "npu-sim", "--model", str(self.compiled),
                            "--input", str(self.input), "--json"], env=env, capture_output=True, text=True, check=True)
        self.sim_output = json.loads(r.stdout)["outputs"][0]["data"]
        self.layer_count = len(json.loads((gold / "u55-128" / "compile.json").read_text())["layers"])
        self.n = 0
        self.mounts: list[Path] = []

    def mount(self, where: Path, options: str) -> bool:
        """A tiny tmpfs (read-only or nearly full); False when this machine cannot mount."""
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if r.returncode == 0:
            self.mounts.append(where)
        return r.returncode == 0

    def unmount_all(self) -> None:
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)

    @staticmethod
    def dead_pid() -> int:
        p = subprocess.Popen(["true"])
        p.wait()
        return p.pid

    def dir(self, tag: str) -> Path:
        self.n += 1
        d = self.base / f"{self.n:03d}-{tag}"
        d.mkdir(parents=True)
        return d

    def cache_copy(self, d: Path) -> Path:
        """A private copy of the warm cache; absolute paths inside its entries point at the copy."""
        c = d / "cache"
        shutil.copytree(self.golden_cache, c)
        for doc in (c / "compile").glob("*/compile.json"):
            doc.write_text(doc.read_text().replace(str(self.golden_cache), str(c)))
        return c

    def file(self, d: Path, name: str, data: bytes | str) -> Path:
        return hf.write(d / name, data)


def _entry(cache: Path) -> Path:
    return next(p for p in (cache / "compile").iterdir() if p.is_dir() and not p.name.startswith("."))


# ---- the cases ------------------------------------------------------------------------------------


def cases(w: World, url: str) -> list[Case]:  # noqa: C901 - one table of cases
    out: list[Case] = []
    M = w.model_bytes
    add = out.append

    def fresh(tag: str) -> tuple[Path, dict[str, str]]:
        d = w.dir(tag)
        return d, {"ETHOS_KWS_CACHE": str(d / "cache")}

    # -- 1. Vela crashes and truncated models --
    d, env = fresh("trunc")
    trunc = w.file(d, "trunc.tflite", hf.truncated(M))
    add(Case("vela-crash", "compile truncated model", ["compile", "--accel", "u55-128", "--model", str(trunc), "--out", str(d / "o")], env=env, scan=[d]))
    add(Case("vela-crash", "sweep truncated model", ["sweep", "--accel", "u55-128,u55-256", "--jobs", "2", "--model", str(trunc), "--out", str(d / "s")], env=env, scan=[d]))
    rng = random.Random(10)
    for k in range(12):
        d, env = fresh(f"flip{k}")
        pos = rng.randrange(len(M))
        f = w.file(d, "flip.tflite", hf.flip_bit(M, pos, rng.randrange(8)))
        add(Case("vela-crash", f"compile bit flip @{pos}", ["compile", "--accel", "u55-128", "--model", str(f), "--out", str(d / "o")],
                 expect=(0, 1, 2), env=env, scan=[d]))
    d, env = fresh("sweepmix")
    add(Case("vela-crash", "sweep --jobs 2 of a truncated model (pool)", ["sweep", "--accel", "all", "--jobs", "2", "--model", str(w.file(d, "t.tflite", hf.truncated(M, 7))), "--out", str(d / "s")], env=env, scan=[d]))

    # -- 2. corrupt models --
    d, env = fresh("corrupt")
    trunc = w.file(d, "trunc.tflite", hf.truncated(M))
    ctrunc = w.file(d, "ctrunc.tflite", hf.truncated(w.compiled_bytes))
    act = hf.first_activation_with_shape(M)
    neg = w.file(d, "neg.tflite", hf.with_dimension(M, act, 1, -1))
    huge = w.file(d, "huge.tflite", hf.with_dimension(M, act, 1, 2**31 - 1))
    qt = hf.first_quantized_tensor(M)
    nanq = w.file(d, "nanscale.tflite", hf.with_scale(M, qt, float("nan")))
    negq = w.file(d, "negscale.tflite", hf.with_scale(M, qt, -1.0))
    wav = CLIP
    for label, argv in (
        ("model info truncated", ["model", "info", str(trunc)]),
        ("model info --no-compile truncated", ["model", "info", "--no-compile", str(trunc)]),
        ("run cpu truncated", ["run", "--model", str(trunc)]),
        ("run npu-sim truncated", ["run", "--backend", "npu-sim", "--model", str(trunc)]),
        ("disasm truncated compiled", ["disasm", str(ctrunc)]),
        ("disasm truncated plain", ["disasm", str(trunc)]),
        ("vectors truncated", ["vectors", "--model", str(trunc), "--count", "2", "--out", str(d / "v")]),
        ("parity truncated", ["parity", "--model", str(trunc), "--accel", "u55-128", "--vectors", "2"]),
        ("classify truncated", ["classify", str(wav), "--model", str(trunc)]),
        ("sweep truncated", ["sweep", "--model", str(trunc), "--accel", "u55-128", "--out", str(d / "s")]),
        ("model info --no-compile dim -1", ["model", "info", "--no-compile", str(neg)]),
        ("compile dim -1", ["compile", "--accel", "u55-128", "--model", str(neg), "--out", str(d / "c1")]),
        ("run cpu dim -1", ["run", "--model", str(neg)]),
        ("model info --no-compile dim 2**31-1", ["model", "info", "--no-compile", str(huge)]),
        ("run npu-sim dim 2**31-1", ["run", "--backend", "npu-sim", "--model", str(huge)]),
        ("compile NaN scale", ["compile", "--accel", "u55-128", "--model", str(nanq), "--out", str(d / "c2")]),
        ("run cpu negative scale", ["run", "--model", str(negq)]),
        ("model info --no-compile NaN scale", ["model", "info", "--no-compile", str(nanq)]),
    ):
        add(Case("corrupt-model", label, argv, env=env, scan=[d]))

    # -- 3. corrupted command streams --
    start, length = hf.command_stream_span(w.compiled_bytes)
    rng = random.Random(3)

    def same_output(run: Run, register: str = "") -> str | None:
        if run.rc != 0:
            return None
        try:
            data = json.loads(run.stdout)["outputs"][0]["data"]
        except (ValueError, KeyError, IndexError):
            return "unparseable output"
        if data == w.sim_output:
            return None
        if hf.accepted_value(register):  # a padding amount, a scale, a clamp: counted, not an error
            ACCEPTED_CHANGES.append(register)
            return None
        return f"ran to completion with a different output ({register or 'not a stream register'})"

    def register_at(pos: int) -> str:
        hit = hf.stream_command_at(w.compiled_bytes, pos)
        if hit is None:
            return ""
        cmd, byte = hit
        return cmd.name if byte >= 2 else f"opcode of {cmd.name}"  # bytes 0-1 hold the opcode

    d, env = fresh("cmd")
    for k in range(40):
        pos = start + 24 + rng.randrange(length - 24)  # past the COP1 header
        f = w.file(d, f"cmd{k}_vela.tflite", hf.flip_bit(w.compiled_bytes, pos, rng.randrange(8)))
        reg = register_at(pos)
        add(Case("command-stream", f"flip stream byte {pos - start} ({reg})", ["run", "--backend", "npu-sim", "--model", str(f), "--input", str(w.input), "--json"],
                 expect=(0, 2), env=env, check=lambda run, reg=reg: same_output(run, reg)))
        add(Case("command-stream", f"disasm flip {pos - start}", ["disasm", str(f)], expect=(0, 2), env=env)) if k < 5 else None
    out_idx = hf.output_tensor(w.compiled_bytes)
    f = w.file(d, "ofm_past_vela.tflite", hf.with_arena_offset(w.compiled_bytes, out_idx, hf.scratch_size(w.compiled_bytes) + 4096))
    add(Case("command-stream", "output tensor past the scratch area", ["run", "--backend", "npu-sim", "--model", str(f), "--input", str(w.input)], env=env))
    f = w.file(d, "hugeout_vela.tflite", hf.with_dimension(w.compiled_bytes, out_idx, 1, 2**31 - 1))
    add(Case("command-stream", "compiled model declares a huge tensor", ["run", "--backend", "npu-sim", "--model", str(f), "--input", str(w.input)], env=env, timeout=30, max_seconds=10))

    # -- 4. inputs --
    import numpy as np

    d, env = fresh("inputs")
    for label, data, model in (
        ("npy garbage header", hf.npy_garbage_header(), w.model),
        ("npy header of 2**40 elements", hf.npy_huge_header(), w.model),
        ("float64 1e308 on a float model", hf.npy_bytes(np.full((1, 490), 1e308)), FLOAT_MODEL),
        ("float64 -1e308 on an int8 model (clamped, as documented)", hf.npy_bytes(np.full((1, 490), -1e308)), w.model),
        ("npy truncated data", hf.npy_bytes(np.zeros((1, 490), "int8"))[:-100], w.model),
    ):
        x = w.file(d, label.split(" (")[0].replace(" ", "_").replace("*", "") + ".npy", data)
        expect = (0, 2) if "clamped" in label else (2,)
        add(Case("inputs", label, ["run", "--model", str(model), "--input", str(x)], expect=expect, env=env, timeout=60))
        add(Case("inputs", label + " (npu-sim)", ["run", "--backend", "npu-sim", "--model", str(model), "--input", str(x)],
                 expect=expect, env=env, timeout=60))

    # -- 5. outputs and paths --
    d, env = fresh("paths")
    ftxt = w.file(d, "f.txt", "precious\n")
    cache = w.cache_copy(d)
    env = {"ETHOS_KWS_CACHE": str(cache)}
    for label, argv in (
        ("compile --out existing file", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(ftxt)]),
        ("sweep --out existing file", ["sweep", "--accel", "u55-128", "--model", str(w.model), "--out", str(ftxt)]),
        ("compile --out FILE/sub", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(ftxt / "sub")]),
        ("vectors --out FILE/sub", ["vectors", "--model", str(w.model), "--count", "2", "--out", str(ftxt / "sub")]),
        ("vectors --out existing file", ["vectors", "--model", str(w.model), "--count", "2", "--out", str(ftxt)]),
        ("features --out FILE/sub", ["features", str(CLIP), "--out", str(ftxt / "x.npy")]),
        ("model synth --out FILE/sub", ["model", "synth", "--arch", "ds-cnn-l", "--out", str(ftxt / "m.tflite")]),
        ("report --out existing file", ["report", "--from", str(w.file(d, "r.json", hf.results_json_text())), "--out", str(ftxt)]),
        ("compile --out /proc", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", "/proc/ethos-kws-hostile"]),
        ("sweep --out /sys", ["sweep", "--accel", "u55-128", "--model", str(w.model), "--out", "/sys/ethos-kws-hostile"]),
        ("run --seed -1", ["run", "--model", str(w.model), "--seed", "-1"]),
        ("vectors --seed -1", ["vectors", "--model", str(w.model), "--seed", "-1", "--out", str(d / "v")]),
        ("parity --seed -1", ["parity", "--model", str(w.model), "--seed", "-1", "--accel", "u55-128", "--vectors", "2"]),
        ("sweep --accel ''", ["sweep", "--accel", "", "--model", str(w.model), "--out", str(d / "s1")]),
        ("sweep --accel ','", ["sweep", "--accel", ",", "--model", str(w.model), "--out", str(d / "s2")]),
    ):
        add(Case("outputs-paths", label, argv, env=env, keep=[ftxt], scan=[d]))
    for label, cache_env in (("ETHOS_KWS_CACHE is a file", str(ftxt)), ("ETHOS_KWS_CACHE under a file", str(ftxt / "c")),
                             ("ETHOS_KWS_CACHE in /proc", "/proc/ethos-kws-cache")):
        add(Case("outputs-paths", label, ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(d / "o")],
                 env={"ETHOS_KWS_CACHE": cache_env}, keep=[ftxt], scan=[d]))
    ro, full = d / "ro", d / "full"
    ro.mkdir()
    full.mkdir()
    if w.mount(ro, "ro,size=1m") and w.mount(full, "size=64k"):
        add(Case("outputs-paths", "compile --out read-only fs", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(ro / "o")], env=env))
        add(Case("outputs-paths", "ETHOS_KWS_CACHE read-only fs", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(d / "o2")],
                 env={"ETHOS_KWS_CACHE": str(ro / "c")}, scan=[d / "o2"]))
        add(Case("outputs-paths", "compile --out full disk", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(full / "o")],
                 expect=(1, 2), env=env, scan=[full]))
        add(Case("outputs-paths", "ETHOS_KWS_CACHE full disk", ["compile", "--accel", "u55-128", "--model", str(w.model), "--out", str(d / "o3")],
                 expect=(1, 2), env={"ETHOS_KWS_CACHE": str(full / "c")}, scan=[full]))

    # -- 7. cache --
    def cache_case(label: str, damage: Callable[[Path], None]) -> None:
        d = w.dir("cache")
        c = w.cache_copy(d)
        damage(_entry(c))

        def good(run: Run, d=d) -> str | None:
            if run.rc != 0:
                return None
            exported = d / "s" / "u55-128" / "model_vela.tflite"
            if not exported.is_file() or exported.read_bytes() != w.compiled_bytes:
                return "exported a corrupt compiled model"
            doc = json.loads((d / "s" / "results.json").read_text())
            if not isinstance(doc["results"][0]["cycles_total"], int):
                return "served a corrupt compile.json"
            return None

        add(Case("cache", label, ["sweep", "--accel", "u55-128", "--model", str(w.model), "--out", str(d / "s")],
                 expect=(0,), env={"ETHOS_KWS_CACHE": str(c)}, check=good, scan=[c]))

    def damage_file(fn: Callable[[bytes], bytes], pattern: str = "*_vela.tflite"):
        def go(entry: Path) -> None:
            p = next(entry.glob(pattern))
            p.write_bytes(fn(p.read_bytes()))
        return go

    cache_case("truncated cached *_vela.tflite", damage_file(lambda b: b[: len(b) // 2]))
    cache_case("bit-flipped cached *_vela.tflite", damage_file(lambda b: hf.flip_bit(b, len(b) // 2, 3)))
    cache_case("cycles_total 'lots' in compile.json", damage_file(
        lambda b: json.dumps({**json.loads(b), "cycles_total": "lots"}).encode(), "compile.json"))
    other = w.file(w.dir("other"), "other_vela.tflite", hf.truncated(w.compiled_bytes, 100))
    cache_case("compiled_model points elsewhere", damage_file(
        lambda b: json.dumps({**json.loads(b), "compiled_model": str(other)}).encode(), "compile.json"))
    cache_case("compile.json not JSON", damage_file(lambda b: b[:50], "compile.json"))

    d = w.dir("synthcache")
    c = w.cache_copy(d)
    sm = next((c / "models").glob("synthetic_*.tflite"))
    sm.write_bytes(hf.flip_bit(sm.read_bytes(), len(sm.read_bytes()) // 2, 1))

    def synth_good(run: Run, d=d) -> str | None:
        if run.rc != 0:
            return None
        sha_used = json.loads((d / "s" / "results.json").read_text())["model"]["sha256"]
        return None if sha_used == w.synth_sha else "used a bit-flipped synthetic stand-in"

    add(Case("cache", "bit-flipped synthetic stand-in", ["sweep", "--accel", "u55-128", "--out", str(d / "s")],
             expect=(0,), env={"ETHOS_KWS_CACHE": str(c)}, check=synth_good, scan=[c]))

    # -- 6. interrupted sweeps (special runner) and folder consistency --
    d = w.dir("ab")
    c = w.cache_copy(d)
    b_model = w.dir("bmodel") / "b.tflite"
    env_b = {**os.environ, "PYTHONPATH": str(ROOT), "ETHOS_KWS_CACHE": str(c)}
    subprocess.run([PY, "-m", "ethos_kws", "model", "synth", "--arch", "ds-cnn-s", "--out", str(b_model)], env=env_b, capture_output=True)
    subprocess.run([PY, "-m", "ethos_kws", "sweep", "--accel", "u55-128,u55-256", "--model", str(w.model), "--out", str(d / "run")], env=env_b, capture_output=True)

    def consistent(run: Run, d=d) -> str | None:
        if run.rc != 0:
            return None
        doc = json.loads((d / "run" / "results.json").read_text())
        accels = {r["accel"] for r in doc["results"]}
        folders = {p.name for p in (d / "run").iterdir() if p.is_dir() and not p.name.startswith(".")}
        if folders != accels:
            return f"folders {sorted(folders)} beside results for {sorted(accels)}"
        for a in folders:
            if json.loads((d / "run" / a / "compile.json").read_text())["model_sha256"] != doc["model"]["sha256"]:
                return f"{a}/ holds another model's results"
        return None

    add(Case("interrupt", "sweep model B into model A's folder", ["sweep", "--accel", "u55-128", "--model", str(b_model), "--out", str(d / "run")],
             expect=(0,), env={"ETHOS_KWS_CACHE": str(c)}, check=consistent))
    d = w.dir("stale")
    c = w.cache_copy(d)
    dead = w.dead_pid()
    (d / "run").mkdir()
    (d / "run" / f".results.csv.{dead}.k2j3.tmp").write_text("half")
    (d / "run" / f".u55-256.{dead}.a1b2.tmp").mkdir()
    (c / "compile" / f".{_entry(c).name}.{dead}.x9y8.tmp").mkdir()
    add(Case("interrupt", "stale temporaries of a dead process", ["sweep", "--accel", "u55-128", "--model", str(w.model), "--out", str(d / "run")],
             expect=(0,), env={"ETHOS_KWS_CACHE": str(c)}, scan=[d]))

    # -- 8. downloads --
    for label, argv, limit in (
        ("server drips a byte every 2 s, --timeout 5", ["model", "fetch", "--url", f"{url}/slow", "--timeout", "5"], 12),
        ("redirect loop", ["model", "fetch", "--url", f"{url}/loop", "--timeout", "5"], None),
        ("short body", ["model", "fetch", "--url", f"{url}/short", "--timeout", "5"], None),
        ("404", ["model", "fetch", "--url", f"{url}/missing", "--timeout", "5"], None),
        ("--url not-a-url", ["model", "fetch", "--url", "not-a-url"], None),
        ("--url http://[::1/x", ["model", "fetch", "--url", "http://[::1/x"], None),
        ("--url ftp://", ["model", "fetch", "--url", "ftp://127.0.0.1/x", "--timeout", "3"], None),
        ("--timeout -1", ["model", "fetch", "--url", f"{url}/missing", "--timeout", "-1"], None),
        ("--timeout nan", ["model", "fetch", "--url", f"{url}/missing", "--timeout", "nan"], None),
        ("--timeout inf", ["model", "fetch", "--url", f"{url}/missing", "--timeout", "inf"], None),
        ("--timeout 0", ["model", "fetch", "--url", f"{url}/missing", "--timeout", "0"], None),
    ):
        d, env = fresh("fetch")
        add(Case("download", label, argv, env=env, timeout=40, max_seconds=limit, scan=[d]))

    # -- 9. reports and the gate --
    d, env = fresh("reports")
    big = w.file(d, "big.json", hf.huge_int_results())
    deep = w.file(d, "deep.json", hf.deep_json())
    rows = w.file(d, "rows.json", hf.results_json_text(10_000))
    good = w.file(d, "good.json", hf.results_json_text())
    nosram = hf.results_doc()
    del nosram["results"][0]["sram_bytes"]
    nosram = w.file(d, "nosram.json", json.dumps(nosram))
    negc = w.file(d, "neg.json", hf.results_json_text(cycles_total=-5))
    wrong = w.file(d, "wrong.json", json.dumps({"hello": [1, 2, 3]}))
    for label, argv, expect, limit in (
        ("report cycles_total 10**400", ["report", "--from", str(big), "--out", str(d / "r1")], (2,), None),
        ("report JSON nested 200,000 deep", ["report", "--from", str(deep), "--out", str(d / "r2")], (2,), None),
        ("check --baseline nested 200,000 deep", ["check", "--baseline", str(deep), "--current", str(good)], (2,), None),
        ("report on 10,000 rows under 10 s", ["report", "--from", str(rows), "--out", str(d / "r3")], (0,), 10),
        ("check --baseline lacking sram_bytes", ["check", "--baseline", str(nosram), "--current", str(good)], (2,), None),
        ("check negative baseline cycles", ["check", "--baseline", str(negc), "--current", str(good)], (2,), None),
        ("report --parity wrong schema", ["report", "--from", str(good), "--parity", str(wrong), "--out", str(d / "r4")], (2,), None),
        ("report --fvp wrong schema", ["report", "--from", str(good), "--fvp", str(wrong), "--out", str(d / "r5")], (2,), None),
    ):
        add(Case("reports", label, argv, expect=expect, env=env, timeout=120, max_seconds=limit, scan=[d]))
    # a gap in --current fails the gate (exit 1, "REGRESSION u55-128 sram_bytes: in the baseline but
    # missing from the current results" on stdout), as tests/adversarial/test_adv_reports.py asserts;
    # the same gap in the baseline is bad input (exit 2 naming the field, above)
    add(Case("reports", "check --current lacking sram_bytes", ["check", "--baseline", str(good), "--current", str(nosram)],
             expect=(1,), env=env, timeout=120, scan=[d], findings_on_stdout=True,
             check=lambda run: None if "sram_bytes" in run.stdout and "missing" in run.stdout
             else "the gate's failure does not name sram_bytes"))
    qm = w.file(d, "quote.tflite", hf.with_name_first_char(M, hf.first_conv_output(M), b'"'))

    def layers_ok(run: Run) -> str | None:
        if run.rc != 0:
            return None
        n = len(json.loads(run.stdout)["layers"])
        return None if n == w.layer_count else f"{n} layers, the model has {w.layer_count}"

    add(Case("reports", "tensor name starting with '\"' in Vela's per-layer CSV",
             ["compile", "--accel", "u55-128", "--model", str(qm), "--out", str(d / "q"), "--json"],
             expect=(0,), env=env, check=layers_ok))
    return out


def run_interrupts(w: World) -> list[tuple[str, str, str, str]]:
    """kill -9 / SIGTERM of ``sweep --jobs 2`` while its workers compile: do they outlive it?"""
    rows = []
    for sig in (signal.SIGKILL, signal.SIGTERM):
        d = w.dir(f"kill{sig}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ETHOS_KWS_CACHE": str(d / "cache"),
               "ETHOS_KWS_MODEL_URLS": "http://127.0.0.1:9/none"}
        p = subprocess.Popen([PY, "-m", "ethos_kws", "sweep", "--jobs", "2", "--accel", "all", "--legacy-core",
                              "--model", str(w.model), "--out", str(d / "run")], env=env,
                             stdout=subprocess.DEVNULL, stderr=(d / "stderr").open("wb"), start_new_session=True)
        kids: set[int] = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and len(kids) < 2 and p.poll() is None:
            kids = children(p.pid)
            time.sleep(0.01)
        name = f"{signal.Signals(sig).name} of sweep --jobs 2"
        if len(kids) < 2:
            p.kill()
            p.wait()
            rows.append(("interrupt", name, "other", "workers never seen"))
            continue
        time.sleep(0.3)
        os.kill(p.pid, sig)
        p.wait(timeout=30)
        time.sleep(3)
        err = (d / "stderr").read_text(errors="replace")
        alive = [k for k in kids if alive_pid(k)]
        for k in alive:
            os.kill(k, signal.SIGKILL)
        if alive:
            rows.append(("interrupt", name, "wrong success", f"{len(alive)} workers alive 3 s later"))
        elif "Traceback" in err:
            rows.append(("interrupt", name, "traceback", err.strip().splitlines()[-1]))
        else:
            # a later run must remove what the killed one left behind
            subprocess.run([PY, "-m", "ethos_kws", "sweep", "--jobs", "2", "--accel", "u55-128", "--legacy-core",
                            "--model", str(w.model), "--out", str(d / "run")], env=env, capture_output=True, timeout=300)
            left = [x for x in d.rglob("*") if x.name.endswith(".tmp")]
            rows.append(("interrupt", name, "clean" if not left else "other", f"leftover {left[0]}" if left else ""))
    return rows


def _pid_of(name: str) -> int:
    """The pid in an ethos-kws temporary's name (``.NAME.PID.XXXX.tmp``); 0 when there is none."""
    parts = name.split(".")
    return int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else 0


def children(pid: int) -> set[int]:
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(p.name))
    return out


def alive_pid(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="OUT", help="write counts and every outcome here")
    ap.add_argument("--only", choices=CATEGORIES)
    ap.add_argument("--verbose", action="store_true", help="print every non-clean case")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="ethos-kws-adversarial-"))
    srv, url = start_server()
    w = World(base)
    results = []
    try:
        todo = [c for c in cases(w, url) if args.only in (None, c.category)]
        for c in todo:
            before = {p: p.read_bytes() if p.is_file() else None for p in c.keep}
            r = run_cli(c, base)
            outcome, why = classify(c, r, before)
            results.append((c.category, c.name, outcome, why))
            if args.verbose and outcome != "clean":
                print(f"[{c.category}] {c.name}: {outcome} {why}", file=sys.stderr)
        if args.only in (None, "interrupt"):
            for row in run_interrupts(w):
                results.append(row)
                if args.verbose and row[2] != "clean":
                    print(f"[{row[0]}] {row[1]}: {row[2]} {row[3]}", file=sys.stderr)
    finally:
        srv.shutdown()
        w.unmount_all()
        shutil.rmtree(base, ignore_errors=True)
    counts = {cat: {o: 0 for o in ("tried", *OUTCOMES)} for cat in CATEGORIES}
    for cat, _name, outcome, _why in results:
        counts[cat]["tried"] += 1
        counts[cat][outcome] += 1
    header = f"{'category':<15}" + "".join(f"{h:>15}" for h in ("tried", *OUTCOMES))
    print(header)
    for cat in CATEGORIES:
        if counts[cat]["tried"]:
            print(f"{cat:<15}" + "".join(f"{counts[cat][h]:>15}" for h in ("tried", *OUTCOMES)))
    tot = {h: sum(counts[c][h] for c in CATEGORIES) for h in ("tried", *OUTCOMES)}
    print(f"{'total':<15}" + "".join(f"{tot[h]:>15}" for h in ("tried", *OUTCOMES)))
    if ACCEPTED_CHANGES:
        print(f"command-stream: {len(ACCEPTED_CHANGES)} flip(s) in values the hardware accepts changed the "
              f"output (counted clean): {', '.join(ACCEPTED_CHANGES)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "total": tot, "cases": [
            {"category": a, "case": b, "outcome": c, "detail": d} for a, b, c, d in results]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
