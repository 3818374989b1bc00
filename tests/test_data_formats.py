"""Readers on native-format fixtures written at test time, and every bad input of the issue."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import scipy.io

from sam_bench.data import masks as M
from sam_bench.data.bsds import open_bsds
from sam_bench.data.coco import open_coco
from sam_bench.data.folder import open_folder
from sam_bench.data.lvis import lvis_api, open_lvis
from sam_bench.data.refcoco import open_refcoco
from sam_bench.errors import BadInput, ConfigError


def write_image(path, h=40, w=60, seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return img


def coco_fixture(tmp_path, extra_anns=()):
    """Two 40x60 images: a polygon square, an RLE blob and a crowd region; image 3 listed, absent."""
    write_image(tmp_path / "img" / "a.jpg")
    write_image(tmp_path / "img" / "b.jpg", seed=1)
    blob = np.zeros((40, 60), bool)
    blob[5:15, 20:40] = True
    crowd = np.zeros((40, 60), bool)
    crowd[30:38, 0:10] = True
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60},
                   {"id": 2, "file_name": "b.jpg", "height": 40, "width": 60},
                   {"id": 3, "file_name": "gone.jpg", "height": 40, "width": 60}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]],
             "area": 100.0, "bbox": [10, 10, 10, 10], "iscrowd": 0},
            {"id": 11, "image_id": 2, "category_id": 2, "segmentation": M.encode(blob), "area": 200.0,
             "bbox": [20, 5, 20, 10], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 1, "segmentation": M.encode(crowd), "area": 80.0,
             "bbox": [0, 30, 10, 8], "iscrowd": 1},
            {"id": 13, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]], "area": 8.0,
             "bbox": [1, 1, 4, 4], "iscrowd": 0},
            *extra_anns],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, blob, crowd


def test_coco_polygons_rle_crowd_and_missing_image(tmp_path):
    path, blob, crowd = coco_fixture(tmp_path)
    ds = open_coco(path, tmp_path / "img")
    assert [it.id for it in ds.items] == ["1", "2"] and ds.gt_json == path
    assert ds.missing == [{"item": "3", "reason": ds.missing[0]["reason"]}] and "gone.jpg" in ds.missing[0]["reason"]
    assert ds.categories[2]["name"] == "dog"
    s1 = ds.items[0].load()
    assert s1.image.shape == (40, 60, 3) and s1.ignore is None
    (inst,) = s1.instances
    assert inst.id == 10 and inst.category_id == 1 and inst.bbox == [10, 10, 10, 10]
    assert 90 <= M.area(inst.rle) <= 121  # polygon rasterised by pycocotools
    s2 = ds.items[1].load()
    assert [i.iscrowd for i in s2.instances] == [False, True]
    assert np.array_equal(s2.instances[0].mask(), blob)
    assert np.array_equal(s2.ignore, crowd)
    assert ds.items[1].meta["num_masks"] == 1


def test_coco_bad_annotations_are_reported_not_dropped(tmp_path):
    bad = [{"id": 20, "image_id": 1, "category_id": 1, "segmentation": [[100, 100, 120, 100, 120, 130]],
            "area": 300.0, "bbox": [100, 100, 20, 30], "iscrowd": 0},
           {"id": 21, "image_id": 1, "category_id": 1, "segmentation": M.encode(np.zeros((40, 60), bool)),
            "area": 0.0, "bbox": [0, 0, 0, 0], "iscrowd": 0},
           {"id": 22, "image_id": 1, "category_id": 1, "segmentation": M.encode(np.ones((20, 20), bool)),
            "area": 400.0, "bbox": [0, 0, 20, 20], "iscrowd": 0}]
    path, _, _ = coco_fixture(tmp_path, bad)
    ds = open_coco(path, tmp_path / "img")
    reasons = {m["item"]: m["reason"] for m in ds.missing}
    assert "outside the 60x40 image" in reasons["1#ann20"]
    assert "empty mask" in reasons["1#ann21"]
    assert "does not match" in reasons["1#ann22"]
    assert all(str(path) in reasons[k] for k in ("1#ann20", "1#ann21", "1#ann22"))
    assert [i.id for i in ds.items[0].load().instances] == [10]


def test_truncated_and_wrong_json(tmp_path):
    path, _, _ = coco_fixture(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(BadInput, match=r"ann\.json: annotation file is not valid JSON"):
        open_coco(path, tmp_path / "img")
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(BadInput, match="no annotations, categories"):
        open_coco(path, tmp_path / "img")
    with pytest.raises(BadInput, match="not found"):
        open_coco(tmp_path / "nope.json", tmp_path / "img")


def test_corrupt_jpeg_and_size_mismatch_are_item_errors(tmp_path):
    path, _, _ = coco_fixture(tmp_path)
    ds = open_coco(path, tmp_path / "img")
    (tmp_path / "img" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(BadInput, match=r"a\.jpg: cannot decode image"):
        ds.items[0].load()
    write_image(tmp_path / "img" / "b.jpg", h=30, w=60)
    with pytest.raises(BadInput, match=r"b\.jpg: image is 60x30 but the annotations say 60x40"):
        ds.items[1].load()
    (tmp_path / "img" / "b.jpg").unlink()
    with pytest.raises(BadInput, match=r"b\.jpg: image file is missing"):
        ds.items[1].load()


def lvis_dict():
    sq = [[10, 10, 30, 10, 30, 30, 10, 30]]
    tri = [[40, 5, 55, 5, 55, 20]]
    return {
        "images": [{"id": 7, "file_name": "COCO_val2014_000000000007.jpg", "height": 40, "width": 60,
                    "coco_url": "http://images.cocodataset.org/val2017/000000000007.jpg",
                    "neg_category_ids": [3], "not_exhaustive_category_ids": [2]},
                   {"id": 8, "height": 40, "width": 60, "coco_url": "http://images.cocodataset.org/train2017/"
                    "000000000008.jpg", "neg_category_ids": [], "not_exhaustive_category_ids": []},
                   {"id": 9, "file_name": "COCO_val2014_000000000009.jpg", "height": 40, "width": 60,
                    "neg_category_ids": [], "not_exhaustive_category_ids": []}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "segmentation": sq, "area": 400.0,
                         "bbox": [10, 10, 20, 20]},
                        {"id": 2, "image_id": 7, "category_id": 2, "segmentation": tri, "area": 112.5,
                         "bbox": [40, 5, 15, 15]},
                        {"id": 3, "image_id": 8, "category_id": 1, "segmentation": sq, "area": 400.0,
                         "bbox": [10, 10, 20, 20]}],
        "categories": [{"id": 1, "name": "box", "frequency": "f"}, {"id": 2, "name": "wedge", "frequency": "c"},
                       {"id": 3, "name": "orb", "frequency": "r"}]}


def test_lvis_resolves_names_keeps_negatives_and_lists_missing(tmp_path):
    write_image(tmp_path / "coco" / "val2017" / "000000000007.jpg")
    write_image(tmp_path / "coco" / "train2017" / "000000000008.jpg")
    (tmp_path / "lvis.json").write_text(json.dumps(lvis_dict()))
    ds = open_lvis(tmp_path / "lvis.json", tmp_path / "coco" / "val2017")
    assert [it.id for it in ds.items] == ["7", "8"] and ds.meta["image_ids"] == [7, 8]
    assert ds.items[1].image_path == tmp_path / "coco" / "train2017" / "000000000008.jpg"
    assert [m["item"] for m in ds.missing] == ["9"]
    assert ds.items[0].meta["neg_category_ids"] == [3] and ds.items[0].meta["not_exhaustive_category_ids"] == [2]
    assert ds.categories[3]["frequency"] == "r" and ds.meta["frequency_counts"] == {"f": 1, "c": 1, "r": 1}
    assert len(ds.items[0].load().instances) == 2


def test_lvis_eval_runs_under_numpy2(tmp_path):
    """LVISEval on a tiny inline set: perfect detections score AP 1, a missed category lowers it."""
    api = lvis_api()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(lvis_dict()))
    gt = api.LVIS(str(gt_path))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9,
             "segmentation": M.to_rle(a["segmentation"], 40, 60)} for a in lvis_dict()["annotations"]]
    ev = api.LVISEval(gt, api.LVISResults(gt, dets), "segm")
    ev.run()
    assert ev.get_results()["AP"] == pytest.approx(1.0)
    ev2 = api.LVISEval(gt, api.LVISResults(gt, dets[:1] + dets[2:]), "segm")
    ev2.run()
    assert ev2.get_results()["AP"] == pytest.approx(0.5)  # box category perfect, wedge missed


def test_lvis_rejects_coco_file(tmp_path):
    path, _, _ = coco_fixture(tmp_path)
    with pytest.raises(BadInput, match="not LVIS"):
        open_lvis(path, tmp_path / "img")


def test_folder_grabcut_band_spaces_and_unmatched(tmp_path):
    img = write_image(tmp_path / "data" / "baseball bat00_1.jpg")
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[10:30, 10:40] = 255
    mask[8:10, 10:40] = 128
    (tmp_path / "seg").mkdir()
    cv2.imwrite(str(tmp_path / "seg" / "baseball bat00_1.bmp"), mask)
    write_image(tmp_path / "data" / "lonely.JPG")
    ds = open_folder(tmp_path / "data", tmp_path / "seg", ignore_value=128)
    assert [it.id for it in ds.items] == ["baseball bat00_1"]
    assert ds.missing[0]["item"] == "lonely" and "no mask" in ds.missing[0]["reason"]
    s = ds.items[0].load()
    assert np.array_equal(s.instances[0].mask(), mask == 255)
    assert np.array_equal(s.ignore, mask == 128)


def test_folder_rgb_mask_and_empty_mask(tmp_path):
    write_image(tmp_path / "images" / "x.jpg")
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[5:10, 5:10, 1] = 200  # RITM Berkeley rule: max over channels > 128
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "x.png"), rgb)
    ds = open_folder(tmp_path / "images", tmp_path / "masks")
    assert M.area(ds.items[0].load().instances[0].rle) == 25
    cv2.imwrite(str(tmp_path / "masks" / "x.png"), np.zeros((40, 60), np.uint8))
    with pytest.raises(BadInput, match=r"x\.png: mask has no foreground"):
        ds.items[0].load()
    cv2.imwrite(str(tmp_path / "masks" / "x.png"), np.full((20, 60), 255, np.uint8))
    with pytest.raises(BadInput, match=r"x\.png: mask is 60x20 but its image is 60x40"):
        ds.items[0].load()


def bsds_fixture(root, n_annotators=(2, 3)):
    for k, n in enumerate(n_annotators):
        write_image(root / "images" / "test" / f"{k}.jpg", h=20, w=30, seed=k)
        cell = np.empty((1, n), dtype=object)
        for a in range(n):
            seg = np.ones((20, 30), np.uint16)
            seg[:, 15 + a:] = 2
            bd = np.zeros((20, 30), np.uint8)
            bd[:, 15 + a] = 1
            cell[0, a] = {"Segmentation": seg, "Boundaries": bd}
        (root / "groundTruth" / "test").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "groundTruth" / "test" / f"{k}.mat", {"groundTruth": cell})


def test_bsds_reads_all_annotators(tmp_path):
    bsds_fixture(tmp_path)
    ds = open_bsds(tmp_path, "test")
    assert [it.id for it in ds.items] == ["0", "1"]
    s = ds.items[1].load()
    assert len(s.boundaries) == 3 and len(s.segmentations) == 3
    assert s.boundaries[2].dtype == bool and s.boundaries[2][:, 17].all() and s.boundaries[2].sum() == 20
    assert s.segmentations[0][0, 14] == 1 and s.segmentations[0][0, 15] == 2
    with pytest.raises(ConfigError, match="splits are train, val, test"):
        open_bsds(tmp_path, "dev")


def test_bsds_bad_mat_files(tmp_path):
    bsds_fixture(tmp_path, (2,))
    gt = tmp_path / "groundTruth" / "test" / "0.mat"
    scipy.io.savemat(gt, {"something": np.zeros(3)})
    ds = open_bsds(tmp_path, "test")
    with pytest.raises(BadInput, match=r"0\.mat: no 'groundTruth'"):
        ds.items[0].load()
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = {"Segmentation": np.ones((20, 30), np.uint16)}
    scipy.io.savemat(gt, {"groundTruth": cell})
    with pytest.raises(BadInput, match="lacks Boundaries/Segmentation"):
        ds.items[0].load()
    gt.write_bytes(b"MATLAB 5.0 MAT-file garbage")
    with pytest.raises(BadInput, match=r"0\.mat: cannot read MATLAB file"):
        ds.items[0].load()
    gt.unlink()
    ds = open_bsds(tmp_path, "test")
    assert ds.items == [] and "no ground truth" in ds.missing[0]["reason"]


def test_refcoco_refs_pickle(tmp_path):
    write_image(tmp_path / "images" / "mscoco" / "images" / "train2014" / "COCO_train2014_000000000005.jpg")
    folder = tmp_path / "refcoco"
    folder.mkdir()
    sq = [[10, 10, 30, 10, 30, 30, 10, 30]]
    inst = {"images": [{"id": 5, "file_name": "COCO_train2014_000000000005.jpg", "height": 40, "width": 60}],
            "annotations": [{"id": 50, "image_id": 5, "category_id": 1, "segmentation": sq, "area": 400.0,
                             "bbox": [10, 10, 20, 20], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "box"}]}
    (folder / "instances.json").write_text(json.dumps(inst))
    refs = [{"ref_id": 1, "ann_id": 50, "image_id": 5, "split": "val", "category_id": 1,
             "sentences": [{"sent": "the grey box", "raw": "The grey box"}, {"sent": "box on the left"}]},
            {"ref_id": 2, "ann_id": 50, "image_id": 5, "split": "testA", "category_id": 1,
             "sentences": [{"sent": "a box"}]}]
    with open(folder / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    ds = open_refcoco(tmp_path, "refcoco", split="val")
    (inst1,) = ds.items[0].load().instances
    assert inst1.id == 1 and inst1.texts == ["the grey box", "box on the left"] and ds.meta["num_sentences"] == 2
    assert open_refcoco(tmp_path, "refcoco", split="testA").meta["num_refs"] == 1
    with pytest.raises(ConfigError, match="has splits testA, val"):
        open_refcoco(tmp_path, "refcoco", split="testB")
    (folder / "refs(unc).p").write_bytes(b"\x80\x02garbage")
    with pytest.raises(BadInput, match=r"refs\(unc\)\.p: cannot unpickle"):
        open_refcoco(tmp_path, "refcoco", split="val")
