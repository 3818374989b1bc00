"""Fault injection for the instances task: bad ground truth and bad detections.

Each bad entry is added to a copy of a clean file, a copy of a real entry with one field broken, so
that scoring it (or prompting with it) would move the AP. The outcome must be a recorded skip that
names the file and the entry, no crash, and the AP of the clean file: the bad entry simply left out.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from coco_fixtures import make_dataset
from sam_bench.data import validate as V
from sam_bench.data.coco import open_coco
from sam_bench.data.detections import read_detections
from sam_bench.errors import ConfigError
from sam_bench.models.base import LOW_RES, ModelInfo, Prediction, PromptableModel
from sam_bench.runner import evaluate
from sam_bench.tasks.instances import InstancesTask

AP_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


class BoxMasks(PromptableModel):
    """Each box prompt's mask is the filled box: deterministic, fast, and far from perfect on ellipses."""

    def __init__(self):
        super().__init__(ModelInfo(name="box-masks"))

    def _encode(self, image):
        self.hw = image.shape[:2]

    def _decode(self, points, labels, boxes, mask_input, multimask):
        h, w = self.hw
        yy, xx = torch.arange(h)[:, None], torch.arange(w)[None, :]
        masks = torch.stack([(xx >= b[0].floor()) & (xx < b[2].ceil()) & (yy >= b[1].floor()) & (yy < b[3].ceil())
                             for b in boxes])
        m = 3 if multimask else 1
        logits = torch.where(masks, 10.0, -10.0)[:, None].expand(-1, m, -1, -1).clone()
        return Prediction(logits, torch.ones(len(boxes), m), torch.zeros(len(boxes), m, LOW_RES, LOW_RES))


def _write(path, data) -> None:
    path.write_text(json.dumps(data))  # Python's json writes NaN, as broken exporters do


def _run(tmp_path, ann_json, tag, task=None):
    ds = open_coco(ann_json, ann_json.parent / "images")
    task = task or InstancesTask()
    task.prepare(ds)
    res = evaluate(task, BoxMasks(), [ds], tmp_path / f"run-{tag}", progress=False)
    return ds, res["datasets"][ds.name]


def _ap(d) -> dict:
    return {k: d["metrics"][k] for k in AP_KEYS}


@pytest.fixture
def clean(tmp_path):
    path = make_dataset(tmp_path, n_images=2, per_image=5, crowd=False)
    return path, json.loads(path.read_text())


def _bad_annotation(data, how):
    """A copy of the second annotation (an RLE ellipse of image 100) with a new id and one fault."""
    ann = copy.deepcopy(data["annotations"][1])
    ann["id"] = 77
    x, y, w, h = ann["bbox"]
    if how == "unknown category":
        ann["category_id"] = 99
    elif how == "NaN box":
        ann["bbox"] = [x, float("nan"), w, h]
    elif how == "box outside the image":
        ann["bbox"] = [500.0, 400.0, w, h]
    elif how == "negative width":
        ann["bbox"] = [x, y, -w, h]
    elif how == "2-point polygon":
        ann["segmentation"] = [[10.0, 10.0, 40.0, 30.0]]
    elif how == "string image id":
        ann["image_id"] = "100"
    elif how == "NaN area":
        ann["area"] = float("nan")
    return ann


GT_FAULTS = {"unknown category": ("unknown_category", "category_id 99"),
             "NaN box": ("bad_bbox", "not a finite number"),
             "box outside the image": ("bbox_outside_image", "outside the 160x120 image"),
             "negative width": ("empty_bbox", "width or height <= 0"),
             "2-point polygon": ("bad_segmentation", "polygon with 4 coordinates"),
             "string image id": ("bad_image_id", "image_id '100' is a str, not an int"),
             "NaN area": ("bad_area", "area nan")}


@pytest.mark.parametrize("how", list(GT_FAULTS))
def test_bad_gt_annotation_is_a_named_skip_and_ap_is_that_of_the_clean_file(tmp_path, clean, how):
    path, data = clean
    _, want = _run(tmp_path, path, "clean")
    bad = {**data, "annotations": data["annotations"] + [_bad_annotation(data, how)]}
    bad_path = path.with_name("bad.json")
    _write(bad_path, bad)
    ds, got = _run(tmp_path, bad_path, "bad")
    code, words = GT_FAULTS[how]
    (skip,) = [s for s in got["skips"] if s["item"].endswith("#ann77")]
    assert str(bad_path) in skip["reason"] and "annotation 77" in skip["reason"] and words in skip["reason"]
    assert _ap(got) == pytest.approx(_ap(want), abs=1e-12, nan_ok=True)
    assert 10 < want["metrics"]["ap"] < 90  # box masks on ellipses: a real number, not 0 or 100
    assert got["num_items"] == 2 and got["metrics"]["inputs"]["gt"]["annotations"] == 10
    attributed = how != "string image id"  # a str image id names no listed image
    assert got["metrics"]["inputs"]["gt"]["left_out"] == int(attributed)
    assert got["metrics"]["inputs"]["gt"]["reasons"] == ({code: 1} if attributed else {})
    assert [a["id"] for a in ds.gt.data["annotations"]] == list(range(1, 11))


