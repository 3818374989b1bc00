"""Instance-id / label PNGs -> COCO: one mask per id (PPDLS, iShape, IBD, EgoHOS, GTEA, ADE20K).

Images are found by the ``images`` glob; each label file by the ``labels`` template (relative to
the folder), where ``{dir}`` is the image's folder and ``{stem}`` its stem with ``strip_suffix``
removed (PPDLS: ``{dir}/{stem}_label.png`` for ``plant001_rgb.png``).
``decode``: ``"ids"`` (every non-zero value of a 8/16-bit or palette PNG is one object, values in
``ignore`` left out), ``"components"`` (binary mask, one object per 8-connected component: GTEA
hands), ``"ade20k"`` (ADE20K full release ``_seg.png``: class = R/10*256+G, instance = B among
non-zero classes; ``_parts_N.png`` files beside it add the part masks). ``include``: regex on
the image path relative to the folder (EgoHOS: Ego4D and THU-READ frames only).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sam_bench.data import masks as M
from sam_bench.data.converters import CocoBuilder, image_size, read_label_png


def ids_to_masks(labels: np.ndarray, ignore: tuple[int, ...] = (0,)) -> dict[int, np.ndarray]:
    """{id: (H, W) bool} for each id present in a 2-D label map."""
    if labels.ndim == 3:
        labels = labels[..., 0].astype(np.int64) + 256 * labels[..., 1] + 65536 * labels[..., 2]
    return {k: M.decode(r) for k, r in M.labels_to_rles(labels, ignore=ignore).items()}


def ade20k_masks(seg: np.ndarray) -> dict[int, np.ndarray]:
    """ADE20K ``_seg.png`` (H, W, 3) -> {instance: mask}: instances are the B values on labelled pixels."""
    r, g, b = (seg[..., i].astype(np.int64) for i in range(3))
    cls = r // 10 * 256 + g
    inst = np.where(cls > 0, b + 1, 0)
    return ids_to_masks(inst)


def components(binary: np.ndarray) -> dict[int, np.ndarray]:
    import cv2

    n, lab = cv2.connectedComponents((binary > 0).astype(np.uint8), connectivity=8)
    return ids_to_masks(lab.astype(np.int32)) if n > 1 else {}


def convert(folder: Path, out_json: Path, images: str, labels: str, strip_suffix: str = "", decode: str = "ids",
            ignore: list[int] | None = None, include: str | None = None, category: str = "object") -> dict:
    b = CocoBuilder(folder, f"label PNGs ({decode})")
    skip = tuple(ignore if ignore is not None else [0])
    pattern = re.compile(include) if include else None
    for img in sorted(folder.glob(images)):
        rel = img.relative_to(folder).as_posix()
        if pattern and not pattern.search(rel):
            continue
        stem = img.stem[: -len(strip_suffix)] if strip_suffix and img.stem.endswith(strip_suffix) else img.stem
        lpath = folder / labels.format(stem=stem, dir=img.parent.relative_to(folder).as_posix())
        if not lpath.is_file():
            b.skipped.append(f"{img}: label file {lpath} not found")
            continue
        lab = read_label_png(lpath)
        hw = image_size(img)
        if lab.shape[:2] != hw:
            b.skipped.append(f"{lpath}: labels are {lab.shape[1]}x{lab.shape[0]}, image {hw[1]}x{hw[0]}")
            continue
        if decode == "ade20k":
            found = ade20k_masks(lab)
            for k, part in enumerate(sorted(lpath.parent.glob(f"{stem}_parts_*.png"))):
                found.update({(k + 1) * 10 ** 6 + i: m for i, m in ade20k_masks(read_label_png(part)).items()})
        elif decode == "components":
            found = components(lab.max(axis=2) if lab.ndim == 3 else lab)
        else:
            found = ids_to_masks(lab, skip)
        image_id = b.add_image(img, *hw)
        for k, m in found.items():
            b.add_mask(image_id, m, category=category, where=f"{lpath} id {k}")
    return b.write(out_json)
