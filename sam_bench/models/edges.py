"""Classical edge models (``sobel``, ``canny``) and precomputed maps (``edges-from:DIR``).

Each returns a soft (H, W) map in [0, 1] *before* edge NMS (the edges task applies the
structured-edges NMS to every model alike), so the benchmark's threshold sweep sees a ranking.

- ``sobel``: magnitude of the 3x3 Sobel gradient of the grey image (ITU-R 601 luma), optionally
  after Gaussian smoothing (``sigma``, default 0: the plain operator), divided by its image maximum.
- ``canny``: Canny's detector. ``mode="soft"`` (default) is Canny's continuous stage: Gaussian
  smoothing at scale ``sigma`` then the Sobel gradient magnitude (its own non-maximum suppression is
  the task's edge NMS). ``mode="hysteresis"`` runs OpenCV's complete Canny (NMS + hysteresis, low
  threshold = ``low_ratio`` x high) at ``levels`` high thresholds evenly spaced below the image's
  maximum gradient and gives each pixel the highest level at which it is an edge.
  ``sigma`` = 2.0 was chosen on BSDS500 val (see ``tasks/edges.toml``).
- ``edges-from:DIR``: ``DIR/<image id>.npy`` (float, already in [0, 1]) or ``DIR/<image id>.png``
  (8- or 16-bit grey, scaled by 255 or 65535), e.g. HED/RCF outputs or ``--save-edges`` maps.
  Many published pipelines save their maps *after* NMS; re-applying it moves the scores (BSDS500
  test: ODS .609 -> .602), so the edges task measures ``thin_fraction`` of every precomputed map
  and refuses a thin one unless ``--nms`` or ``--no-nms`` says what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.errors import BadInput, ConfigError
from sam_bench.models.base import EdgeModel, ModelInfo
from sam_bench.models.options import declare, defaults_of

log = logging.getLogger("sam_bench")

CANNY_SIGMA = 2.0  # chosen on BSDS500 val, never on test (see tasks/edges.toml)
CANNY_MODES = ("soft", "hysteresis")


def grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float64 luma in [0, 1]."""
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0 if image.ndim == 3 \
        else image.astype(np.float64) / 255.0


def smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` px (kernel to 4 sigma; 0 = none)."""
    import cv2

    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def sobel_xy(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 Sobel derivatives (d/dx, d/dy) of an (H, W) float image, reflected borders."""
    import cv2

    dx = cv2.Sobel(img, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    dy = cv2.Sobel(img, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return dx, dy


def normalise(m: np.ndarray) -> np.ndarray:
    """Divide by the maximum (all-zero stays zero); float32 in [0, 1]."""
    top = float(m.max()) if m.size else 0.0
    return (m / top if top > 0 else np.zeros_like(m)).astype(np.float32)


def sobel_magnitude(image: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Normalised Sobel gradient magnitude of the (optionally smoothed) grey image."""
    dx, dy = sobel_xy(smooth(grey(image), sigma))
    return normalise(np.hypot(dx, dy))


def canny_levels(image: np.ndarray, sigma: float, levels: int, low_ratio: float) -> np.ndarray:
    """Highest hysteresis level (k / levels) at which each pixel is a Canny edge, float32 (H, W).

    Level k = 1..levels uses high threshold k / (levels + 1) x the image's maximum gradient and
    low = ``low_ratio`` x high; Canny's outputs shrink as both thresholds rise, so the levels nest.
    """
    import cv2

    dx, dy = sobel_xy(smooth(grey(image), sigma) * 255.0)
    mag = np.hypot(dx, dy)
    top = float(mag.max())
    out = np.zeros(mag.shape, np.float32)
    if top <= 0:
        return out
    scale = min(1.0, 32000.0 / max(np.abs(dx).max(), np.abs(dy).max()))  # int16 range for OpenCV
    dx16, dy16 = np.rint(dx * scale).astype(np.int16), np.rint(dy * scale).astype(np.int16)
    for k in range(1, levels + 1):
        high = k / (levels + 1) * top * scale
        edges = cv2.Canny(dx16, dy16, low_ratio * high, high, L2gradient=True)
        if not edges.any():
            break
        out[edges > 0] = k / levels
    return out


THIN_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (dy, dx): horizontal, vertical, both diagonals
THIN_FRACTION = 0.5  # maps at or above this thin_fraction are taken as already NMS-thinned


def thin_fraction(edge: np.ndarray) -> float:
    """Fraction of the nonzero pixels of an (H, W) map lying on a one-pixel-wide line.

    A pixel counts when, in at least one of the four directions (horizontal, vertical, the two
    diagonals), both its neighbours are zero (outside the image counts as zero): true across
    every one-pixel ridge whatever its orientation, false inside any band two or more pixels
    wide. NMS sets everything off the ridges to exactly zero, so NMS-thinned maps score high
    while soft maps, whose nonzero pixels form bands or fill the image, score near zero; on
    12 BSDS500 test images: Sobel, smoothed Sobel and blurred maps (float or 8-bit) 0.000-0.004,
    the same maps after ``edge_nms`` 0.84-0.96, Canny hysteresis 0.98. Chosen over "re-running NMS
    changes little" because it needs no orientation estimate and takes a few boolean shifts.
    An all-zero map gives 0.
    """
    nz = np.asarray(edge) > 0
    n = int(nz.sum())
    if n == 0:
        return 0.0
    h, w = nz.shape
    pad = np.pad(nz, 1)
    thin = np.zeros_like(nz)
    for dy, dx in THIN_DIRECTIONS:
        before = pad[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        after = pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        thin |= ~before & ~after
    return float((thin & nz).sum()) / n


def _no_weights(name: str, checkpoint: str | None, untrained: bool) -> None:
    if checkpoint:
        raise ConfigError(f"{name} has no weights: --checkpoint {checkpoint} cannot be used with it")
    if untrained:
        log.info("%s has no weights: --untrained changes nothing", name)


class SobelEdges(EdgeModel):
    """Sobel gradient magnitude (paper Table 3's "Sobel filter" row)."""

    def __init__(self, sigma: float = 0.0):
        if sigma < 0:
            raise ConfigError(f"sobel: sigma must be >= 0, got {sigma}")
        super().__init__(ModelInfo("sobel", extra={"classical": True, "sigma": float(sigma), "grey": "ITU-R 601 luma",
                                                   "normalise": "image max"}))
        self.sigma = float(sigma)

    def _edges(self, image: np.ndarray) -> np.ndarray:
        return sobel_magnitude(image, self.sigma)


class CannyEdges(EdgeModel):
    """Canny's detector as a soft map (paper Table 3's "Canny" row)."""

    def __init__(self, sigma: float = CANNY_SIGMA, mode: str = "soft", levels: int = 99, low_ratio: float = 0.4):
        import cv2

        if sigma < 0:
            raise ConfigError(f"canny: sigma must be >= 0, got {sigma}")
        if mode not in CANNY_MODES:
            raise ConfigError(f"canny: mode {mode!r}; choose one of {', '.join(CANNY_MODES)}")
        if levels < 1 or not 0 < low_ratio <= 1:
            raise ConfigError(f"canny: levels must be >= 1 and low_ratio in (0, 1], got {levels}, {low_ratio}")
        extra = {"classical": True, "sigma": float(sigma), "mode": mode}
        if mode == "hysteresis":
            extra.update(levels=int(levels), low_ratio=float(low_ratio), opencv=cv2.__version__)
        super().__init__(ModelInfo("canny", extra=extra))
        self.sigma, self.mode, self.levels, self.low_ratio = float(sigma), mode, int(levels), float(low_ratio)

    def _edges(self, image: np.ndarray) -> np.ndarray:
        if self.mode == "soft":
            return sobel_magnitude(image, self.sigma)
        return canny_levels(image, self.sigma, self.levels, self.low_ratio)


class EdgesFromDir(EdgeModel):
    """Precomputed edge maps, one file per image id: ``<id>.npy`` (preferred) or ``<id>.png``."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise ConfigError(f"edges-from:{path}: no such directory")
        super().__init__(ModelInfo(f"edges-from:{self.path}", extra={"precomputed": True, "path": str(self.path)}))

    def _edges(self, image: np.ndarray) -> np.ndarray:
        image_id = getattr(self, "_image_id", None)
        if image_id is None:
            raise BadInput("edges-from: the item has no image id to look its map up by")
        m = read_edge_map(self.path, str(image_id))
        if m.shape != image.shape[:2]:
            raise BadInput(f"{self.path}/{image_id}: edge map is {m.shape[1]}x{m.shape[0]} but the image is "
                           f"{image.shape[1]}x{image.shape[0]} (WxH)")
        return m


def read_edge_map(folder: Path, image_id: str) -> np.ndarray:
    """(H, W) float32 in [0, 1] from ``folder/<image_id>.npy`` or ``.png``; ``BadInput`` naming the file."""
    import cv2

    npy, png = folder / f"{image_id}.npy", folder / f"{image_id}.png"
    if npy.is_file():
        try:
            m = np.load(npy, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise BadInput(f"{npy}: cannot read ({exc})") from None
        m = np.squeeze(m)
        if m.ndim != 2 or not np.issubdtype(m.dtype, np.number):
            raise BadInput(f"{npy}: expected an (H, W) numeric array, got {m.shape} {m.dtype}")
        m = m.astype(np.float32)
        if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
            raise BadInput(f"{npy}: values must be finite and in [0, 1] (found {np.nanmin(m):.3g}..{np.nanmax(m):.3g})")
        return m
    if png.is_file():
        m = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise BadInput(f"{png}: cannot decode PNG")
        if m.ndim == 3:
            if not all(np.array_equal(m[..., 0], m[..., c]) for c in range(1, m.shape[2])):
                raise BadInput(f"{png}: colour PNG; an edge map must be grey")
            m = m[..., 0]
        if m.dtype == np.uint8:
            return m.astype(np.float32) / 255.0
        if m.dtype == np.uint16:
            return m.astype(np.float32) / 65535.0
        raise BadInput(f"{png}: unsupported PNG sample type {m.dtype}")
    raise BadInput(f"{folder}: no edge map {image_id}.npy or {image_id}.png")


@declare("sobel", options=defaults_of(SobelEdges))
def build_sobel(checkpoint: str | None = None, untrained: bool = False, device: Any = None,
                dtype: str | None = None, **opts: Any) -> SobelEdges:
    """``sobel``; option ``sigma`` (Gaussian pre-smoothing, default 0)."""
    _no_weights("sobel", checkpoint, untrained)
    return SobelEdges(**opts)


@declare("canny", options=defaults_of(CannyEdges), choices={"mode": CANNY_MODES})
def build_canny(checkpoint: str | None = None, untrained: bool = False, device: Any = None,
                dtype: str | None = None, **opts: Any) -> CannyEdges:
    """``canny``; options ``sigma`` (2.0), ``mode`` (soft | hysteresis), ``levels`` (99), ``low_ratio`` (0.4)."""
    _no_weights("canny", checkpoint, untrained)
    return CannyEdges(**opts)


@declare("edges-from")
def build_edges_from(checkpoint: str | None = None, untrained: bool = False, device: Any = None,
                     dtype: str | None = None, path: str | None = None) -> EdgesFromDir:
    """``edges-from:DIR`` (or option ``path``): precomputed maps in DIR."""
    if not path:
        raise ConfigError("edges-from needs a directory: --model edges-from:DIR")
    _no_weights("edges-from", checkpoint, untrained)
    return EdgesFromDir(path)
