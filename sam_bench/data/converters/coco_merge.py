"""Several COCO JSONs (splits or subsets) -> one COCO file with re-numbered ids (Plittersdorf train+val+test).

``sources``: [{"json": path, "images": folder}] relative to the dataset folder; file names are
rewritten relative to the folder, categories merged by name.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data import masks as M
from sam_bench.data.coco import check_coco_dict, read_json
from sam_bench.data.converters import CocoBuilder


def convert(folder: Path, out_json: Path, sources: list[dict]) -> dict:
    b = CocoBuilder(folder, "COCO JSONs")
    for src in sources:
        jpath, img_dir = folder / src["json"], folder / src.get("images", ".")
        data = read_json(jpath)
        check_coco_dict(data, jpath)
        cats = {c["id"]: c["name"] for c in data["categories"]}
        ids = {}
        for img in data["images"]:
            path = img_dir / img["file_name"]
            if not path.is_file():
                b.skipped.append(f"{jpath}: image {path} not found")
                continue
            ids[img["id"]] = (b.add_image(path, img["height"], img["width"]), img["height"], img["width"])
        for ann in data["annotations"]:
            if ann["image_id"] in ids:
                new_id, h, w = ids[ann["image_id"]]
                b.add_mask(new_id, rle=M.to_rle(ann["segmentation"], h, w), category=cats.get(ann["category_id"]),
                           where=f"{jpath}: annotation {ann['id']}")
    return b.write(out_json)
