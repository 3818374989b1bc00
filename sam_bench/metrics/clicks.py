"""Click simulation and click-based metrics for interactive segmentation (pure numpy / OpenCV).

The protocol is RITM's evaluation clicker (``isegm/inference/clicker.py``), which the SAM paper's
single-point experiment follows:

- First click: the object's "center", the pixel farthest from the mask boundary (maximum of the
  Euclidean distance transform of the mask), or a seeded uniformly random pixel of the mask.
- Later clicks: the pixel farthest from the boundary of the error region. False negatives
  (missed object) and false positives (spill) are transformed separately; the click goes to the
  larger of the two maxima, positive if that is in the false negatives (a tie goes negative, as
  in RITM).

Conventions: masks are (H, W) bool arrays; a click is ``(x, y)`` in integer pixel indices
(column, row), which SAM's prompt encoder shifts to the pixel centre itself. Distance transforms
run on the mask padded with one zero pixel on every side, so the image border counts as
boundary. Ties between equally distant pixels go to the first in raster order (smallest y, then
smallest x), which makes every click deterministic. Ignored pixels (GrabCut's unlabeled band,
crowd regions) are never clicked and never counted in an IoU.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Click(NamedTuple):
    """One click: pixel column ``x``, row ``y``; ``positive`` True for foreground."""

    x: int
    y: int
    positive: bool


def distance_to_boundary(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 Euclidean distance of each mask pixel to the nearest non-mask pixel.

    The image border counts as boundary (zero padding), so a one-pixel mask has distance 1 and
    background pixels 0. Exact Euclidean distances (OpenCV's precise mask).
    """
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def _argmax_yx(score: np.ndarray) -> tuple[int, int]:
    """(y, x) of the maximum; ties go to the first pixel in raster order."""
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(y), int(x)


def center_click(mask: np.ndarray, ignore: np.ndarray | None = None) -> Click:
    """The positive click at the pixel of ``mask & ~ignore`` farthest from its boundary.

    Raises ValueError if no pixel is left to click.
    """
    region = mask if ignore is None else mask & ~ignore
    if not region.any():
        raise ValueError("center_click: the mask has no pixel outside the ignore region")
    y, x = _argmax_yx(distance_to_boundary(region))
    return Click(x, y, True)


def random_click(mask: np.ndarray, rng: np.random.Generator, ignore: np.ndarray | None = None) -> Click:
    """A positive click at a pixel of ``mask & ~ignore`` drawn uniformly with ``rng``.

    Pixels are enumerated in raster order, so the same generator state gives the same click.
    """
    region = mask if ignore is None else mask & ~ignore
    flat = np.flatnonzero(region)
    if flat.size == 0:
        raise ValueError("random_click: the mask has no pixel outside the ignore region")
    y, x = np.unravel_index(int(flat[rng.integers(flat.size)]), region.shape)
    return Click(int(x), int(y), True)


def next_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None,
               clicked: np.ndarray | None = None) -> Click | None:
    """The corrective click for prediction ``pred`` of object ``gt`` (RITM's ``_get_next_click``).

    ``clicked``: (H, W) bool of pixels already clicked, never chosen again. Returns None when
    there is no error left to correct (outside ignored and clicked pixels).
    """
    keep = np.ones_like(gt, dtype=bool) if ignore is None else ~ignore
    fn = gt & ~pred & keep
    fp = ~gt & pred & keep
    fn_dt, fp_dt = distance_to_boundary(fn), distance_to_boundary(fp)
    if clicked is not None:
        fn_dt[clicked] = 0
        fp_dt[clicked] = 0
    fn_max, fp_max = float(fn_dt.max()), float(fp_dt.max())
    if fn_max == 0 and fp_max == 0:
        return None
    positive = fn_max > fp_max
    y, x = _argmax_yx(fn_dt if positive else fp_dt)
    return Click(x, y, positive)


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """IoU of predicted and ground-truth masks, ignored pixels left out of both counts.

    pred: (..., H, W) bool; gt and ignore broadcast against it (e.g. pred (B, M, H, W) with gt
    (B, 1, H, W)). Returns float64 of shape (...); 1.0 where the union is empty (nothing to find
    and nothing predicted).
    """
    keep = True if ignore is None else ~ignore
    inter = np.logical_and(np.logical_and(pred, gt), keep).sum(axis=(-2, -1))
    union = np.logical_and(np.logical_or(pred, gt), keep).sum(axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def number_of_clicks(ious: np.ndarray, threshold: float, max_clicks: int) -> tuple[np.ndarray, np.ndarray]:
    """NoC: the first click (1-based) whose IoU reaches ``threshold``, per object.

    ious: (K, C) IoU after clicks 1..C (NaN where a click was not simulated), fractions in [0, 1];
    only the first ``max_clicks`` columns count. Objects that never reach the threshold get
    ``max_clicks`` and are flagged as failures. Returns (noc (K,) int, failed (K,) bool).
    """
    ious = np.asarray(ious, dtype=float)[:, :max_clicks]
    reached = np.nan_to_num(ious, nan=-np.inf) >= threshold
    failed = ~reached.any(axis=1)
    noc = np.where(failed, max_clicks, reached.argmax(axis=1) + 1)
    return noc, failed
