"""Converters from the native formats of the 23 single-point datasets to COCO instances JSON.

Each module exposes ``convert(folder, out_json, **args) -> dict`` (a summary with counts) and
writes, atomically, a COCO file whose ``file_name``s are relative to the dataset ``folder``; the
catalog then reads it with the COCO reader (card: ``ann_json = "sam_bench/instances.json"``,
``image_dir = "."``). ``CocoBuilder`` is the shared writer.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.data import masks as M
from sam_bench.errors import BadInput, ConfigError

CONVERTERS = ("via", "object_pngs", "instance_png", "panoptic", "semantic", "youtube_vis", "visor", "woodscape",
              "hypersim", "coco_merge")


class CocoBuilder:
    """Collects images, masks and categories; ``write`` saves a COCO instances JSON atomically."""

    def __init__(self, folder: Path, source: str):
        self.folder = Path(folder)
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.categories: dict[str, int] = {}
        self.source = source
        self.skipped: list[str] = []

    def category(self, name: Any) -> int:
        name = str(name)
        return self.categories.setdefault(name, len(self.categories) + 1)

    def add_image(self, path: Path, height: int, width: int, **extra: Any) -> int:
        image_id = len(self.images) + 1
        rel = Path(path).resolve().relative_to(self.folder.resolve()).as_posix()
        self.images.append({"id": image_id, "file_name": rel, "height": int(height), "width": int(width), **extra})
        return image_id

    def add_mask(self, image_id: int, mask: np.ndarray | None = None, *, rle: dict | None = None,
                 category: Any = "object", where: str = "") -> bool:
        """Add one object (bool mask or RLE); empty masks are listed in ``skipped``, not written."""
        rle = rle if rle is not None else M.encode(mask)
        area = M.area(rle)
        if area == 0:
            self.skipped.append(f"{where or f'image {image_id}'}: empty mask of {category!r}")
            return False
        self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id,
                                 "category_id": self.category(category), "segmentation": rle,
                                 "area": float(area), "bbox": M.bbox(rle), "iscrowd": 0})
        return True

    def add_polygons(self, image_id: int, polygons: list, height: int, width: int, category: Any = "object",
                     where: str = "") -> bool:
        flat = [list(np.asarray(p, dtype=float).ravel()) for p in polygons]
        problem = M.polygon_problem(flat, height, width, tol=2.0)
        if problem:
            self.skipped.append(f"{where}: {problem}")
            return False
        return self.add_mask(image_id, rle=M.polygons_to_rle(flat, height, width), category=category, where=where)

    def write(self, out_json: Path) -> dict:
        from sam_bench.results import atomic_write_json

        if not self.images:
            raise BadInput(f"{self.folder}: the {self.source} converter found no images")
        atomic_write_json(out_json, {
            "info": {"description": f"converted by sam-bench from {self.source}", "source": str(self.folder)},
            "images": self.images, "annotations": self.annotations,
            "categories": [{"id": i, "name": n} for n, i in self.categories.items()]})
        return {"images": len(self.images), "annotations": len(self.annotations), "skipped": self.skipped,
                "out": str(out_json)}


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header (PIL does not decode pixels); ``BadInput`` naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read image ({exc})") from None


def read_label_png(path: Path) -> np.ndarray:
    """(H, W) or (H, W, 3) integers of a label/instance PNG, bit depth and palette indices kept."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read label image ({exc})") from None


def convert(name: str, folder: Path, out_json: Path, **args: Any) -> dict:
    """Run converter ``name`` (a module of this package) on a dataset folder."""
    if name not in CONVERTERS:
        raise ConfigError(f"unknown converter {name!r}; known: {', '.join(CONVERTERS)}")
    module = importlib.import_module(f"sam_bench.data.converters.{name}")
    return module.convert(Path(folder), Path(out_json), **args)
