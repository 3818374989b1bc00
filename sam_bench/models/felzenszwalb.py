"""``felzenszwalb``: Felzenszwalb-Huttenlocher graph segmentation as an edge model and a proposal model.

FH (IJCV 2004; ``skimage.segmentation.felzenszwalb``) merges pixels of a Gaussian-smoothed image
(``sigma``) into regions under a scale parameter ``k`` (larger k, larger regions). One
segmentation gives binary boundaries; we run it at several scales:

- edges: the fraction of ``scales`` at which a pixel lies on a segment boundary (a pixel whose
  label differs from its right or lower neighbour), so boundaries that survive coarse scales rank
  higher and the threshold sweep sees a ranking. The scales were chosen on BSDS500 val (never
  test; ``tasks/edges.toml``); sigma is FH's recommended 0.8.
- proposals: every segment of every scale (plus, with ``merge_pairs``, the union of every two
  adjacent segments), exact duplicates removed, ranked coarse scale first and by area within a
  scale; the top ``max_masks``. Proposals are made on a copy whose longest side is ``max_side``
  and returned at full resolution.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from sam_bench.errors import ConfigError
from sam_bench.models.base import EdgeModel, ModelInfo, ProposalModel
from sam_bench.models.edges import _no_weights
from sam_bench.models.options import declare, defaults_of
from sam_bench.models.slic_proposals import adjacency

log = logging.getLogger("sam_bench")

EDGE_SCALES = (100, 200, 400, 800, 1600, 3200)  # chosen on BSDS500 val, never on test (see tasks/edges.toml)
SIGMA = 0.8  # FH's own recommendation (not tuned)
MIN_SIZE = 20
PROPOSAL_SCALES = (50, 100, 200, 400, 800, 1600, 3200)


def segment(image: np.ndarray, scale: float, sigma: float = SIGMA, min_size: int = MIN_SIZE) -> np.ndarray:
    """(H, W) int labels of one FH segmentation of an (H, W, 3) uint8 RGB image."""
    from skimage.segmentation import felzenszwalb

    return felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose label differs from the right or lower neighbour (one-pixel-wide)."""
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def boundary_frequency(image: np.ndarray, scales=EDGE_SCALES, sigma: float = SIGMA,
                       min_size: int = MIN_SIZE) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the fraction of ``scales`` whose segmentation has a boundary there."""
    acc = np.zeros(image.shape[:2], np.float32)
    for k in scales:
        acc += boundaries(segment(image, k, sigma, min_size))
    return acc / len(scales)


def segment_proposals(image: np.ndarray, scales=PROPOSAL_SCALES, sigma: float = SIGMA, min_size: int = MIN_SIZE,
                      merge_pairs: bool = False, max_masks: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(K, H, W) bool masks and (K,) scores (descending) from FH segments at ``scales``.

    Order: scales from coarse to fine; within a scale, single segments by area (largest first),
    then merged adjacent pairs by area. Exact duplicates keep their first (best) rank.
    """
    h, w = image.shape[:2]
    masks, seen = [], set()
    for k in sorted(scales, reverse=True):
        labels = segment(image, k, sigma, min_size)
        n = int(labels.max()) + 1
        flat = labels.ravel()
        area = np.bincount(flat, minlength=n)
        groups = [np.array([i]) for i in np.argsort(-area, kind="stable")]
        if merge_pairs:
            pairs = adjacency(labels)
            pair_area = area[pairs[:, 0]] + area[pairs[:, 1]]
            groups += [pairs[i] for i in np.argsort(-pair_area, kind="stable")]
        for g in groups:
            m = np.isin(labels, g) if len(g) > 1 else labels == g[0]
            key = np.packbits(m).tobytes()
            if key in seen:
                continue
            seen.add(key)
            masks.append(m)
            if len(masks) >= max_masks:
                break
        if len(masks) >= max_masks:
            break
    if not masks:
        return np.zeros((0, h, w), bool), np.zeros(0, np.float32)
    k = len(masks)
    return np.stack(masks), ((k - np.arange(k)) / k).astype(np.float32)


class Felzenszwalb(EdgeModel, ProposalModel):
    """FH segment boundaries (edges) and FH segments (proposals)."""

    kind = "edges"
    kinds = ("edges", "proposals")

    def __init__(self, scales=EDGE_SCALES, sigma: float = SIGMA, min_size: int = MIN_SIZE,
                 proposal_scales=PROPOSAL_SCALES, merge_pairs: bool = False, max_side: int = 512):
        scales, proposal_scales = tuple(float(s) for s in scales), tuple(float(s) for s in proposal_scales)
        if not scales or min(scales) <= 0 or not proposal_scales or min(proposal_scales) <= 0:
            raise ConfigError(f"felzenszwalb: scales must be positive numbers, got {scales} / {proposal_scales}")
        if sigma < 0 or min_size < 1 or max_side < 16:
            raise ConfigError(f"felzenszwalb: need sigma >= 0, min_size >= 1, max_side >= 16; got {sigma}, "
                              f"{min_size}, {max_side}")
        info = ModelInfo("felzenszwalb", extra={"classical": True, "scales": list(scales), "sigma": float(sigma),
                                                "min_size": int(min_size), "proposal_scales": list(proposal_scales),
                                                "merge_pairs": bool(merge_pairs), "max_side": int(max_side)})
        EdgeModel.__init__(self, info)
        self.scales, self.sigma, self.min_size = scales, float(sigma), int(min_size)
        self.proposal_scales, self.merge_pairs, self.max_side = proposal_scales, bool(merge_pairs), int(max_side)

    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None:
        self._image, self._image_id = image, image_id

    def _edges(self, image: np.ndarray) -> np.ndarray:
        return boundary_frequency(image, self.scales, self.sigma, self.min_size)

    def _propose(self, image: np.ndarray, max_masks: int) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        h, w = image.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        small = image if f == 1.0 else cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                                                  interpolation=cv2.INTER_AREA)
        masks, scores = segment_proposals(small, self.proposal_scales, self.sigma, self.min_size, self.merge_pairs,
                                          max_masks)
        if f != 1.0 and len(masks):
            masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
                              for m in masks])
        return masks, scores


@declare("felzenszwalb", options=defaults_of(Felzenszwalb))
def build_felzenszwalb(checkpoint: str | None = None, untrained: bool = False, device: Any = None,
                       dtype: str | None = None, **opts: Any) -> Felzenszwalb:
    """``felzenszwalb``; options (``Felzenszwalb``'s keywords) scales, sigma, min_size, proposal_scales,
    merge_pairs, max_side."""
    _no_weights("felzenszwalb", checkpoint, untrained)
    return Felzenszwalb(**opts)
