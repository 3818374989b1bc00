"""VISOR (EPIC-KITCHENS) per-video JSON -> COCO.

Each ``annotations/<split>/<video>.json`` holds ``video_annotations``: per frame an ``image``
(``name``, ``video``) and ``annotations`` with ``name`` (class) and ``segments``, a list of
polygons of [x, y] points. Frames are looked up as ``frames/<video_prefix>/<name>`` then
``frames/<name>`` (extract the ``rgb_frames`` zips first). Sizes come from the frame files.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data.coco import read_json
from sam_bench.data.converters import CocoBuilder, image_size
from sam_bench.errors import BadInput


def convert(folder: Path, out_json: Path, annotations: str, frames: str) -> dict:
    b = CocoBuilder(folder, "VISOR JSON")
    files = sorted((folder / annotations).glob("*.json"))
    if not files:
        raise BadInput(f"{folder / annotations}: no VISOR per-video JSON files")
    for jpath in files:
        data = read_json(jpath)
        if "video_annotations" not in data:
            raise BadInput(f"{jpath}: not a VISOR file (no 'video_annotations')")
        for frame in data["video_annotations"]:
            info = frame.get("image", {})
            name = info.get("name", "")
            video = str(info.get("video", info.get("subsequence", "")))
            cands = [folder / frames / video.split("_")[0] / name, folder / frames / video / name,
                     folder / frames / name]
            img = next((c for c in cands if c.is_file()), None)
            if img is None:
                b.skipped.append(f"{jpath}: frame {name} not found under {folder / frames}")
                continue
            h, w = image_size(img)
            image_id = b.add_image(img, h, w)
            for k, obj in enumerate(frame.get("annotations", [])):
                polys = [p for p in obj.get("segments", []) if len(p) >= 3]
                b.add_polygons(image_id, polys, h, w, category=obj.get("name", "object"),
                               where=f"{jpath}: {name} object {obj.get('id', k)}")
    return b.write(out_json)
