"""Image + mask folders of interactive-segmentation benchmarks (GrabCut, Berkeley, DAVIS, COCO-MVal).

One object per image: ``MASK_DIR/<stem>.<ext>`` is the mask of ``IMAGE_DIR/<stem>.<ext>`` (file
names may contain spaces; extensions are matched case-insensitively). RITM's conventions: the
mask value is the max over colour channels; foreground is ``value > threshold`` (128 for
GrabCut/Berkeley/COCO-MVal, 0 for DAVIS); ``ignore_value`` (GrabCut: 128, its unlabeled band)
marks pixels left out of IoU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.data import masks as M
from sam_bench.data.base import Dataset, Instance, Item, Sample, read_image
from sam_bench.errors import BadInput

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MASK_EXTS = {".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg"}


def read_mask_values(path: Path) -> np.ndarray:
    """(H, W) integer mask values (max over channels for colour masks); ``BadInput`` naming the file."""
    import cv2

    if not path.is_file():
        raise BadInput(f"{path}: mask file is missing")
    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None and path.suffix.lower() == ".gif":
        from PIL import Image

        try:
            arr = np.asarray(Image.open(path).convert("L"))
        except OSError:
            arr = None
    if arr is None:
        raise BadInput(f"{path}: cannot decode mask (corrupt or not an image)")
    return arr.max(axis=2) if arr.ndim == 3 else arr


def _files(folder: Path, exts: set[str]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in exts}


def _load(item: Item, threshold: int, ignore_value: int | None) -> Sample:
    image = read_image(item.image_path)
    mask_path = Path(item.meta["mask_path"])
    values = read_mask_values(mask_path)
    M.check_mask_size(values, image, mask_path)
    fg = values > threshold
    ignore = (values == ignore_value) if ignore_value is not None else None
    if ignore is not None:
        fg &= ~ignore
    if not fg.any():
        raise BadInput(f"{mask_path}: mask has no foreground pixel (values > {threshold})")
    rle = M.encode(fg)
    inst = Instance(id=item.id, rle=rle, category_id=None, area=float(M.area(rle)), bbox=M.bbox(rle))
    return Sample(image=image, instances=[inst], ignore=ignore if ignore is not None and ignore.any() else None)


def open_folder(image_dir: str | Path, mask_dir: str | Path, *, name: str | None = None, threshold: int = 128,
                ignore_value: int | None = None, domain: str | None = None, **_: Any) -> Dataset:
    """One item per image that has a same-stem mask; unmatched images/masks go to ``missing``."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for d, what in ((image_dir, "image"), (mask_dir, "mask")):
        if not d.is_dir():
            raise BadInput(f"{d}: {what} folder not found")
    images, masks = _files(image_dir, IMAGE_EXTS), _files(mask_dir, MASK_EXTS)
    if not images:
        raise BadInput(f"{image_dir}: no images ({', '.join(sorted(IMAGE_EXTS))})")
    items, missing = [], []
    for stem, path in images.items():
        if stem not in masks:
            missing.append({"item": stem, "reason": f"{path}: no mask {mask_dir / stem}.* for this image"})
            continue
        items.append(Item(id=stem, image_path=path, meta={"mask_path": str(masks[stem]), "num_masks": 1},
                          loader=lambda it: _load(it, threshold, ignore_value)))
    for stem in sorted(masks.keys() - images.keys()):
        missing.append({"item": stem, "reason": f"{masks[stem]}: mask without an image in {image_dir}"})
    return Dataset(name=name or f"folder:{image_dir.name}", items=items, format="folder", root=image_dir,
                   domain=domain, missing=missing,
                   meta={"threshold": threshold, "ignore_value": ignore_value, "mask_dir": str(mask_dir)})
