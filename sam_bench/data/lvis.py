"""LVIS v1 and v0.5 JSON via the lvis API, and ``lvis_api()``: the one place that patches it.

lvis 0.5.3 calls ``np.float`` (removed in NumPy 2); ``lvis_api()`` restores that alias only if
it is missing and returns the module, so every caller (proposals, instances) imports it from here.

Image files are resolved per image entry: v0.5 names (``COCO_val2014_<id>.jpg``) and v1 entries
(``coco_url`` only, images from COCO train2017 and val2017) map to the COCO 2017 files present
(``<dir>/<id:012d>.jpg``, ``<dir>/<split>/...``, ``<dir>/../<split>/...``). Absent images are
listed in ``Dataset.missing``; ``Dataset.meta["image_ids"]`` holds the ids of present ones, so an
evaluator can restrict the ground truth to them. Each item's ``meta`` keeps
``neg_category_ids`` and ``not_exhaustive_category_ids``. Entries are checked at open time as for
COCO (``sam_bench.data.coco.instance_dataset``); ``Dataset.gt`` holds the usable ones.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from sam_bench.data.base import Dataset
from sam_bench.data.coco import check_coco_dict, instance_dataset, read_instances
from sam_bench.errors import BadInput

LVIS_IMAGE_KEYS = ("neg_category_ids", "not_exhaustive_category_ids", "coco_url", "file_name")


def lvis_api() -> SimpleNamespace:
    """The lvis package (``LVIS``, ``LVISEval``, ``LVISResults``), usable under NumPy 2."""
    if "float" not in np.__dict__:
        np.float = float  # lvis 0.5.3 eval.py uses np.float, removed in NumPy 1.24
    import lvis

    return SimpleNamespace(LVIS=lvis.LVIS, LVISEval=lvis.LVISEval, LVISResults=lvis.LVISResults, module=lvis)


def lvis_from_dict(data: dict):
    """An ``LVIS`` index over an in-memory dict (the API itself only reads files)."""
    api = lvis_api().LVIS.__new__(lvis_api().LVIS)
    api.logger = logging.getLogger("lvis")
    api.dataset = data
    with contextlib.redirect_stdout(None):
        api._create_index()
    return api


def check_lvis_dict(data: Any, path: Path) -> None:
    check_coco_dict(data, path)
    if data["categories"] and "frequency" not in data["categories"][0]:
        raise BadInput(f"{path}: categories have no 'frequency' (f/c/r); this is COCO, not LVIS: "
                       f"use coco:{path}:IMAGES")


def open_lvis(ann_json: str | Path, image_dir: str | Path | None = None, *, name: str | None = None,
              domain: str | None = None, **_: Any) -> Dataset:
    """An LVIS (v0.5 or v1) JSON plus a folder of COCO 2017 images as a Dataset.

    Images without annotations are kept (LVIS evaluation counts them via negative categories).
    """
    ann_json, data, image_dir = read_instances(ann_json, image_dir, check_lvis_dict)
    ds = instance_dataset(data, image_dir, name=name or f"lvis:{ann_json.stem}", fmt="lvis",
                          gt_json=ann_json, image_meta=LVIS_IMAGE_KEYS)
    ds.domain = domain
    ds.meta["lvis_version"] = "v0.5" if any(str(i.get("file_name", "")).startswith("COCO_")
                                            for i in data["images"][:5]) else "v1"
    ds.meta["frequency_counts"] = {f: sum(1 for c in ds.categories.values() if c.get("frequency") == f)
                                   for f in "fcr"}
    return ds
