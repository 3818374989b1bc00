"""RLE helpers over pycocotools: encode, decode, area, bbox, polygons and label maps to RLE.

Masks are (H, W) bool/uint8 arrays; RLEs are pycocotools dicts ``{"size": [H, W], "counts": str}``
(counts kept as str so they are JSON-ready). Boxes are XYWH (COCO convention) in pixels.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sam_bench.errors import BadInput


def _str_counts(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, (bytes, bytearray)) else counts}


def _bytes_counts(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> compressed RLE with str counts."""
    if mask.ndim != 2:
        raise ValueError(f"encode takes one (H, W) mask, got shape {mask.shape}")
    from pycocotools import mask as mask_utils

    return _str_counts(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def encode_many(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool -> N RLEs (one pycocotools call)."""
    if masks.ndim != 3:
        raise ValueError(f"encode_many takes (N, H, W) masks, got shape {masks.shape}")
    if len(masks) == 0:
        return []
    from pycocotools import mask as mask_utils

    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [_str_counts(r) for r in rles]


def decode(rle: dict) -> np.ndarray:
    """RLE (compressed, str or bytes counts) -> (H, W) bool."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(_bytes_counts(rle)).astype(bool)


def area(rle: dict) -> int:
    """Number of foreground pixels, without decoding."""
    from pycocotools import mask as mask_utils

    return int(mask_utils.area(_bytes_counts(rle)))


def bbox(rle: dict) -> list[float]:
    """Tight XYWH box of the foreground ([0, 0, 0, 0] when empty), without decoding."""
    from pycocotools import mask as mask_utils

    return [float(v) for v in mask_utils.toBbox(_bytes_counts(rle))]


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict:
    """COCO polygons ([[x0, y0, x1, y1, ...], ...], pixel coordinates) -> one merged RLE.

    Parts outside the image are clipped by pycocotools' rasteriser.
    """
    polys = [list(map(float, p)) for p in polygons if len(p) >= 6]
    if not polys:
        return encode(np.zeros((height, width), bool))
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects(polys, height, width)
    return _str_counts(mask_utils.merge(rles))


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """Any COCO ``segmentation`` (polygon list, uncompressed RLE, compressed RLE) -> compressed RLE."""
    if isinstance(segmentation, list):
        return polygons_to_rle(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        if isinstance(segmentation["counts"], list):
            from pycocotools import mask as mask_utils

            return _str_counts(mask_utils.frPyObjects(segmentation, *segmentation["size"]))
        return _str_counts(segmentation)
    raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")


def labels_to_rles(labels: np.ndarray, ignore: Sequence[int] = (0,)) -> dict[int, dict]:
    """(H, W) int label map -> {label: RLE} for every label present except those in ``ignore``."""
    ids = [int(v) for v in np.unique(labels) if int(v) not in set(ignore)]
    if not ids:
        return {}
    stack = labels[None] == np.asarray(ids)[:, None, None]
    return dict(zip(ids, encode_many(stack)))


def polygon_problem(polygons: Any, height: int, width: int, tol: float = 1.0) -> str | None:
    """Why a COCO polygon annotation is unusable (None if fine): too few points, zero area, or outside.

    Cheap numpy checks run at dataset-open time so bad annotations are reported, not met mid-run.
    Coordinates more than ``tol`` px outside the image count as out-of-image.
    """
    if not isinstance(polygons, list) or not polygons:
        return "empty segmentation"
    total = 0.0
    inside = False
    for poly in polygons:
        if not isinstance(poly, (list, tuple)) or len(poly) < 6 or len(poly) % 2:
            return f"polygon with {len(poly) if hasattr(poly, '__len__') else '?'} coordinates (needs >= 3 points)"
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(xy).all():
            return "polygon with non-finite coordinates"
        x, y = xy[:, 0], xy[:, 1]
        total += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        if x.min() < -tol or y.min() < -tol or x.max() > width + tol or y.max() > height + tol:
            return f"polygon reaches outside the {width}x{height} image (x {x.min():.1f}..{x.max():.1f}, " \
                   f"y {y.min():.1f}..{y.max():.1f})"
        inside = True
    if not inside or total <= 0:
        return "polygon of zero area"
    return None


def rle_problem(rle: Any, height: int, width: int) -> str | None:
    """Why an RLE segmentation is unusable (None if fine): wrong size or empty."""
    try:
        size = [int(s) for s in rle["size"]]
    except (KeyError, TypeError, ValueError):
        return "RLE without a valid 'size'"
    if size != [height, width]:
        return f"RLE size {size[0]}x{size[1]} (HxW) does not match the image's {height}x{width}"
    try:
        n = area(to_rle(rle, height, width))
    except Exception as exc:  # pycocotools raises bare exceptions on bad counts
        return f"undecodable RLE ({exc})"
    return "empty mask" if n == 0 else None


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """``polygon_problem`` or ``rle_problem`` by type."""
    if isinstance(segmentation, dict):
        return rle_problem(segmentation, height, width)
    return polygon_problem(segmentation, height, width)


def check_mask_size(mask: np.ndarray, image: np.ndarray, path: Any) -> None:
    """``BadInput`` naming ``path`` if a mask's HxW differs from its image's."""
    if mask.shape[:2] != image.shape[:2]:
        raise BadInput(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                       f"{image.shape[1]}x{image.shape[0]} (WxH)")
