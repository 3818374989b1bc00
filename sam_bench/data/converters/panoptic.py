"""COCO panoptic PNG + JSON -> COCO instances (Cityscapes via cityscapesScripts createPanopticImgs).

Each ``segments_info`` entry (things and stuff) becomes one mask: pixels whose RGB-encoded id
``R + 256 G + 256^2 B`` equals the segment id. ``annotations[*].file_name`` is the PNG in
``png_dir``; the image is found from ``images`` (template with ``{stem}``, the panoptic PNG stem
with ``strip_suffix`` removed; Cityscapes: ``leftImg8bit/val/*/{city_stem}_leftImg8bit.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sam_bench.data.coco import read_json
from sam_bench.data.converters import CocoBuilder, image_size, read_label_png
from sam_bench.errors import BadInput


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def convert(folder: Path, out_json: Path, json: str, png_dir: str, images: str, strip_suffix: str = "") -> dict:
    jpath = folder / json
    data = read_json(jpath)
    if "annotations" not in data or "categories" not in data:
        raise BadInput(f"{jpath}: not a COCO panoptic file (needs annotations and categories)")
    names = {c["id"]: c["name"] for c in data["categories"]}
    b = CocoBuilder(folder, "COCO panoptic")
    for ann in data["annotations"]:
        png = folder / png_dir / ann["file_name"]
        stem = Path(ann["file_name"]).stem
        stem = stem[: -len(strip_suffix)] if strip_suffix and stem.endswith(strip_suffix) else stem
        found = sorted(folder.glob(images.format(stem=stem)))
        if not found or not png.is_file():
            b.skipped.append(f"{jpath}: {ann['file_name']}: image or panoptic PNG not found")
            continue
        ids = rgb_to_id(read_label_png(png)[..., :3])
        hw = image_size(found[0])
        if ids.shape != hw:
            b.skipped.append(f"{png}: size differs from {found[0]}")
            continue
        image_id = b.add_image(found[0], *hw)
        for seg in ann["segments_info"]:
            b.add_mask(image_id, ids == seg["id"], category=names.get(seg["category_id"], seg["category_id"]),
                       where=f"{png} segment {seg['id']}")
    return b.write(out_json)
