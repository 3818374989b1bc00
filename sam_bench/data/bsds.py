"""BSDS500 (native layout): ``images/{split}/<id>.jpg`` + ``groundTruth/{split}/<id>.mat``.

Each .mat holds ``groundTruth``, a 1xN cell of structs with ``Segmentation`` (uint16 labels) and
``Boundaries`` (uint8 0/1), one per human annotator. ``Sample.boundaries`` / ``segmentations``
list them in file order. ``split`` is train, val, test, or several joined by "+" (``train+val``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample, read_image
from sam_bench.errors import BadInput, ConfigError

SPLITS = ("train", "val", "test")


def read_ground_truth(path: str | Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(boundaries, segmentations): per annotator (H, W) bool and (H, W) int32; ``BadInput`` naming the file."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: ground-truth file is missing")
    try:
        mat = scipy.io.loadmat(path, variable_names=["groundTruth"])
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError on damaged files
        raise BadInput(f"{path}: cannot read MATLAB file ({type(exc).__name__}: {exc})") from None
    cell = mat.get("groundTruth")
    if cell is None or cell.size == 0:
        raise BadInput(f"{path}: no 'groundTruth' cell array in this .mat")
    bounds, segs = [], []
    for k, entry in enumerate(cell.ravel()):
        names = entry.dtype.names or ()
        if "Boundaries" not in names or "Segmentation" not in names:
            raise BadInput(f"{path}: annotator {k} lacks Boundaries/Segmentation (fields: {', '.join(names)})")
        b, s = entry["Boundaries"].ravel()[0], entry["Segmentation"].ravel()[0]
        if b.ndim != 2 or b.shape != s.shape:
            raise BadInput(f"{path}: annotator {k} Boundaries {b.shape} and Segmentation {s.shape} differ")
        bounds.append(b.astype(bool))
        segs.append(s.astype(np.int32))
    return bounds, segs


def _load(item: Item) -> Sample:
    image = read_image(item.image_path)
    bounds, segs = read_ground_truth(item.meta["gt_path"])
    if bounds[0].shape != image.shape[:2]:
        raise BadInput(f"{item.meta['gt_path']}: ground truth is {bounds[0].shape[1]}x{bounds[0].shape[0]} but "
                       f"{item.image_path} is {image.shape[1]}x{image.shape[0]} (WxH)")
    return Sample(image=image, boundaries=bounds, segmentations=segs)


def open_bsds(root: str | Path, split: str = "test", *, name: str | None = None, **_: Any) -> Dataset:
    """BSDS500 items of ``split``; images without a .mat (and .mat without image) go to ``missing``."""
    root = Path(root)
    split = split or "test"
    parts = split.split("+")
    bad = [p for p in parts if p not in SPLITS]
    if bad:
        raise ConfigError(f"--split {split!r}: BSDS500 splits are {', '.join(SPLITS)} (join with '+')")
    items, missing = [], []
    for part in parts:
        img_dir, gt_dir = root / "images" / part, root / "groundTruth" / part
        if not img_dir.is_dir() or not gt_dir.is_dir():
            raise BadInput(f"{root}: not a BSDS500 folder (need images/{part}/ and groundTruth/{part}/)")
        images = {p.stem: p for p in sorted(img_dir.glob("*.jpg"))}
        gts = {p.stem: p for p in sorted(gt_dir.glob("*.mat"))}
        for stem, path in images.items():
            if stem not in gts:
                missing.append({"item": stem, "reason": f"{path}: no ground truth {gt_dir / stem}.mat"})
                continue
            items.append(Item(id=stem, image_path=path, meta={"gt_path": str(gts[stem]), "split": part},
                              loader=_load))
        for stem in sorted(gts.keys() - images.keys()):
            missing.append({"item": stem, "reason": f"{gts[stem]}: ground truth without image {img_dir / stem}.jpg"})
    return Dataset(name=name or "BSDS500", items=items, format="bsds", root=root, domain="natural images",
                   missing=missing, meta={"split": split})
