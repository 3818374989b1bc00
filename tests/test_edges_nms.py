"""Structured-edges NMS against the compiled toolbox port in pyEdgeEval and hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from sam_bench.metrics.edge_nms import conv_tri, edge_nms, orientation


def _smooth_map(seed=0, h=64, w=80):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    m = ndi.gaussian_filter(rng.random((h, w)), 3)
    m = np.abs(np.hypot(ndi.sobel(m, 0), ndi.sobel(m, 1)))
    return m / m.max()


def test_conv_tri_is_the_triangle_filter_with_symmetric_padding():
    x = np.zeros((7, 7))
    x[3, 3] = 1.0
    out = conv_tri(x, 1)  # [1 2 1] / 4 in each direction
    assert out[2:5, 2:5] == pytest.approx(np.outer([1, 2, 1], [1, 2, 1]) / 16)
    edge = np.zeros((5, 5))
    edge[:, 0] = 1.0  # symmetric padding mirrors column 0 onto itself: (1 + 2) / 4
    assert conv_tri(edge, 1)[2, 0] == pytest.approx(0.75)
    big = np.zeros((11, 11))
    big[5, 5] = 1.0
    r4 = conv_tri(big, 4)  # [1 2 3 4 5 4 3 2 1] / 25 in each direction
    assert r4[5, 5] == pytest.approx((5 / 25) ** 2) and r4[5, 7] == pytest.approx(5 / 25 * 3 / 25)


def test_orientation_of_straight_edges():
    x = np.arange(60)
    vertical = np.tile(np.exp(-((x - 30.0) ** 2) / 20), (60, 1))  # ridge along y: normal along x (angle 0)
    assert abs(np.sin(orientation(vertical)[30, 30])) < 1e-3
    yy, xx = np.mgrid[0:60, 0:60]
    tilted = np.exp(-((yy - 30.0 - 0.1 * (xx - 30)) ** 2) / 20)  # near-horizontal ridge: normal near pi/2
    assert abs(np.cos(orientation(tilted)[30, 30])) < 0.15


def test_border_ramp_scales_the_outer_pixels():
    e = np.full((40, 40), 0.5)
    out = edge_nms(e, smooth=False)  # a flat map survives NMS (x 1.01 beats equal neighbours)
    assert out[20, 20] == pytest.approx(0.5)
    assert out[20, 0] == 0 and out[20, 2] == pytest.approx(0.5 * 2 / 5) and out[0, 20] == 0
    assert out[2, 2] == pytest.approx(0.5 * (2 / 5) ** 2)


def test_matches_pyedgeeval_compiled_nms_given_the_same_orientation():
    lib = pytest.importorskip("pyEdgeEval._lib")
    for seed in range(3):
        e = _smooth_map(seed)
        ours = edge_nms(e, radius=1, border=5, multiplier=1.01)
        s = conv_tri(e, 1)
        ref = lib.nms(s, orientation(s), r=1, s=5, m=1.01)
        assert np.abs(ours - ref).max() < 1e-6
