"""The instances task: AP = 100 with an oracle model, the refinement pass, batching, detector files,
and our AP against pycocotools / LVISEval run directly on the written results file."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from coco_fixtures import make_dataset
from sam_bench.data.coco import open_coco
from sam_bench.data.lvis import lvis_api, open_lvis
from sam_bench.errors import ConfigError
from sam_bench.models.base import LOW_RES, ModelInfo, Prediction, PromptableModel
from sam_bench.runner import evaluate
from sam_bench.tasks.instances import InstancesTask

COCO_KEYS = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"]


class Oracle(PromptableModel):
    """Knows each image's GT: the box nearest the prompt box names the instance.

    Multimask pass: [box, GT eroded by 1 px (best score), GT dilated]; the best mask's low-res
    logits carry the instance index. The refinement pass returns the exact GT mask only when it
    gets that index back with the box, so AP = 100 needs the refinement to be wired right.
    """

    def __init__(self, gt: dict, prompt_batch=None):
        super().__init__(ModelInfo(name="oracle"), prompt_batch=prompt_batch)
        self.gt = gt  # item id -> [(xyxy box, (H, W) bool mask)]
        self.refined = []

    def set_image(self, image, image_id=None):
        self.item = image_id
        super().set_image(image, image_id)

    def _encode(self, image):
        pass

    def _match(self, boxes):
        ref = torch.tensor(np.array([b for b, _ in self.gt[self.item]]), dtype=torch.float32)
        return (boxes[:, None] - ref[None]).abs().sum(-1).argmin(1)

    def _decode(self, points, labels, boxes, mask_input, multimask):
        import cv2

        idx = self._match(boxes)
        masks = [torch.from_numpy(self.gt[self.item][i][1]) for i in idx.tolist()]
        to_logit = lambda m: torch.where(torch.as_tensor(m), 10.0, -10.0)
        if not multimask:
            self.refined.append(mask_input[:, 0, 0, 0].tolist())
            ok = [int(v) == i + 1 for v, i in zip(mask_input[:, 0, 0, 0].tolist(), idx.tolist())]
            logits = torch.stack([to_logit(m if good else ~m) for m, good in zip(masks, ok)])[:, None]
            return Prediction(logits, torch.ones(len(idx), 1), torch.zeros(len(idx), 1, LOW_RES, LOW_RES))
        k = np.ones((3, 3), np.uint8)
        out, low = [], torch.zeros(len(idx), 3, LOW_RES, LOW_RES)
        for n, (m, b) in enumerate(zip(masks, boxes)):
            box = torch.zeros_like(m)
            x0, y0, x1, y1 = [int(v) for v in b.round()]
            box[y0:y1, x0:x1] = True
            ero = torch.from_numpy(cv2.erode(m.numpy().astype(np.uint8), k).astype(bool))
            dil = torch.from_numpy(cv2.dilate(m.numpy().astype(np.uint8), k).astype(bool))
            out.append(torch.stack([to_logit(box), to_logit(ero), to_logit(dil)]))
            low[n, 1] = idx[n] + 1
        scores = torch.tensor([[0.3, 0.9, 0.6]]).expand(len(idx), 3).clone()
        return Prediction(torch.stack(out), scores, low)


def oracle_for(ds) -> dict:
    gt = {}
    for it in ds.items:
        insts = [i for i in it.load().instances if not i.iscrowd]
        gt[it.id] = [(np.array([i.bbox[0], i.bbox[1], i.bbox[0] + i.bbox[2], i.bbox[1] + i.bbox[3]]), i.mask())
                     for i in insts]
    return gt


def test_oracle_with_gt_boxes_gives_ap_100_and_refines_in_batches(tmp_path):
    path = make_dataset(tmp_path, n_images=3, per_image=6)
    ds = open_coco(path, tmp_path / "images")
    model = Oracle(oracle_for(ds), prompt_batch=2)
    res = evaluate(InstancesTask(), model, [ds], tmp_path / "run", progress=False)
    m = res["datasets"][ds.name]["metrics"]
    assert {k: m[k] for k in COCO_KEYS} == pytest.approx({k: 100.0 for k in COCO_KEYS}, abs=1e-9)
    assert m["inputs"] == {"gt": {"annotations": 18, "left_out": 0, "reasons": {}}}
    n_boxes = 6 + 6 + 5  # the first image's last annotation is a crowd: not prompted
    assert model.decoded_prompts == 2 * n_boxes
    assert model.decoder_calls == 2 * (3 + 3 + 3)  # ceil(B / 2) per pass per image
    assert len(model.refined) == 9 and all(len(r) <= 2 for r in model.refined)
    no_refine = evaluate(InstancesTask(refine=False), Oracle(oracle_for(ds)), [ds], tmp_path / "run2",
                         progress=False)["datasets"][ds.name]["metrics"]
    assert no_refine["ap"] < 90  # the eroded masks score lower: the refinement pass mattered
    table = (tmp_path / "run" / "table5_instances.md").read_text()
    assert "ViTDet-H (paper)" in table and "46.5" in table and "| oracle " in table  # paper rows beside ours


def test_lvis_gt_boxes_ap_100(tmp_path):
    path = make_dataset(tmp_path, n_images=3, per_image=6, lvis=True, absent=1)
    ds = open_lvis(path, tmp_path / "images")
    res = evaluate(InstancesTask(), Oracle(oracle_for(ds)), [ds], tmp_path / "run", progress=False)
    d = res["datasets"][ds.name]
    assert d["metrics"]["ap"] == pytest.approx(100.0) and d["metrics"]["ap_rare"] == pytest.approx(100.0)
    assert {k for k in d["metrics"] if not k.endswith("_ci")} == set(COCO_KEYS) | {"ap_rare", "ap_common",
                                                                                  "ap_frequent", "inputs"}
    assert d["metrics"]["ap_ci"] == pytest.approx([100.0, 100.0])  # every resample is perfect too
    assert d["num_items"] == 2 and d["skips"][0]["item"] == "102"


def _detections(ds, rng, extra=4):
    """GT boxes jittered by up to 3 px (score in [0.5, 1]) plus random boxes (score < 0.5)."""
    dets = []
    for it in ds.items:
        s = it.load()
        for inst in s.instances:
            if inst.iscrowd:
                continue
            x, y, w, h = inst.bbox
            j = rng.uniform(-3, 3, 4)
            dets.append({"image_id": it.image_id, "category_id": inst.category_id, "score": float(rng.uniform(.5, 1)),
                         "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]})
        for _ in range(extra):
            x, y = rng.uniform(0, 120), rng.uniform(0, 90)
            dets.append({"image_id": it.image_id, "category_id": int(rng.integers(1, 6)),
                         "score": float(rng.uniform(0, .5)), "bbox": [x, y, rng.uniform(5, 40), rng.uniform(5, 30)]})
    dets.append({"image_id": 999999, "category_id": 1, "score": 0.9, "bbox": [0, 0, 5, 5]})  # not in the dataset
    return dets


def test_detector_boxes_with_grabcut_equal_pycocotools_on_the_results_file(tmp_path):
    from sam_bench.models.grabcut import build_grabcut

    path = make_dataset(tmp_path, n_images=2, per_image=5)
    ds = open_coco(path, tmp_path / "images")
    dets_path = tmp_path / "dets.json"
    dets_path.write_text(json.dumps(_detections(ds, np.random.default_rng(0))))
    res = evaluate(InstancesTask(boxes=str(dets_path), max_dets=7), build_grabcut(), [ds], tmp_path / "run",
                   progress=False)
    ours = res["datasets"][ds.name]["metrics"]
    segm = json.loads((tmp_path / "run" / f"segm_results.{ds.name.replace(':', '_')}.json").read_text())
    assert len(segm) == 2 * 7 and {r["image_id"] for r in segm} == {100, 101}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        ev = COCOeval(gt, gt.loadRes(segm), "segm")
        ev.params.imgIds = [100, 101]
        ev.params.maxDets = [1, 10, 7]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][..., -1]
    ref = lambda p: 100 * p[p > -1].mean() if (p > -1).any() else math.nan
    want = {"ap": ref(prec[..., 0]), "ap50": ref(prec[0, ..., 0]), "ap75": ref(prec[5, ..., 0]),
            "ap_small": ref(prec[..., 1]), "ap_medium": ref(prec[..., 2]), "ap_large": ref(prec[..., 3])}
    assert {k: ours[k] for k in COCO_KEYS} == pytest.approx(want, abs=1e-6, nan_ok=True)
    assert 5 < ours["ap"] < 95  # GrabCut on flat-coloured shapes: good, not perfect


def test_bad_boxes_file_is_a_clear_error(tmp_path):
    task = InstancesTask(boxes=str(tmp_path / "nope.json"))  # creating the task reads no file
    with pytest.raises(ConfigError, match="no such file"):
        task.setup()
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(ConfigError, match="bad.json: entry 0 lacks"):
        InstancesTask(boxes=str(tmp_path / "bad.json")).setup()


@pytest.mark.realdata
@pytest.mark.parametrize("which", ["tiny", "fizyr_val", "fizyr_train"])
def test_real_coco_oracle_ap_100(data_root, tmp_path, which):
    if which == "tiny":
        root = data_root / "COCO_tiny" / "small_coco"
        ds = open_coco(root / "instances_train2017_small.json", root / "train_2017_small")
    else:
        split = which.split("_")[1]
        root = data_root / "COCO_fizyr_test" / "coco"
        ds = open_coco(root / "annotations" / f"instances_{split}2017.json", root / "images" / f"{split}2017")
    res = evaluate(InstancesTask(), Oracle(oracle_for(ds)), [ds], tmp_path / "run", progress=False)
    m = res["datasets"][ds.name]["metrics"]
    for k in COCO_KEYS:
        assert math.isnan(m[k]) or m[k] == pytest.approx(100.0, abs=1e-9), (k, m[k])
    assert m["ap"] == pytest.approx(100.0, abs=1e-9)


def test_lvis_results_match_lvis_eval_directly(tmp_path):
    path = make_dataset(tmp_path, n_images=2, per_image=6, lvis=True)
    ds = open_lvis(path, tmp_path / "images")
    dets_path = tmp_path / "dets.json"
    dets_path.write_text(json.dumps(_detections(ds, np.random.default_rng(1))))
    model = Oracle(oracle_for(ds))
    res = evaluate(InstancesTask(boxes=str(dets_path), refine=False), model, [ds], tmp_path / "run", progress=False)
    ours = res["datasets"][ds.name]["metrics"]
    segm = json.loads((tmp_path / "run" / f"segm_results.{ds.name.replace(':', '_')}.json").read_text())
    api = lvis_api()
    gt = api.LVIS(str(path))
    ev = api.LVISEval(gt, api.LVISResults(gt, segm, max_dets=300), "segm")
    ev.run()
    r = ev.get_results()
    for theirs, mine in [("AP", "ap"), ("APr", "ap_rare"), ("APc", "ap_common"), ("APf", "ap_frequent"),
                         ("APs", "ap_small"), ("APm", "ap_medium"), ("APl", "ap_large")]:
        want = 100 * r[theirs] if r[theirs] >= 0 else math.nan
        assert ours[mine] == pytest.approx(want, abs=1e-6, nan_ok=True), mine


def parse(argv):
    from sam_bench.cli import build_parser

    return build_parser(argv).parse_args(argv)


def test_cli_options_reach_the_task(tmp_path):
    from sam_bench.cli import build_parser

    args = parse(["run", "instances_lvis", "--model", "m", "--no-refine"])
    task = InstancesTask(**{k: getattr(args, k) for k in args.task_options})
    assert task.config == {"boxes": "gt", "max_dets": 300, "refine": False}
    dets = tmp_path / "d.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [0, 0, 4, 4], "score": 0.5}]))
    args = parse(["run", "instances", "--model", "m", "--boxes", str(dets)])
    task = InstancesTask(**{k: getattr(args, k) for k in args.task_options})
    assert task.config["boxes"] == str(dets.resolve()) and task.config["max_dets"] is None
