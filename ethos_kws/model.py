"""Models: find one, fetch the ML-zoo DS-CNN Clustered INT8, verify it, describe it.

Resolution order: an explicit path > ``$ETHOS_KWS_MODEL`` > the cached ML-zoo model > download.
The download is verified against the pinned size and sha256 before it is moved into the cache, so
a partial or mismatched file is never kept or used.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import FetchError, OutputPathError, UserError
from .fsutil import remove_stale_temporaries, temp_prefix
from .paths import cache_dir
from .tflite import OpInfo, TfliteModel, load_tflite

# ---- The target model: ML-zoo "DS-CNN Clustered INT8" (see shared/data/PROVENANCE.md) -----------
MLZOO_REPO = "ARM-software/ML-zoo"
MLZOO_COMMIT = "fec0bb5bcd486eb2839cdb7d437d466067402a6a"
MLZOO_PATH = (
    "models/keyword_spotting/ds_cnn_large/model_package_tf/model_archive/TFLite/"
    "tflite_clustered_int8/ds_cnn_l_clustered_int8.tflite"
)
MLZOO_SIZE = 503_816
MLZOO_SHA256 = "ac48e85a326e2119b6ec6988c006f722e69f63e3ba2ec3a8c678d93c0bda4db7"
MLZOO_FILENAME = "ds_cnn_l_clustered_int8.tflite"
# The raw URL serves the file when LFS objects are inlined; otherwise it serves the LFS pointer
# (which fails the size check) and the media URL serves the object itself.
MLZOO_URLS = (
    f"https://raw.githubusercontent.com/{MLZOO_REPO}/{MLZOO_COMMIT}/{MLZOO_PATH}",
    f"https://media.githubusercontent.com/media/{MLZOO_REPO}/{MLZOO_COMMIT}/{MLZOO_PATH}",
)
DEFAULT_TIMEOUT_S = 30.0

# Files whose identity we know, by sha256: (provenance, description)
KNOWN_MODELS: dict[str, tuple[str, str]] = {
    MLZOO_SHA256: ("ml-zoo", "Arm ML-zoo DS-CNN Large Clustered INT8"),
    "a364b42668efa36fdc53f5e5f769af134b69520114fa36aa931e1745678e6c76": (
        "ml-zoo",
        "Arm ML-zoo DS-CNN Large INT8 (float I/O, not clustered)",
    ),
    "34c04b84d7eddac8561b813fe60ae7f0392989dc56ef1db3773c59a970965776": (
        "derived",
        "ML-zoo DS-CNN Large INT8 with int8 I/O (QUANTIZE/DEQUANTIZE removed)",
    ),
}

PROVENANCES = ("ml-zoo", "derived", "user file", "synthetic stand-in")


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    provenance: str  # one of PROVENANCES
    sha256: str
    description: str = ""

    @property
    def is_synthetic(self) -> bool:
        return self.provenance == "synthetic stand-in"


def _identify(path: Path, sha256: str, default: str = "user file") -> ResolvedModel:
    provenance, description = KNOWN_MODELS.get(sha256, (default, ""))
    return ResolvedModel(path, provenance, sha256, description)


def cached_model_path() -> Path:
    return cache_dir() / "models" / MLZOO_FILENAME


def _verified_cached_model() -> Path | None:
    """The cached ML-zoo model if it is intact; a damaged one is removed, never used."""
    path = cached_model_path()
    if not path.is_file():
        return None
    data = path.read_bytes()
    if len(data) == MLZOO_SIZE and hashlib.sha256(data).hexdigest() == MLZOO_SHA256:
        return path
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def resolve_model(
    path: str | os.PathLike | None = None,
    *,
    allow_fetch: bool = True,
    allow_synthetic: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    warn: Callable[[str], None] | None = None,
) -> ResolvedModel:
    """Find the model to work on. ``allow_synthetic`` lets the main job fall back to the
    synthetic 32-cluster DS-CNN-L stand-in when no ML-zoo model can be found or fetched."""
    explicit = path if path is not None else os.environ.get("ETHOS_KWS_MODEL") or None
    if explicit is not None:
        m = load_tflite(explicit)
        return _identify(Path(explicit), m.sha256)
    cached = _verified_cached_model()
    if cached is not None:
        return _identify(cached, MLZOO_SHA256)
    if allow_fetch:
        try:
            fetched = fetch_model(timeout_s=timeout_s)
            return _identify(fetched, MLZOO_SHA256)
        except FetchError as e:
            if not allow_synthetic:
                raise FetchError(
                    f"no model given and the ML-zoo model could not be downloaded ({e}); "
                    "pass --model PATH or set $ETHOS_KWS_MODEL"
                ) from None
            reason = str(e)
    else:
        if not allow_synthetic:
            raise FetchError(
                "no model given and none cached; pass --model PATH, set $ETHOS_KWS_MODEL, "
                "or run `ethos-kws model fetch`"
            )
        reason = "downloads disabled"
    stand_in = synthetic_stand_in()
    (warn or _stderr_warn)(
        "SYNTHETIC STAND-IN: the ML-zoo DS-CNN Clustered INT8 model is not available "
        f"({reason}). Using a synthetic 32-cluster DS-CNN-L with seeded random weights: its "
        "cycles and memory are representative, its scores mean nothing. Pass --model PATH, set "
        "$ETHOS_KWS_MODEL or run `ethos-kws model fetch` for the real model."
    )
    return stand_in


def _stderr_warn(msg: str) -> None:
    print(f"ethos-kws: warning: {msg}", file=sys.stderr)


SYNTHETIC_SPEC = {"arch": "ds-cnn-l", "clusters": 32, "seed": 0}


def synthetic_stand_in() -> ResolvedModel:
    """The seeded 32-cluster DS-CNN-L, built once and cached (byte-for-byte reproducible)."""
    from .fsutil import atomic_write_bytes, atomic_write_text
    from .synth import build_model

    path = cache_dir() / "models" / "synthetic_ds_cnn_l_clustered32_seed0.tflite"
    digest = path.with_name(path.name + ".sha256")  # recorded when built, verified on every use
    if path.is_file():
        try:
            intact = digest.read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            intact = False
        if not intact:
            with contextlib.suppress(OSError):
                path.unlink()
            _stderr_warn(f"cache entry {path.name} was corrupt (sha256 differs from the one recorded); rebuilt")
    if not path.is_file():
        data = build_model(**SYNTHETIC_SPEC)
        atomic_write_bytes(path, data)
        atomic_write_text(digest, hashlib.sha256(data).hexdigest() + "\n")
    m = load_tflite(path)
    return ResolvedModel(
        path, "synthetic stand-in", m.sha256, "synthetic DS-CNN-L, 32 clusters, seed 0"
    )


# ---- Download -------------------------------------------------------------------------------------


def model_urls(url: str | None = None) -> list[str]:
    if url:
        return [url]
    env = os.environ.get("ETHOS_KWS_MODEL_URLS")
    if env:
        return [u for u in env.split() if u]
    return list(MLZOO_URLS)


def fetch_model(
    url: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    expected_size: int = MLZOO_SIZE,
    expected_sha256: str = MLZOO_SHA256,
    dest: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download the model, verify size and sha256, move it into the cache atomically.

    Tries each URL in turn; raises ``FetchError`` naming every failure when none gives the
    right file. Nothing is left in the cache unless it verified.
    """
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not (
            math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UserError(f"--timeout {timeout_s!r}: give a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
    urls = model_urls(url)
    for u in urls:
        check_url(u)
    dest = dest or cached_model_path()
    errors = []
    for u in urls:
        try:
            _download_verified(u, dest, timeout_s, expected_size, expected_sha256, progress)
            return dest
        except FetchError as e:
            errors.append(str(e))
    raise FetchError("; ".join(errors))


MAX_TIMEOUT_S = 24 * 3600.0


def check_url(url: str) -> None:
    """An http(s) URL with a host, or ``UserError`` saying what is wrong with it."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise UserError(f"--url {url!r} is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--url {url!r} is not an http:// or https:// URL")


def _short(url: str) -> str:
    """Host and file name: enough to tell the URLs apart in a one-line error."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    name = parts.path.rsplit("/", 1)[-1]
    return f"{parts.scheme}://{parts.netloc}/…/{name}" if parts.path.count("/") > 1 else url


def _download_verified(
    url: str,
    dest: Path,
    timeout_s: float,
    expected_size: int,
    expected_sha256: str,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    # imported here: http, ssl and email cost start-up time every command that only reads a
    # model would pay
    import http.client
    import urllib.error
    import urllib.request

    shown = _short(url)
    deadline = time.monotonic() + timeout_s  # for the whole download, not per socket read
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(dest.parent)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest.name), suffix=".part", dir=dest.parent)
    except OSError as e:
        raise OutputPathError(f"cannot write the model cache {dest.parent}: {e.strerror}; "
                              "set ETHOS_KWS_CACHE to a writable folder") from None
    try:
        digest = hashlib.sha256()
        size = 0
        head = b""
        req = urllib.request.Request(url, headers={"User-Agent": "ethos-kws"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp, os.fdopen(fd, "wb") as f:
                fd = -1
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                while True:
                    # read1: what one recv gives, so a server dripping bytes cannot outlast the deadline
                    chunk = resp.read1(1 << 16)
                    if not chunk:
                        break
                    if time.monotonic() > deadline:
                        raise FetchError(f"{shown}: timed out after {timeout_s:g} s ({size + len(chunk)} bytes received)")
                    if len(head) < 64:
                        head += chunk[:64]
                    size += len(chunk)
                    if size > expected_size * 4:
                        raise FetchError(f"{shown}: response is far larger than the model")
                    digest.update(chunk)
                    f.write(chunk)
                    if progress:
                        progress(size, total)
                if total is not None and size != total:
                    raise FetchError(f"{shown}: truncated download ({size} of {total} bytes)")
                f.flush()
                os.fsync(f.fileno())
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:
                raise FetchError(f"{shown}: redirect loop or too many redirects (HTTP {e.code})") from None
            reason = str(e.reason).strip().splitlines()[0] if str(e.reason).strip() else ""
            raise FetchError(f"{shown}: HTTP {e.code} {reason}".rstrip()) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise FetchError(f"{shown}: timed out after {timeout_s:g} s") from None
            raise FetchError(f"{shown}: cannot connect ({reason})") from None
        except (socket.timeout, TimeoutError):
            raise FetchError(f"{shown}: timed out after {timeout_s:g} s") from None
        except http.client.IncompleteRead as e:
            raise FetchError(f"{shown}: truncated download ({len(e.partial)} bytes, then the connection closed)") from None
        except http.client.HTTPException as e:
            raise FetchError(f"{shown}: bad HTTP response ({type(e).__name__})") from None
        except (ConnectionError, OSError) as e:
            if isinstance(e, FetchError):
                raise
            raise FetchError(f"{shown}: connection failed ({e})") from None
        if head.startswith(b"version https://git-lfs"):
            raise FetchError(f"{shown}: got a Git LFS pointer, not the model")
        if size != expected_size:
            raise FetchError(f"{shown}: got {size} bytes, expected {expected_size}")
        got = digest.hexdigest()
        if got != expected_sha256:
            raise FetchError(f"{shown}: sha256 {got[:12]}… does not match {expected_sha256[:12]}…")
        os.replace(tmp, dest)
        tmp = None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# ---- Inspection -----------------------------------------------------------------------------------

# Ops whose weights (input 1) are a kernel worth counting unique values of
_WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"}
_INT8_IO = {"int8"}
_POOL_OPS = {"AVERAGE_POOL_2D", "MAX_POOL_2D"}


@dataclass(frozen=True)
class WeightInfo:
    tensor: str
    op: str
    shape: tuple[int, ...]
    dtype: str
    elements: int
    unique_values: int


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    sha256: str
    size_bytes: int
    provenance: str
    description: str
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    operators: dict[str, int]
    operator_count: int
    macs: int
    weights: tuple[WeightInfo, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = [asdict(w) for w in self.weights]
        d["inputs"], d["outputs"] = list(self.inputs), list(self.outputs)
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelInfo":
        from .records import from_record

        return from_record(cls, d)


def _shape(m: TfliteModel, index: int) -> tuple[int, ...]:
    return m.tensor_spec(index).shape


def _pool_kernel_elements(m: TfliteModel, op_index: int) -> int:
    from ethosu.vela.tflite.Pool2DOptions import Pool2DOptions

    table = m.subgraph.Operators(op_index).BuiltinOptions()
    if table is None:
        return 0
    opts = Pool2DOptions()
    opts.Init(table.Bytes, table.Pos)
    return int(opts.FilterHeight()) * int(opts.FilterWidth())


def op_macs(m: TfliteModel, op: OpInfo) -> int:
    """Multiply-accumulates of one op, counted as Vela's ``nn_macs`` does for these ops
    (pooling counts one MAC per kernel element and output; Vela adds a few for softmax)."""
    opcode, inputs, outputs = op.opcode, op.inputs, op.outputs
    if not outputs:
        return 0
    out = _shape(m, outputs[0])
    if opcode in _POOL_OPS:
        return int(np.prod(out)) * _pool_kernel_elements(m, op.index)
    if len(inputs) < 2 or inputs[1] < 0:
        return 0
    w = _shape(m, inputs[1])
    if opcode == "CONV_2D" and len(w) == 4:  # w: [O, KH, KW, I]
        return int(np.prod(out)) * w[1] * w[2] * w[3]
    if opcode == "DEPTHWISE_CONV_2D" and len(w) == 4:  # w: [1, KH, KW, O]
        return int(np.prod(out)) * w[1] * w[2]
    if opcode == "FULLY_CONNECTED" and len(w) == 2:  # w: [O, I]
        batch = int(np.prod(out)) // max(w[0], 1)
        return batch * w[0] * w[1]
    return 0


def _distinct_values(data: np.ndarray) -> int:
    """``np.unique(data).size`` (NaNs count as one value) without ``np.unique``, whose first call
    imports ``numpy.ma``: a noticeable part of every warm command that describes a model."""
    flat = np.sort(data, axis=None)
    if flat.size == 0:
        return 0
    new = flat[1:] != flat[:-1]
    if flat.dtype.kind == "f":
        new &= ~(np.isnan(flat[1:]) & np.isnan(flat[:-1]))
    return int(np.count_nonzero(new)) + 1


def model_info(resolved: ResolvedModel | str | os.PathLike) -> ModelInfo:
    if not isinstance(resolved, ResolvedModel):
        resolved = resolve_model(resolved, allow_fetch=False)
    m = load_tflite(resolved.path)
    ops = m.operators()
    counts = Counter(o.custom_code if o.opcode == "CUSTOM" and o.custom_code else o.opcode for o in ops)
    macs = sum(op_macs(m, o) for o in ops)
    weights = []
    seen: set[int] = set()
    for o in ops:
        if o.opcode not in _WEIGHTED_OPS or len(o.inputs) < 2 or o.inputs[1] in seen:
            continue
        seen.add(o.inputs[1])
        data = m.tensor_data(o.inputs[1])
        if data is None:
            continue
        spec = m.tensor_spec(o.inputs[1])
        weights.append(
            WeightInfo(spec.name, o.opcode, spec.shape, spec.dtype, int(data.size), _distinct_values(data))
        )
    warnings = []
    for kind, specs in (("input", m.input_specs), ("output", m.output_specs)):
        for s in specs:
            if s.dtype not in _INT8_IO:
                warnings.append(
                    f"{kind} {s.name!r} is {s.dtype}: parity checks expect int8 I/O; Vela leaves "
                    "the QUANTIZE/DEQUANTIZE at the boundary on the CPU"
                )
    return ModelInfo(
        path=str(resolved.path),
        name=resolved.path.stem,
        sha256=m.sha256,
        size_bytes=m.size_bytes,
        provenance=resolved.provenance,
        description=resolved.description,
        inputs=tuple(s.to_dict() for s in m.input_specs),
        outputs=tuple(s.to_dict() for s in m.output_specs),
        operators=dict(sorted(counts.items())),
        operator_count=len(ops),
        macs=macs,
        weights=tuple(weights),
        warnings=tuple(warnings),
    )
