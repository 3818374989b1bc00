"""Official SAM v1 (``segment_anything``) behind ``PromptableModel``: ``sam_vit_b``, ``sam_vit_l``, ``sam_vit_h``.

``SamV1Model`` wraps any module with the ``segment_anything.modeling.Sam`` API (image_encoder,
prompt_encoder, mask_decoder, preprocess, postprocess_masks), so HQ-SAM and MobileSAM reuse it
(see docs/models.md). It does what ``SamPredictor.set_image`` / ``predict_torch`` do, step for
step, so its fp32 outputs equal the official predictor's; with ``dtype`` bf16/fp16 the image
encoder is cast and the decoder runs under autocast; outputs are always float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.errors import ConfigError
from sam_bench.models import checkpoints
from sam_bench.models.base import ModelInfo, Prediction, PromptableModel
from sam_bench.models.options import declare
from sam_bench.results import RANDOM_WEIGHTS

if TYPE_CHECKING:  # torch loads on first use, so listing models needs none
    import torch

class EmbeddingState:
    """Embedding-cache state of an adapter whose decoder reads ``features`` alone, placed at
    ``original_size`` in the ``input_size`` frame (SAM v1, its lightweight families, EfficientViT-SAM)."""

    def _encoder_state(self) -> tuple[dict, dict]:
        return {"features": self.features}, {"original_size": list(self.original_size),
                                             "input_size": list(self.input_size)}

    def _load_encoder_state(self, tensors: dict, sizes: dict) -> None:
        self.features = tensors["features"]
        self.original_size, self.input_size = tuple(sizes["original_size"]), tuple(sizes["input_size"])


class SamV1Model(EmbeddingState, PromptableModel):
    """A ``segment_anything``-style ``Sam`` module as a ``PromptableModel``.

    Coordinates arrive in original-image pixels ((X, Y) points, XYXY boxes) and are mapped to
    the 1024-long-side input frame exactly as ``ResizeLongestSide.apply_coords`` does (float64).
    """

    def __init__(self, sam: torch.nn.Module, info: ModelInfo, device: torch.device | str = "cpu",
                 dtype: torch.dtype | None = None, prompt_batch: int | None = None):
        import torch
        from segment_anything.utils.transforms import ResizeLongestSide

        dtype = torch.float32 if dtype is None else dtype
        super().__init__(info, device, prompt_batch)
        self.dtype = dtype
        self.sam = sam.to(self.device).eval()
        if dtype != torch.float32:
            self.sam.image_encoder.to(dtype)
        self.transform = ResizeLongestSide(self.sam.image_encoder.img_size)
        self.mask_threshold = float(self.sam.mask_threshold)
        self.features: Any = None

    # -- encoder ----------------------------------------------------------------------------
    def _encode(self, image: np.ndarray) -> None:
        import torch

        x = self.transform.apply_image(image)  # PIL resize, as SamPredictor.set_image
        x = torch.as_tensor(x, device=self.device).permute(2, 0, 1).contiguous()[None]
        self.original_size = image.shape[:2]
        self.input_size = tuple(x.shape[-2:])
        x = self.sam.preprocess(x)
        with self._autocast():
            self.features = self._run_encoder(x.to(self.dtype))

    def _run_encoder(self, x: torch.Tensor) -> Any:
        return self.sam.image_encoder(x)

    def _encoder_key(self) -> dict:
        return {"img_size": self.transform.target_length}

    def reset_image(self) -> None:
        super().reset_image()
        self.features = None

    # -- decoder ----------------------------------------------------------------------------
    def _to_input_frame(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) (X, Y) original pixels -> the resized input frame, in float64 like the official numpy path."""
        import torch

        old_h, old_w = self.original_size
        new_h, new_w = self.transform.get_preprocess_shape(old_h, old_w, self.transform.target_length)
        scale = torch.tensor([new_w / old_w, new_h / old_h], dtype=torch.float64, device=coords.device)
        return coords.to(torch.float64) * scale

    def _decode(self, points, labels, boxes, mask_input, multimask: bool) -> Prediction:
        import torch

        pts = None if points is None else (self._to_input_frame(points), labels.to(torch.int))
        box = None if boxes is None else self._to_input_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        with self._autocast():
            sparse, dense = self.sam.prompt_encoder(points=pts, boxes=box, masks=mask_input)
            low_res, iou = self._run_decoder(sparse, dense, multimask)
        low_res = low_res.float()
        logits = self.sam.postprocess_masks(low_res, self.input_size, self.original_size)
        return Prediction(logits, iou.float(), low_res, self.mask_threshold)

    def _run_decoder(self, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool):
        return self.sam.mask_decoder(image_embeddings=self.features, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                                     sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                     multimask_output=multimask)


def random_init(build, seed: int) -> torch.nn.Module:
    """Build with random weights from a fixed seed, without disturbing the global RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def model_info(name: str, path, sha: str | None, untrained: bool, dtype: str | None, seed: int | None = None,
               **extra: Any) -> ModelInfo:
    """What results record: checkpoint and sha256, or ``untrained`` with the random-weights seed."""
    ex = {"dtype": dtype or "fp32", **extra}
    if untrained:
        ex["weights"] = f"{RANDOM_WEIGHTS} (seed {seed})"
    return ModelInfo(name, checkpoint=None if path is None else str(path), checkpoint_sha256=sha,
                     untrained=untrained, extra=ex)


def with_weights(name: str, build, checkpoint, untrained: bool, dtype: str | None, seed: int, default: str,
                 load=checkpoints.load_into, **extra: Any) -> tuple[torch.nn.Module, ModelInfo]:
    """``build()``'s module with random weights from ``seed`` (``untrained``) or with ``checkpoint``
    loaded by ``load(module, path)`` (the cache's official file ``default`` when none is given), and
    the ``ModelInfo`` results record (``extra``: the model's options)."""
    if untrained:
        if checkpoint:
            raise ConfigError("--untrained and --checkpoint exclude each other")
        return random_init(build, seed), model_info(name, None, None, True, dtype, seed, **extra)
    path, sha = checkpoints.resolve(name, checkpoint, default=default)
    module = build()
    load(module, path)
    return module, model_info(name, path, sha, False, dtype, **extra)


def _build(variant: str, checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
           seed: int = 0, prompt_batch: int | None = None) -> SamV1Model:
    from segment_anything import sam_model_registry

    from sam_bench.config import resolve_device, resolve_dtype

    name = f"sam_{variant}"
    device, torch_dtype = resolve_device(device if device is None else str(device)), resolve_dtype(dtype)
    sam, info = with_weights(name, sam_model_registry[variant], checkpoint, untrained, dtype, seed, default=name)
    return SamV1Model(sam, info, device, torch_dtype, prompt_batch)


V1_OPTIONS = {"seed": 0}  # random weights' seed with --untrained


@declare("sam_vit_b", options=V1_OPTIONS)
def build_sam_vit_b(**kw: Any) -> SamV1Model:
    """SAM ViT-B (91M encoder parameters), official checkpoint ``sam_vit_b_01ec64.pth``."""
    return _build("vit_b", **kw)


@declare("sam_vit_l", options=V1_OPTIONS)
def build_sam_vit_l(**kw: Any) -> SamV1Model:
    """SAM ViT-L (308M), official checkpoint ``sam_vit_l_0b3195.pth``."""
    return _build("vit_l", **kw)


@declare("sam_vit_h", options=V1_OPTIONS)
def build_sam_vit_h(**kw: Any) -> SamV1Model:
    """SAM ViT-H (636M), official checkpoint ``sam_vit_h_4b8939.pth``."""
    return _build("vit_h", **kw)