def test_left_out_at_load_time_is_not_scored_as_a_miss(tmp_path, clean):
    """A polygon of positive area that rasterises to no pixel passes the open-time checks, is left
    out when its image loads, and must then be left out of the scored ground truth too."""
    path, data = clean
    _, want = _run(tmp_path, path, "clean")
    tiny = {**copy.deepcopy(data["annotations"][0]), "id": 78, "segmentation": [[10.1, 10.1, 10.3, 10.1, 10.1, 10.3]],
            "bbox": [10.1, 10.1, 0.2, 0.2], "area": 0.02}
    bad_path = path.with_name("tiny.json")
    _write(bad_path, {**data, "annotations": data["annotations"] + [tiny]})
    _, got = _run(tmp_path, bad_path, "tiny")
    assert _ap(got) == pytest.approx(_ap(want), abs=1e-12, nan_ok=True)
    assert got["metrics"]["inputs"]["gt"] == {"annotations": 10, "left_out": 1, "reasons": {"empty_mask": 1}}


def test_gt_without_area_and_iscrowd_scores_like_the_full_file(tmp_path, clean):
    """Both evaluators read ``area`` (and COCOeval ``iscrowd``) after all the compute: absent, they
    are filled in at open time (the mask's pixel count) and at scoring (0), not a KeyError."""
    path, data = clean
    _, want = _run(tmp_path, path, "clean")
    bare = {**data, "annotations": [{k: v for k, v in a.items() if k not in ("area", "iscrowd")}
                                    for a in data["annotations"]]}
    bare_path = path.with_name("bare.json")
    _write(bare_path, bare)
    ds, got = _run(tmp_path, bare_path, "bare")
    assert _ap(got) == pytest.approx(_ap(want), abs=1e-12, nan_ok=True)
    assert [a["area"] for a in ds.gt.data["annotations"]] == [a["area"] for a in data["annotations"]]


def test_bad_image_entries_are_named_skips(tmp_path, clean):
    path, data = clean
    images = copy.deepcopy(data["images"]) + [{"id": "x7", "height": 120, "width": 160, "file_name": "a.png"},
                                              {"id": 300, "height": -1, "width": 160, "file_name": "b.png"},
                                              dict(data["images"][0])]
    bad_path = path.with_name("images.json")
    _write(bad_path, {**data, "images": images})
    ds = open_coco(bad_path, path.parent / "images")
    reasons = {m["item"]: m["reason"] for m in ds.missing}
    assert "id 'x7' is a str, not an int" in reasons["x7"] and "height -1 is not a positive integer" in reasons["300"]
    assert "image id 100 is listed twice" in reasons["100"] and all(str(bad_path) in r for r in reasons.values())
    assert [it.id for it in ds.items] == ["100", "101"]


def _dets(data):
    """Each GT box shifted by 2 px, score by annotation order, plus one low-score false positive per image."""
    out = []
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": [x + 2, y + 1, w, h],
                    "score": round(1 - 0.05 * a["id"], 3)})
    out += [{"image_id": i["id"], "category_id": 1, "bbox": [120.0, 80.0, 30.0, 30.0], "score": 0.1}
            for i in data["images"]]
    return out


def _bad_detection(dets, how):
    """A copy of the best detection of image 100 with one fault (it would take a top-k slot if kept)."""
    d = copy.deepcopy(dets[0])
    if how == "NaN score":
        d["score"] = float("nan")
    elif how == "NaN box":
        d["bbox"][2] = float("nan")
    elif how == "unknown category":
        d["category_id"] = 99
    elif how == "unknown image id":
        d["image_id"] = 999999
    elif how == "string image id":
        d["image_id"] = "100"
    elif how == "negative width":
        d["bbox"][2] = -5.0
    elif how == "box outside the image":
        d["bbox"] = [170.0, 10.0, 20.0, 20.0]
    elif how == "no score":
        del d["score"]
    return d


DET_FAULTS = {"NaN score": ("bad_score", "score nan is not a finite number"),
              "NaN box": ("bad_bbox", "is not 4 finite numbers"),
              "unknown category": ("unknown_category", "category_id 99 is not a category"),
              "string image id": ("bad_image_id", "image_id '100' is a str, not an int"),
              "negative width": ("empty_bbox", "width or height <= 0"),
              "box outside the image": ("bbox_outside_image", "outside the 160x120 image"),
              "no score": ("bad_detection", "lacks image_id, category_id, bbox or score")}


