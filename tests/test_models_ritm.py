"""The ``ritm`` adapter (skipped without ``ritm_annotation``): runner contract, equality with the
package's own stateful predictor (zoom-in included), RITM's checkpoint format, refused boxes; and
the single-point "model minus RITM" plot from two of our runs (needs no package)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from contract import check_promptable_contract
from sam_bench.errors import CheckpointError, ConfigError
from sam_bench.models.base import ModelInfo, build_model
from sam_fixtures import make_image

IMG = make_image(90, 120)


@pytest.fixture(scope="module")
def ritm():
    pytest.importorskip("ritm_annotation")
    # no flip and a small crop: half and a fifth of the work (the flip is compared on DiskNet below)
    return build_model("ritm", untrained=True, variant="h18s", device="cpu", flip=False, zoom_target=160)


def _reference(net, image, clicks, zoom_target=400, flip=True):
    """The package's predictor run as RITM's evaluation runs it: one state carried click to click."""
    from ritm_annotation.inference.clicker import Click, Clicker
    from ritm_annotation.inference.predictors import get_predictor

    pred = get_predictor(net, "NoBRS", torch.device("cpu"), prob_thresh=0.49, with_flip=flip,
                         zoom_in_params={"target_size": zoom_target})
    clicker, out = Clicker(), []
    with torch.no_grad():
        pred.set_input_image(image)
        for x, y, positive in clicks:
            clicker.add_click(Click(is_positive=positive, coords=(y, x)))
            out.append((pred.get_prediction(clicker), pred.zoom_in._object_roi))
    return out


def _ours(model, image, clicks):
    """The adapter fed back its own previous mask, as the single-point task's --feed-logits does."""
    model.set_image(image)
    out, prev = [], None
    for k in range(1, len(clicks) + 1):
        pts = np.array([[c[:2] for c in clicks[:k]]], np.float32)
        lab = np.array([[int(c[2]) for c in clicks[:k]]])
        p = model.predict(points=pts, labels=lab, mask_input=prev, multimask=k == 1)
        out.append(p)
        prev = p.low_res_logits
    return out


def test_contract_with_random_weights(ritm):
    check_promptable_contract(ritm, boxes=False)
    assert ritm.parameter_count() == 4_220_047 and ritm.info.as_dict()["untrained"]


def test_equals_the_package_predictor_on_hrnet(ritm):
    clicks = [(60, 40, True), (10, 10, False)]
    ref = _reference(ritm.net, IMG, clicks, zoom_target=160, flip=False)
    ours = _ours(ritm, IMG, clicks)
    assert ours[0].logits.shape == (1, 1, 90, 120) and ours[0].low_res_logits.shape == (1, 1, 90, 120)
    np.testing.assert_allclose(torch.sigmoid(ours[0].logits[0, 0]).numpy(), ref[0][0], rtol=0, atol=1e-6)
    # the fed-back mask passes through logit and sigmoid (1 ulp); untrained HRNet weights (logits ~1e4)
    # amplify a 1e-7 change of that input channel to ~2e-4 in probability, so the follow-up is compared looser
    np.testing.assert_allclose(torch.sigmoid(ours[1].logits[0, 0]).numpy(), ref[1][0], rtol=0, atol=2e-3)
    assert ref[1][1] is not None  # the second click ran on RITM's zoom-in crop
    assert (ours[1].masks[0, 0].numpy() == (ref[1][0] > 0.49)).mean() > 0.999


class DiskNet(torch.nn.Module):
    """A stand-in ISModel with a readable output: +8 in a disk (radius 12% of the input's shorter
    side) around each positive click, -8 around each negative one, plus 4 x (previous mask - 0.5)."""

    with_prev_mask = True

    def forward(self, image, points):
        b, _, h, w = image.shape
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        out = 4 * (image[:, 3:4] - 0.5) - 2
        n, r = points.shape[1] // 2, 0.12 * min(h, w)
        for i in range(b):
            for j, (y, x, idx) in enumerate(points[i].tolist()):
                if idx >= 0:
                    out[i, 0] += (8 if j < n else -8) * (((yy - y) ** 2 + (xx - x) ** 2) <= r * r)
        return {"instances": out}


def test_zoom_in_crop_is_carried_from_click_to_click_as_in_the_package():
    pytest.importorskip("ritm_annotation")
    from sam_bench.models.ritm import RITMModel

    image = make_image(300, 420)
    clicks = [(100, 80, True), (160, 110, True), (60, 60, True), (350, 250, True)]
    model = RITMModel(DiskNet(), ModelInfo("ritm"), "cpu")
    ref = _reference(model.net, image, clicks)
    ours = _ours(model, image, clicks)
    rois = [roi for _, roi in ref]
    assert rois[0] is None and rois[1] not in (None, (0, 299, 0, 419))  # a real crop from the second click
    assert rois[2] == rois[1] != rois[3]  # kept at the third click, moved by the fourth (outside it)
    for (prob, _), p in zip(ref, ours):
        np.testing.assert_allclose(torch.sigmoid(p.logits[0, 0]).numpy(), prob, rtol=0, atol=1e-6)
        inside = prob > 0.49
        assert p.iou_scores[0, 0].item() == pytest.approx(prob[inside].mean() if inside.any() else 0.0, abs=1e-5)
    # a mask the adapter did not return (here: changed in one pixel) starts without a crop, as RITM's
    # predictor does after its first click: the third click then zooms on a fresh crop, not the kept one
    prev = ours[1].low_res_logits.clone()
    prev[0, 0, 299, 419] -= 1
    fresh = model.predict(points=[[c[:2] for c in clicks[:3]]], labels=[[1, 1, 1]], mask_input=prev)
    assert not torch.equal(fresh.logits, ours[2].logits)


