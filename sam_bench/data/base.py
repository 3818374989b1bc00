"""What every dataset gives: items of one image each, loaded lazily.

``Dataset.items`` is a cheap list of ``Item`` (ids and file paths only); ``Item.load()`` reads the
image and its annotations into a ``Sample`` and raises ``BadInput`` (naming the file) when it
cannot, which the runner records as a skip. Masks stay as pycocotools RLE until a metric needs
pixels (``Instance.mask()``).

A dataset is named by a catalog name or an ad hoc ``format:path`` spec and opened by
``sam_bench.data.catalog.open_dataset``; this module holds only the contracts every format
fills in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sam_bench.errors import BadInput


@dataclass
class Instance:
    """One annotated object. ``rle``: pycocotools RLE dict (counts as str or bytes), image-sized."""

    id: int | str
    rle: dict
    category_id: int | None = None
    iscrowd: bool = False
    area: float | None = None
    bbox: list[float] | None = None  # XYWH, COCO convention
    texts: list[str] = field(default_factory=list)  # referring expressions / descriptions

    def mask(self) -> np.ndarray:
        """(H, W) bool."""
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.rle).astype(bool)


@dataclass
class Sample:
    """A loaded item: the image and whatever annotations the format has."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    instances: list[Instance] = field(default_factory=list)
    ignore: np.ndarray | None = None  # (H, W) bool, pixels excluded from IoU (GrabCut band, crowd)
    boundaries: list[np.ndarray] | None = None  # per annotator (H, W) bool, edge datasets
    segmentations: list[np.ndarray] | None = None  # per annotator (H, W) int labels, edge datasets


@dataclass
class Item:
    """One image of a dataset, not yet loaded. ``id`` is unique within its dataset.

    Every other file the item reads (a mask, a ground-truth file) is named in ``meta`` under a key
    ending in ``_path``, so the run's input fingerprint covers it (``data.fingerprint``)."""

    id: str
    loader: Callable[["Item"], Sample]
    image_path: Path | None = None
    image_id: int | None = None  # the COCO/LVIS image id where there is one
    height: int | None = None
    width: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Sample:
        return self.loader(self)


def is_entry_skip(skip: dict) -> bool:
    """A skip of one annotation (``IMG#annID``) or detection (``#detK``) inside an item, not of the item
    itself: reported, but not an image that is missing or could not be used."""
    item = str(skip.get("item", ""))
    return "#ann" in item or "#det" in item


@dataclass
class Dataset:
    """A named list of items plus metadata.

    ``categories``: {id: {"name", "frequency"?}}; ``gt_json``: path of a COCO/LVIS-style JSON for
    evaluators that read it; ``missing``: items listed by the annotations whose image is absent,
    as {"item": id, "reason": str} (reported as skips, never silently dropped); ``gt``: the
    ground truth that passed the open-time checks (``sam_bench.data.validate.CheckedGT``), which
    evaluators score instead of the raw file (None: the format has no such checks).
    """

    name: str
    items: list[Item]
    format: str
    root: Path | None = None
    domain: str | None = None
    categories: dict[int, dict] = field(default_factory=dict)
    gt_json: Path | None = None
    missing: list[dict] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    gt: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.items)


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; ``BadInput`` naming the file if it is missing or cannot be decoded."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: image file is missing")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise BadInput(f"{path}: cannot decode image (corrupt or not an image)")
    return np.ascontiguousarray(img[:, :, ::-1])
