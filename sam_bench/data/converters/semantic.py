"""Semantic label PNGs -> COCO: one mask per class present in an image (DRAM, VOC-style palettes).

Labels are palette indices or grey values; ``ignore`` (default 0 = background, 255 = void) are
left out. ``class_names`` (optional) name the categories by index.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data.converters import CocoBuilder, image_size, read_label_png
from sam_bench.data.converters.instance_png import ids_to_masks


def convert(folder: Path, out_json: Path, images: str, labels: str, ignore: list[int] | None = None,
            class_names: list[str] | None = None) -> dict:
    b = CocoBuilder(folder, "semantic PNGs")
    skip = tuple(ignore if ignore is not None else [0, 255])
    for img in sorted(folder.glob(images)):
        lpath = folder / labels.format(stem=img.stem, dir=img.parent.relative_to(folder).as_posix())
        if not lpath.is_file():
            b.skipped.append(f"{img}: label file {lpath} not found")
            continue
        lab = read_label_png(lpath)
        if lab.ndim == 3:
            b.skipped.append(f"{lpath}: RGB labels; expected palette indices or grey values")
            continue
        hw = image_size(img)
        if lab.shape != hw:
            b.skipped.append(f"{lpath}: size differs from {img}")
            continue
        image_id = b.add_image(img, *hw)
        for cls, m in ids_to_masks(lab, skip).items():
            name = class_names[cls] if class_names and cls < len(class_names) else f"class_{cls}"
            b.add_mask(image_id, m, category=name, where=f"{lpath} class {cls}")
    return b.write(out_json)
