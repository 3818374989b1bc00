"""Deterministic synthetic scenes: every task runs end to end with nothing downloaded.

Each scene is a textured background with 3-8 textured shapes (8 categories in LVIS-style
frequency groups), drawn back to front so later shapes partly occlude earlier ones. Every scene
holds at least one large, one medium and one small object (COCO size classes of the *visible*
mask: < 32^2, < 96^2, >= 96^2 px) and one occluded object; each object has a unique description
such as "small red triangle". Ground truth is exact: visible instance masks (RLE), the label map
(``segmentations=[labels]``, 0 = background) and its boundary map (``boundaries=[...]``).

``open_synthetic`` also writes a COCO/LVIS-style JSON (RLE segmentations, LVIS frequencies,
``neg_category_ids`` = categories absent from the image, as all categories are exhaustively
annotated) atomically under ``cache_dir()/synthetic/`` and sets ``Dataset.gt_json`` to it.
Scenes depend only on (seed, index, size), so items regenerate their image on load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sam_bench.data import masks as M
from sam_bench.data.base import Dataset, Instance, Item, Sample
from sam_bench.errors import ConfigError

VERSION = 1
CATEGORIES = [  # (name, LVIS-style frequency group, sampling weight)
    ("circle", "f", 3.0), ("square", "f", 3.0), ("triangle", "f", 3.0),
    ("star", "c", 1.5), ("hexagon", "c", 1.5), ("ellipse", "c", 1.5),
    ("cross", "r", 0.5), ("diamond", "r", 0.5),
]
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 225), "yellow": (235, 210, 40),
           "purple": (140, 60, 190), "orange": (245, 140, 30), "cyan": (40, 200, 210), "white": (240, 240, 240)}
SIZE_RANGES = {"large": (11000, 20000), "medium": (2000, 7000), "small": (200, 800)}  # full-shape px areas
AREA_FACTOR = {"circle": np.pi, "ellipse": 0.55 * np.pi, "square": 2.0, "triangle": 1.299, "hexagon": 2.598,
               "diamond": 1.2, "star": 1.322, "cross": 2.31}  # shape area / r^2


def size_word(area: float) -> str:
    """COCO size class of a pixel area: small < 32^2 <= medium < 96^2 <= large."""
    return "small" if area < 32 ** 2 else "medium" if area < 96 ** 2 else "large"


def _polygon(shape: str, r: float, angle: float) -> np.ndarray | None:
    """Unit-centred (K, 2) vertices of a shape of 'radius' r, rotated by angle (rad); None: drawn by cv2."""
    if shape in ("circle", "ellipse"):
        return None
    if shape == "star":
        t = np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    elif shape == "cross":
        a = 0.35 * r
        pts = np.array([[a, r], [a, a], [r, a], [r, -a], [a, -a], [a, -r], [-a, -r], [-a, -a], [-r, -a], [-r, a],
                        [-a, a], [-a, r]])
        t, rad = np.arctan2(pts[:, 1], pts[:, 0]), np.hypot(pts[:, 0], pts[:, 1])
    else:
        k = {"triangle": 3, "square": 4, "hexagon": 6, "diamond": 4}[shape]
        t = np.arange(k) * 2 * np.pi / k + (np.pi / 4 if shape == "square" else 0)
        rad = np.full(k, float(r))
    xy = np.stack([rad * np.cos(t + angle), rad * np.sin(t + angle)], 1)
    if shape == "diamond":
        xy[:, 1] *= 0.6
    return xy


def _shape_mask(shape: str, cx: float, cy: float, r: float, angle: float, h: int, w: int) -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    poly = _polygon(shape, r, angle)
    if poly is None:
        axes = (int(round(r)), int(round(r if shape == "circle" else 0.55 * r)))
        cv2.ellipse(canvas, (int(round(cx)), int(round(cy))), axes, float(np.degrees(angle)), 0, 360, 1, -1)
    else:
        cv2.fillPoly(canvas, [np.round(poly + [cx, cy]).astype(np.int32)], 1)
    return canvas.astype(bool)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W) brightness factors around 1: flat, stripes, checker or noise."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 1:
        a, period = rng.uniform(0, np.pi), rng.uniform(6, 14)
        return 0.88 + 0.12 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period)
    if kind == 2:
        s = int(rng.integers(5, 10))
        return np.where(((xx // s + yy // s) % 2) == 0, 1.0, 0.8)
    if kind == 3:
        return 0.9 + 0.1 * rng.standard_normal((h, w)).astype(np.float32)
    return np.ones((h, w), np.float32)


@dataclass
class Obj:
    category: str
    colour: str
    mask: np.ndarray  # full shape, before occlusion


def _place(rng, h, w, shape: str, size: str, anchor: Obj | None) -> tuple[float, float, float, float]:
    lo, hi = SIZE_RANGES[size]
    r = float(np.sqrt(rng.uniform(lo, hi) / AREA_FACTOR[shape]))
    if anchor is not None:  # overlap an earlier object to guarantee partial occlusion
        ys, xs = np.nonzero(anchor.mask)
        k = rng.integers(len(xs))
        cx, cy = xs[k] + rng.uniform(-r, r) * 0.5, ys[k] + rng.uniform(-r, r) * 0.5
    else:
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
    return cx, cy, r, rng.uniform(0, 2 * np.pi)


def make_scene(seed: int, index: int, height: int = 240, width: int = 320, min_objects: int = 3,
               max_objects: int = 8) -> dict:
    """One scene: {"image": (H, W, 3) uint8, "labels": (H, W) int32, "objects": [{category, colour,
    description, size, full_area (before occlusion)}] in label order (label k+1 = objects[k])}. Deterministic in (seed, index, size)."""
    rng = np.random.default_rng([seed, index, height, width, VERSION])
    h, w = height, width
    n_obj = int(rng.integers(min_objects, max_objects + 1))
    weights = np.array([c[2] for c in CATEGORIES])
    pairs = [(c, col) for c in range(len(CATEGORIES)) for col in range(len(COLOURS))]
    pair_w = np.array([weights[c] for c, _ in pairs])
    order = rng.choice(len(pairs), size=n_obj, replace=False, p=pair_w / pair_w.sum())
    extra = [str(s) for s in rng.choice(["large", "medium", "small", "small"], n_obj - 3)]
    sizes = sorted(["large", "medium", "small"] + extra, key=("large", "medium", "small").index)  # big at the back
    labels = np.zeros((h, w), np.int32)
    objs: list[Obj] = []
    for k, pair_idx in enumerate(order):
        cat, col = CATEGORIES[pairs[pair_idx][0]][0], list(COLOURS)[pairs[pair_idx][1]]
        for attempt in range(60):
            anchor = objs[0] if len(objs) == 1 and attempt < 40 else None
            cx, cy, r, ang = _place(rng, h, w, cat, sizes[k], anchor)
            full = _shape_mask(cat, cx, cy, r, ang, h, w)
            if full.sum() < 50:
                continue
            trial = np.where(full, k + 1, labels)
            vis = [(trial == j + 1).sum() / max(o.mask.sum(), 1) for j, o in enumerate(objs)]
            if all(v >= 0.5 for v in vis) and all(size_word((trial == j + 1).sum()) == sizes[j]
                                                   for j in range(len(objs))) \
                    and size_word(full.sum()) == sizes[k]:
                labels = trial
                objs.append(Obj(cat, col, full))
                break
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(70, 150, 3), rng.uniform(70, 150, 3)
    t = (xx / w * np.cos(rng.uniform(0, np.pi)) + yy / h * np.sin(rng.uniform(0, np.pi)))[..., None]
    img = c0 * (1 - t) + c1 * t + rng.normal(0, 6, (h, w, 1))
    for j, o in enumerate(objs):
        sel = labels == j + 1
        if sel.any():
            shade = np.asarray(COLOURS[o.colour], np.float32)[None] * _texture(rng, h, w)[sel][:, None]
            img[sel] = shade
    image = np.clip(img, 0, 255).astype(np.uint8)
    objects = []
    for j, o in enumerate(objs):
        size = size_word(int((labels == j + 1).sum()))
        objects.append({"category": o.category, "colour": o.colour, "size": size, "full_area": int(o.mask.sum()),
                        "description": f"{size} {o.colour} {o.category}"})
    return {"image": image, "labels": labels, "objects": objects}


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another label (a one-pixel contour)."""
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def _load(item: Item, params: dict, instances: list[Instance]) -> Sample:
    scene = make_scene(params["seed"], item.meta["index"], params["height"], params["width"],
                       params["min_objects"], params["max_objects"])
    labels = scene["labels"]
    return Sample(image=scene["image"], instances=instances, boundaries=[boundary_map(labels)],
                  segmentations=[labels])


