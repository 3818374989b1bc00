"""``slic-proposals``: a classical, weight-free mask proposal baseline (selective-search grouping).

Several over-segmentations of the image (Felzenszwalb-Huttenlocher at ``fh_scales``, SLIC at
``slic_segments``; scikit-image) each give their segments as proposals, plus every region built by
greedily merging the most similar pair of adjacent regions until one remains (the hierarchical
grouping of selective search, Uijlings et al. 2013: colour-histogram intersection + size +
fill similarity; no texture term). Each region's rank is its position in its hierarchy (the
whole image first, leaves last) times a seeded uniform random number, as selective search ranks;
exact duplicates across segmentations are dropped. Segmentation runs on a copy whose longest
side is ``max_side`` px; masks are returned at full resolution.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from sam_bench.errors import ConfigError
from sam_bench.models.base import ModelInfo, ProposalModel
from sam_bench.models.options import declare, defaults_of

BINS = 25  # colour histogram bins per channel (selective search)


def adjacency(labels: np.ndarray) -> np.ndarray:
    """(P, 2) unique pairs a < b of labels that touch (4-connectivity) in an (H, W) int map."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    n = int(labels.max()) + 1
    codes = np.unique(lo.astype(np.int64) * n + hi)
    return np.stack([codes // n, codes % n], 1)


def region_features(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label: L1-normalised colour histogram (N, 3*BINS), size (N,), box (N, 4) XYXY inclusive."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    bins = (image.reshape(-1, 3).astype(np.int64) * BINS) // 256
    hist = np.stack([np.bincount(flat * BINS + bins[:, c], minlength=n * BINS).reshape(n, BINS) for c in range(3)], 1)
    hist = hist.reshape(n, -1).astype(np.float64)
    size = np.bincount(flat, minlength=n).astype(np.float64)
    hist /= np.maximum(hist.sum(1, keepdims=True), 1)
    h, w = labels.shape
    yy, xx = np.divmod(np.arange(h * w), w)
    box = np.stack([np.full(n, w), np.full(n, h), np.full(n, -1), np.full(n, -1)], 1)
    np.minimum.at(box[:, 0], flat, xx)
    np.minimum.at(box[:, 1], flat, yy)
    np.maximum.at(box[:, 2], flat, xx)
    np.maximum.at(box[:, 3], flat, yy)
    return hist, size, box


def hierarchical_grouping(image: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Leaf-membership vectors (N,) bool of every region: the N leaves, then the N - 1 merges in order."""
    hist, size, box = region_features(image, labels)
    n = len(size)
    total = float(labels.size)
    hist, size, box = list(hist), list(size), [b.astype(np.float64) for b in box]
    members = [np.eye(1, n, k, dtype=bool)[0] for k in range(n)]
    nbrs: list[set] = [set() for _ in range(n)]
    for a, b in adjacency(labels):
        nbrs[a].add(int(b))
        nbrs[b].add(int(a))

    def sim(i: int, j: int) -> float:
        bb = np.concatenate([np.minimum(box[i][:2], box[j][:2]), np.maximum(box[i][2:], box[j][2:])])
        fill = 1 - ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) - size[i] - size[j]) / total
        return float(np.minimum(hist[i], hist[j]).sum()) + (1 - (size[i] + size[j]) / total) + fill

    heap = [(-sim(i, j), i, j) for i in range(n) for j in nbrs[i] if i < j]
    heapq.heapify(heap)
    alive = [True] * n
    while heap:
        _, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue
        k = len(size)
        s = size[i] + size[j]
        hist.append((size[i] * hist[i] + size[j] * hist[j]) / s)
        size.append(s)
        box.append(np.concatenate([np.minimum(box[i][:2], box[j][:2]), np.maximum(box[i][2:], box[j][2:])]))
        members.append(members[i] | members[j])
        nbrs.append((nbrs[i] | nbrs[j]) - {i, j})
        alive += [True]
        alive[i] = alive[j] = False
        for m in nbrs[k]:
            nbrs[m] -= {i, j}
            nbrs[m].add(k)
            heapq.heappush(heap, (-sim(k, m), k, m) if k < m else (-sim(m, k), m, k))
    return members


class SegmentProposals(ProposalModel):
    """Over-segmentations plus their hierarchical merges, ranked as selective search (module docstring)."""

    kinds = ("proposals",)

    def __init__(self, info: ModelInfo, *, max_side: int = 320, fh_scales: tuple[int, ...] = (100, 300, 1000),
                 slic_segments: tuple[int, ...] = (64, 200), sigma: float = 0.8, seed: int = 0):
        super().__init__(info)
        if max_side < 16:
            raise ConfigError(f"slic-proposals max_side={max_side}: must be at least 16 px")
        if not fh_scales and not slic_segments:
            raise ConfigError("slic-proposals needs at least one of fh_scales, slic_segments")
        self.max_side, self.fh_scales, self.slic_segments = int(max_side), tuple(fh_scales), tuple(slic_segments)
        self.sigma, self.seed = float(sigma), int(seed)

    def segmentations(self, work: np.ndarray) -> list[np.ndarray]:
        """The (h, w) label maps (labels 0..N-1) of the working copy."""
        from skimage.segmentation import felzenszwalb, slic

        out = [felzenszwalb(work, scale=k, sigma=self.sigma, min_size=max(20, k // 4)) for k in self.fh_scales]
        out += [slic(work, n_segments=n, compactness=10, start_label=0) for n in self.slic_segments]
        return [np.unique(lab, return_inverse=True)[1].reshape(lab.shape) for lab in out]

    def _propose(self, image: np.ndarray, max_masks: int) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA) if scale < 1 else image
        rng = np.random.default_rng(self.seed)
        cands: list[tuple[float, int, np.ndarray]] = []  # (rank value, segmentation index, membership)
        labelings = self.segmentations(work)
        for s, labels in enumerate(labelings):
            regions = hierarchical_grouping(work, labels)
            level = np.arange(len(regions), 0, -1)  # the last merge (whole image) is level 1
            for reg, lv, r in zip(regions, level, rng.random(len(regions))):
                cands.append((lv * r, s, reg))
        cands.sort(key=lambda c: c[0])
        kept, seen = [], set()
        for _, s, reg in cands:
            m = reg[labelings[s]]  # working resolution: cheap to hash
            key = np.packbits(m).tobytes()
            if key in seen or not m.any():
                continue
            seen.add(key)
            kept.append(m)
            if len(kept) == max_masks:
                break
        out = np.zeros((len(kept), h, w), bool)
        for k, m in enumerate(kept):  # nearest-neighbour upsampling, written in place
            out[k] = cv2.resize(m.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).view(bool) \
                if m.shape != (h, w) else m
        return out, np.linspace(1.0, 0.0, len(out), endpoint=False)

@declare("slic-proposals", options=defaults_of(SegmentProposals))
def build_slic_proposals(*, checkpoint: str | None = None, untrained: bool = False,
                         device: Any = None, dtype: str | None = None, **options: Any) -> SegmentProposals:
    """Registry builder; options: ``SegmentProposals``' keywords (max_side, fh_scales, slic_segments,
    sigma, seed); ``checkpoint``/``untrained``/``device``/``dtype`` do not apply (CPU, no weights)."""
    if checkpoint:
        raise ConfigError("slic-proposals has no weights: drop --checkpoint")
    info = ModelInfo(name="slic-proposals", extra={"kind": "classical", "options": dict(options)})
    return SegmentProposals(info, **options)
