"""Automatic mask generation on any PromptableModel, shared by the edge and proposal tasks.

INTERFACE FIXED BY THE LEAD (the models engineer implements it; the edges, proposals and
text-to-mask tasks call it):

    masks = generate(model, image, AMGConfig(points_per_side=16, ...))

``generate`` prompts a regular grid of foreground points (optionally on crops), batched through
``model.predict``, filters and de-duplicates the masks, ranks them and keeps the top k. With the
official defaults (``AMGConfig.official()``) and the official SAM model it returns the same masks
as ``segment_anything.SamAutomaticMaskGenerator``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch


@dataclass
class AMGConfig:
    """Every knob of automatic mask generation; recorded in results as a dict (``asdict``).

    Thresholds set to None switch a filter off. ``nms``: "box" (official: box IoU via
    torchvision) or "mask" (mask IoU, as the paper's edge and proposal experiments say).
    ``ranking``: "score" (predicted IoU), "score_stability_mean", "random" (seeded) or None
    (generation order). ``keep_logits``: also return each mask's full-resolution logits
    (needed by the edge pipeline; memory K x H x W float).
    """

    points_per_side: int = 32
    points_per_batch: int | None = None  # None: the model's prompt batch
    multimask: bool = True
    pred_iou_thresh: float | None = 0.88
    stability_score_thresh: float | None = 0.95
    stability_score_offset: float = 1.0
    nms: Literal["box", "mask"] = "box"
    nms_thresh: float | None = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0
    ranking: Literal["score", "score_stability_mean", "random"] | None = None
    top_k: int | None = None
    keep_logits: bool = False
    seed: int = 0

    @classmethod
    def official(cls) -> "AMGConfig":
        """segment_anything.SamAutomaticMaskGenerator's defaults."""
        return cls()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class MaskSet:
    """K generated masks, in rank order. ``masks`` (K, H, W) bool; ``iou_preds``, ``stability`` (K,);
    ``points`` (K, 2) the (X, Y) prompt of each; ``boxes`` (K, 4) XYXY; ``logits`` (K, H, W) float
    or None (only with ``keep_logits``)."""

    masks: torch.Tensor
    iou_preds: torch.Tensor
    stability: torch.Tensor
    points: torch.Tensor
    boxes: torch.Tensor
    logits: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.masks.shape[0])


def generate(model, image: np.ndarray, config: AMGConfig | None = None) -> MaskSet:
    """Masks for ``image`` (H, W, 3 uint8) from a grid of point prompts on ``model``.

    The model's image must already be ``image`` (the runner sets it once per item); crops, when
    ``crop_n_layers > 0``, set their own and restore it.
    """
    raise NotImplementedError("amg.generate: being implemented by the models engineer")
