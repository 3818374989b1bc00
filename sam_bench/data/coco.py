"""COCO instances JSON (polygons, RLE, crowd), one item per image; masks via pycocotools.

Also the shared builder for every COCO-like source (LVIS, RefCOCO, converted native formats):
``instance_dataset`` turns an images/annotations/categories dict into lazy items. Every image
entry and every annotation of a present image is checked once, at open time
(``sam_bench.data.validate``: ids, sizes, categories, boxes, segmentations); each one that cannot
be used is listed in ``Dataset.missing`` as ``{"item": "<image>#ann<id>", "reason": ...}`` naming
the file, the entry and why, and images listed but absent on disk are listed there too.
``Dataset.gt`` holds exactly the usable entries: what the items load and the evaluators score.
Nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from sam_bench.data import masks as M
from sam_bench.data import validate as V
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


def _skip(item: str, source: Any, where: str, problem: V.Problem) -> dict:
    """A ``Dataset.missing`` entry naming the file, the entry and the reason."""
    return {"item": item, "reason": f"{source}: {where}: {problem.text}"}


def check_images(images: list, source: Any) -> tuple[dict[Any, dict], list[dict]]:
    """({id: entry} of the usable image entries in file order, skips of the others)."""
    usable: dict[Any, dict] = {}
    skips = []
    for k, img in enumerate(images):
        bad = V.image_problem(img, usable)
        if bad:
            img_id = V.hashable(img.get("id")) if isinstance(img, dict) else None
            skips.append(_skip(str(img_id if img_id is not None else f"#image{k}"), source,
                               f"image {img_id!r} (entry {k} of 'images')", bad))
        else:
            usable[img["id"]] = img
    return usable, skips


def check_annotations(anns: list, images: dict[Any, dict], unused_images: set, category_ids: set,
                      source: Any) -> tuple[list[dict], list[tuple[Any, Any, str]], list[dict]]:
    """(usable annotations in file order, [(image id, id, code)] of the refused ones of usable
    images, skips). Annotations of ``unused_images`` (absent on disk, or refused entries, which
    are skips themselves) are not checked: they are never used."""
    usable, left_out, skips = [], [], []
    seen: set = set()
    for k, ann in enumerate(anns):
        img_id = V.hashable(ann.get("image_id")) if isinstance(ann, dict) else None
        if img_id in unused_images:
            continue
        use, bad = V.check_annotation(ann, images, category_ids, seen)
        if bad:
            ann_id = V.hashable(ann.get("id")) if isinstance(ann, dict) else None
            skips.append(_skip(f"{img_id}#ann{ann_id if ann_id is not None else f'[{k}]'}", source,
                               f"annotation {ann_id!r} (entry {k}) of image {img_id!r}", bad))
            if img_id in images:
                left_out.append((img_id, ann_id, bad.code))
            continue
        seen.add(use["id"])
        usable.append(use)
    return usable, left_out, skips


def category_ids(categories: list, source: Any) -> set:
    """The ids of the ``categories`` list; ``BadInput`` naming the file for an entry without an int id."""
    ids = set()
    for k, c in enumerate(categories):
        if not isinstance(c, dict) or not V.is_int(c.get("id")):
            raise BadInput(f"{source}: categories entry {k} has no int 'id' "
                           f"({c.get('id') if isinstance(c, dict) else c!r})")
        ids.add(c["id"])
    return ids


def instance_dataset(data: dict, image_dir: str | Path, *, name: str, fmt: str, gt_json: Path | None,
                     texts_of: Callable[[dict], list[str]] = lambda a: [], keep_empty_images: bool = True,
                     image_meta: Iterable[str] = ()) -> Dataset:
    """Lazy items from a COCO-style dict: present images become items, absent ones ``missing``.

    Every image entry and every annotation of a present image is checked once here
    (``sam_bench.data.validate``); each refused one is a ``missing`` entry naming the file, the
    entry and the reason, and ``Dataset.gt`` holds exactly the usable ones, which the items load
    and the evaluators score. ``image_meta``: keys of each image entry copied into ``Item.meta``
    (e.g. LVIS's ``neg_category_ids``). Items without annotations are kept unless
    ``keep_empty_images`` is False.
    """
    image_dir = Path(image_dir)
    source = gt_json or name
    images, missing = check_images(data["images"], source)
    listed: dict[Any, int] = {}
    for ann in data["annotations"]:
        key = V.hashable(ann.get("image_id")) if isinstance(ann, dict) else None
        listed[key] = listed.get(key, 0) + 1
    paths: dict[Any, Path] = {}
    for img_id, img in images.items():
        if not listed.get(img_id) and not keep_empty_images:
            continue
        path = resolve_image(image_dir, img)
        if path is None:
            missing.append({"item": str(img_id), "reason": f"image not found: tried "
                            f"{', '.join(str(p) for p in image_candidates(image_dir, img)[:3])}"})
        else:
            paths[img_id] = path
    refused = {V.hashable(img.get("id")) for img in data["images"] if isinstance(img, dict)} - set(images)
    unused = refused | (set(images) - set(paths))
    usable, left_out, ann_skips = check_annotations(data["annotations"], images, unused,
                                                    category_ids(data["categories"], source), source)
    missing += ann_skips
    by_image: dict[Any, list[dict]] = {}
    for ann in usable:
        by_image.setdefault(ann["image_id"], []).append(ann)
    items: list[Item] = []
    for img_id, path in paths.items():
        img, good = images[img_id], by_image.get(img_id, [])
        meta = {k: img[k] for k in image_meta if k in img}
        meta["num_masks"] = sum(1 for a in good if not a.get("iscrowd", 0))
        items.append(Item(id=str(img_id), image_path=path, image_id=img_id, height=int(img["height"]),
                          width=int(img["width"]), meta=meta,
                          loader=lambda it, a=good: load_instances(it, a, texts_of)))
    if ann_skips:
        log.warning("%s: %d annotations are unusable and left out (listed as skips)", name, len(ann_skips))
    cats = {c["id"]: {k: v for k, v in c.items() if k != "id"} for c in data["categories"]}
    gt = {**{k: v for k, v in data.items() if k not in ("images", "annotations")},
          "images": list(images.values()), "annotations": usable}
    return Dataset(name=name, items=items, format=fmt, root=image_dir, categories=cats, gt_json=gt_json,
                   missing=missing, meta={"image_ids": [it.image_id for it in items]},
                   gt=V.CheckedGT(gt, left_out))


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
    ds = instance_dataset(data, image_dir, name=name or f"coco:{ann_json.stem}", fmt="coco",
                          gt_json=ann_json, keep_empty_images=keep_empty_images)
    ds.domain = domain
    return ds
