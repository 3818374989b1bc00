"""COCO instances JSON (polygons, RLE, crowd) read via pycocotools, one item per image.

Also the shared builder for every COCO-like source (LVIS, converted native formats, synthetic):
``instance_dataset`` turns an images/annotations/categories index into lazy items. Annotations
that cannot be used (empty, out-of-image, wrong RLE size) are found at open time with cheap
checks and listed in ``Dataset.missing`` as ``{"item": "<image>#ann<id>", "reason": ...}``;
images listed but absent on disk are listed there too. Nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from sam_bench.data import masks as M
from sam_bench.data.base import Dataset, Instance, Item, Sample, read_image
from sam_bench.errors import BadInput

log = logging.getLogger(__name__)


def read_json(path: str | Path, what: str = "annotation file") -> Any:
    """Parsed JSON; ``BadInput`` naming the file when it is missing, truncated or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: {what} not found")
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: {what} is not valid JSON (truncated or corrupt?): {exc}") from None


def check_coco_dict(data: Any, path: str | Path) -> None:
    """``BadInput`` naming ``path`` unless ``data`` has COCO's images/annotations/categories lists."""
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a COCO JSON object, found {type(data).__name__}")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise BadInput(f"{path}: not a COCO instances file (no {', '.join(missing)} list)")
    for img in data["images"][:1]:
        lacks = [k for k in ("id", "height", "width") if k not in img]
        if lacks:
            raise BadInput(f"{path}: image entries lack {', '.join(lacks)}")


def coco_api(data: dict):
    """A pycocotools ``COCO`` index over an in-memory dict, without its prints."""
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


def image_candidates(image_dir: Path, img: dict) -> list[Path]:
    """Where an image entry's file may be: its file_name, then COCO 2017-style names.

    LVIS v0.5 names (``COCO_val2014_000000266409.jpg``) and LVIS v1 entries (``coco_url`` only)
    resolve to ``<dir>/000000266409.jpg``, ``<dir>/<split>/...`` or ``<dir>/../<split>/...``.
    """
    names: list[str] = []
    fn = img.get("file_name")
    split = None
    if img.get("coco_url"):
        parts = str(img["coco_url"]).rstrip("/").split("/")
        split, base = parts[-2], parts[-1]
        names.append(base)
    if fn:
        names.insert(0, fn)
        names.append(Path(fn).name)
    if isinstance(img.get("id"), int):
        names.append(f"{img['id']:012d}.jpg")
    out: list[Path] = []
    for n in dict.fromkeys(names):
        out.append(image_dir / n)
        if split:
            out += [image_dir / split / Path(n).name, image_dir.parent / split / Path(n).name]
    return list(dict.fromkeys(out))


def resolve_image(image_dir: Path, img: dict) -> Path | None:
    for cand in image_candidates(image_dir, img):
        if cand.is_file():
            return cand
    return None


def _instance(ann: dict, h: int, w: int, texts: list[str]) -> Instance:
    rle = M.to_rle(ann["segmentation"], h, w)
    return Instance(id=ann["id"], rle=rle, category_id=ann.get("category_id"), iscrowd=bool(ann.get("iscrowd", 0)),
                    area=float(ann["area"]) if ann.get("area") is not None else float(M.area(rle)),
                    bbox=[float(v) for v in ann["bbox"]] if ann.get("bbox") else M.bbox(rle), texts=list(texts))


def load_instances(item: Item, anns: list[dict], texts_of: Callable[[dict], list[str]] = lambda a: []) -> Sample:
    """Read the item's image, check its size against the JSON, build instances (+ crowd ignore map)."""
    image = read_image(item.image_path)
    h, w = image.shape[:2]
    if item.height and item.width and (h, w) != (item.height, item.width):
        raise BadInput(f"{item.image_path}: image is {w}x{h} but the annotations say "
                       f"{item.width}x{item.height} (WxH)")
    instances, dropped = [], []
    for ann in anns:
        inst = _instance(ann, h, w, texts_of(ann))
        if M.area(inst.rle) == 0:
            dropped.append(ann["id"])
            continue
        instances.append(inst)
    if dropped:
        item.meta["dropped_empty_annotations"] = dropped
        log.warning("%s: annotations %s rasterise to empty masks; left out", item.image_path, dropped)
    crowd = [i for i in instances if i.iscrowd]
    ignore = np.logical_or.reduce([c.mask() for c in crowd]) if crowd else None
    return Sample(image=image, instances=instances, ignore=ignore)


