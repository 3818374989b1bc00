"""Pure checks of COCO-style ground truth and detection results, run once when a file is opened.

Each check says why an entry cannot be used (a ``Problem``; None when it can), so the readers
turn bad entries into recorded skips that name the file and the entry, instead of a crash after
the compute or a silently different AP. No I/O here: the readers (``sam_bench.data.coco``, the
instances task's ``--boxes`` reader) own the files and the wording of the skips.

What is checked:

- images: an int ``id`` (COCO and LVIS ids are ints), positive integral ``height`` and ``width``,
  no id listed twice;
- annotations: an int ``id`` not seen before, an int ``image_id`` of a listed image, an int
  ``category_id`` of a listed category, a usable segmentation (``masks.segmentation_problem``:
  polygons of >= 3 points inside the image, RLE of the image's size, not empty), a finite
  ``area`` >= 0 (the mask's pixel count where absent) and an ``iscrowd`` of 0 or 1 where given,
  and a box (below) where given;
- detections: int ``image_id`` and ``category_id``, a finite ``score``, a box (below); against a
  dataset also a listed image and category and a box with area inside that image.

Boxes are XYWH in pixels: 4 finite numbers with ``w, h > 0``. A box reaching past the border is
clipped to the image (a slightly-out box is common and harmless); one with no area left inside
the image is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping

from sam_bench.data import masks as M


@dataclass(frozen=True)
class Problem:
    """Why an entry is left out: ``code`` short and stable (counted in results.json), ``text`` for people."""

    code: str
    text: str


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON ``true`` is not an id)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """A real, finite number (not a bool, a string or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_problem(value: Any, field: str, code: str) -> Problem | None:
    """``field`` must be an int (the COCO and LVIS formats say so)."""
    if is_int(value):
        return None
    return Problem(code, f"{field} {value!r} is a {type(value).__name__}, not an int")


def hashable(value: Any) -> Any:
    """``value`` if it can be a dict key, else its repr (a list as an id must not crash a lookup)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def clip_box(bbox: Any, height: int, width: int) -> tuple[list | None, Problem | None]:
    """(box to use, None) or (None, why not) for an XYWH box on a ``width`` x ``height`` image.

    The box comes back as given (the same list) when it lies inside the image, else clipped to it.
    """
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return None, Problem("bad_bbox", f"bbox {bbox!r} is not [x, y, w, h]")
    if not all(is_finite(v) for v in bbox):
        return None, Problem("bad_bbox", f"bbox {list(bbox)!r} has a value that is not a finite number")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        return None, Problem("empty_bbox", f"bbox {list(bbox)} has width or height <= 0")
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return None, Problem("bbox_outside_image", f"bbox {list(bbox)} lies outside the {width}x{height} image")
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return bbox, None
    return [x0, y0, x1 - x0, y1 - y0], None


def image_problem(img: Any, seen: Collection) -> Problem | None:
    """Why an ``images`` entry is unusable: a non-int or repeated id, a missing or bad size."""
    if not isinstance(img, dict):
        return Problem("bad_image", f"image entry is a {type(img).__name__}, not an object")
    bad = int_problem(img.get("id"), "id", "bad_image_id")
    if bad:
        return bad
    if img["id"] in seen:
        return Problem("duplicate_image_id", f"image id {img['id']} is listed twice")
    for key in ("height", "width"):
        v = img.get(key)
        if not is_finite(v) or v <= 0 or v != int(v):
            return Problem("bad_image_size", f"{key} {v!r} is not a positive integer")
    return None


def annotation_problem(ann: Any, images: Mapping, category_ids: Collection, seen: Collection) -> Problem | None:
    """Why an annotation is unusable, before its box (``check_annotation`` adds that)."""
    if not isinstance(ann, dict):
        return Problem("bad_annotation", f"annotation is a {type(ann).__name__}, not an object")
    bad = int_problem(ann.get("id"), "id", "bad_id") or int_problem(ann.get("image_id"), "image_id", "bad_image_id") \
        or int_problem(ann.get("category_id"), "category_id", "bad_category_id")
    if bad:
        return bad
    if ann["id"] in seen:
        return Problem("duplicate_id", f"annotation id {ann['id']} appears twice")
    if ann["image_id"] not in images:
        return Problem("unknown_image", f"image_id {ann['image_id']} is not in the 'images' list")
    if ann["category_id"] not in category_ids:
        return Problem("unknown_category", f"category_id {ann['category_id']} is not in the 'categories' list")
    if "area" in ann and not (is_finite(ann["area"]) and ann["area"] >= 0):
        return Problem("bad_area", f"area {ann['area']!r} is not a finite number >= 0")
    if ann.get("iscrowd", 0) not in (0, 1):
        return Problem("bad_iscrowd", f"iscrowd {ann['iscrowd']!r} is not 0 or 1")
    img = images[ann["image_id"]]
    if "segmentation" not in ann:
        return Problem("bad_segmentation", "no segmentation")
    seg = M.segmentation_problem(ann["segmentation"], int(img["height"]), int(img["width"]))
    return Problem("bad_segmentation", seg) if seg else None


def check_annotation(ann: Any, images: Mapping, category_ids: Collection,
                     seen: Collection) -> tuple[dict | None, Problem | None]:
    """(annotation to use, None) or (None, why not). The annotation is ``ann`` itself unless its
    box had to be clipped to the image or it has no ``area`` (both evaluators read it): then a
    copy with the clipped box and the mask's pixel count."""
    bad = annotation_problem(ann, images, category_ids, seen)
    if bad:
        return None, bad
    img = images[ann["image_id"]]
    h, w = int(img["height"]), int(img["width"])
    fixed = {}
    if ann.get("bbox") is not None:
        box, bad = clip_box(ann["bbox"], h, w)
        if bad:
            return None, bad
        if box is not ann["bbox"]:
            fixed["bbox"] = box
    if "area" not in ann:
        fixed["area"] = float(M.area(M.to_rle(ann["segmentation"], h, w)))
    return ({**ann, **fixed} if fixed else ann), None


def detection_problem(det: Any) -> Problem | None:
    """Why a COCO results entry is unusable on any dataset: missing keys, non-int ids, a bad score or box."""
    if not isinstance(det, dict) or any(k not in det for k in ("image_id", "category_id", "bbox", "score")):
        return Problem("bad_detection", "lacks image_id, category_id, bbox or score")
    bad = int_problem(det["image_id"], "image_id", "bad_image_id") \
        or int_problem(det["category_id"], "category_id", "bad_category_id")
    if bad:
        return bad
    if not is_finite(det["score"]):
        return Problem("bad_score", f"score {det['score']!r} is not a finite number")
    box = det["bbox"]
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(is_finite(v) for v in box):
        return Problem("bad_bbox", f"bbox {box!r} is not 4 finite numbers [x, y, w, h]")
    if box[2] <= 0 or box[3] <= 0:
        return Problem("empty_bbox", f"bbox {list(box)} has width or height <= 0")
    return None


def detection_image_problem(det: dict, height: int, width: int, category_ids: Collection | None) -> Problem | None:
    """Why a (well-formed) detection is unusable on its image: an unlisted category (``category_ids``
    None: not checked) or a box with no area inside the ``width`` x ``height`` image."""
    if category_ids is not None and det["category_id"] not in category_ids:
        return Problem("unknown_category", f"category_id {det['category_id']} is not a category of the dataset")
    return clip_box(det["bbox"], height, width)[1]


def count_codes(codes: Iterable[str]) -> dict[str, int]:
    """{problem code: how many}, codes sorted."""
    out: dict[str, int] = {}
    for c in codes:
        out[c] = out.get(c, 0) + 1
    return dict(sorted(out.items()))


@dataclass
class CheckedGT:
    """Ground truth after the open-time checks: exactly what the evaluators score.

    ``data``: a COCO-style dict (the file's keys, with ``images`` the usable image entries and
    ``annotations`` the usable annotations of the images present on disk, in file order).
    ``left_out``: ``(image_id, annotation id, code)`` of each refused annotation of those images.
    """

    data: dict
    left_out: list[tuple[Any, Any, str]]
