"""pytest-benchmark timings of the pure numeric kernels (``tox -e bench``, or
``python -m pytest benchmarks --benchmark-enable``); not part of the test suite.

Each benchmark also checks its result, so a fast wrong answer does not pass. Data are the
project's own synthetic scenes (deterministic), so the timings are comparable across runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.amg import mask_nms, pack_masks
from sam_bench.data.synthetic import boundary_map, make_scene
from sam_bench.metrics import bsds
from sam_bench.metrics.edge_nms import edge_nms
from sam_bench.models.edges import CannyEdges


@pytest.fixture(scope="module")
def scene():
    s = make_scene(0, 0, height=321, width=481)
    model = CannyEdges()
    model.set_image(s["image"])
    return s, model.edge_map(), boundary_map(s["labels"])


def test_edge_nms(benchmark, scene):
    _, soft, _ = scene
    out = benchmark(edge_nms, soft)
    assert out.shape == soft.shape and 0 < np.count_nonzero(out) < np.count_nonzero(soft)


def test_bsds_image_counts_99_thresholds(benchmark, scene):
    _, soft, gt = scene
    counts = benchmark.pedantic(bsds.image_counts, args=(edge_nms(soft), [gt], 99), rounds=3, iterations=1)
    r, p = bsds._pr(counts)
    assert counts.shape == (99, 4) and 0.3 < bsds.max_f(bsds.thresholds(99), r, p)[0] <= 1


def test_mask_nms_1000_masks(benchmark):
    """500 random disks (some overlapping each other) and a copy of each shifted by 2 px (IoU > 0.7),
    scored below every original: a copy and its original are never both kept."""
    rng = np.random.default_rng(0)
    h, w = 240, 320
    yy, xx = np.mgrid[:h, :w]
    cx, cy, r = rng.uniform(0, w, 500), rng.uniform(0, h, 500), rng.uniform(10, 60, 500)
    cx, cy, r = np.concatenate([cx, cx + 2]), np.concatenate([cy, cy]), np.concatenate([r, r])
    masks = torch.from_numpy((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
                             <= r[:, None, None] ** 2)
    ys, xs = masks.any(2), masks.any(1)
    boxes = torch.stack([xs.float().argmax(1), ys.float().argmax(1), w - xs.flip(1).float().argmax(1),
                         h - ys.flip(1).float().argmax(1)], 1).float()
    scores = torch.from_numpy(np.concatenate([np.ones(500), np.zeros(500)])).float()
    keep = benchmark(mask_nms, pack_masks(masks), h, w, boxes, scores, 0.7)
    kept = set(keep.tolist())
    assert 300 < len(kept) <= 500
    assert not any(k - 500 in kept for k in kept if k >= 500)  # a copy survives only where its original fell
