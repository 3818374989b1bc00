"""Structured-edges non-maximum suppression (Dollar & Zitnick's ``edgesNms``), vectorised.

As in the toolbox's ``edgesEval``/``edgesNms``: the map is smoothed with a radius-1 triangle
filter; orientation comes from the second derivatives of a radius-4 triangle-smoothed copy,
``O = mod(atan(Oyy * sign(-Oxy) / (Oxx + 1e-5)), pi)``; a pixel is suppressed when its value times
``multiplier`` is below the bilinearly interpolated value at distance 1..``radius`` along the
normal; values within ``border`` pixels of the image edge are scaled down linearly.
"""

from __future__ import annotations

import numpy as np


def conv_tri(image: np.ndarray, r: float) -> np.ndarray:
    """The toolbox's ``convTri``: separable triangle filter of radius ``r``, symmetric padding."""
    if r == 0:
        return image
    if r < 1:
        p = 12 / r / (r + 2) - 2
        f = np.array([1, p, 1]) / (2 + p)
        r = 1
    else:
        r = int(r)
        f = np.concatenate([np.arange(1, r + 2), np.arange(r, 0, -1)]) / (r + 1) ** 2
    from scipy import ndimage as ndi

    out = ndi.correlate1d(image, f, axis=0, mode="reflect")
    return ndi.correlate1d(out, f, axis=1, mode="reflect")


def orientation(edge: np.ndarray) -> np.ndarray:
    """(H, W) edge normal angle in [0, pi) from the radius-4 triangle-smoothed map."""
    e = conv_tri(edge, 4)
    oy, ox = np.gradient(e)
    _, oxx = np.gradient(ox)
    oyy, oxy = np.gradient(oy)
    return np.mod(np.arctan(oyy * np.sign(-oxy) / (oxx + 1e-5)), np.pi)


def _bilinear(e: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = e.shape
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    dx, dy = x - x0, y - y0
    return (e[y0, x0] * (1 - dx) * (1 - dy) + e[y0, x0 + 1] * dx * (1 - dy)
            + e[y0 + 1, x0] * (1 - dx) * dy + e[y0 + 1, x0 + 1] * dx * dy)


def edge_nms(edge: np.ndarray, radius: int = 1, border: int = 5, multiplier: float = 1.01,
             smooth: bool = True) -> np.ndarray:
    """Thin a soft (H, W) edge map in [0, 1] along its normals; returns float32 (H, W)."""
    e = np.asarray(edge, np.float64)
    if smooth:
        e = conv_tri(e, 1)
    o = orientation(e)
    h, w = e.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cos, sin = np.cos(o), np.sin(o)
    out = e.copy()
    scaled = e * multiplier
    for d in range(-radius, radius + 1):
        if d == 0:
            continue
        out[scaled < _bilinear(e, xx + d * cos, yy + d * sin)] = 0
    s = min(border, w // 2, h // 2)
    if s > 0:
        ramp = np.arange(s) / s
        out[:, :s] *= ramp[None, :]
        out[:, w - s:] *= ramp[None, ::-1]
        out[:s, :] *= ramp[:, None]
        out[h - s:, :] *= ramp[::-1, None]
    return out.astype(np.float32)
