"""The COCOeval / LVISEval wrappers against the raw APIs run directly, and hand-computed cases."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from coco_fixtures import gt_masks, make_dataset, rle_of
from sam_bench.data.lvis import lvis_api
from sam_bench.metrics.coco_eval import (ar_keys, coco_mask_ap, frequency_groups, lvis_mask_ap, mask_ar, mask_ious,
                                         rle_encode,
                                         sparse_ious)


def _noisy_results(path, seed=0, extra=3):
    """Each GT mask shifted by 0..3 px (some dropped), plus random false positives, random scores."""
    rng = np.random.default_rng(seed)
    out = []
    for img_id, pairs in gt_masks(path).items():
        for ann, m in pairs:
            if rng.random() < 0.15:
                continue
            dy, dx = rng.integers(0, 4, 2)
            out.append({"image_id": img_id, "category_id": ann["category_id"] if rng.random() > 0.2 else 3,
                        "segmentation": rle_of(np.roll(m, (dy, dx), (0, 1))), "score": float(rng.random())})
        h, w = pairs[0][1].shape
        for _ in range(extra):
            m = np.zeros((h, w), bool)
            y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
            m[y:y + rng.integers(3, 20), x:x + rng.integers(3, 40)] = True
            out.append({"image_id": img_id, "category_id": int(rng.integers(1, 6)), "segmentation": rle_of(m),
                        "score": float(rng.random())})
    return out


def _direct_coco(path, results, use_cats=1, max_dets=(1, 10, 100)):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "segm")
        ev.params.useCats = use_cats
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _same(a, b, tol=1e-9):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def test_coco_ap_equals_cocoeval_run_directly(tmp_path):
    path = make_dataset(tmp_path, n_images=4, per_image=6)
    results = _noisy_results(path)
    ours = coco_mask_ap(path, results)
    stats = _direct_coco(path, results)
    ref = dict(zip(["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"], stats[:6]))
    for k, v in ref.items():
        assert _same(ours[k], 100 * v if v >= 0 else math.nan), (k, ours[k], v)
    assert 0 < ours["ap"] < 100


def test_coco_ap_perfect_and_empty(tmp_path):
    path = make_dataset(tmp_path)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle_of(m), "score": 1.0}
               for pairs in gt_masks(path).values() for a, m in pairs if not a["iscrowd"]]
    ap = coco_mask_ap(path, perfect)
    assert ap == pytest.approx({k: 100.0 for k in ap}, abs=1e-9)  # pycocotools' tp / (tp + eps) < 1
    assert all(math.isnan(v) for v in coco_mask_ap(path, []).values())
    data = json.loads(path.read_text())
    before = copy.deepcopy(data)
    coco_mask_ap(data, perfect)  # a dict is not written into
    assert data == before


def test_coco_ap_image_subset_and_max_dets(tmp_path):
    path = make_dataset(tmp_path, n_images=3)
    results = _noisy_results(path, extra=30)
    data = json.loads(path.read_text())
    sub = {**data, "images": data["images"][:2],
           "annotations": [a for a in data["annotations"] if a["image_id"] in (100, 101)]}
    sub_path = tmp_path / "sub.json"
    sub_path.write_text(json.dumps(sub))
    top = []
    for img in (100, 101):
        top += sorted([r for r in results if r["image_id"] == img], key=lambda r: -r["score"])[:20]
    stats = _direct_coco(sub_path, top, max_dets=(1, 10, 100))  # the top 20 given: maxDets 100 keeps them all
    ours = coco_mask_ap(path, results, image_ids=[100, 101], max_dets=20)
    for k, v in zip(["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"], stats[:6]):
        assert _same(ours[k], 100 * v if v >= 0 else math.nan), (k, ours[k], v)
    assert ours["ap"] != coco_mask_ap(path, results, image_ids=[100, 101])["ap"]


def test_lvis_ap_equals_lvis_eval_run_directly(tmp_path):
    path = make_dataset(tmp_path, n_images=4, per_image=6, lvis=True)
    results = _noisy_results(path)
    ours = lvis_mask_ap(path, results)
    api = lvis_api()
    gt = api.LVIS(str(path))
    ev = api.LVISEval(gt, api.LVISResults(gt, copy.deepcopy(results), max_dets=300), "segm")
    ev.run()
    ref = ev.get_results()
    for theirs, mine in [("AP", "ap"), ("AP50", "ap50"), ("APs", "ap_small"), ("APr", "ap_rare"),
                         ("APc", "ap_common"), ("APf", "ap_frequent"), ("APl", "ap_large")]:
        assert _same(ours[mine], 100 * ref[theirs] if ref[theirs] >= 0 else math.nan), (mine, ours[mine], ref[theirs])
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle_of(m), "score": 1.0}
               for pairs in gt_masks(path).values() for a, m in pairs]
    assert lvis_mask_ap(path, perfect)["ap"] == pytest.approx(100.0, abs=1e-9)
    assert math.isnan(lvis_mask_ap(path, [])["ap"])


def _rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_mask_ar_hand_case(tmp_path):
    """GT A found exactly, GT B at IoU 0.72 (180/250): recall 1 at 10 thresholds and at 5 (0.50..0.70)."""
    a, b = _rect(60, 80, 0, 10, 0, 10), _rect(60, 80, 20, 45, 20, 30)
    gt = {"images": [{"id": 1, "height": 60, "width": 80}], "categories": [{"id": 7}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": rle_of(a), "area": 100.0},
                          {"id": 2, "image_id": 1, "category_id": 7, "segmentation": rle_of(b), "area": 250.0}]}
    props = [{"image_id": 1, "segmentation": rle_of(a), "score": 0.9},
             {"image_id": 1, "segmentation": rle_of(_rect(60, 80, 20, 38, 20, 30)), "score": 0.8},
             {"image_id": 1, "segmentation": rle_of(_rect(60, 80, 50, 60, 50, 80)), "score": 0.95}]
    ar = mask_ar(gt, props, max_dets=1000)
    assert ar["ar1000"] == pytest.approx(100 * 15 / 20) and ar["ar1000_small"] == pytest.approx(75.0)
    assert math.isnan(ar["ar1000_medium"]) and math.isnan(ar["ar1000_large"])
    assert mask_ar(gt, props, max_dets=2)["ar2"] == pytest.approx(50.0)  # the top 2 are the FP and A
    assert mask_ar(gt, [], max_dets=1000)["ar1000"] == 0.0


def _proposals(path, seed=1, noise=40):
    """Shifted/eroded GT masks plus noise rectangles, ranked randomly: class-agnostic proposals."""
    rng = np.random.default_rng(seed)
    out = []
    for img_id, pairs in gt_masks(path).items():
        h, w = pairs[0][1].shape
        masks = [np.roll(m, tuple(rng.integers(-3, 4, 2)), (0, 1)) for _, m in pairs]
        masks += [_rect(h, w, *sorted(rng.integers(0, h, 2)), *sorted(rng.integers(0, w, 2))) for _ in range(noise)]
        for k in rng.permutation(len(masks)):
            out.append({"image_id": img_id, "segmentation": rle_of(masks[k]), "score": float(rng.random())})
    return out


@pytest.mark.parametrize("lvis", [False, True])
def test_mask_ar_equals_cocoeval_usecats0_and_given_ious(tmp_path, lvis):
    path = make_dataset(tmp_path, n_images=4, per_image=7, lvis=lvis)
    props = _proposals(path)
    data = json.loads(path.read_text())
    groups = frequency_groups({c["id"]: c for c in data["categories"]})
    ours = mask_ar(path, props, groups=groups)
    data["annotations"] = [{"iscrowd": 0, **a} for a in data["annotations"]]  # COCOeval needs the key; LVIS lacks it
    (tmp_path / "direct.json").write_text(json.dumps(data))
    stats = _direct_coco(tmp_path / "direct.json", [{**p, "category_id": 1} for p in props], 0, (1, 10, 1000))
    for key, v in zip(ar_keys(1000), stats[8:12]):
        assert _same(ours[key], 100 * v if v >= 0 else math.nan), (key, ours[key], v)
    assert 20 < ours["ar1000"] < 100
    # frequency groups: the GT restricted to the group's categories, evaluated directly
    for name, cats in groups.items():
        sub = {**data, "annotations": [a for a in data["annotations"] if a["category_id"] in cats]}
        (tmp_path / "g.json").write_text(json.dumps(sub))
        v = _direct_coco(tmp_path / "g.json", [{**p, "category_id": 1} for p in props], 0, (1, 10, 1000))[8]
        assert _same(ours[f"ar1000_{name}"], 100 * v), name
    # the same with IoUs given (the proposals task's path): only pairs >= 0.5, no segmentations
    masks = gt_masks(path)
    given, lean = {}, []
    for img, pairs in masks.items():
        mine = [p for p in props if p["image_id"] == img]
        d, g, v = sparse_ious([p["segmentation"] for p in mine], [rle_of(m) for _, m in pairs],
                              [a.get("iscrowd", 0) for a, _ in pairs])
        given[img] = {}
        for di, gi, iou in zip(d, g, v):
            pid = 1000 * img + di
            given[img][(pid, pairs[gi][0]["id"])] = iou
        for di in sorted(set(d.tolist())):
            lean.append({"id": 1000 * img + di, "image_id": img, "score": mine[di]["score"],
                         "area": float(mask_utils.area(_bytes(mine[di]["segmentation"])))})
    assert mask_ar(path, lean, groups=groups, ious=given) == ours


def _bytes(rle):
    return {"size": rle["size"], "counts": rle["counts"].encode()}


def test_mask_ar_agrees_with_lvis_eval_on_one_category(tmp_path):
    path = make_dataset(tmp_path, n_images=3, per_image=6, lvis=True)
    props = _proposals(path, noise=20)
    data = json.loads(path.read_text())
    one = {**data, "categories": [{"id": 1, "name": "object", "frequency": "f"}],
           "annotations": [{**a, "category_id": 1} for a in data["annotations"]],
           "images": [{**im, "neg_category_ids": [], "not_exhaustive_category_ids": []} for im in data["images"]]}
    api = lvis_api()
    (tmp_path / "one.json").write_text(json.dumps(one))
    gt = api.LVIS(str(tmp_path / "one.json"))
    ev = api.LVISEval(gt, api.LVISResults(gt, [{**p, "category_id": 1} for p in copy.deepcopy(props)], 1000), "segm")
    ev.params.max_dets = 1000
    ev.run()
    ref = ev.get_results()
    ours = mask_ar(path, props)
    for theirs, mine in [("AR@1000", "ar1000"), ("ARs@1000", "ar1000_small"), ("ARm@1000", "ar1000_medium"),
                         ("ARl@1000", "ar1000_large")]:
        assert _same(ours[mine], 100 * ref[theirs] if ref[theirs] >= 0 else math.nan), (mine, ours[mine], ref[theirs])


def test_sparse_ious_match_full_matrix_and_rle_encode_roundtrip():
    rng = np.random.default_rng(3)
    masks = rng.random((6, 30, 40)) > 0.4
    masks[3] = masks[0]
    rles = rle_encode(masks)
    assert all((mask_utils.decode(_bytes(r)).astype(bool) == m).all() for r, m in zip(rles, masks))
    d, g, v = sparse_ious(rles, rles[:2], [False, False], min_iou=0.5)
    full = np.array([[(a & b).sum() / (a | b).sum() for b in masks[:2]] for a in masks])
    want = np.argwhere(full >= 0.5)
    assert [tuple(x) for x in want] == list(zip(d.tolist(), g.tolist()))
    np.testing.assert_allclose(v, full[full >= 0.5], rtol=0, atol=1e-12)
    assert (3, 0) in set(zip(d.tolist(), g.tolist()))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA"))])
def test_mask_ious_equal_pycocotools_iou(device):
    import torch

    rng = np.random.default_rng(5)
    masks = rng.random((70, 30, 40)) > 0.5
    masks[4] = False
    gt = rng.random((5, 30, 40)) > 0.7
    gt[1] = False
    gt[3] = False
    gt[3, 5:9, 10:30] = True
    crowd = [0, 0, 1, 0, 1]
    want = mask_utils.iou([_bytes(r) for r in rle_encode(masks)], [_bytes(r) for r in rle_encode(gt)], crowd)
    got = mask_ious(torch.from_numpy(masks).to(device), torch.from_numpy(gt), crowd, chunk=16)
    assert np.array_equal(got, want)
    assert mask_ious(torch.zeros(0, 30, 40, dtype=torch.bool), gt, crowd).shape == (0, 5)
