"""Image + mask folders of interactive-segmentation benchmarks (GrabCut, Berkeley, DAVIS, COCO-MVal).

One object per image: ``MASK_DIR/<stem>.<ext>`` is the mask of ``IMAGE_DIR/<stem>.<ext>`` (file
names may contain spaces; extensions are matched case-insensitively).

How a mask file is read, so that it means what its authors meant (``read_mask``):

- palette image (PNG/GIF/BMP in PIL mode "P") with a colour palette, DAVIS/PASCAL-VOC style: the
  value is the palette INDEX (the object number), never the colour it is drawn in. Kind ``palette``.
- a palette whose used entries are all grey reads as those grey levels; a colour (RGB) mask as
  the max over its colour channels (RITM's rule); alpha is dropped. Then, like one-channel masks:
- kind ``labels``: every value is a small integer (< 128), or so except for 255 (void), e.g. 0/1
  masks and 0..K label PNGs; 16/32-bit masks are always labels (255 is then a label, not void).
- kind ``grey``: anything else, e.g. 0/255 masks, GrabCut's 0/128/255, anti-aliased masks.

Default rule per kind (``threshold="auto"``, ``ignore_value="auto"``): ``palette`` and ``labels``:
foreground is ``value > 0`` and 255 is void (left out of IoU, DAVIS/VOC convention); ``grey``:
foreground is ``value > 128`` (RITM; on 0/255 masks any midpoint gives the same) and nothing is
ignored. An explicit ``threshold`` (foreground is ``value > threshold``) or ``ignore_value``
(``ignore`` for short; None: ignore nothing) always wins over the kind's default, on the values
above (palette indices for palette masks).

Catalog cards fix RITM's conventions explicitly: GrabCut ``threshold = 128, ignore_value = 128``
(its unlabeled band), Berkeley and COCO-MVal ``threshold = 128``, DAVIS ``threshold = 0`` (any
non-zero value is the object). Ad hoc: ``folder:IMAGES:MASKS:threshold=0:ignore=255``. A mask
with no foreground pixel under its rule is a skip (``BadInput`` naming the file and the rule).
``Dataset.meta["mask_rule"]`` says, in words, how the masks were read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.data import masks as M
from sam_bench.data.base import Dataset, Instance, Item, Sample, read_image
from sam_bench.errors import BadInput, ConfigError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MASK_EXTS = {".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg"}
AUTO = "auto"
VOID = 255
GREY_THRESHOLD = 128
DEFAULTS = {"palette": (0, VOID), "labels": (0, VOID), "labels-wide": (0, None), "grey": (GREY_THRESHOLD, None)}
AUTO_RULE = ("per file: palette PNG -> index > 0, index 255 void; label PNG (values < 128 but 255) -> value > 0, "
             "255 void; other masks (0/255, greyscale, colour max) -> value > 128")


@dataclass(frozen=True)
class MaskValues:
    """A decoded mask: ``values`` (H, W) integers and ``kind`` (palette, labels, labels-wide, grey)."""

    values: np.ndarray
    kind: str


def _decode_pil(path: Path) -> tuple[np.ndarray, bool] | None:
    """(array, is_palette_index) with PIL, alpha dropped and grey palettes resolved; None if PIL cannot."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "PA"):
                idx = np.asarray(img)[..., 0] if mode == "PA" else np.asarray(img)
                pal = np.asarray(img.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
                used = np.unique(idx)
                if len(pal) > used.max() and (pal[used].min(axis=1) == pal[used].max(axis=1)).all():
                    return pal[idx, 0], False
                return idx, True
            if mode in ("RGBA", "LA", "RGBa", "La"):
                img = img.convert("RGB" if mode.startswith("RGB") else "L")
            if mode == "1":
                return np.asarray(img, dtype=np.uint8), False
            return np.asarray(img), False
    except (OSError, ValueError, SyntaxError):
        return None


def _decode_cv2(path: Path) -> np.ndarray | None:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is not None and arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr


def classify(values: np.ndarray) -> str:
    """``labels`` (values < 128, 255 allowed as void, some value in 1..127), ``labels-wide``
    (integers wider than 8 bits) or ``grey`` (anything else); ``values``: (H, W) integers."""
    if values.dtype != np.uint8:
        return "labels-wide"
    present = np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    small = present[(present > 0) & (present < 128)]
    return "labels" if small.size and not ((present >= 128) & (present != VOID)).any() else "grey"


def read_mask(path: Path) -> MaskValues:
    """The mask's values and kind (see module docstring); ``BadInput`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: mask file is missing")
    decoded = _decode_pil(path)
    arr, is_index = decoded if decoded is not None else (_decode_cv2(path), False)
    if arr is None:
        raise BadInput(f"{path}: cannot decode mask (corrupt or not an image)")
    if arr.dtype.kind not in "ui":
        raise BadInput(f"{path}: mask of {arr.dtype} values; expected integer labels or grey levels")
    values = arr.max(axis=2) if arr.ndim == 3 else arr
    return MaskValues(values, "palette" if is_index else classify(values))


def read_mask_values(path: Path) -> np.ndarray:
    """(H, W) integer mask values (palette index, grey level, or max over colour channels)."""
    return read_mask(path).values


def _check_threshold(threshold: Any) -> float | str:
    if threshold is None or threshold == AUTO:
        return AUTO
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ConfigError(f"folder: threshold={threshold!r} is neither a number nor 'auto'")
    return threshold


def _check_ignore(ignore_value: Any, ignore: Any) -> int | str | None:
    if ignore != AUTO and ignore_value != AUTO and ignore != ignore_value:
        raise ConfigError(f"folder: ignore={ignore!r} and ignore_value={ignore_value!r} disagree; give one")
    value = ignore if ignore != AUTO else ignore_value
    if value is not None and value != AUTO and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"folder: ignore={value!r} is neither an integer, 'none' nor 'auto'")
    return value


def rule_for(kind: str, threshold: float | str, ignore: int | str | None) -> tuple[float, int | None]:
    """(threshold, ignore value) used on a mask of ``kind``: explicit settings win over its defaults."""
    t, i = DEFAULTS[kind]
    return (t if threshold == AUTO else threshold), (i if ignore == AUTO else ignore)


def describe(threshold: float | str, ignore: int | str | None) -> str:
    """The mask rule in words, for ``Dataset.meta`` and skip reasons."""
    if threshold == AUTO and ignore == AUTO:
        return AUTO_RULE
    fg = f"value > {threshold} (palette PNGs: index)" if threshold != AUTO else "value > per-file default"
    void = {AUTO: "255 void in palette/label PNGs", None: "nothing ignored"}.get(ignore, f"value {ignore} ignored")
    return f"{fg}; {void}"


def _load(item: Item, threshold: float | str, ignore_value: int | str | None) -> Sample:
    image = read_image(item.image_path)
    mask_path = Path(item.meta["mask_path"])
    mask = read_mask(mask_path)
    M.check_mask_size(mask.values, image, mask_path)
    t, i = rule_for(mask.kind, threshold, ignore_value)
    fg = mask.values > t
    ignore = (mask.values == i) if i is not None else None
    if ignore is not None:
        fg &= ~ignore
    if not fg.any():
        void = f", {i} void" if i is not None else ""
        raise BadInput(f"{mask_path}: mask has no foreground pixel ({mask.kind} mask, rule value > {t}{void}; "
                       f"set threshold=/ignore= if this file means something else)")
    rle = M.encode(fg)
    inst = Instance(id=item.id, rle=rle, category_id=None, area=float(M.area(rle)), bbox=M.bbox(rle))
    return Sample(image=image, instances=[inst], ignore=ignore if ignore is not None and ignore.any() else None)


def _files(folder: Path, exts: set[str]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in exts}


def open_folder(image_dir: str | Path, mask_dir: str | Path, *, name: str | None = None,
                threshold: float | str | None = AUTO, ignore_value: int | str | None = AUTO,
                ignore: int | str | None = AUTO, domain: str | None = None, **_: Any) -> Dataset:
    """One item per image that has a same-stem mask; unmatched images/masks go to ``missing``.

    ``threshold``/``ignore_value`` (alias ``ignore``): see the module docstring; "auto" picks the
    rule per file from its kind.
    """
    threshold, ignore_value = _check_threshold(threshold), _check_ignore(ignore_value, ignore)
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for d, what in ((image_dir, "image"), (mask_dir, "mask")):
        if not d.is_dir():
            raise BadInput(f"{d}: {what} folder not found")
    images, masks = _files(image_dir, IMAGE_EXTS), _files(mask_dir, MASK_EXTS)
    if not images:
        raise BadInput(f"{image_dir}: no images ({', '.join(sorted(IMAGE_EXTS))})")
    items, missing = [], []
    for stem, path in images.items():
        if stem not in masks:
            missing.append({"item": stem, "reason": f"{path}: no mask {mask_dir / stem}.* for this image"})
            continue
        items.append(Item(id=stem, image_path=path, meta={"mask_path": str(masks[stem]), "num_masks": 1},
                          loader=lambda it: _load(it, threshold, ignore_value)))
    for stem in sorted(masks.keys() - images.keys()):
        missing.append({"item": stem, "reason": f"{masks[stem]}: mask without an image in {image_dir}"})
    return Dataset(name=name or f"folder:{image_dir.name}", items=items, format="folder", root=image_dir,
                   domain=domain, missing=missing,
                   meta={"threshold": threshold, "ignore_value": ignore_value, "mask_dir": str(mask_dir),
                         "mask_rule": describe(threshold, ignore_value)})
