"""Tiny COCO / LVIS datasets in their native formats, generated at test time (never copied data).

Images are smooth colour gradients with flat-coloured ellipses and rectangles of all three COCO
sizes (small < 32^2, medium < 96^2, large), written as PNG next to an instances JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

SIZE = (120, 160)  # H, W: room for large (> 96^2 = 9216 px) objects
FREQ = {1: "f", 2: "f", 3: "c", 4: "c", 5: "r", 6: "r"}


def rle_of(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}


def _objects(rng: np.random.Generator, h: int, w: int, n: int) -> list[np.ndarray]:
    """n masks: one large rectangle, then ellipses of decreasing size (medium and small)."""
    yy, xx = np.mgrid[:h, :w]
    out = [np.zeros((h, w), bool)]
    out[0][10:110, 5:105] = True  # 100 x 100 = 10000 px: large
    for k in range(1, n):
        ry, rx = (rng.integers(12, 30, 2) if k % 2 else rng.integers(3, 9, 2))
        cy, cx = rng.integers(ry, h - ry), rng.integers(110 if k % 3 == 0 else rx, w - rx)
        out.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    return out


def make_dataset(root: Path, *, n_images: int = 3, per_image: int = 5, lvis: bool = False, crowd: bool = True,
                 absent: int = 0, seed: int = 0) -> Path:
    """Write ``root/instances.json`` and ``root/images/*.png``; return the JSON path.

    The first image's last annotation is crowd (uncompressed RLE, as COCO writes crowds) unless
    ``lvis`` or not ``crowd``. The last ``absent`` images are listed but not written to disk.
    The first annotation of each image is a polygon, the rest compressed RLE.
    """
    rng = np.random.default_rng(seed)
    h, w = SIZE
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    cats = [{"id": c, "name": f"cat{c}", **({"frequency": f} if lvis else {})} for c, f in FREQ.items()]
    for i in range(n_images):
        img_id = 100 + i
        gy, gx = np.mgrid[:h, :w]
        image = np.stack([gy * 255 // h, gx * 255 // w, np.full((h, w), 90)], -1).astype(np.uint8)
        masks = _objects(rng, h, w, per_image)
        for m in masks:
            image[m] = rng.integers(0, 256, 3)
        entry = {"id": img_id, "height": h, "width": w, "file_name": f"{img_id:012d}.png"}
        if lvis:
            entry.update(neg_category_ids=[6], not_exhaustive_category_ids=[])
        images.append(entry)
        if i < n_images - absent:
            cv2.imwrite(str(img_dir / entry["file_name"]), image[:, :, ::-1])
        for k, m in enumerate(masks):
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(1 + (i + k) % 5),
                   "area": float(m.sum()), "bbox": [float(v) for v in mask_utils.toBbox(mask_utils.encode(
                       np.asfortranarray(m.astype(np.uint8))))], "iscrowd": 0}
            if k == 0:
                ann["segmentation"] = [[5, 10, 105, 10, 105, 110, 5, 110]]
            elif crowd and not lvis and i == 0 and k == per_image - 1:
                ann["iscrowd"] = 1
                ann["segmentation"] = _uncompressed(m)
            else:
                ann["segmentation"] = rle_of(m)
            if lvis:
                ann.pop("iscrowd")
            anns.append(ann)
    data = {"images": images, "annotations": anns, "categories": cats}
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _uncompressed(mask: np.ndarray) -> dict:
    """COCO's uncompressed crowd RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": runs}


def gt_masks(path: Path) -> dict[int, list[tuple[dict, np.ndarray]]]:
    """{image id: [(annotation, (H, W) bool mask)]} decoded with pycocotools' own COCO API."""
    from pycocotools.coco import COCO
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO(str(path))
    out: dict[int, list] = {}
    for ann in api.dataset["annotations"]:
        out.setdefault(ann["image_id"], []).append((ann, api.annToMask(ann).astype(bool)))
    return out
