"""YouTube-VIS JSON (OVIS) -> COCO: one image per annotated frame, one mask per (track, frame).

``videos[*].file_names`` lists frames (relative to ``frames``); ``annotations[*].segmentations``
holds one RLE (or polygon, or null) per frame. ``frame_stride`` keeps every k-th frame of a video.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data import masks as M
from sam_bench.data.coco import read_json
from sam_bench.data.converters import CocoBuilder
from sam_bench.errors import BadInput


def convert(folder: Path, out_json: Path, json: str, frames: str, frame_stride: int = 1) -> dict:
    jpath = folder / json
    data = read_json(jpath)
    if "videos" not in data or "annotations" not in data:
        raise BadInput(f"{jpath}: not a YouTube-VIS file (needs videos and annotations)")
    names = {c["id"]: c["name"] for c in data.get("categories", [])}
    by_video: dict = {}
    for ann in data["annotations"]:
        by_video.setdefault(ann["video_id"], []).append(ann)
    b = CocoBuilder(folder, "YouTube-VIS JSON")
    for video in data["videos"]:
        h, w = video["height"], video["width"]
        for t, fname in enumerate(video["file_names"]):
            if t % frame_stride:
                continue
            segs = [(a, a["segmentations"][t]) for a in by_video.get(video["id"], [])
                    if t < len(a["segmentations"]) and a["segmentations"][t]]
            if not segs:
                continue
            img = folder / frames / fname
            if not img.is_file():
                b.skipped.append(f"{jpath}: frame {img} not found")
                continue
            image_id = b.add_image(img, h, w, video_id=video["id"], frame_index=t)
            for a, seg in segs:
                b.add_mask(image_id, rle=M.to_rle(seg, h, w), category=names.get(a["category_id"], "object"),
                           where=f"{jpath}: video {video['id']} track {a['id']} frame {t}")
    return b.write(out_json)
