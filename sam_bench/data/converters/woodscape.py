"""WoodScape per-image instance JSON -> COCO.

``instance_annotations/<image>.json`` maps the image name to ``{"annotation": [{"tags": [class],
"segmentation": [[x, y], ...]}, ...]}`` (image size from ``image_height``/``image_width`` when
present, else from the image file in ``images``). Each polygon is one object.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data.coco import read_json
from sam_bench.data.converters import CocoBuilder, image_size
from sam_bench.errors import BadInput


def convert(folder: Path, out_json: Path, annotations: str = "instance_annotations",
            images: str = "rgb_images") -> dict:
    b = CocoBuilder(folder, "WoodScape JSON")
    files = sorted((folder / annotations).glob("*.json"))
    if not files:
        raise BadInput(f"{folder / annotations}: no WoodScape instance JSON files")
    for jpath in files:
        data = read_json(jpath)
        entry = data.get(next(iter(data), ""), data) if isinstance(data, dict) and "annotation" not in data else data
        if not isinstance(entry, dict) or "annotation" not in entry:
            raise BadInput(f"{jpath}: no 'annotation' list (not a WoodScape instance file)")
        stem = jpath.stem
        img = next((p for p in sorted((folder / images).glob(f"{stem}.*"))), None)
        if img is None:
            b.skipped.append(f"{jpath}: image {stem}.* not found in {folder / images}")
            continue
        h, w = entry.get("image_height"), entry.get("image_width")
        if not (h and w):
            h, w = image_size(img)
        image_id = b.add_image(img, h, w)
        for k, obj in enumerate(entry["annotation"]):
            tags = obj.get("tags") or ["object"]
            b.add_polygons(image_id, [obj.get("segmentation", [])], h, w, category=tags[0],
                           where=f"{jpath}: object {k}")
    return b.write(out_json)
