"""Per-object mask PNGs -> COCO (BBBC038v1 ``<id>/images/<id>.png`` + ``<id>/masks/*.png``; DOORS).

``layout="bbbc"``: every sub-folder of ``root`` is one image with one PNG per object in ``masks/``.
``layout="pairs"``: ``images`` glob + ``masks`` template (``{stem}`` replaced) naming one or more
mask files per image (a glob pattern is allowed); each non-zero mask file is one object.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.data.converters import CocoBuilder, image_size, read_label_png


def _add_mask_file(b: CocoBuilder, image_id: int, mpath: Path, hw: tuple[int, int], category: str) -> None:
    arr = read_label_png(mpath)
    arr = arr.max(axis=2) if arr.ndim == 3 else arr
    if arr.shape[:2] != hw:
        b.skipped.append(f"{mpath}: mask is {arr.shape[1]}x{arr.shape[0]}, image {hw[1]}x{hw[0]}")
        return
    b.add_mask(image_id, arr > 0, category=category, where=str(mpath))


def convert(folder: Path, out_json: Path, layout: str = "bbbc", root: str = ".", images: str = "images/*.png",
            masks: str = "masks/{stem}.png", category: str = "object") -> dict:
    b = CocoBuilder(folder, f"per-object PNGs ({layout})")
    base = folder / root
    if layout == "bbbc":
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            imgs = sorted((sub / "images").glob("*.png"))
            if not imgs:
                b.skipped.append(f"{sub}: no images/*.png")
                continue
            hw = image_size(imgs[0])
            image_id = b.add_image(imgs[0], *hw)
            for mpath in sorted((sub / "masks").glob("*.png")):
                _add_mask_file(b, image_id, mpath, hw, category)
    else:
        for img in sorted(base.glob(images)):
            found = sorted(base.glob(masks.format(stem=img.stem)))
            if not found:
                b.skipped.append(f"{img}: no mask matching {masks.format(stem=img.stem)}")
                continue
            hw = image_size(img)
            image_id = b.add_image(img, *hw)
            for mpath in found:
                _add_mask_file(b, image_id, mpath, hw, category)
    return b.write(out_json)
