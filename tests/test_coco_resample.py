"""The weighted re-accumulation of COCOeval equals pycocotools: at weight one its precision and
recall arrays are ``accumulate``'s, at integer weights its AP is that of a dataset in which each
image is physically copied that many times, and AR through ``mask_ar`` matches too."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam_bench.metrics import coco_eval as ce
from sam_bench.metrics import coco_resample as cr
from sam_bench.metrics.bootstrap import draw_weights, rng_for

H, W = 120, 160


def rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [H, W], "counts": r["counts"].decode()}


def box(y, x, h, w) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


def synthetic(seed: int = 0, n_images: int = 14) -> tuple[dict, list[dict]]:
    """Ground truth with small, medium and large objects of 3 categories (some crowd), and
    results that hit, shift, mislabel or miss them, plus stray detections."""
    rng = np.random.default_rng(seed)
    images, anns, res = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "height": H, "width": W})
        for _ in range(rng.integers(0, 5)):
            side = int(rng.choice([4, 50, 100]))  # small, medium, large
            y, x = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
            m = box(y, x, side, side)
            cat = int(rng.integers(1, 4))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "segmentation": rle(m),
                         "area": float(m.sum()), "bbox": [x, y, side, side], "iscrowd": int(rng.random() < 0.1)})
            for _ in range(rng.integers(0, 3)):
                shifted = np.roll(m, tuple(rng.integers(-side // 3 - 1, side // 3 + 2, 2)), (0, 1))
                res.append({"image_id": i, "category_id": cat if rng.random() < 0.8 else int(rng.integers(1, 4)),
                            "segmentation": rle(shifted), "score": float(rng.random())})
        for _ in range(rng.integers(0, 3)):
            res.append({"image_id": i, "category_id": int(rng.integers(1, 4)),
                        "segmentation": rle(box(int(rng.integers(0, 100)), int(rng.integers(0, 140)), 8, 9)),
                        "score": float(rng.random())})
    return {"images": images, "annotations": anns, "categories": [{"id": c} for c in (1, 2, 3)]}, res


def duplicated(gt: dict, res: list[dict], ids: list, counts: np.ndarray) -> tuple[dict, list[dict]]:
    """The dataset with image ``ids[i]`` copied ``counts[i]`` times (new image and annotation ids)."""
    images, anns, out = [], [], []
    for old, n in zip(ids, counts.astype(int)):
        for _ in range(n):
            new = len(images) + 1
            images.append({"id": new, "height": H, "width": W})
            anns += [{**a, "id": len(anns) + 1 + k, "image_id": new}
                     for k, a in enumerate(a for a in gt["annotations"] if a["image_id"] == old)]
            out += [{**r, "image_id": new} for r in res if r["image_id"] == old]
    return {"images": images, "annotations": anns, "categories": gt["categories"]}, out


@pytest.fixture(scope="module")
def evaluated():
    gt, res = synthetic()
    kept: list = []
    metrics = ce.coco_mask_ap(gt, res, kept=kept)
    return gt, res, metrics, kept[0], cr.blocks(kept[0])


def test_weight_one_reproduces_accumulate(evaluated):
    _, _, metrics, ev, bl = evaluated
    n = len(ev.params.imgIds)
    prec, valid = cr.weighted_precision(bl, ev, np.ones((1, n)))
    ref = ev.eval["precision"][..., -1]  # (T, R, K, A) at maxDets[-1]
    assert np.array_equal(valid[0], ref[0, 0] > -1)
    assert np.allclose(prec[0][:, valid[0]], ref.mean(1)[:, valid[0]], atol=1e-12)
    rec, rvalid = cr.weighted_recall(bl, ev, np.ones((1, n)))
    rref = ev.eval["recall"][..., -1]
    assert np.allclose(rec[0][:, rvalid[0]], rref[:, rvalid[0]], atol=1e-12)
    got = cr.ap_summary(ev, bl, np.ones((1, n)))
    assert set(got) == set(ce.COCO_AP_KEYS)
    assert {k: float(v[0]) for k, v in got.items()} == pytest.approx(metrics, abs=1e-9, nan_ok=True)
    assert all(np.isfinite(metrics[k]) for k in ("ap", "ap_small", "ap_medium", "ap_large"))


def test_integer_weights_equal_a_dataset_of_copied_images(evaluated):
    gt, res, _, ev, bl = evaluated
    ids = list(ev.params.imgIds)
    weights = draw_weights(len(ids), 3, rng_for(0, "coco"))
    got = cr.ap_summary(ev, bl, weights)
    for b, w in enumerate(weights):
        ref = ce.coco_mask_ap(*duplicated(gt, res, ids, w))
        assert {k: float(v[b]) for k, v in got.items()} == pytest.approx(ref, abs=1e-9, nan_ok=True)


def test_zero_weight_on_every_image_of_a_category_leaves_it_out(evaluated):
    gt, res, _, ev, bl = evaluated
    ids = list(ev.params.imgIds)
    w = np.ones(len(ids))
    w[[i for i, img in enumerate(ids) if any(a["image_id"] == img and a["category_id"] == 3
                                             for a in gt["annotations"])]] = 0
    kept_ids = [img for img, wi in zip(ids, w) if wi]
    ref = ce.coco_mask_ap(gt, res, image_ids=kept_ids)
    got = cr.ap_summary(ev, bl, w[None])
    assert {k: float(v[0]) for k, v in got.items()} == pytest.approx(ref, abs=1e-9, nan_ok=True)


def test_mask_ar_resamples_equal_copied_images():
    gt, res = synthetic(seed=3)
    props = [{k: v for k, v in r.items() if k != "category_id"} for r in res]
    kept: dict = {}
    groups = {"one": {1}, "two_three": {2, 3}}
    metrics = ce.mask_ar(gt, props, max_dets=100, groups=groups, kept=kept)
    assert set(kept) == {"", "one", "two_three"}
    ev = kept[""]
    keys = ce.ar_keys(100)
    ones = np.ones((1, len(ev.params.imgIds)))
    got = cr.ar_summary(ev, cr.blocks(ev), ones, keys)
    got["ar100_one"] = cr.ar_summary(kept["one"], cr.blocks(kept["one"]), ones, ["x"])["x"]
    assert {k: float(v[0]) for k, v in got.items()} == pytest.approx(
        {k: metrics[k] for k in got}, abs=1e-9, nan_ok=True)
    ids = list(ev.params.imgIds)
    w = draw_weights(len(ids), 1, rng_for(1, "ar"))
    ref = ce.mask_ar(*duplicated(gt, props, ids, w[0]), max_dets=100)
    got = cr.ar_summary(ev, cr.blocks(ev), w, keys)
    assert {k: float(v[0]) for k, v in got.items()} == pytest.approx({k: ref[k] for k in keys}, abs=1e-9,
                                                                      nan_ok=True)


def as_lvis(gt: dict) -> dict:
    """``gt`` in LVIS form: frequencies r / c / f, no iscrowd, each image's absent categories negative."""
    freq = {1: "f", 2: "c", 3: "r"}
    present: dict = {}
    for a in gt["annotations"]:
        present.setdefault(a["image_id"], set()).add(a["category_id"])
    images = [{**im, "neg_category_ids": sorted(set(freq) - present.get(im["id"], set()))[:1],
               "not_exhaustive_category_ids": []} for im in gt["images"]]
    anns = [{k: v for k, v in a.items() if k != "iscrowd"} for a in gt["annotations"]]
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": f"c{c}", "frequency": f} for c, f in freq.items()]}


