"""The interfaces every model adapter implements, and ``build_model`` (name -> adapter).

Three capabilities, one per task family:

- ``PromptableModel``: ``set_image`` once (the encoder runs once; its embedding serves every
  prompt on that image), then ``predict`` from points / boxes / mask logits, batched.
- ``EdgeModel``: ``edge_map(image)`` -> soft boundary map in [0, 1] (Sobel, Canny, ...).
- ``ProposalModel``: ``propose(image)`` -> ranked binary masks (Felzenszwalb segments, ...).

A classical model may offer several (Felzenszwalb gives edges and proposals): it inherits both
bases and lists them in ``kinds``; tasks accept a model when ``kinds`` meets their needs.

A promptable model also serves the edge and proposal tasks through automatic mask generation
(``sam_bench.amg``). Coordinates are always in the original image's pixels: points (X, Y),
boxes XYXY.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sam_bench.errors import ConfigError, SamBenchError
from sam_bench.timing import Stopwatch

if TYPE_CHECKING:  # torch loads on first use, so listing models (`sam-bench models list`) needs none
    import torch

LOW_RES = 256  # side of SAM's low-resolution mask logits
# Prompts per decoder call on devices where the largest batch is fastest per prompt. Elsewhere (CPU)
# the best batch depends on the cores and their load (one 2-core probe: 40 ms per prompt one at a
# time, 110 ms at 64; under load the opposite), so it is measured on the run's own work (BatchTuner).
PROMPT_BATCH = {"cuda": 64}
BATCH_CANDIDATES = (1, 4, 16, 64)
UNTUNED_BATCH = 4  # used until the tuner has measured every candidate


class BatchTuner:
    """Chooses the prompts per decoder call by timing the real work, wasting no decode.

    The first chunk warms up and is not timed; then each candidate batch decodes chunks of real
    prompts until it has covered ``probe`` prompts; the candidate with the least time per prompt
    is then used for every later call. A candidate larger than the prompts left in a call waits
    for a bigger call. State is explicit: ``seconds`` / ``prompts`` per candidate, ``best``.
    """

    def __init__(self, candidates: tuple[int, ...] = BATCH_CANDIDATES, probe: int = 16):
        self.candidates, self.probe = tuple(candidates), probe
        self.seconds = {b: 0.0 for b in self.candidates}
        self.prompts = {b: 0 for b in self.candidates}
        self.warm = False
        self.best: int | None = None

    def next_chunk(self, remaining: int) -> int:
        """Prompts for the next decoder call, with ``remaining`` prompts left in this call."""
        if self.best is not None:
            return self.best
        if not self.warm:
            return min(UNTUNED_BATCH, remaining)
        for b in self.candidates:
            if self.prompts[b] < max(self.probe, b) and b <= remaining:
                return b
        measured = [b for b in self.candidates if self.prompts[b] and b <= remaining]
        return min(measured, key=self.ms_per_prompt) if measured else min(UNTUNED_BATCH, remaining)

    def record(self, batch: int, seconds: float) -> None:
        """Time of one decoder call of ``batch`` prompts chosen by ``next_chunk``."""
        if self.best is not None:
            return
        if not self.warm:
            self.warm = True
            return
        if batch in self.prompts:
            self.seconds[batch] += seconds
            self.prompts[batch] += batch
        if all(self.prompts[b] >= max(self.probe, b) for b in self.candidates):
            self.best = min(self.candidates, key=self.ms_per_prompt)

    def ms_per_prompt(self, batch: int) -> float:
        return 1e3 * self.seconds[batch] / self.prompts[batch] if self.prompts[batch] else float("inf")

    def as_dict(self) -> dict:
        return {"chosen": self.best, "ms_per_prompt": {str(b): round(self.ms_per_prompt(b), 3)
                                                       for b in self.candidates if self.prompts[b]}}


@dataclass
class ModelInfo:
    """What results record about a model."""

    name: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    untrained: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        sha = "untrained" if self.untrained else self.checkpoint_sha256
        return {"name": self.name, "checkpoint": self.checkpoint, "checkpoint_sha256": sha,
                "untrained": self.untrained, **self.extra}


@dataclass
class Prediction:
    """Decoder output for B prompts with M masks each (M = 3 multimask, 1 single), torch tensors.

    ``logits``: (B, M, H, W) float, full image resolution; mask = logits > ``threshold``.
    ``iou_scores``: (B, M) predicted IoU, or None for a model that has none (then ``best`` takes
    the first mask, and automatic mask generation, which ranks by it, refuses the model).
    ``low_res_logits``: (B, M, 256, 256) to feed back as a mask prompt, or None (then the tasks'
    mask-prompt steps, such as box refinement and ``--feed-logits``, are not applied and say so).
    """

    logits: torch.Tensor
    iou_scores: torch.Tensor | None = None
    low_res_logits: torch.Tensor | None = None
    threshold: float = 0.0

    @property
    def masks(self) -> torch.Tensor:
        return self.logits > self.threshold

    def __len__(self) -> int:
        return self.logits.shape[0]

    def select(self, index: torch.Tensor) -> "Prediction":
        """One mask per prompt: ``index`` (B,) picks along M; M becomes 1."""
        import torch

        b = torch.arange(len(self), device=self.logits.device)
        index = index.to(self.logits.device)
        pick = lambda t: None if t is None else t[b, index.to(t.device)][:, None]
        return Prediction(self.logits[b, index][:, None], pick(self.iou_scores), pick(self.low_res_logits),
                          self.threshold)

    def best(self) -> "Prediction":
        """The mask with the highest predicted IoU for each prompt (the first mask without scores)."""
        import torch

        if self.iou_scores is None:
            return self.select(torch.zeros(len(self), dtype=torch.long))
        return self.select(self.iou_scores.argmax(dim=1))

    @staticmethod
    def cat(parts: list["Prediction"]) -> "Prediction":
        import torch

        join = lambda ts: None if any(t is None for t in ts) else torch.cat(ts)
        return Prediction(torch.cat([p.logits for p in parts]), join([p.iou_scores for p in parts]),
                          join([p.low_res_logits for p in parts]), parts[0].threshold)


class _Timed:
    """Counts and times encoder and decoder calls (for tests and latency reports)."""

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


class _Float32:
    """A class attribute that reads as ``torch.float32``, importing torch when read, not at import."""

    def __get__(self, obj: Any, owner: type | None = None) -> torch.dtype:
        import torch

        return torch.float32


class PromptableModel(_Timed):
    """A model that segments from prompts on an image set once.

    Subclasses implement ``_encode(image)`` and ``_decode(points, labels, boxes, mask_input,
    multimask)``; this class owns state checks, input validation, counting, timing, batching
    and the out-of-memory fallback, so every adapter behaves the same.
    """

    kind: ClassVar[str] = "promptable"
    kinds: ClassVar[tuple[str, ...]] = ("promptable",)
    mask_threshold: float = 0.0
    dtype: torch.dtype = _Float32()  # torch.float32 when read; an instance sets its own

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

    def latency(self) -> dict:
        return {**super().latency(), "prompt_batch": self.default_prompt_batch(),
                "prompt_batch_tuning": None if self._fixed_batch() else self.tuner.as_dict()}

    # -- public API ------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None:
        """Run the encoder on an (H, W, 3) uint8 RGB image; its embedding serves later prompts."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise ConfigError(f"set_image wants an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', type(image))}")
        import torch

        with Stopwatch(self.device) as sw, torch.inference_mode():
            self._encode(image)
        self.encoder_seconds += sw.seconds
        self.encoder_calls += 1
        self.image_size = image.shape[:2]

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
    record_options(model, spec, chosen)
    return model
