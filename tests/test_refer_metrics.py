"""Referring-segmentation metrics: hand-made cases where mIoU and cIoU differ, and a per-sample loop
written the way the RefCOCO evaluation scripts (LAVT's ``evaluate``) do it, as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam_bench.metrics.refer import intersection_union, refer_metrics, sample_iou, threshold_key


def _box_mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_hand_made_large_and_small_object():
    # A: a 10x10 object found exactly (I = U = 100). B: a 2x2 object, prediction a 2x5 strip that
    # covers half of it: I = 2, U = 4 + 10 - 2 = 12.
    gt = np.stack([_box_mask(20, 20, 0, 10, 0, 10), _box_mask(20, 20, 15, 17, 15, 17)])
    pred = np.stack([_box_mask(20, 20, 0, 10, 0, 10), _box_mask(20, 20, 16, 18, 15, 20)])
    inter, union = intersection_union(pred, gt)
    assert inter.tolist() == [100, 2] and union.tolist() == [100, 12]
    m = refer_metrics(inter, union)
    assert m["miou"] == pytest.approx(100 * (1 + 2 / 12) / 2)  # 58.33: the small miss weighs half
    assert m["ciou"] == pytest.approx(100 * 102 / 112)  # 91.07: the large hit dominates
    assert (m["pr50"], m["pr70"], m["pr90"]) == (50.0, 50.0, 50.0)


def test_cumulative_favours_misses_on_small_objects_only():
    # Same two IoUs (1.0 and 0.0) but the miss is the large object: cIoU falls below mIoU.
    inter, union = np.array([4, 0]), np.array([4, 400])
    m = refer_metrics(inter, union)
    assert m["miou"] == pytest.approx(50.0)
    assert m["ciou"] == pytest.approx(100 * 4 / 404)


def test_precision_thresholds_are_inclusive():
    # IoUs 0.5, 0.7, 0.9 exactly and 0.89: Pr@t counts IoU >= t.
    inter, union = np.array([1, 7, 9, 89]), np.array([2, 10, 10, 100])
    m = refer_metrics(inter, union)
    assert m["pr50"] == 100.0 and m["pr70"] == 75.0 and m["pr90"] == 25.0
    assert refer_metrics(inter, union, thresholds=(0.25, 0.95))["pr95"] == 0.0
    assert threshold_key(0.5) == "pr50" and threshold_key(0.75) == "pr75"


def test_against_reference_loop():
    rng = np.random.default_rng(3)
    n, h, w = 40, 24, 30
    gt = rng.random((n, h, w)) < rng.uniform(0.05, 0.6, (n, 1, 1))
    pred = np.where(rng.random((n, 1, 1)) < 0.3, gt ^ (rng.random((n, h, w)) < 0.05), rng.random((n, h, w)) < 0.3)
    inter, union = intersection_union(pred, gt)
    ours = refer_metrics(inter, union)
    cum_i = cum_u = 0
    ious, correct = [], {0.5: 0, 0.7: 0, 0.9: 0}
    for p, g in zip(pred, gt):  # LAVT-style accumulation, one sample at a time
        i, u = np.logical_and(p, g).sum(), np.logical_or(p, g).sum()
        iou = i / u
        cum_i, cum_u = cum_i + i, cum_u + u
        ious.append(iou)
        for t in correct:
            correct[t] += iou >= t
    assert ours["miou"] == pytest.approx(100 * np.mean(ious))
    assert ours["ciou"] == pytest.approx(100 * cum_i / cum_u)
    for t, c in correct.items():
        assert ours[threshold_key(t)] == pytest.approx(100 * c / n)
    assert 0 < correct[0.5] < n  # the case mixes hits and misses


def test_ignore_pixels_leave_both_counts():
    gt = _box_mask(6, 6, 0, 3, 0, 3)[None]
    pred = _box_mask(6, 6, 0, 3, 0, 6)[None]  # 9 extra pixels in columns 3-5
    ignore = _box_mask(6, 6, 0, 6, 4, 6)  # columns 4-5 are void
    inter, union = intersection_union(pred, gt, ignore)
    assert (inter[0], union[0]) == (9, 12)


def test_empty_cases():
    assert sample_iou(np.array([0, 0]), np.array([0, 5])).tolist() == [1.0, 0.0]  # empty vs empty is a hit
    m = refer_metrics([], [])
    assert all(math.isnan(v) for v in m.values()) and set(m) == {"miou", "ciou", "pr50", "pr70", "pr90"}
    with pytest.raises(ValueError, match="larger than its union"):
        refer_metrics([5], [3])
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        intersection_union(np.zeros((4, 4), bool), np.zeros((4, 4), bool))