def open_synthetic(n: int | str = 8, seed: int = 0, *, height: int = 240, width: int = 320, min_objects: int = 3,
                   max_objects: int = 8, cache: str | Path | None = None, name: str = "synthetic",
                   **_: Any) -> Dataset:
    """``n`` deterministic scenes (``synthetic:N`` on the command line); writes/points at the GT JSON."""
    from sam_bench.config import cache_dir
    from sam_bench.results import atomic_write_text

    try:
        n = int(n)
    except ValueError:
        raise ConfigError(f"synthetic:{n}: the scene count must be an integer") from None
    if n < 1 or not 3 <= min_objects <= max_objects or height < 160 or width < 160:
        raise ConfigError(f"synthetic: need n >= 1, 3 <= min_objects <= max_objects, and an image of at least "
                          f"160x160 (got n={n}, objects {min_objects}-{max_objects}, {width}x{height})")
    params = {"n": n, "seed": int(seed), "height": height, "width": width, "min_objects": min_objects,
              "max_objects": max_objects, "version": VERSION}
    cat_ids = {c[0]: k + 1 for k, c in enumerate(CATEGORIES)}
    images, anns, items = [], [], []
    for i in range(n):
        scene = make_scene(params["seed"], i, height, width, min_objects, max_objects)
        rles = M.labels_to_rles(scene["labels"])
        image_id = i + 1
        present = {cat_ids[o["category"]] for o in scene["objects"]}
        images.append({"id": image_id, "file_name": f"synthetic_{i:04d}.png", "height": height, "width": width,
                       "neg_category_ids": sorted(set(cat_ids.values()) - present),
                       "not_exhaustive_category_ids": []})
        instances = []
        for j, obj in enumerate(scene["objects"]):
            if j + 1 not in rles:
                continue
            rle = rles[j + 1]
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cat_ids[obj["category"]],
                   "segmentation": rle, "area": float(M.area(rle)), "bbox": M.bbox(rle), "iscrowd": 0,
                   "description": obj["description"]}
            anns.append(ann)
            instances.append(Instance(id=ann["id"], rle=rle, category_id=ann["category_id"], area=ann["area"],
                                      bbox=ann["bbox"], texts=[obj["description"]]))
        items.append(Item(id=f"synthetic_{i:04d}", image_id=image_id, height=height, width=width,
                          meta={"index": i, "num_masks": len(instances)},
                          loader=lambda it, inst=instances: _load(it, params, inst)))
    counts = {cid: sum(1 for a in anns if a["category_id"] == cid) for cid in cat_ids.values()}
    img_counts = {cid: len({a["image_id"] for a in anns if a["category_id"] == cid}) for cid in cat_ids.values()}
    categories = [{"id": cat_ids[c], "name": c, "synonyms": [c], "frequency": f, "def": f"a {c} shape",
                   "synset": f"{c}.n.01", "instance_count": counts[cat_ids[c]], "image_count": img_counts[cat_ids[c]]}
                  for c, f, _ in CATEGORIES]
    gt = {"info": {"description": "sam-bench synthetic scenes", "params": params}, "licenses": [],
          "images": images, "annotations": anns, "categories": categories}
    text = json.dumps(gt)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = Path(cache or cache_dir()) / "synthetic" / f"synthetic-n{n}-seed{seed}-{width}x{height}-{digest}.json"
    if not path.is_file():
        atomic_write_text(path, text)
    return Dataset(name=name, items=items, format="synthetic", domain="synthetic shapes",
                   categories={c["id"]: {k: v for k, v in c.items() if k != "id"} for c in categories},
                   gt_json=path, meta={"params": params, "image_ids": [it.image_id for it in items]})