def instance_dataset(data: dict, image_dir: str | Path, *, name: str, fmt: str, gt_json: Path | None,
                     texts_of: Callable[[dict], list[str]] = lambda a: [], keep_empty_images: bool = True,
                     image_meta: Iterable[str] = ()) -> Dataset:
    """Lazy items from a COCO-style dict: present images become items, absent ones ``missing``.

    ``image_meta``: keys of each image entry copied into ``Item.meta`` (e.g. LVIS's
    ``neg_category_ids``). Items without annotations are kept unless ``keep_empty_images`` is False.
    """
    image_dir = Path(image_dir)
    by_image: dict[Any, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    images = {img["id"]: img for img in data["images"]}
    missing: list[dict] = []
    for img_id in by_image.keys() - images.keys():
        missing.append({"item": str(img_id), "reason": f"annotations name image id {img_id}, which is not in "
                                                          f"the 'images' list of {gt_json}"})
    items: list[Item] = []
    for img_id, img in images.items():
        anns = by_image.get(img_id, [])
        if not anns and not keep_empty_images:
            continue
        path = resolve_image(image_dir, img)
        if path is None:
            missing.append({"item": str(img_id), "reason": f"image not found: tried "
                            f"{', '.join(str(p) for p in image_candidates(image_dir, img)[:3])}"})
            continue
        h, w = int(img["height"]), int(img["width"])
        good = []
        for ann in anns:
            problem = "no segmentation" if "segmentation" not in ann else \
                M.segmentation_problem(ann["segmentation"], h, w)
            if problem:
                missing.append({"item": f"{img_id}#ann{ann.get('id')}",
                                "reason": f"{gt_json}: annotation {ann.get('id')} of image {img_id}: {problem}"})
            else:
                good.append(ann)
        meta = {k: img[k] for k in image_meta if k in img}
        meta["num_masks"] = sum(1 for a in good if not a.get("iscrowd", 0))
        items.append(Item(id=str(img_id), image_path=path, image_id=img_id if isinstance(img_id, int) else None,
                          height=h, width=w, meta=meta,
                          loader=lambda it, a=good: load_instances(it, a, texts_of)))
    bad_anns = sum(1 for m in missing if "#ann" in m["item"])
    if bad_anns:
        log.warning("%s: %d annotations are unusable and left out (listed as skips)", name, bad_anns)
    cats = {c["id"]: {k: v for k, v in c.items() if k != "id"} for c in data["categories"]}
    return Dataset(name=name, items=items, format=fmt, root=image_dir, categories=cats, gt_json=gt_json,
                   missing=missing, meta={"image_ids": [it.image_id for it in items]})


def read_instances(ann_json: str | Path, image_dir: str | Path | None, check) -> tuple[Path, dict, Path]:
    """(json path, checked dict, image folder: default the JSON's own) of a COCO or LVIS file."""
    ann_json = Path(ann_json)
    data = read_json(ann_json)
    check(data, ann_json)
    image_dir = Path(image_dir) if image_dir else ann_json.parent
    if not image_dir.is_dir():
        raise BadInput(f"{image_dir}: image folder not found (for {ann_json})")
    return ann_json, data, image_dir


def open_coco(ann_json: str | Path, image_dir: str | Path | None = None, *, name: str | None = None,
              domain: str | None = None, keep_empty_images: bool = True, **_: Any) -> Dataset:
    """A COCO instances JSON and its image folder (default: the JSON's folder) as a Dataset.

    Unknown options (e.g. a task's ``split``) are ignored, since COCO files hold one split each.
    """
    ann_json, data, image_dir = read_instances(ann_json, image_dir, check_coco_dict)
    api = coco_api(data)
    ds = instance_dataset(api.dataset, image_dir, name=name or f"coco:{ann_json.stem}", fmt="coco",
                          gt_json=ann_json, keep_empty_images=keep_empty_images)
    ds.domain = domain
    return ds
