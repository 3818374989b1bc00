"""VIA (VGG Image Annotator) JSON polygons -> COCO (NDD20, STREETS).

Reads VIA 1/2 exports (``{key: {"filename", "regions": [...]}}``, regions as a list or a dict) and
VIA project files (``"_via_img_metadata"``). Polygon regions (``all_points_x/y``) become masks;
other shapes (rect, ellipse, point) are listed as skipped. Image sizes come from the image files.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data.coco import read_json
from sam_bench.data.converters import CocoBuilder, image_size
from sam_bench.errors import BadInput


def _entries(data: dict, path: Path) -> list[dict]:
    data = data.get("_via_img_metadata", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "filename" in v for v in data.values()):
        raise BadInput(f"{path}: not a VIA annotation export (entries need 'filename' and 'regions')")
    return list(data.values())


def convert(folder: Path, out_json: Path, sources: list[dict], category_attribute: str | None = None) -> dict:
    """``sources``: [{"json": path, "images": folder}] relative to ``folder``."""
    b = CocoBuilder(folder, "VIA JSON")
    for src in sources:
        jpath, img_dir = folder / src["json"], folder / src.get("images", ".")
        for entry in _entries(read_json(jpath), jpath):
            img = img_dir / entry["filename"]
            if not img.is_file():
                b.skipped.append(f"{jpath}: image {img} not found")
                continue
            h, w = image_size(img)
            image_id = b.add_image(img, h, w)
            regions = entry.get("regions") or []
            regions = list(regions.values()) if isinstance(regions, dict) else regions
            for k, reg in enumerate(regions):
                shape = reg.get("shape_attributes", {})
                where = f"{jpath}: {entry['filename']} region {k}"
                if shape.get("name") not in ("polygon", "polyline") or "all_points_x" not in shape:
                    b.skipped.append(f"{where}: shape {shape.get('name')!r} is not a polygon")
                    continue
                pts = [c for xy in zip(shape["all_points_x"], shape["all_points_y"]) for c in xy]
                cat = (reg.get("region_attributes") or {}).get(category_attribute, "object") \
                    if category_attribute else "object"
                b.add_polygons(image_id, [pts], h, w, category=cat if isinstance(cat, str) else str(cat), where=where)
    return b.write(out_json)
