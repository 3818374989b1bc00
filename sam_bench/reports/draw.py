"""Pure drawing for the report's gallery: arrays in, a Pillow image out; no file is read or written.

Coordinates are image pixels: points (x, y), boxes XYXY. Masks are (H, W) bool of the image's
size. Every picture is scaled so its longer side is at most ``max_side`` pixels before drawing,
so outlines, dots and text keep one size whatever the dataset's resolution.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

GT_OUTLINE = (255, 255, 255)
PRED_FILL = (30, 144, 255)  # the prediction of a one-mask picture
POSITIVE, NEGATIVE = (0, 220, 0), (230, 0, 0)
BOX = (255, 215, 0)
ALPHA = 0.5


def palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct colours (matplotlib's tab20, then hsv for more)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"] if n <= 20 else colormaps["hsv"].resampled(n)
    return [tuple(int(255 * c) for c in cmap(i % cmap.N)[:3]) for i in range(n)]


def scale_for(shape: Sequence[int], max_side: int) -> float:
    """The factor that brings an (H, W, ...) picture's longer side to at most ``max_side``."""
    return min(1.0, max_side / max(shape[0], shape[1]))


def _resize(arr: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    import cv2

    if arr.shape[1] == size[0] and arr.shape[0] == size[1]:
        return arr
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    out = cv2.resize(arr.astype(np.uint8), size, interpolation=interp)
    return out.astype(bool) if arr.dtype == bool else out


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """(H, W) bool: the pixels of ``mask`` within ``width`` of its boundary."""
    import cv2

    m = mask.astype(np.uint8)
    kernel = np.ones((2 * width - 1, 2 * width - 1), np.uint8)
    return (m - cv2.erode(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)).astype(bool)


def overlay(image: np.ndarray, *, gt: Sequence[np.ndarray] = (), pred: Sequence[np.ndarray] = (),
            colours: Sequence[tuple[int, int, int]] | None = None, clicks: Sequence[Sequence[float]] = (),
            boxes: Sequence[Sequence[float] | None] = (), text: str | None = None, max_side: int = 384):
    """The (H, W, 3) uint8 image with each ``pred`` mask filled (``colours``, default one blue), each
    ``gt`` mask outlined in white, ``clicks`` [x, y, positive] as green (positive) / red dots,
    ``boxes`` drawn and ``text`` written on a dark band at the top; a Pillow RGB image."""
    from PIL import Image, ImageDraw

    s = scale_for(image.shape, max_side)
    size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
    canvas = _resize(image, size, nearest=False).astype(np.float32)
    colours = list(colours) if colours is not None else [PRED_FILL] * len(pred)
    for m, c in zip(pred, colours):
        small = _resize(m, size, nearest=True)
        canvas[small] = (1 - ALPHA) * canvas[small] + ALPHA * np.asarray(c, np.float32)
    for m in gt:
        canvas[outline(_resize(m, size, nearest=True))] = GT_OUTLINE
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for b in boxes:
        if b is not None:
            d.rectangle([b[0] * s, b[1] * s, b[2] * s, b[3] * s], outline=BOX, width=2)
    r = max(3, round(max_side / 80))
    for x, y, positive in clicks:
        cx, cy = (x + 0.5) * s, (y + 0.5) * s
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=POSITIVE if positive else NEGATIVE, outline=(0, 0, 0))
    if text:
        write_band(img, text)
    return img


def write_band(img, text: str) -> None:
    """``text`` on a dark band across the top of ``img`` (in place), cut to the width."""
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    font_h = 12
    keep = text
    while keep and d.textlength(keep) > img.width - 8:
        keep = keep[:-2]
    shown = keep if keep == text else keep[:-1] + "..."
    d.rectangle([0, 0, img.width, font_h + 6], fill=(0, 0, 0))
    d.text((4, 3), shown, fill=(255, 255, 255))


def boundary_map(boundaries: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8: the annotators' boundaries, black on white, darker where more of them agree."""
    agree = np.mean([b.astype(np.float32) for b in boundaries], axis=0) if len(boundaries) else None
    if agree is None:
        raise ValueError("boundary_map needs at least one annotator's boundaries")
    grey = (255 * (1 - np.clip(0.3 + agree, 0, 1) * (agree > 0))).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def edge_panel(edge: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: a binary edge map, black on white."""
    grey = np.where(edge, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def thicken(edge: np.ndarray, s: float) -> np.ndarray:
    """A one-pixel map dilated so that it survives being scaled by ``s`` (< 1) for display."""
    import cv2

    k = max(1, int(round(1 / max(s, 1e-6))))
    return cv2.dilate(edge.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool) if k > 1 else edge


def side_by_side(panels: Sequence[np.ndarray], max_side: int = 256, gap: int = 4):
    """(H, W, 3) uint8 panels of one size, each scaled to ``max_side``, in a row; a Pillow image."""
    from PIL import Image

    s = scale_for(panels[0].shape, max_side)
    size = (max(1, round(panels[0].shape[1] * s)), max(1, round(panels[0].shape[0] * s)))
    small = [_resize(p, size, nearest=False) for p in panels]
    out = np.full((size[1], len(small) * size[0] + gap * (len(small) - 1), 3), 255, np.uint8)
    for i, p in enumerate(small):
        out[:, i * (size[0] + gap): i * (size[0] + gap) + size[0]] = p
    return Image.fromarray(out)


def encode(img, fmt: str = "JPEG", quality: int = 85) -> bytes:
    """The image's file bytes (JPEG by default: photographs with overlays, small)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()