def test_lvis_ap_resamples_equal_lvis_eval_and_copied_images():
    gt, res = synthetic(seed=5, n_images=16)
    gt = as_lvis(gt)
    kept: list = []
    metrics = ce.lvis_mask_ap(gt, res, kept=kept)
    ev = kept[0]
    bl = cr.blocks(ev)
    ids = cr.layout(ev).images
    got = cr.ap_summary(ev, bl, np.ones((1, len(ids))))
    assert set(got) == set(ce.LVIS_AP_KEYS.values())
    assert {k: float(v[0]) for k, v in got.items()} == pytest.approx(metrics, abs=1e-9, nan_ok=True)
    w = draw_weights(len(ids), 2, rng_for(2, "lvis"))
    got = cr.ap_summary(ev, bl, w)
    for b in range(2):
        dgt, dres = duplicated(gt, res, ids, w[b])
        old = {im["id"]: im for im in gt["images"]}
        copies = [old[i] for i, n in zip(ids, w[b].astype(int)) for _ in range(n)]
        dgt["images"] = [{**im, "neg_category_ids": c["neg_category_ids"], "not_exhaustive_category_ids": []}
                         for im, c in zip(dgt["images"], copies)]
        dgt["categories"] = gt["categories"]
        ref = ce.lvis_mask_ap(dgt, dres)
        assert {k: float(v[b]) for k, v in got.items()} == pytest.approx(ref, abs=1e-9, nan_ok=True)


def test_true_positive_points_equal_the_running_sums_with_many_false_positives():
    gt, res = synthetic(seed=8, n_images=10)
    rng = np.random.default_rng(8)
    res += [{"image_id": int(rng.integers(1, 11)), "category_id": int(rng.integers(1, 4)), "score": float(rng.random()),
             "segmentation": rle(box(int(rng.integers(0, 100)), int(rng.integers(0, 140)), 12, 15))}
            for _ in range(150)]  # mostly false positives
    kept: list = []
    metrics = ce.coco_mask_ap(gt, res, kept=kept)
    ev = kept[0]
    bl = cr.blocks(ev)
    n = len(ev.params.imgIds)
    bl.points = cr._points(bl, n)
    assert bl.points is not None and len(bl.points.segment) < sum(b.tps.size for b in bl) / 2
    w = np.vstack([np.ones(n), draw_weights(n, 4, rng_for(3, "pts"))])
    fast, slow = cr.ap_summary(ev, bl, w), cr.ap_summary(ev, list(bl), w)
    for k in fast:
        assert np.allclose(fast[k], slow[k], atol=1e-9, equal_nan=True), k
    assert {k: float(v[0]) for k, v in fast.items()} == pytest.approx(metrics, abs=1e-9, nan_ok=True)
