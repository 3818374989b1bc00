"""Click simulation and click metrics on hand-made masks, checked against hand values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sam_bench.metrics.clicks import (Click, center_click, distance_to_boundary, mask_iou, next_click,
                                      number_of_clicks, random_click)


def blank(h=20, w=24):
    return np.zeros((h, w), bool)


def scipy_center(mask):
    """Reference: scipy's exact EDT on the zero-padded mask, first maximum in raster order."""
    dt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dt), dt.shape)
    return int(x), int(y)


def test_center_of_odd_square_is_its_middle():
    m = blank()
    m[2:7, 3:8] = True  # rows 2..6, cols 3..7
    assert center_click(m) == Click(5, 4, True)
    assert distance_to_boundary(m)[4, 5] == 3.0


def test_center_of_even_square_ties_go_to_raster_first():
    m = blank()
    m[4:8, 10:14] = True  # 4x4: four central pixels tie at distance 2
    assert center_click(m) == Click(11, 5, True)


def test_center_of_ring_lies_on_the_ring_not_in_the_hole():
    yy, xx = np.mgrid[:61, :61]
    r = np.hypot(xx - 30, yy - 30)
    ring = (r >= 8) & (r <= 20)
    c = center_click(ring)
    assert ring[c.y, c.x]
    assert 12 <= np.hypot(c.x - 30, c.y - 30) <= 16  # mid-ring, 6 px from both edges
    assert (c.x, c.y) == scipy_center(ring)


def test_center_of_two_blobs_is_in_the_larger_one():
    m = blank(30, 30)
    m[1:4, 1:4] = True  # 3x3
    m[10:17, 20:27] = True  # 7x7, centre (x 23, y 13)
    assert center_click(m) == Click(23, 13, True)


def test_center_of_thin_lines_and_single_pixel():
    m = blank()
    m[6, 4:13] = True  # horizontal line: every pixel at distance 1, leftmost wins
    assert center_click(m) == Click(4, 6, True)
    v = blank()
    v[3:15, 9] = True  # vertical line: topmost wins
    assert center_click(v) == Click(9, 3, True)
    one = blank()
    one[11, 17] = True
    assert center_click(one) == Click(17, 11, True)


def test_image_border_counts_as_boundary():
    full = np.ones((7, 7), bool)
    assert center_click(full) == Click(3, 3, True)  # without padding every pixel would tie
    wide = np.ones((7, 9), bool)  # row 3, columns 3..5 all at distance 4: leftmost wins
    assert center_click(wide) == Click(3, 3, True)
    corner = blank()
    corner[0, 0] = True
    assert center_click(corner) == Click(0, 0, True)
    assert distance_to_boundary(corner)[0, 0] == 1.0


def test_center_skips_ignored_pixels_and_fails_when_nothing_is_left():
    m = blank()
    m[2:7, 3:8] = True
    ignore = blank()
    ignore[2:7, 3:6] = True  # leaves cols 6..7: a 5x2 strip
    c = center_click(m, ignore)
    assert c.x in (6, 7) and not ignore[c.y, c.x]
    with pytest.raises(ValueError, match="ignore region"):
        center_click(m, m.copy())


def test_center_matches_scipy_on_random_shapes():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = ndimage.binary_opening(rng.random((40, 50)) > 0.45, iterations=1)
        if m.any():
            assert (center_click(m).x, center_click(m).y) == scipy_center(m)


def test_next_click_positive_in_missed_part():
    gt = blank()
    gt[2:7, 3:8] = True
    click = next_click(gt, blank())
    assert click == Click(5, 4, True)


def test_next_click_negative_in_spill_and_none_when_perfect():
    gt = blank()
    gt[2:5, 2:5] = True
    pred = gt.copy()
    pred[10:17, 12:19] = True  # 7x7 false positive, centre (15, 13)
    assert next_click(gt, pred) == Click(15, 13, False)
    assert next_click(gt, gt.copy()) is None


def test_next_click_takes_the_larger_error_and_ties_go_negative():
    gt = blank(30, 30)
    gt[0:9, 0:9] = True
    pred = blank(30, 30)
    pred[0:9, 0:4] = True  # misses cols 4..8 (a 9x5 strip: max distance 3)
    pred[20:29, 20:29] = True  # 9x9 spill: max distance 5 -> negative wins
    assert next_click(gt, pred).positive is False
    pred2 = blank(30, 30)
    pred2[0:9, 0:4] = True  # 9x5 false negative, distance 3
    pred2[20:29, 20:25] = True  # 9x5 false positive, distance 3: a tie
    assert next_click(gt, pred2).positive is False


def test_next_click_avoids_clicked_and_ignored_pixels():
    gt = blank()
    gt[2:7, 3:8] = True
    clicked = blank()
    clicked[4, 5] = True
    c = next_click(gt, blank(), clicked=clicked)
    assert (c.x, c.y) != (5, 4) and gt[c.y, c.x] and c.positive
    ignore = blank()
    ignore[2:7, 3:8] = True
    assert next_click(gt, blank(), ignore=ignore) is None


def test_random_click_is_seeded_and_inside_the_mask():
    m = blank(40, 40)
    m[5:35, 5:35] = True
    m[10:20, 10:20] = False
    a = random_click(m, np.random.default_rng(7))
    b = random_click(m, np.random.default_rng(7))
    assert a == b and m[a.y, a.x] and a.positive
    draws = {random_click(m, np.random.default_rng(s)) for s in range(10)}
    assert len(draws) > 5
    ignore = ~blank(40, 40)
    ignore[30, 31] = False
    assert random_click(m, np.random.default_rng(0), ignore) == Click(31, 30, True)


def test_mask_iou_hand_values_ignore_and_broadcast():
    gt = blank(4, 4)
    gt[:2, :2] = True  # 4 px
    pred = blank(4, 4)
    pred[:2, :3] = True  # 6 px, 4 overlap
    assert mask_iou(pred, gt) == pytest.approx(4 / 6)
    ignore = blank(4, 4)
    ignore[0, 2] = True  # one of the two spilled pixels is ignored
    assert mask_iou(pred, gt, ignore) == pytest.approx(4 / 5)
    stack = np.stack([pred, gt, blank(4, 4)])[None]  # (1, 3, H, W) against gt (1, 1, H, W)
    np.testing.assert_allclose(mask_iou(stack, gt[None, None]), [[4 / 6, 1.0, 0.0]])
    assert mask_iou(blank(4, 4), blank(4, 4)) == 1.0


def test_number_of_clicks_and_failures():
    ious = np.array([[0.86, 0.91, 0.95],
                     [0.5, 0.88, 0.89],
                     [0.1, 0.2, 0.3],
                     [0.95, np.nan, np.nan]])
    noc, failed = number_of_clicks(ious, 0.85, max_clicks=20)
    assert noc.tolist() == [1, 2, 20, 1] and failed.tolist() == [False, False, True, False]
    noc, failed = number_of_clicks(ious, 0.90, max_clicks=20)
    assert noc.tolist() == [2, 20, 20, 1] and failed.tolist() == [False, True, True, False]
    noc, failed = number_of_clicks(ious, 0.90, max_clicks=1)  # only the first click counts
    assert noc.tolist() == [1, 1, 1, 1] and failed.tolist() == [True, True, True, False]
