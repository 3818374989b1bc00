"""EfficientViT-SAM (``efficientsam``, ``pip install 'sam-bench[efficientvit]'``) behind ``PromptableModel``.

SAM's prompt encoder and mask decoder on an EfficientViT image encoder. Option ``variant``: l0,
l1, l2 (encoder input 512 px), xl0, xl1 (1024 px); default l0. Prompts and masks live in a
1024-long-side frame whatever the encoder's input size. Encoding and decoding follow
``EfficientViTSamPredictor.set_image`` / ``predict`` step for step (PIL resize to the encoder
size, ``ToTensor`` + normalise, corner pad; prompts scaled in float64 to the 1024 frame, then
float32), so fp32 outputs equal the package's own predictor. With ``dtype`` bf16/fp16 the image
encoder is cast and the decoder runs under autocast; outputs are always float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.errors import CheckpointError, NotBuilt
from sam_bench.models import checkpoints
from sam_bench.models.base import ModelInfo, Prediction, PromptableModel
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import EmbeddingState, with_weights

if TYPE_CHECKING:
    import torch

VARIANTS = ("l0", "l1", "l2", "xl0", "xl1")


class EfficientViTSamModel(EmbeddingState, PromptableModel):
    """An ``EfficientViTSam`` module through ``EfficientViTSamPredictor``'s preprocessing and decoder call."""

    def __init__(self, sam: torch.nn.Module, info: ModelInfo, device: torch.device | str = "cpu",
                 dtype: torch.dtype | None = None, prompt_batch: int | None = None):
        import torch

        super().__init__(info, device, prompt_batch)
        self.dtype = torch.float32 if dtype is None else dtype
        self.sam = sam.to(self.device).eval()
        if self.dtype != torch.float32:
            self.sam.image_encoder.to(self.dtype)
        self.mask_threshold = float(self.sam.mask_threshold)
        self.features: Any = None

    def _encode(self, image: np.ndarray) -> None:
        """(H, W, 3) uint8 -> the (1, 256, 64, 64) embedding; ``input_size`` is the image in the 1024 frame."""
        from efficientsam.segment_anything.utils.transforms import ResizeLongestSide

        self.original_size = image.shape[:2]
        self.input_size = ResizeLongestSide.get_preprocess_shape(*self.original_size,
                                                                  long_side_length=self.sam.image_size[0])
        x = self.sam.transform(image).unsqueeze(0).to(self.device)
        with self._autocast():
            self.features = self.sam.image_encoder(x.to(self.dtype))

    def _encoder_key(self) -> dict:
        return {"image_size": list(self.sam.image_size)}

    def reset_image(self) -> None:
        super().reset_image()
        self.features = None

    def _to_input_frame(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) (X, Y) original pixels -> the 1024 frame: float64 scale, then float32 (``apply_coords``)."""
        import torch

        (old_h, old_w), (new_h, new_w) = self.original_size, self.input_size
        scale = torch.tensor([new_w / old_w, new_h / old_h], dtype=torch.float64, device=coords.device)
        return (coords.to(torch.float64) * scale).to(torch.float32)

    def _decode(self, points, labels, boxes, mask_input, multimask: bool) -> Prediction:
        import torch

        pts = None if points is None else (self._to_input_frame(points), labels.to(torch.int))
        box = None if boxes is None else self._to_input_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        with self._autocast():
            sparse, dense = self.sam.prompt_encoder(points=pts, boxes=box, masks=mask_input)
            low_res, iou = self.sam.mask_decoder(image_embeddings=self.features,
                                                 image_pe=self.sam.prompt_encoder.get_dense_pe(),
                                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                 multimask_output=multimask)
        low_res = low_res.float()
        logits = self.sam.postprocess_masks(low_res, self.input_size, self.original_size)
        return Prediction(logits, iou.float(), low_res, self.mask_threshold)


def _load_weights(sam: torch.nn.Module, path: Path, variant: str) -> None:
    """A weights-only state dict (bare, or under ``state_dict`` as the package's loader accepts) into ``sam``."""
    state = checkpoints.load_state_dict(path)
    state = state.get("state_dict", state)
    result = sam.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{path}: does not fit EfficientViT-SAM {variant} (missing {result.missing_keys[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]}); wrong variant?")


@declare("efficientvit-sam", choices={"variant": VARIANTS})
def build_efficientvit_sam(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
                           variant: str = "l0", seed: int = 0,
                           prompt_batch: int | None = None) -> EfficientViTSamModel:
    """``efficientvit-sam``: official ``efficientvit_sam_<variant>.pt`` from the cache, ``--checkpoint``,
    or ``--untrained``. Options: ``variant`` (l0, l1, l2, xl0, xl1), ``seed`` (random weights)."""
    try:
        from efficientsam.sam_model_zoo import create_efficientvit_sam_model
    except ImportError as exc:
        raise NotBuilt(f"efficientvit-sam needs the efficientsam package: pip install 'sam-bench[efficientvit]' "
                       f"({exc})") from exc
    from sam_bench.config import resolve_device, resolve_dtype

    device, torch_dtype = resolve_device(None if device is None else str(device)), resolve_dtype(dtype)
    build = lambda: create_efficientvit_sam_model(f"efficientvit-sam-{variant}", pretrained=False)  # norm eps 1e-6
    sam, info = with_weights("efficientvit-sam", build, checkpoint, untrained, dtype, seed,
                             default=f"efficientvit_sam_{variant}", load=lambda m, p: _load_weights(m, p, variant),
                             variant=variant)
    return EfficientViTSamModel(sam, info, device, torch_dtype, prompt_batch)
