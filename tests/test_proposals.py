"""The proposals task: AR@1000 against pycocotools run directly, perfect proposals, the AMG wiring,
skips of absent images, Table 4, and the classical slic-proposals baseline."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from coco_fixtures import gt_masks, make_dataset, rle_of
from sam_bench import amg
from sam_bench.data.coco import open_coco
from sam_bench.data.lvis import open_lvis
from sam_bench.models.base import ModelInfo, PromptableModel, ProposalModel
from sam_bench.models.slic_proposals import SegmentProposals, build_slic_proposals, hierarchical_grouping
from sam_bench.presets import load_presets
from sam_bench.runner import evaluate
from sam_bench.tasks.proposals import ProposalsTask

KEYS = ["ar1000", "ar1000_small", "ar1000_medium", "ar1000_large", "ar1000_frequent", "ar1000_common", "ar1000_rare"]


def noisy_proposals(masks: list[np.ndarray], image_id, shift: int, noise: int, shape=None) -> list[np.ndarray]:
    """The GT masks shifted by up to ``shift`` px plus ``noise`` random rectangles, seeded by the image."""
    rng = np.random.default_rng(int(image_id))
    h, w = shape or masks[0].shape
    out = [np.roll(m, tuple(rng.integers(-shift, shift + 1, 2)), (0, 1)) for m in masks]
    for _ in range(noise):
        m = np.zeros((h, w), bool)
        y0, y1 = sorted(rng.integers(0, h, 2))
        x0, x1 = sorted(rng.integers(0, w, 2))
        m[y0:y1 + 1, x0:x1 + 1] = True
        out.append(m)
    return [out[k] for k in rng.permutation(len(out))]


class GTProposals(ProposalModel):
    """Proposes the current image's GT masks (looked up by item id) plus noise, in a seeded order."""

    def __init__(self, masks_by_item: dict, shift: int = 0, noise: int = 30):
        super().__init__(ModelInfo(name="gt-proposals"))
        self.masks_by_item, self.shift, self.noise = masks_by_item, shift, noise

    def set_image(self, image, image_id=None):
        super().set_image(image, image_id)
        self.item = image_id

    def _propose(self, image, max_masks):
        masks = noisy_proposals(self.masks_by_item[self.item], self.item, self.shift, self.noise,
                                image.shape[:2])[:max_masks]
        return np.stack(masks), np.linspace(1, 0, len(masks), endpoint=False)


def _by_item(path):
    return {str(img): [m for _, m in pairs] for img, pairs in gt_masks(path).items()}


def _lvis(tmp_path, absent=1):
    path = make_dataset(tmp_path, n_images=4, per_image=7, lvis=True, absent=absent)
    return path, open_lvis(path, tmp_path / "images")


