"""RLE helpers against hand-made masks and pycocotools/cv2 used directly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam_bench.data import masks as M


def test_encode_decode_area_bbox_roundtrip():
    m = np.zeros((7, 9), bool)
    m[2:5, 3:8] = True  # 3 rows x 5 cols
    rle = M.encode(m)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
    assert np.array_equal(M.decode(rle), m)
    assert M.area(rle) == 15
    assert M.bbox(rle) == [3.0, 2.0, 5.0, 3.0]


def test_encode_many_matches_single():
    rng = np.random.default_rng(0)
    stack = rng.random((4, 12, 10)) > 0.5
    assert [r["counts"] for r in M.encode_many(stack)] == [M.encode(m)["counts"] for m in stack]
    assert M.encode_many(np.zeros((0, 3, 3), bool)) == []


def test_polygon_to_rle_matches_pycocotools_and_cv2():
    poly = [[10.0, 10.0, 30.0, 10.0, 30.0, 20.0, 10.0, 20.0]]
    rle = M.polygons_to_rle(poly, 40, 50)
    ref = mask_utils.merge(mask_utils.frPyObjects(poly, 40, 50))
    assert M.area(rle) == int(mask_utils.area(ref))
    filled = np.zeros((40, 50), np.uint8)
    cv2.fillPoly(filled, [np.array(poly[0]).reshape(-1, 2).astype(np.int32)], 1)
    iou = (M.decode(rle) & filled.astype(bool)).sum() / (M.decode(rle) | filled.astype(bool)).sum()
    assert iou > 0.85  # same rectangle up to the rasterisers' edge conventions


def test_to_rle_accepts_uncompressed_rle():
    m = np.zeros((5, 4), bool)
    m[1:3, 1:4] = True
    counts = []  # column-major run lengths, starting with zeros
    flat = m.flatten(order="F")
    val, run = False, 0
    for v in flat:
        if v == val:
            run += 1
        else:
            counts.append(run)
            val, run = v, 1
    counts.append(run)
    rle = M.to_rle({"size": [5, 4], "counts": counts}, 5, 4)
    assert np.array_equal(M.decode(rle), m)


def test_labels_to_rles():
    lab = np.array([[0, 1, 1], [2, 2, 0], [2, 5, 5]])
    rles = M.labels_to_rles(lab)
    assert sorted(rles) == [1, 2, 5]
    assert M.area(rles[2]) == 3 and np.array_equal(M.decode(rles[5]), lab == 5)


@pytest.mark.parametrize("seg, reason", [
    ([], "empty"),
    ([[1, 1, 5, 5]], "needs >= 3 points"),
    ([[0, 0, 10, 0, 20, 0]], "zero area"),
    ([[100, 100, 120, 100, 120, 130]], "outside"),
])
def test_polygon_problems(seg, reason):
    assert reason in M.polygon_problem(seg, 50, 60)


def test_rle_problems():
    empty = M.encode(np.zeros((4, 4), bool))
    assert M.rle_problem(empty, 4, 4) == "empty mask"
    assert "does not match" in M.rle_problem(empty, 5, 4)
    full = M.encode(np.ones((4, 4), bool))
    assert M.rle_problem(full, 4, 4) is None
