"""The BSDS boundary benchmark's pure parts on hand-made maps."""

from __future__ import annotations

import numpy as np

from sam_bench.metrics import bsds
from sam_bench.metrics.edge_nms import edge_nms


def _line(h=60, w=80, col=40):
    m = np.zeros((h, w), bool)
    m[5:55, col] = True
    return m


def test_thresholds_are_the_standard_ones():
    t = bsds.thresholds(99)
    assert len(t) == 99 and np.isclose(t[0], 0.01) and np.isclose(t[-1], 0.99)


def test_exact_and_shifted_lines_match_within_tolerance_only():
    gt = _line()
    radius = 0.0075 * np.hypot(*gt.shape)  # 0.75 px: a 1-px shift is outside
    counts = bsds.image_counts(gt.astype(float), [gt], n_thresholds=3)
    assert counts.tolist() == [[50, 50, 50, 50]] * 3
    shifted = bsds.image_counts(_line(col=41).astype(float), [gt], n_thresholds=3)
    assert radius < 1 and shifted[:, 0].tolist() == [0, 0, 0]
    near = bsds.image_counts(_line(col=41).astype(float), [gt], n_thresholds=3, max_dist=0.02)
    assert near[:, 0].tolist() == [50, 50, 50] and near[:, 2].tolist() == [50, 50, 50]


def test_matching_is_one_to_one_and_precision_uses_any_annotator():
    gt_a, gt_b = _line(col=40), _line(col=60)
    pred = (_line(col=40) | _line(col=60)).astype(float)
    counts = bsds.image_counts(pred, [gt_a, gt_b], n_thresholds=1)
    # each annotator matches its own 50 pixels; every predicted pixel matches someone
    assert counts.tolist() == [[100, 100, 100, 100]]
    one = bsds.image_counts(_line(col=40).astype(float), [gt_a, gt_b], n_thresholds=1)
    # recall sums over annotators (50 of 100); precision counts a match to any annotator (50 of 50)
    assert one.tolist() == [[50, 100, 50, 50]]
    double = np.zeros((60, 80), float)
    double[5:55, 40] = double[5:55, 41] = 1.0  # two predicted pixels per gt pixel (no thinning)
    c = bsds.image_counts(double, [gt_a], n_thresholds=1, max_dist=0.02, thinning=False)
    assert c.tolist() == [[50, 50, 50, 100]]


def test_summary_of_a_perfect_and_an_empty_prediction():
    gt = _line()
    perfect = bsds.summarize([bsds.image_counts(gt.astype(float), [gt], n_thresholds=9)])
    assert np.isclose(perfect["ods"], 1.0) and np.isclose(perfect["ois"], 1.0)
    empty = bsds.summarize([bsds.image_counts(np.zeros(gt.shape), [gt], n_thresholds=9)])
    assert empty["ods"] == 0.0 and empty["ap"] == 0.0 and empty["r50"] == 0.0


def test_max_f_interpolates_between_thresholds():
    t = np.array([0.25, 0.75])
    r, p = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    f, thr, rr, pp = bsds.max_f(t, r, p)
    # along the straight segment from (r=1,p=0) to (r=0,p=1) the best F is at r = p = 0.5
    assert abs(rr - 0.5) < 0.006 and abs(pp - 0.5) < 0.006 and abs(f - 0.5) < 1e-3 and abs(thr - 0.5) < 0.006


def test_recall_at_half_precision_interpolates():
    r, p = np.array([0.9, 0.5, 0.1]), np.array([0.3, 0.7, 0.9])
    assert np.isclose(bsds.recall_at_precision(r, p, 0.5), 0.7)


def test_edge_nms_thins_a_blurred_ridge_to_one_pixel():
    x = np.arange(80)
    ridge = np.exp(-((x - 40.0) ** 2) / (2 * 3.0 ** 2))
    edge = np.tile(ridge, (60, 1))
    out = edge_nms(edge)
    row = out[30]
    assert np.count_nonzero(row > 0.05) == 1 and int(np.argmax(row)) == 40
    assert out[0].max() == 0.0 and out[:5].max() < out[30].max()
