"""The single-point task end to end with fake models on hand-made in-memory datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from sam_bench.cli import main
from sam_bench.data.base import Dataset, Instance, Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.models.base import ModelInfo, Prediction, PromptableModel
from sam_bench.runner import evaluate
from sam_bench.tasks.single_point import SinglePointTask

H, W = 40, 48


def rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def square(y0, y1, x0, x1, h=H, w=W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def item(name: str, masks: list[np.ndarray], ignore=None, crowd=None) -> Item:
    insts = [Instance(id=f"{name}-{k}", rle=rle(m)) for k, m in enumerate(masks)]
    if crowd is not None:
        insts.append(Instance(id=f"{name}-crowd", rle=rle(crowd), iscrowd=True))
    sample = Sample(image=np.zeros((H, W, 3), np.uint8), instances=insts, ignore=ignore)
    return Item(id=name, loader=lambda _it: sample)


def dataset(name: str, items: list[Item]) -> Dataset:
    return Dataset(name=name, items=items, format="test")


class FakeModel(PromptableModel):
    """Answers from the ground truth of the current image, looked up by the object under the first click.

    mode "truth": the object's mask (as every one of 3 masks with multimask).
    mode "empty": nothing, ever.
    mode "choice": multimask gives [truth, its top half, nothing] scored [0.1, 0.9, 0.5] (the
    default pick is the half, the oracle the truth); single-mask gives the truth.
    ``extra``: pixels added to every non-empty answer.
    """

    def __init__(self, truth: dict[str, list[np.ndarray]], mode="truth", extra=None):
        super().__init__(ModelInfo(f"fake-{mode}"))
        self.truth, self.mode, self.extra = truth, mode, extra
        self.predict_calls, self.mask_inputs = 0, []

    def set_image(self, image, image_id=None):
        self.current = self.truth[image_id]
        super().set_image(image, image_id)

    def _encode(self, image):
        pass

    def predict(self, *args, **kwargs):
        self.predict_calls += 1
        self.mask_inputs.append(kwargs.get("mask_input") is not None)
        return super().predict(*args, **kwargs)

    def _decode(self, points, labels, boxes, mask_input, multimask):
        out = []
        for (x, y) in points[:, 0].long().tolist():
            gt = next(m for m in self.current if m[y, x])
            half = gt.copy()
            ys = np.flatnonzero(gt.any(axis=1))
            half[ys[len(ys) // 2]:] = False
            answers = {"truth": [gt] * 3, "empty": [np.zeros_like(gt)] * 3, "choice": [gt, half, np.zeros_like(gt)]}
            masks = answers[self.mode] if multimask else answers[self.mode][:1]
            if self.extra is not None:
                masks = [m | self.extra if m.any() else m for m in masks]
            out.append(np.stack(masks))
        logits = torch.from_numpy(np.where(np.stack(out), 1.0, -1.0).astype(np.float32))
        m = logits.shape[1]
        scores = torch.tensor([0.1, 0.9, 0.5][:m] if m == 3 else [1.0]).expand(len(out), m).clone()
        return Prediction(logits, scores, torch.zeros(len(out), m, 256, 256))


def three_images():
    """3 images, 5 objects: (name, masks)."""
    return [("a", [square(2, 12, 2, 12), square(20, 36, 20, 40)]),
            ("b", [square(5, 25, 5, 30)]),
            ("c", [square(0, 8, 30, 48), square(15, 39, 0, 14)])]


def run(tmp_path, model_mode, task=None, images=None, **kw):
    images = images or three_images()
    truth = {n: ms for n, ms in images}
    model = FakeModel(truth, model_mode, **kw)
    ds = dataset("toy", [item(n, ms) for n, ms in images])
    res = evaluate(task or SinglePointTask(), model, [ds], tmp_path / "out", progress=False)
    return res, model


def test_truth_model_scores_100_and_noc_1_with_one_encoder_pass_per_image(tmp_path):
    res, model = run(tmp_path, "truth")
    m = res["datasets"]["toy"]["metrics"]
    for n in (1, 2, 3, 5, 9):
        assert m[f"miou_{n}"] == 100.0
    assert m["miou_oracle_1"] == 100.0 and m["noc85"] == 1.0 and m["noc90"] == 1.0
    assert m["noc85_failures"] == 0 and m["num_objects"] == 5
    assert model.encoder_calls == 3  # images, not objects x clicks
    assert model.predict_calls == 3  # nothing left to correct after the first click: one round per image


def test_empty_model_scores_0_and_noc_max_with_failures_counted(tmp_path):
    res, model = run(tmp_path, "empty")
    m = res["datasets"]["toy"]["metrics"]
    assert all(m[f"miou_{n}"] == 0.0 for n in (1, 2, 3, 5, 9)) and m["miou_oracle_1"] == 0.0
    assert m["noc85"] == 20.0 and m["noc90"] == 20.0
    assert m["noc85_failures"] == 5 and m["noc90_failures"] == 5
    assert model.encoder_calls == 3
    assert model.predict_calls == 3 * 20 and model.decoded_prompts == 5 * 20  # objects batched per round
    rec = [json.loads(ln) for ln in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    objs = [o for r in rec for o in r["record"]["objects"]]
    assert all(len(o["ious"]) == 20 and len(o["clicks"]) == 20 for o in objs)
    assert all(c[2] == 1 for o in objs for c in o["clicks"])  # only missed pixels: every click positive


def test_multimask_choice_highest_score_versus_oracle(tmp_path):
    res, _ = run(tmp_path, "choice")
    m = res["datasets"]["toy"]["metrics"]
    # the top half of each square: a/0 rows 2..11 -> 5 of 10 rows, a/1 16 rows -> 8, b 20 -> 10,
    # c/0 8 -> 4, c/1 24 -> 12: IoU 0.5 for every object
    assert m["miou_1"] == pytest.approx(50.0) and m["miou_oracle_1"] == 100.0
    assert m["miou_2"] == 100.0 and m["noc85"] == 2.0 and m["noc90"] == 2.0


def test_ignore_band_is_left_out_of_iou_and_never_clicked(tmp_path):
    obj = square(10, 30, 10, 30)
    band = square(8, 32, 8, 32) & ~obj  # a 2-px unlabeled band as in GrabCut
    truth = {"g": [obj]}
    ds = dataset("band", [item("g", [obj], ignore=band)])
    spill = FakeModel(truth, "truth", extra=band)
    res = evaluate(SinglePointTask(), spill, [ds], tmp_path / "o1", progress=False)
    assert res["datasets"]["band"]["metrics"]["miou_1"] == 100.0
    beyond = square(0, 2, 0, 10)  # 20 px outside the band: IoU 400 / 420
    res = evaluate(SinglePointTask(point="random"), FakeModel(truth, "truth", extra=band | beyond),
                   [dataset("band", [item("g", [obj], ignore=band)])], tmp_path / "o2", progress=False)
    m = res["datasets"]["band"]["metrics"]
    assert m["miou_1"] == pytest.approx(100 * 400 / 420)
    assert m["noc90"] == 1.0 and m["noc90_failures"] == 0
    empty = FakeModel(truth, "empty")
    evaluate(SinglePointTask(point="random", max_clicks=12, clicks=[1]), empty,
             [dataset("band", [item("g", [obj], ignore=band)])], tmp_path / "o3", progress=False)
    line = json.loads((tmp_path / "o3" / "items.jsonl").read_text())
    assert not any(band[y, x] for x, y, _ in line["record"]["objects"][0]["clicks"])


def test_crowd_is_ignored_not_scored_and_bad_objects_are_listed(tmp_path):
    obj = square(5, 20, 5, 20)
    crowd = square(25, 38, 25, 45)
    wrong = Instance(id="big", rle=rle(np.ones((H + 1, W), bool)))
    empty = Instance(id="none", rle=rle(np.zeros((H, W), bool)))
    it = item("k", [obj], crowd=crowd)
    sample = it.load()
    sample.instances += [wrong, empty]
    model = FakeModel({"k": [obj]}, "truth", extra=crowd)
    res = evaluate(SinglePointTask(), model, [dataset("crowd", [it])], tmp_path / "o", progress=False)
    m = res["datasets"]["crowd"]["metrics"]
    assert m["num_objects"] == 1 and m["miou_1"] == 100.0 and m["num_skipped_objects"] == 2
    line = json.loads((tmp_path / "o" / "items.jsonl").read_text())
    reasons = {s["id"]: s["reason"] for s in line["record"]["skipped_objects"]}
    assert "(41, 48)" in reasons["big"] and reasons["none"] == "empty mask"


def test_image_without_usable_object_is_a_recorded_skip(tmp_path):
    bad = Item(id="z", loader=lambda _it: Sample(image=np.zeros((H, W, 3), np.uint8),
                                                 instances=[Instance(id=1, rle=rle(np.zeros((H, W), bool)))]))
    task = SinglePointTask()
    with pytest.raises(BadInput, match="z: no object to evaluate .*empty mask"):
        task.process(FakeModel({"z": []}), bad, bad.load())
    res = evaluate(task, FakeModel({"z": []}), [dataset("d", [bad])], tmp_path / "o", progress=False)
    assert res["datasets"]["d"]["num_skipped"] == 1 and "empty mask" in res["datasets"]["d"]["skips"][0]["reason"]


def test_random_first_point_is_deterministic_under_a_seed():
    obj = square(2, 38, 2, 46)
    it = item("r", [obj])

    def first(seed):
        model = FakeModel({"r": [obj]}, "truth")
        model.set_image(np.zeros((H, W, 3), np.uint8), image_id="r")
        rec = SinglePointTask(point="random", seed=seed).process(model, it, it.load())
        return tuple(rec["objects"][0]["clicks"][0])

    a, b = first(0), first(0)
    assert a == b and obj[a[1], a[0]]
    assert len({first(s) for s in range(6)}) > 3
    center = SinglePointTask().process(_set(FakeModel({"r": [obj]}), "r"), it, it.load())
    # rows 2..37, cols 2..45: distance 18 on rows 19-20, cols 19-28; raster order picks (19, 19)
    assert center["objects"][0]["clicks"][0] == [19, 19, 1]


def _set(model, image_id):
    model.set_image(np.zeros((H, W, 3), np.uint8), image_id=image_id)
    return model


def test_feed_logits_option_passes_mask_input_after_the_first_click(tmp_path):
    _, off = run(tmp_path / "a", "empty", task=SinglePointTask(max_clicks=4, clicks=[1, 2]))
    assert not any(off.mask_inputs)
    _, on = run(tmp_path / "b", "empty", task=SinglePointTask(max_clicks=4, clicks=[1, 2], feed_logits=True))
    assert on.mask_inputs == [False, True, True, True] * 3


def test_evaluate_and_aggregate_on_hand_made_records():
    task = SinglePointTask(clicks=[1, 3], max_clicks=5)
    recs = [{"objects": [{"ious": [0.5, 0.86, 0.95], "oracle_iou_1": 0.7},
                         {"ious": [0.2, 0.4, 0.6, 0.8, 0.84], "oracle_iou_1": 0.3}], "skipped_objects": []},
            {"objects": [{"ious": [0.9, 0.9, 0.9], "oracle_iou_1": 0.9}], "skipped_objects": [{"id": 1, "reason": "x"}]}]
    m = task.evaluate(dataset("d", []), recs)
    assert m["miou_1"] == pytest.approx(100 * (0.5 + 0.2 + 0.9) / 3)
    assert m["miou_3"] == pytest.approx(100 * (0.95 + 0.6 + 0.9) / 3)
    assert m["miou_oracle_1"] == pytest.approx(100 * (0.7 + 0.3 + 0.9) / 3)
    assert m["noc85"] == pytest.approx((2 + 5 + 1) / 3) and m["noc85_failures"] == 1
    assert m["noc90"] == pytest.approx((3 + 5 + 1) / 3) and m["noc90_failures"] == 1
    assert m["num_objects"] == 3 and m["num_skipped_objects"] == 1
    agg = task.aggregate({"d": m, "e": {**m, "miou_1": 0.0, "num_objects": 7}})
    assert agg["miou_1"] == pytest.approx(m["miou_1"] / 2)
    assert agg["num_objects"] == 10 and agg["noc85_failures"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"point": "corner"}, "center or random"),
    ({"clicks": [1, 30]}, "below the largest"),
    ({"clicks": "1,x"}, "numbers"),
    ({"noc_thresholds": [0]}, "percentages"),
    ({"colour": 1}, "unknown option"),
    ({"compare_to": "/nonexistent/results.json"}, "no such results file"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SinglePointTask(**kwargs).setup()  # values are checked on creation, files in setup


def test_config_records_every_setting():
    c = SinglePointTask(clicks="3,1", noc_thresholds="90,85").config
    assert c["clicks"] == [1, 3] and c["noc_thresholds"] == [85, 90]
    assert c["point"] == "center" and c["feed_logits"] is False and c["max_clicks"] == 20 and c["seed"] == 0


def test_outputs_table_bars_and_curves_with_comparison(tmp_path):
    from sam_bench.reports.render import write_run_outputs

    res_a, _ = run(tmp_path / "a", "truth")
    out = tmp_path / "a" / "out"
    md = (out / "fig9_single_point.md").read_text()
    assert "| fake-truth" in md and "SAM ViT-H (paper)" in md and "58.1" in md
    noc = (out / "interactive_noc.md").read_text()
    assert "| fake-truth" in noc and "RITM" in noc  # the NoC table: our NoC beside the paper's per dataset
    csv = (out / "fig9_single_point.csv").read_text().splitlines()
    assert csv[0] == "method,source,dataset,metric,value,items" and "fake-truth,ours,toy,miou_1,100.0,3" in csv
    for png in ("fig9_single_point_bars.png", "fig9_single_point_clicks.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res_b, _ = run(tmp_path / "b", "empty", task=SinglePointTask(compare_to=str(out / "results.json")))
    paths = write_run_outputs(res_b, tmp_path / "cmp")
    assert {p.name for p in paths} >= {"fig9_single_point.md", "fig9_single_point_bars.png",
                                       "fig9_single_point_clicks.png"}
    alone = write_run_outputs({**res_b, "config": {**res_b["config"], "compare_to": None}}, tmp_path / "alone")
    png = {p.name: p.read_bytes() for p in alone}
    assert (tmp_path / "cmp" / "fig9_single_point_clicks.png").read_bytes() != png["fig9_single_point_clicks.png"]
    assert "fake-truth" not in (tmp_path / "cmp" / "fig9_single_point.md").read_text()  # plots only, not tables


def test_cli_run_with_grabcut_on_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path / "cache"))
    rc = main(["run", "single-point", "--model", "grabcut", "--dataset", "synthetic:1", "--clicks", "1,2",
               "--max-clicks", "2", "--no-progress", "--out", str(tmp_path / "run")])
    assert rc == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    m = res["datasets"]["synthetic"]["metrics"]
    assert res["config"]["clicks"] == [1, 2] and res["model"]["name"] == "grabcut"
    assert m["num_objects"] >= 3 and 0 <= m["miou_1"] <= 100 and m["miou_oracle_1"] >= m["miou_1"]
    assert res["latency"]["encoder_calls"] == 1


@pytest.mark.realdata
def test_grabcut_on_real_grabcut_images_with_their_band(tmp_path, data_root):
    from sam_bench.data.catalog import open_catalog
    from sam_bench.metrics.clicks import mask_iou
    from sam_bench.models.grabcut import build_grabcut
    from sam_bench.runner import run_task

    res = run_task("single-point", "grabcut", datasets=["GrabCut"], data_root=str(data_root), out=tmp_path / "r",
                   limit=1, clicks=[1], max_clicks=2, progress=False)
    m = res["datasets"]["GrabCut"]["metrics"]
    assert m["num_objects"] == 1 and 0 < m["miou_1"] <= 100 and res["latency"]["encoder_calls"] == 1
    it, sample = next((it, s) for it in open_catalog("GrabCut", data_root).items
                      if (s := it.load()).ignore is not None)
    model = build_grabcut()
    model.set_image(sample.image, image_id=it.id)
    rec = SinglePointTask(clicks=[1], max_clicks=3).process(model, it, sample)["objects"][0]
    assert not any(sample.ignore[y, x] for x, y, _ in rec["clicks"])
    gt = sample.instances[0].mask()
    x, y, _ = rec["clicks"][0]
    pred = model.predict(points=[[[x, y]]], labels=[[1]], multimask=True).best().masks[0, 0].numpy()
    assert rec["ious"][0] == pytest.approx(float(mask_iou(pred, gt, sample.ignore)))
    assert mask_iou(pred, gt, sample.ignore) != mask_iou(pred, gt)  # the band changes the score
