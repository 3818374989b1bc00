"""The interfaces every model adapter implements, and ``build_model`` (name -> adapter).

The contracts are written as protocols: ``Model`` (what the runner calls on every model) and one
per kind, each with the base class that fills it in:

- ``Promptable`` / ``PromptableModel``: ``set_image`` once (the encoder runs once; its embedding
  serves every prompt on that image), then ``predict`` from points / boxes / mask logits, batched.
- ``TextPromptable`` / ``TextModel`` (``sam_bench.models.text``): ``predict_text(texts)``.
- ``EdgeDetector`` / ``EdgeModel``: ``edge_map()`` -> soft boundary map in [0, 1] (Sobel, Canny, ...).
- ``MaskProposer`` / ``ProposalModel``: ``propose()`` -> ranked binary masks (Felzenszwalb segments, ...).

A classical model may offer several (Felzenszwalb gives edges and proposals): it inherits both
bases and lists them in ``kinds``; tasks accept a model when ``kinds`` meets their needs.

A promptable model also serves the edge and proposal tasks through automatic mask generation
(``sam_bench.amg``). Coordinates are always in the original image's pixels: points (X, Y),
boxes XYXY.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sam_bench.errors import ConfigError, SamBenchError
from sam_bench.models.batch import PROMPT_BATCH, UNTUNED_BATCH, BatchTuner
from sam_bench.models.contracts import EdgeDetector, MaskProposer, Model, ModelInfo, Prediction, Promptable
from sam_bench.timing import Stopwatch

if TYPE_CHECKING:  # torch loads on first use, so listing models (`sam-bench models list`) needs none
    import torch

LOW_RES = 256  # side of SAM's low-resolution mask logits

__all__ = ["EdgeDetector", "EdgeModel", "MaskProposer", "Model", "ModelInfo", "Prediction", "Promptable",
           "PromptableModel", "ProposalModel", "build_model"]


class _Torch:
    """A class attribute computed from torch when read (``torch.float32``, a CPU device), so that
    importing this module does not import torch."""

    def __init__(self, make):
        self.make = make

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        import torch

        return self.make(torch)


class _Timed:
    """Counts and times encoder and decoder calls (the runner's stage times, latency reports).

    The class-level zeros let a subclass that never calls ``_init_counters`` still be read."""

    device: torch.device = _Torch(lambda torch: torch.device("cpu"))
    encoder_calls = decoder_calls = decoded_prompts = 0
    encoder_seconds = decoder_seconds = 0.0

    def _init_counters(self) -> None:
        self.encoder_calls = 0
        self.decoder_calls = 0
        self.decoded_prompts = 0
        self.encoder_seconds = 0.0
        self.decoder_seconds = 0.0

    def latency(self) -> dict:
        enc = self.encoder_seconds / self.encoder_calls * 1e3 if self.encoder_calls else None
        dec = self.decoder_seconds / self.decoded_prompts * 1e3 if self.decoded_prompts else None
        return {"encoder_calls": self.encoder_calls, "encoder_ms_per_image": enc,
                "decoder_calls": self.decoder_calls, "decoded_prompts": self.decoded_prompts,
                "decoder_ms_per_prompt": dec}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class PromptableModel(_Timed):
    """A model that segments from prompts on an image set once.

    Subclasses implement ``_encode(image)`` and ``_decode(points, labels, boxes, mask_input,
    multimask)``; this class owns state checks, input validation, counting, timing, batching
    and the out-of-memory fallback, so every adapter behaves the same.
    """

    kind: ClassVar[str] = "promptable"
    kinds: ClassVar[tuple[str, ...]] = ("promptable",)
    mask_threshold: float = 0.0
    # True for a model whose own protocol feeds its previous mask back with every later click
    # (RITM): the single-point task then refuses to run it without --feed-logits
    needs_previous_mask: ClassVar[bool] = False
    embedding_cache: Any = None  # an EmbeddingCache set_image reads and fills (None: every image is encoded)
    dtype: torch.dtype = _Torch(lambda torch: torch.float32)  # torch.float32 when read; an instance sets its own

    def __init__(self, info: ModelInfo, device: torch.device | str = "cpu", prompt_batch: int | None = None):
        import torch

        self.info = info
        self.device = torch.device(device)
        self.prompt_batch = prompt_batch
        self.tuner = BatchTuner()
        self.image_size: tuple[int, int] | None = None
        self._init_counters()

    # -- to implement -------------------------------------------------------------------
    def _encode(self, image: np.ndarray) -> None:
        raise NotImplementedError

    # an adapter whose encoder output can be cached (``sam_bench.models.embedding_cache``) returns
    # ({name: tensor} the decoder reads, {name: JSON-able size}) and takes the same pair back
    def _encoder_state(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        return None

    def _load_encoder_state(self, tensors: dict[str, torch.Tensor], sizes: dict) -> None:
        raise NotImplementedError

    def _encoder_key(self) -> dict:
        """What of the encoder's input set-up the cache key must hold besides the image (input resolution)."""
        return {}

    def _decode(self, points: torch.Tensor | None, labels: torch.Tensor | None, boxes: torch.Tensor | None,
                mask_input: torch.Tensor | None, multimask: bool) -> Prediction:
        raise NotImplementedError

    def default_prompt_batch(self) -> int:
        """Prompts per decoder call when the caller does not choose: fixed on CUDA, else the
        tuner's choice once made (see ``BatchTuner`` and ``benchmarks/bench_models.py``)."""
        return self._fixed_batch() or self.tuner.best or UNTUNED_BATCH

    @property
    def tuning_batch(self) -> bool:
        """True while the prompt batch is still being measured (CPU, no batch given)."""
        return not self._fixed_batch() and self.tuner.best is None

    def _fixed_batch(self) -> int | None:
        """The batch when it is not to be measured: set by the user, by an OOM fallback, or fixed
        for the device."""
        return self.prompt_batch or PROMPT_BATCH.get(self.device.type)

    def _autocast(self):
        """Autocast to the model's reduced precision, or nothing in fp32."""
        import torch

        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def parameter_count(self) -> int | None:
        """Parameters of the torch modules this adapter holds (directly, or as a predictor's
        ``.model``), each counted once; None for a model without any (classical baselines)."""
        import torch

        sizes: dict[int, int] = {}
        for value in vars(self).values():
            module = value if isinstance(value, torch.nn.Module) else getattr(value, "model", None)
            if isinstance(module, torch.nn.Module):
                sizes.update((id(p), p.numel()) for p in module.parameters())
        return sum(sizes.values()) or None

    def latency(self) -> dict:
        cache = self.embedding_cache.stats() if self.embedding_cache is not None else {}
        return {**super().latency(), "prompt_batch": self.default_prompt_batch(),
                "prompt_batch_tuning": None if self._fixed_batch() else self.tuner.as_dict(), **cache}

    # -- public API ------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None:
        """Run the encoder on an (H, W, 3) uint8 RGB image; its embedding serves later prompts."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise ConfigError(f"set_image wants an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', type(image))}")
        import torch

        cache = self.embedding_cache
        key = cache.key(self, image) if cache is not None and self.caches_encoder else None
        hit = cache.get(key, self.device) if key is not None else None
        if hit is not None:
            self._load_encoder_state(hit[0], hit[1].get("sizes", {}))
            self.image_size = image.shape[:2]
            return
        with Stopwatch(self.device) as sw, torch.inference_mode():
            self._encode(image)
        self.encoder_seconds += sw.seconds
        self.encoder_calls += 1
        self.image_size = image.shape[:2]
        if key is not None:
            tensors, sizes = self._encoder_state()
            cache.put(key, tensors, {"sizes": sizes, "encoder_seconds": sw.seconds})

    @property
    def caches_encoder(self) -> bool:
        """Whether this adapter's encoder output can go through an embedding cache."""
        return type(self)._encoder_state is not PromptableModel._encoder_state

    def reset_image(self) -> None:
        self.image_size = None

    def predict(self, points: Any = None, labels: Any = None, boxes: Any = None, mask_input: Any = None,
                multimask: bool = True, batch_size: int | None = None) -> Prediction:
        """Masks for B prompts on the current image.

        points: (B, N, 2) (X, Y) pixels, with labels (B, N): 1 foreground, 0 background, -1 padding.
        boxes: (B, 4) XYXY pixels. mask_input: (B, 1, 256, 256) low-res logits from an earlier call.
        Any may be None but not all. Decoded in chunks of ``batch_size`` (default: the model's
        prompt batch, measured on CPU by ``self.tuner``); on CUDA out-of-memory the chunk is
        halved and retried.
        """
        import torch

        if self.image_size is None:
            raise SamBenchError("predict() called before set_image(): set an image first")
        points, labels, boxes, mask_input = self._check_prompts(points, labels, boxes, mask_input)
        n = next(x.shape[0] for x in (points, boxes, mask_input) if x is not None)
        fixed = batch_size or self._fixed_batch()
        parts, start = [], 0
        with Stopwatch(self.device) as sw, torch.inference_mode():
            while start < n:
                chunk = fixed or self.tuner.next_chunk(n - start)
                sl = slice(start, min(n, start + chunk))
                t_call = time.perf_counter()
                try:
                    parts.append(self._decode(*(x[sl] if x is not None else None
                                                for x in (points, labels, boxes, mask_input)), multimask))
                except torch.OutOfMemoryError:
                    if chunk == 1:
                        raise
                    torch.cuda.empty_cache()
                    fixed = self.prompt_batch = max(1, chunk // 2)
                    continue
                if not fixed and sl.stop - sl.start == chunk:
                    _sync(self.device)
                    self.tuner.record(chunk, time.perf_counter() - t_call)
                self.decoder_calls += 1
                start = sl.stop
        self.decoder_seconds += sw.seconds
        self.decoded_prompts += n
        return parts[0] if len(parts) == 1 else Prediction.cat(parts)

    def predict_refined(self, boxes: Any = None, points: Any = None, labels: Any = None,
                        refine: bool = True) -> tuple[Prediction, bool]:
        """The paper's box prompt: the best of 3 masks, then (``refine``) one more single-mask pass
        fed that mask's low-res logits with the same prompts. Returns (one mask per prompt, whether
        the refinement ran: False when the model gives no ``low_res_logits``)."""
        pred = self.predict(points=points, labels=labels, boxes=boxes, multimask=True).best()
        if not refine or pred.low_res_logits is None:
            return pred, False
        return self.predict(points=points, labels=labels, boxes=boxes, mask_input=pred.low_res_logits,
                            multimask=False), True

    def _check_prompts(self, points, labels, boxes, mask_input):
        import torch

        h, w = self.image_size
        as_t = lambda x, dt: None if x is None else torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x,
                                                                       dtype=dt, device=self.device)
        points, labels = as_t(points, torch.float32), as_t(labels, torch.int64)
        boxes, mask_input = as_t(boxes, torch.float32), as_t(mask_input, torch.float32)
        if points is None and boxes is None and mask_input is None:
            raise ConfigError("predict() needs at least one of points, boxes, mask_input")
        if points is not None:
            if points.ndim != 3 or points.shape[-1] != 2:
                raise ConfigError(f"points must be (B, N, 2), got {tuple(points.shape)}")
            if labels is None or labels.shape != points.shape[:2]:
                raise ConfigError("labels must be given with points, shape (B, N)")
            real = labels >= 0
            p = points[real]
            if len(p) and ((p[:, 0] < 0) | (p[:, 0] > w) | (p[:, 1] < 0) | (p[:, 1] > h)).any():
                raise ConfigError(f"a point lies outside the {w}x{h} image")
        if boxes is not None:
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise ConfigError(f"boxes must be (B, 4) XYXY, got {tuple(boxes.shape)}")
            if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
                raise ConfigError("a box has x1 < x0 or y1 < y0 (boxes are XYXY)")
        if mask_input is not None and mask_input.shape[1:] != (1, LOW_RES, LOW_RES):
            raise ConfigError(f"mask_input must be (B, 1, 256, 256), got {tuple(mask_input.shape)}")
        sizes = {x.shape[0] for x in (points, boxes, mask_input) if x is not None}
        if len(sizes) > 1:
            raise ConfigError(f"prompts disagree on the batch size B: {sorted(sizes)}")
        return points, labels, boxes, mask_input


class _WholeImageModel(_Timed):
    """A CPU model that works on the whole image at once: ``set_image`` only keeps it."""

    def __init__(self, info: ModelInfo):
        import torch

        self.info = info
        self.device = torch.device("cpu")
        self._image: np.ndarray | None = None
        self._image_id: str | None = None
        self._init_counters()

    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None:
        self._image, self._image_id = image, image_id


class EdgeModel(_WholeImageModel):
    """A model that maps an image to a soft edge map in [0, 1] (before edge NMS)."""

    kind: ClassVar[str] = "edges"
    kinds: ClassVar[tuple[str, ...]] = ("edges",)

    def edge_map(self) -> np.ndarray:
        """(H, W) float32 in [0, 1] for the current image."""
        if self._image is None:
            raise SamBenchError("edge_map() called before set_image()")
        t0 = time.perf_counter()
        out = self._edges(self._image)
        self.encoder_seconds += time.perf_counter() - t0
        self.encoder_calls += 1
        return out

    def _edges(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ProposalModel(_WholeImageModel):
    """A model that proposes class-agnostic masks for an image, best first."""

    kind: ClassVar[str] = "proposals"
    kinds: ClassVar[tuple[str, ...]] = ("proposals",)

    def propose(self, max_masks: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) bool masks and (K,) scores, K <= max_masks, sorted by score descending."""
        if self._image is None:
            raise SamBenchError("propose() called before set_image()")
        t0 = time.perf_counter()
        out = self._propose(self._image, max_masks)
        self.encoder_seconds += time.perf_counter() - t0
        self.encoder_calls += 1
        return out

    def _propose(self, image: np.ndarray, max_masks: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def build_model(name: str, *, checkpoint: str | None = None, untrained: bool = False,
                device: str | torch.device | None = None, dtype: str | None = None, **options: Any):
    """Build the adapter registered as ``name`` (``edges-from:DIR`` passes DIR as ``path``).

    Builders take keyword arguments ``checkpoint``, ``untrained``, ``device``, ``dtype`` and their
    declared options (``sam_bench.models.options``: unknown keys are refused, text values typed),
    and return a PromptableModel, EdgeModel or ProposalModel whose info records the options set.
    """
    from sam_bench import registry
    from sam_bench.config import resolve_device
    from sam_bench.models.options import BUILD_ARGS, check_options, options_of, record_options

    base, _, arg = name.partition(":")
    builder = registry.get_model_builder(base)
    if arg:
        options["path"] = arg
    build = {k: options.pop(k) for k in list(options) if k in BUILD_ARGS}  # prompt_batch
    spec = options_of(builder)
    chosen = check_options(base, spec, options)
    model = builder(checkpoint=checkpoint, untrained=untrained, device=resolve_device(device), dtype=dtype,
                    **build, **chosen)
    if not isinstance(model, Model):
        raise ConfigError(f"model {name!r}: its builder returned a {type(model).__name__}, not a model (subclass "
                          f"PromptableModel, EdgeModel, ProposalModel or TextModel)")
    record_options(model, spec, chosen)
    if isinstance(model, PromptableModel) and model.caches_encoder:
        from sam_bench.models.embedding_cache import note_built

        note_built(model)  # weights changed after this point are never keyed by the checkpoint's name
    return model


def cache_of(model: Any) -> Any:
    """The ``EmbeddingCache`` ``model`` reads and fills (promptable models only), or None."""
    return model.embedding_cache if isinstance(model, PromptableModel) else None


def attach(model: Any, cache: Any) -> None:
    """Give ``model`` the cache when its adapter can store its encoder output (others run uncached)."""
    if cache is not None and isinstance(model, PromptableModel) and model.caches_encoder:
        model.embedding_cache = cache