def test_boxes_and_wrong_masks_are_refused(ritm):
    ritm.set_image(IMG)
    with pytest.raises(ConfigError, match="model ritm takes clicks only"):
        ritm.predict(boxes=[[5, 5, 60, 50]])
    with pytest.raises(ConfigError, match="model ritm takes clicks only"):
        ritm.predict_refined(boxes=[[5, 5, 60, 50]])
    with pytest.raises(ConfigError, match=r"mask_input must be \(B, 1, 90, 120\)"):
        ritm.predict(points=[[[10, 10]]], labels=[[1]], mask_input=np.zeros((1, 1, 256, 256), np.float32))


def test_checkpoint_in_ritm_format_loads_and_is_recorded(tmp_path, ritm):
    from sam_bench.models.ritm import _random_net
    from sam_bench.models.sam_v1 import random_init

    net = random_init(lambda: _random_net("h18s"), 3)
    path = tmp_path / "my_ritm.pth"
    torch.save({"config": net._config, "state_dict": net.state_dict()}, path)
    model = build_model("ritm", checkpoint=str(path), variant="h18s", device="cpu")
    info = model.info.as_dict()
    assert info["checkpoint"] == str(path) and info["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for k, v in net.state_dict().items():
        assert torch.equal(model.net.state_dict()[k], v), k
    model.set_image(IMG)
    ritm.set_image(IMG)
    a = model.predict(points=[[[60, 40]]], labels=[[1]]).logits
    assert not torch.equal(a, ritm.predict(points=[[[60, 40]]], labels=[[1]]).logits)  # seed 3, not 0
    with pytest.raises(CheckpointError, match="not RITM variant h32; it is variant h18s"):
        build_model("ritm", checkpoint=str(path), variant="h32", device="cpu")
    bad = tmp_path / "code.pth"
    torch.save({"config": ModelInfo("x"), "state_dict": {}}, bad)  # an object: needs unpickling code
    with pytest.raises(CheckpointError, match="weights-only"):
        build_model("ritm", checkpoint=str(bad), variant="h18s", device="cpu")


def _run(folder, model: str, miou: dict, compare_to=None) -> dict:
    res = {"task": "single-point", "model": {"name": model}, "untrained": True,
           "config": {"clicks": [1], "compare_to": compare_to},
           "datasets": {d: {"metrics": {"miou_1": v, "num_objects": 3}} for d, v in miou.items()},
           "metrics": {"miou_1": float(np.mean(list(miou.values())))}}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(res))
    return res


def test_model_minus_ritm_bars_come_from_two_of_our_runs(tmp_path, monkeypatch):
    from sam_bench.reports import plots
    from sam_bench.reports.render import write_run_outputs

    drawn = []
    monkeypatch.setattr(plots, "dataset_delta_bars", lambda rows, path, **kw: drawn.append((rows, kw)) or path)
    ritm_run = _run(tmp_path / "ritm", "ritm", {"GrabCut": 50.0, "Berkeley": 40.0})
    sam = _run(tmp_path / "sam", "sam_vit_b", {"GrabCut": 70.0, "Berkeley": 30.0, "DAVIS": 60.0},
               compare_to=str(tmp_path / "ritm" / "results.json"))
    write_run_outputs(sam, tmp_path / "sam")
    rows, kw = drawn[-1]
    assert sorted((r["dataset"], r["delta"]) for r in rows) == [("Berkeley", -10.0), ("GrabCut", 20.0)]
    assert {r["label"] for r in rows} == {"sam_vit_b (untrained) minus ritm (untrained)"}
    assert "model minus RITM" in kw["title"] and "our runs" in kw["title"]
    n = len(drawn)
    write_run_outputs(ritm_run, tmp_path / "ritm")  # RITM alone: nothing to subtract, no plot
    assert len(drawn) == n


def test_report_folder_with_a_sam_and_an_ritm_run_draws_the_difference(tmp_path):
    from sam_bench.reports.report import write_report

    _run(tmp_path / "r" / "ritm", "ritm", {"GrabCut": 50.0, "Berkeley": 40.0})
    _run(tmp_path / "r" / "sam", "sam_vit_b", {"GrabCut": 70.0, "Berkeley": 30.0})
    paths = write_report(tmp_path / "r")
    png = tmp_path / "r" / "fig9a_minus_ritm.png"
    assert png in paths and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "r" / "sam" / "fig9a_minus_ritm.png").exists()  # a run alone has no pair


def test_single_point_refuses_ritm_without_its_previous_mask(tmp_path, capsys):
    pytest.importorskip("ritm_annotation")
    from sam_bench.cli import main

    args = ["run", "single-point", "--model", "ritm", "--untrained", "--model-option", "variant=h18s",
            "--limit", "1", "--out", str(tmp_path / "run")]
    assert main(args) != 0
    assert "Add --feed-logits" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.json").exists()
