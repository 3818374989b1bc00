"""The ``grabcut`` baseline on a synthetic image: prompts, output layout, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.errors import ConfigError
from sam_bench.metrics.clicks import mask_iou
from sam_bench.models.base import LOW_RES, build_model
from sam_bench.models.grabcut import LOGIT, build_grabcut

H, W = 120, 160


@pytest.fixture(scope="module")
def scene():
    """A noisy red disk (radius 30, centre x 70, y 60) on a noisy green-blue gradient."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    disk = np.hypot(xx - 70, yy - 60) <= 30
    img = np.stack([20 + 0 * xx, 90 + xx * 0.5, 160 - yy * 0.5], -1).astype(float)
    img[disk] = (200, 40, 50)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), disk


@pytest.fixture()
def model(scene):
    m = build_grabcut(max_side=96)
    m.set_image(scene[0])
    return m


def test_point_prompt_segments_the_disk_with_three_radii(model, scene):
    pred = model.predict(points=[[[70, 60]]], labels=[[1]], multimask=True)
    assert pred.logits.shape == (1, 3, H, W) and pred.low_res_logits.shape == (1, 3, LOW_RES, LOW_RES)
    np.testing.assert_allclose(pred.iou_scores.numpy(), [[0.6, 0.8, 0.7]], rtol=1e-6)
    best = pred.best()
    assert mask_iou(best.masks[0, 0].numpy(), scene[1]) > 0.9
    assert float(pred.logits.max()) == LOGIT and float(pred.logits.min()) == -LOGIT
    single = model.predict(points=[[[70, 60]]], labels=[[1]], multimask=False)
    assert single.logits.shape == (1, 1, H, W)
    assert torch.equal(single.logits[0, 0], pred.logits[0, 1])  # single mask = the medium radius


def test_box_prompt_and_batch(model, scene):
    boxes = [[38, 28, 103, 93], [38, 28, 103, 93]]
    pred = model.predict(boxes=boxes, multimask=True)
    assert pred.logits.shape == (2, 1, H, W)  # box prompts give one mask
    assert mask_iou(pred.masks[0, 0].numpy(), scene[1]) > 0.9
    assert torch.equal(pred.logits[0], pred.logits[1])


def test_negative_click_only_and_degenerate_box_give_no_foreground(model):
    neg = model.predict(points=[[[5, 5]]], labels=[[0]], multimask=False)
    assert not neg.masks.any()
    whole = model.predict(boxes=[[0, 0, W, H]], multimask=False)  # no background left to model
    assert whole.masks.all()


def test_mask_input_round_trip_keeps_the_mask(model, scene):
    first = model.predict(points=[[[70, 60]]], labels=[[1]], multimask=False)
    lr = first.low_res_logits
    # SAM layout: the image fills the top-left 256 x 192 of the 256 x 256 frame, padding is background
    assert bool((lr[0, 0, 200:, :] < 0).all()) and bool((lr[0, 0, :192, :] > 0).any())
    again = model.predict(mask_input=lr, multimask=False)
    assert mask_iou(again.masks[0, 0].numpy(), scene[1]) > 0.9


def test_padding_points_are_ignored(model):
    a = model.predict(points=[[[70, 60]]], labels=[[1]], multimask=False)
    b = model.predict(points=[[[70, 60], [0, 0]]], labels=[[1, -1]], multimask=False)
    assert torch.equal(a.logits, b.logits)


def test_deterministic_across_models_and_calls(scene):
    outs = []
    for _ in range(2):
        m = build_grabcut(max_side=96)
        m.set_image(scene[0])
        outs.append(m.predict(points=[[[60, 50], [110, 20]]], labels=[[1, 0]], multimask=True).logits)
    assert torch.equal(outs[0], outs[1])


def test_registered_and_records_its_settings(scene):
    m = build_model("grabcut", device="cpu")
    assert m.info.extra["max_side"] == 256 and m.info.extra["probable_radii"] == [0.1, 0.2, 0.3]
    assert m.info.as_dict()["untrained"] is False
    m.set_image(scene[0])
    m.predict(points=[[[70, 60]]], labels=[[1]])
    assert m.encoder_calls == 1 and m.decoded_prompts == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"checkpoint": "x.pth"}, "no weights"),
    ({"colour": 1}, "unknown option"),
    ({"max_side": 4}, "max_side"),
    ({"probable_radii": (0.1, 0.2)}, "probable_radii"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_grabcut(**kwargs)


def test_box_grabcut_leaves_empty_falls_back_to_the_box():
    """On a flat image GrabCut's colour models cannot tell inside from outside; the box is returned."""
    m = build_grabcut(max_side=96)
    m.set_image(np.full((H, W, 3), 128, np.uint8))
    pred = m.predict(boxes=[[40, 30, 100, 90]], multimask=False)
    mask = pred.masks[0, 0].numpy()
    assert mask.any()
    ys, xs = np.nonzero(mask)
    assert abs(xs.min() - 40) <= 2 and abs(xs.max() - 99) <= 2 and abs(ys.min() - 30) <= 2 and abs(ys.max() - 89) <= 2
    assert mask.sum() == pytest.approx(60 * 60, rel=0.1)