def test_perfect_proposals_give_ar_100_and_absent_images_are_skips(tmp_path):
    path, ds = _lvis(tmp_path)
    res = evaluate(ProposalsTask(), GTProposals(_by_item(path)), [ds], tmp_path / "run", progress=False)
    m = res["datasets"][ds.name]
    plain = {k: v for k, v in m["metrics"].items() if not k.endswith("_ci")}
    assert plain == pytest.approx({**{k: 100.0 for k in KEYS}, "proposals_per_image": 37.0})
    assert m["metrics"]["ar1000_ci"] == pytest.approx([100.0, 100.0])  # every resample is perfect too
    assert m["num_items"] == 3 and [s["item"] for s in m["skips"]] == ["103"]
    records = [json.loads(ln)["record"] for ln in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    shown = [r.pop("prediction")["masks"] for r in records]  # the report's top masks, and no other RLE
    assert [len(s) for s in shown] == [20] * 3 and "counts" not in json.dumps(records)  # records stay small
    table = (tmp_path / "run" / "table4_proposals.md").read_text()
    assert "gt-proposals" in table and "ViTDet-H" in table and "59.3" in table


def _direct_ar(gt_path, image_ids, proposals, keep_cats=None):
    """COCOeval run directly: one merged category, useCats=0, maxDets 1000, GT of the given images."""
    data = json.loads(gt_path.read_text())
    data["images"] = [im for im in data["images"] if im["id"] in image_ids]
    data["annotations"] = [{**a, "category_id": 1, "iscrowd": a.get("iscrowd", 0)} for a in data["annotations"]
                           if a["image_id"] in image_ids and (keep_cats is None or a["category_id"] in keep_cats)]
    data["categories"] = [{"id": 1, "name": "object"}]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(proposals)), "segm")
        ev.params.useCats = 0
        ev.params.maxDets = [1, 10, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [100 * v if v >= 0 else math.nan for v in ev.stats[8:12]]


@pytest.mark.parametrize("lvis", [True, False])
def test_ar_equals_cocoeval_on_the_same_proposals(tmp_path, lvis):
    if lvis:
        path, ds = _lvis(tmp_path)
    else:
        path = make_dataset(tmp_path, n_images=3, per_image=7)
        ds = open_coco(path, tmp_path / "images")
    by_item = _by_item(path)
    res = evaluate(ProposalsTask(), GTProposals(by_item, shift=3, noise=60), [ds], tmp_path / "run", progress=False)
    ours = res["datasets"][ds.name]["metrics"]
    present = {it.image_id for it in ds.items}
    props = []
    for img in sorted(present):
        masks = noisy_proposals(by_item[str(img)], str(img), 3, 60)
        props += [{"image_id": img, "category_id": 1, "segmentation": rle_of(m), "score": 1 - k / len(masks)}
                  for k, m in enumerate(masks)]
    direct = _direct_ar(path, present, props)
    assert [ours[k] for k in KEYS[:4]] == pytest.approx(direct, abs=1e-9, nan_ok=True)
    assert 10 < ours["ar1000"] < 95
    for name, f in [("frequent", "f"), ("common", "c"), ("rare", "r")]:
        if not lvis:
            assert math.isnan(ours[f"ar1000_{name}"])
            continue
        cats = {cid for cid, c in ds.categories.items() if c["frequency"] == f}
        assert ours[f"ar1000_{name}"] == pytest.approx(_direct_ar(path, present, props, cats)[0], abs=1e-9)


class FakePromptable(PromptableModel):
    """Stands in for a SAM adapter; ``amg.generate`` is replaced in the test."""

    def __init__(self):
        self.info = ModelInfo(name="fake-sam", untrained=True)
        self.device = torch.device("cpu")

    def set_image(self, image, image_id=None):
        self.item = image_id

    def predict(self, *a, **k):
        raise AssertionError("the task goes through amg.generate")

    def latency(self):
        return {}


@pytest.mark.parametrize("preset", ["proposals", "proposals_single_output"])
def test_promptable_models_go_through_amg_with_the_paper_settings(tmp_path, monkeypatch, preset):
    path, ds = _lvis(tmp_path, absent=0)
    by_item = _by_item(path)
    seen = []

    def fake_generate(model, image, config):
        seen.append(config)
        masks = torch.from_numpy(np.stack(noisy_proposals(by_item[model.item], model.item, 0, 1200)))
        k = len(masks)
        ms = amg.MaskSet(masks=masks, iou_preds=torch.ones(k), stability=torch.ones(k), points=torch.zeros(k, 2),
                         boxes=torch.zeros(k, 4))
        return ms

    monkeypatch.setattr(amg, "generate", fake_generate)
    options = load_presets()[preset]["options"]
    res = evaluate(ProposalsTask(**options), FakePromptable(), [ds], tmp_path / "run", progress=False)
    cfg = seen[0]
    single = preset != "proposals"
    assert (cfg.points_per_side, cfg.nms_thresh, cfg.ranking, cfg.multimask) == \
        ((128, 0.95, "random", False) if single else (64, 0.9, "score_stability_mean", True))
    assert (cfg.nms, cfg.crop_n_layers, cfg.pred_iou_thresh, cfg.stability_score_thresh, cfg.top_k) == \
        ("mask", 0, None, None, 1000)
    m = res["datasets"][ds.name]["metrics"]
    assert m["proposals_per_image"] == 1000.0  # 1200 + GT generated, the task keeps top-k
    assert res["untrained"] and 0 < m["ar1000"] <= 100


def test_hierarchical_grouping_merges_the_most_similar_neighbours_first():
    labels = np.repeat(np.array([[0, 1, 2, 3]]), 8, axis=0).repeat(4, axis=1)  # 8 x 16, four vertical bands
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, :8] = (200, 30, 30)  # bands 0 and 1 share a colour
    image[:, 8:12] = (30, 200, 30)
    image[:, 12:] = (30, 30, 200)
    regions = hierarchical_grouping(image, labels)
    assert len(regions) == 2 * 4 - 1
    assert regions[4].tolist() == [True, True, False, False]  # first merge: the identical pair
    assert regions[-1].all()


