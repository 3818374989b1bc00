"""An on-disk cache of image-encoder outputs, so a decoder-only change does not pay the encoder again.

``PromptableModel.set_image`` asks the cache first. An entry is every tensor the decoder reads
(the image embedding of SAM v1, MobileSAM, TinySAM, EfficientViT-SAM and hf-sam; HQ-SAM's
intermediate features; the high-resolution features of SAM 2, hf-sam2 and EdgeTAM) plus the
sizes the adapter keeps, as one safetensors file
``DIR/<k[:2]>/<k>.safetensors``, where ``k`` is the sha256 of the key:

    model family and options (``ModelInfo``: name, variant, hq_token_only...), the weights
    (checkpoint sha256 or the untrained seed while the weights are as built, else a sha256 of
    the parameters: ``weights_id``), dtype, device kind (``device_kind``: ``cpu``, or ``cuda:``
    and the GPU's name, since kernels and their rounding differ between GPU models), the
    adapter's input resolution, torch version, storage dtype, and the sha256 of the image's
    bytes and shape.

Writes are atomic (temporary file, then rename). ``max_bytes`` bounds the folder: after a write
the least recently used entries (file mtime, touched on every hit) are removed until it fits.
Stored in the encoder's own dtype (``store="native"``), a hit hands the decoder the very tensors
a miss computes, so fp32 outputs are bit-identical; ``store="bf16"``/``"fp16"`` halves the files
at a cost measured by ``benchmarks/bench_embedding_cache.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.errors import ConfigError
from sam_bench.results import atomic_write_bytes

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sam_bench")

CACHE_ENV = "SAM_BENCH_EMBEDDING_CACHE"
SIZE_ENV = "SAM_BENCH_EMBEDDING_CACHE_SIZE"
FORMAT = 2  # bump when an entry's layout or key changes (2: the GPU's name in the device kind)
STORE = ("native", "bf16", "fp16")
# model -> (fingerprint at its first lookup, (fingerprint, sha256 of its tensors) or None)
_PARAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str | int | None) -> int | None:
    """Bytes from ``500M``, ``2G``, ``1.5GB``, ``1048576`` (binary units); None: unbounded."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m:
        raise ConfigError(f"--embedding-cache-size {text!r}: write a size such as 500M, 2G or 1048576 (bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def image_sha256(image: np.ndarray) -> str:
    """sha256 of an (H, W, 3) uint8 image's shape and bytes."""
    h = hashlib.sha256(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def device_kind(device: Any) -> str:
    """What of the device the key holds: its type, and for CUDA the GPU's name (``cuda:NVIDIA H200``)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def weights_id(model: Any) -> str:
    """What identifies the weights: the checkpoint's sha256 or the untrained seed, as long as no
    parameter or buffer has been replaced or changed in place since the model was built
    (``note_built``; else since its first lookup: torch's version counters, ``_fingerprint``);
    otherwise (or with neither recorded) a sha256 of them all, computed again whenever they change,
    so weights edited in-process never hit older entries."""
    info = model.info
    recorded = None
    if info.checkpoint_sha256 and not info.untrained:
        recorded = f"sha256:{info.checkpoint_sha256}"
    elif info.untrained and "weights" in info.extra:
        recorded = str(info.extra["weights"])
    tensors = list(_tensors(model))
    now = _fingerprint(tensors)
    first, digest = _PARAMS.setdefault(model, (now, None))
    if recorded is not None and now == first:
        return recorded
    if digest is None or digest[0] != now:
        if recorded is not None:
            log.warning("embedding cache: %s's weights changed after it was built; entries are keyed by "
                        "a hash of them from now on", info.name)
        digest = (now, _parameter_hash(tensors))
        _PARAMS[model] = (first, digest)
    return f"params:{digest[1]}"


def note_built(model: Any) -> None:
    """Remember ``model``'s tensors as its builder left them (``build_model`` calls this), so weights
    changed at any time after, even before the first lookup, are keyed by their hash."""
    _PARAMS[model] = (_fingerprint(list(_tensors(model))), None)


def _tensors(model: Any):
    """(name, tensor) of every parameter and buffer of the torch modules an adapter holds."""
    import torch

    for attr, value in vars(model).items():
        module = value if isinstance(value, torch.nn.Module) else getattr(value, "model", None)
        if isinstance(module, torch.nn.Module):
            for name, t in module.state_dict(keep_vars=True).items():
                yield f"{attr}.{name}", t


def _fingerprint(tensors: list) -> tuple:
    """(name, id, version) of each tensor: changes when one is replaced or modified in place."""
    out = []
    for name, t in tensors:
        try:
            version = t._version
        except RuntimeError:  # an inference tensor keeps no version counter: its identity alone
            version = -1
        out.append((name, id(t), version))
    return tuple(out)


def _parameter_hash(tensors: list) -> str:
    import torch

    h = hashlib.sha256()
    for name, t in tensors:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """A folder of encoder outputs; ``get``/``put`` by ``key``; counts hits, misses, seconds saved."""

    def __init__(self, root: str | os.PathLike, max_bytes: int | str | None = None, store: str = "native"):
        if store not in STORE:
            raise ConfigError(f"--embedding-cache-dtype {store!r}: choose one of {', '.join(STORE)}")
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--embedding-cache {self.root}: cannot create it ({exc})") from None
        self.max_bytes = parse_size(max_bytes)
        self.store = store
        self.hits = self.misses = self.evicted = self.write_errors = 0
        self.seconds_saved = self.load_seconds = 0.0

    @classmethod
    def from_env(cls, root: str | None = None, max_bytes: str | None = None, store: str | None = None):
        """``root`` or ``$SAM_BENCH_EMBEDDING_CACHE`` (None when neither is set), sized by ``max_bytes``
        or ``$SAM_BENCH_EMBEDDING_CACHE_SIZE``."""
        root = root or os.environ.get(CACHE_ENV)
        if not root:
            return None
        return cls(root, max_bytes or os.environ.get(SIZE_ENV), store or "native")

    # -- keys -------------------------------------------------------------------------------
    def key(self, model: Any, image: np.ndarray) -> str:
        """The entry name of ``image`` encoded by ``model`` (sha256 of the fields in the module doc)."""
        import torch

        info = {k: v for k, v in model.info.as_dict().items() if k not in ("checkpoint", "weights")}
        fields = {"format": FORMAT, "adapter": type(model).__name__, "info": info, "weights": weights_id(model),
                  "dtype": str(model.dtype), "device": device_kind(model.device), "input": model._encoder_key(),
                  "torch": torch.__version__, "store": self.store, "image": image_sha256(image)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    # -- entries ----------------------------------------------------------------------------
    def get(self, key: str, device: torch.device) -> tuple[dict[str, torch.Tensor], dict] | None:
        """(tensors on ``device`` in their encoder dtype, metadata) or None; a hit is touched (LRU)."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        path = self.path(key)
        t0 = time.perf_counter()
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            self.misses += 1
            return None
        try:
            tensors = load(data)
            meta = json.loads(_metadata(data)["sam_bench"])
        except (SafetensorError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a corrupt entry is dropped and recomputed
            self.misses += 1
            return None
        tensors = {k: _restore(t, meta, k, device) for k, t in tensors.items()}
        self.hits += 1
        self.seconds_saved += float(meta.get("encoder_seconds", 0.0))
        self.load_seconds += time.perf_counter() - t0
        return tensors, meta

    def put(self, key: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Store an entry atomically, then evict least recently used entries beyond ``max_bytes``; a
        folder that cannot be written (full disk, permissions) is warned about once and counted."""
        import torch
        from safetensors.torch import save

        cast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.store)
        dtypes = {k: str(t.dtype).split(".")[-1] for k, t in tensors.items()}
        strides = {k: list(t.stride()) for k, t in tensors.items()}
        stored = {k: (t.to(cast) if cast is not None and t.is_floating_point() else t).detach().cpu().contiguous()
                  for k, t in tensors.items()}
        data = save(stored, metadata={"sam_bench": json.dumps({**meta, "dtypes": dtypes, "strides": strides})})
        try:
            atomic_write_bytes(self.path(key), data)
            self.evict()
        except OSError as exc:  # the cache only saves time: the run goes on, its numbers unchanged
            self.write_errors += 1
            (log.warning if self.write_errors == 1 else log.debug)(
                "embedding cache %s: cannot store an entry (%s); this run goes on without storing%s", self.root, exc,
                "" if self.write_errors == 1 else f" ({self.write_errors} entries not stored)")

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every entry, oldest first."""
        out = []
        for p in self.root.glob("*/*.safetensors"):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return sorted(out)

    def size(self) -> int:
        return sum(s for _, s, _ in self.entries())

    def evict(self) -> None:
        """Remove the least recently used entries until the folder is within ``max_bytes``."""
        if self.max_bytes is None:
            return
        entries = self.entries()
        total = sum(s for _, s, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            self.evicted += 1

    def stats(self) -> dict:
        """What results.json's latency section records about the cache."""
        return {"embedding_cache_hits": self.hits, "embedding_cache_misses": self.misses,
                "encoder_seconds_saved": round(self.seconds_saved, 4),
                "embedding_cache_load_seconds": round(self.load_seconds, 4),
                "embedding_cache_store": self.store, "embedding_cache_evicted": self.evicted,
                "embedding_cache_write_errors": self.write_errors}


def _metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file held in memory (its JSON header)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__", {})


def _restore(t: torch.Tensor, meta: dict, name: str, device: torch.device) -> torch.Tensor:
    """A stored tensor back in its encoder dtype and memory layout (strides: a permuted view stays one,
    so the decoder's kernels see what a miss gives them)."""
    import torch

    dtype = getattr(torch, meta.get("dtypes", {}).get(name, str(t.dtype).split(".")[-1]))
    stride = tuple(meta.get("strides", {}).get(name, t.stride()))
    out = torch.empty_strided(t.shape, stride, dtype=dtype, device=device)
    return out.copy_(t)
