"""Referring-segmentation metrics (pure): per-expression intersection/union -> mIoU, cIoU, Pr@t.

The standard protocol of RefCOCO-style evaluation (LAVT, ReLA, CRIS...): every referring
expression is one sample with its own prediction.

- mIoU: mean over samples of I / U.
- cIoU (cumulative / overall IoU): sum of I over sum of U, so large objects weigh more.
- Pr@t: fraction of samples with IoU >= t (t = 0.5, 0.7, 0.9 -> keys ``pr50``, ``pr70``, ``pr90``).

All in percent. A sample whose union is 0 (empty prediction of an empty target) has IoU 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

THRESHOLDS = (0.5, 0.7, 0.9)
HIGHER_IS_BETTER = {"miou": True, "ciou": True, "pr50": True, "pr70": True, "pr90": True}


def intersection_union(pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray,
                       ignore: torch.Tensor | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts (B,) int64 of pred & gt and pred | gt for (B, H, W) bool masks.

    ``ignore``: (H, W) or (B, H, W) bool, pixels left out of both counts (e.g. a void band).
    """
    import torch

    pred, gt = torch.as_tensor(pred, dtype=torch.bool), torch.as_tensor(gt, dtype=torch.bool)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be (B, H, W); got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if ignore is not None:
        keep = ~torch.as_tensor(ignore, dtype=torch.bool)
        pred, gt = pred & keep, gt & keep
    inter = (pred & gt).flatten(1).sum(1)
    union = (pred | gt).flatten(1).sum(1)
    return inter.numpy().astype(np.int64), union.numpy().astype(np.int64)


def sample_iou(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """(N,) IoU per sample in [0, 1]; 1 where the union is empty."""
    inter, union = np.asarray(intersection, np.float64), np.asarray(union, np.float64)
    return np.divide(inter, union, out=np.ones_like(inter), where=union > 0)


def threshold_key(t: float) -> str:
    """0.5 -> "pr50"."""
    return f"pr{round(t * 100)}"


def refer_metrics(intersection, union, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, float]:
    """{"miou", "ciou", "pr50", "pr70", "pr90"} in percent from per-sample (N,) counts; NaN if N = 0."""
    inter, union = np.asarray(intersection, np.float64), np.asarray(union, np.float64)
    if inter.shape != union.shape or inter.ndim != 1:
        raise ValueError(f"intersection and union must be (N,) of one length; got {inter.shape} and {union.shape}")
    if (inter > union).any() or (inter < 0).any():
        raise ValueError("an intersection is negative or larger than its union")
    if not len(inter):
        return {"miou": float("nan"), "ciou": float("nan"), **{threshold_key(t): float("nan") for t in thresholds}}
    iou = sample_iou(inter, union)
    total = union.sum()
    out = {"miou": 100.0 * float(iou.mean()), "ciou": 100.0 * float(inter.sum() / total) if total > 0 else 100.0}
    for t in thresholds:
        out[threshold_key(t)] = 100.0 * float((iou >= t).mean())
    return out