@pytest.mark.parametrize("how", list(DET_FAULTS) + ["unknown image id"])
def test_bad_detection_is_a_named_skip_and_ap_is_that_of_the_clean_file(tmp_path, clean, how):
    path, data = clean
    dets = _dets(data)
    clean_dets, bad_dets = tmp_path / "dets.json", tmp_path / "bad_dets.json"
    _write(clean_dets, dets)
    _write(bad_dets, dets + [_bad_detection(dets, how)])
    k = len(dets)  # the bad entry's index
    _, want = _run(tmp_path, path, "clean", InstancesTask(boxes=str(clean_dets), max_dets=5))
    _, got = _run(tmp_path, path, "bad", InstancesTask(boxes=str(bad_dets), max_dets=5))
    assert _ap(got) == pytest.approx(_ap(want), abs=1e-12, nan_ok=True)
    assert 10 < want["metrics"]["ap"] < 90
    counts = got["metrics"]["inputs"]["detections"]
    assert counts["used"] == want["metrics"]["inputs"]["detections"]["used"] == len(dets)
    if how == "unknown image id":
        (skip,) = [s for s in got["skips"] if "#det" in s["item"]]
        assert "1 detections name 1 image ids" in skip["reason"] and "999999" in skip["reason"]
        assert counts["other_images"] == 1 and counts["left_out"] == 0
    else:
        code, words = DET_FAULTS[how]
        (skip,) = [s for s in got["skips"] if "#det" in s["item"]]
        assert skip["item"].endswith(f"#det{k}") and f"detection {k}" in skip["reason"] and words in skip["reason"]
        assert counts["left_out"] == 1 and counts["reasons"] == {code: 1}
    assert str(bad_dets) in skip["reason"]


def test_unprepared_run_still_scores_only_known_categories(tmp_path, clean):
    """Without ``prepare`` (a caller that skips the runner's hook) detections are checked per image
    when prompted and their categories when scored: the AP of the clean file while max-dets does not bind."""
    path, data = clean
    dets = _dets(data)
    clean_dets, bad_dets = tmp_path / "dets.json", tmp_path / "bad_dets.json"
    _write(clean_dets, dets)
    _write(bad_dets, dets + [_bad_detection(dets, "unknown category"), _bad_detection(dets, "box outside the image")])
    ds = open_coco(path, path.parent / "images")
    want = evaluate(InstancesTask(boxes=str(clean_dets)), BoxMasks(), [ds], tmp_path / "a", progress=False)
    ds = open_coco(path, path.parent / "images")
    got = evaluate(InstancesTask(boxes=str(bad_dets)), BoxMasks(), [ds], tmp_path / "b", progress=False)
    assert _ap(got["datasets"][ds.name]) == pytest.approx(_ap(want["datasets"][ds.name]), abs=1e-12, nan_ok=True)
    assert got["datasets"][ds.name]["metrics"]["inputs"]["detections"]["left_out"] == 2


def test_a_detection_file_with_nothing_usable_is_a_config_error(tmp_path):
    path = tmp_path / "nan.json"
    _write(path, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "score": float("nan")}])
    with pytest.raises(ConfigError, match=r"nan\.json: entry 0 score nan is not a finite number"):
        read_detections(path)
    _write(path, [])
    assert read_detections(path).usable == []


def test_box_checks():
    box = [1, 2, 3, 4]
    assert V.clip_box(box, 10, 10) == (box, None) and V.clip_box(box, 10, 10)[0] is box  # unchanged, same list
    assert V.clip_box([-2.0, 8.0, 6.0, 5.0], 10, 10) == ([0.0, 8.0, 4.0, 2.0], None)  # slightly out: clipped
    for bad, code in [([20, 20, 5, 5], "bbox_outside_image"), ([1, 1, 0, 4], "empty_bbox"),
                      ([1, 1, math.inf, 4], "bad_bbox"), ([1, 1, "3", 4], "bad_bbox"), ([1, 2, 3], "bad_bbox"),
                      ([-9, 0, 9, 4], "bbox_outside_image")]:
        assert V.clip_box(bad, 10, 10)[1].code == code, bad
    assert V.image_problem({"id": True, "height": 1, "width": 1}, {}).code == "bad_image_id"
    assert V.image_problem({"id": 1, "height": 2.5, "width": 1}, {}).code == "bad_image_size"
    assert V.detection_problem({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": True}).code == \
        "bad_score"


def test_text_grounder_boxes_file_refuses_non_finite_boxes_and_scores(tmp_path):
    from sam_bench.grounders.boxes import load_boxes_file

    p = tmp_path / "g.json"
    _write(p, {"a/1/0": {"boxes": [[0, 0, float("nan"), 4]], "scores": [0.5]}})
    with pytest.raises(ConfigError, match=r"g\.json: entry 'a/1/0' has a box or score that is not a finite number"):
        load_boxes_file(p)
    _write(p, {"a/1/0": {"boxes": [[0, 0, 4, 4]], "scores": [float("nan")]}})
    with pytest.raises(ConfigError, match="not a finite number"):
        load_boxes_file(p)
    _write(p, {"a/1/0": {"boxes": [["x", 0, 4, 4]]}})
    with pytest.raises(ConfigError, match="boxes must be"):
        load_boxes_file(p)
    _write(p, {"a/1/0": {"boxes": [[0, 0, 4, 4]]}})
    assert load_boxes_file(p)["a/1/0"]["scores"].tolist() == [1.0]