def test_slic_proposals_find_flat_objects(tmp_path):
    path = make_dataset(tmp_path, n_images=2, per_image=5, crowd=False)
    ds = open_coco(path, tmp_path / "images")
    model = build_slic_proposals(fh_scales=(50, 200), slic_segments=(30,))
    model.set_image(ds.items[0].load().image)
    masks, scores = model.propose(max_masks=40)
    assert masks.shape[0] == 40 and masks.shape[1:] == (120, 160) and (np.diff(scores) < 0).all()
    assert len({m.tobytes() for m in masks}) == 40  # no duplicates
    res = evaluate(ProposalsTask(), model, [ds], tmp_path / "run", progress=False)
    assert res["datasets"][ds.name]["metrics"]["ar1000"] > 60  # flat colours on a smooth background
    with pytest.raises(Exception, match="no weights"):
        build_slic_proposals(checkpoint="x.pth")
    assert isinstance(model, SegmentProposals)


def test_options_are_checked_and_recorded():
    with pytest.raises(Exception, match="--ranking"):
        ProposalsTask(ranking="best")
    with pytest.raises(Exception, match="--top-k"):
        ProposalsTask(top_k=0)
    cfg = ProposalsTask(grid=32).config
    assert cfg["grid"] == 32 and cfg["nms_thresh"] == 0.9 and cfg["top_k"] == 1000


@pytest.mark.realdata
def test_lvis_val100_perfect_proposals_and_missing_images(data_root, tmp_path):
    root = data_root / "LVIS_v0.5_val100"
    ds = open_lvis(root / "lvis_val_100.json", root / "val2017")
    by_item = {it.id: [inst.mask() for inst in it.load().instances] for it in ds.items}
    res = evaluate(ProposalsTask(), GTProposals(by_item, noise=50), [ds], tmp_path / "run", progress=False)
    m = res["datasets"][ds.name]
    assert m["num_items"] == 18 and len([s for s in m["skips"] if "#" not in s["item"]]) == 82
    for k in KEYS:
        assert math.isnan(m["metrics"][k]) or m["metrics"][k] == pytest.approx(100.0), k
    assert m["metrics"]["ar1000"] == pytest.approx(100.0)


def parse(argv):
    from sam_bench.cli import build_parser

    return build_parser(argv).parse_args(argv)


def test_cli_preset_options_reach_the_task():
    from sam_bench.cli import build_parser

    args = parse(["run", "proposals_single_output", "--model", "m", "--grid", "32"])
    task = ProposalsTask(**{k: getattr(args, k) for k in args.task_options})
    assert (task.config["grid"], task.config["nms_thresh"], task.config["ranking"], task.config["multimask"]) == \
        (32, 0.95, "random", False)
    args = parse(["run", "proposals", "--model", "m", "--single-output", "--top-k", "100"])
    cfg = ProposalsTask(**{k: getattr(args, k) for k in args.task_options}).amg_config()
    assert (cfg.points_per_side, cfg.multimask, cfg.top_k, cfg.nms) == (64, False, 100, "mask")
