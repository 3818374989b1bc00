"""SAM 2 and HQ-SAM adapters (skipped where their packages are not installed): runner contract
and equality with each package's own predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.models.base import build_model
from sam_fixtures import make_image

IMG = make_image(90, 120)
PTS = np.array([[[10, 20], [50, 60]], [[100, 30], [0, 0]]], float)
LABELS = np.array([[1, 0], [1, -1]])
BOXES = np.array([[5, 5, 60, 50], [50, 10, 119, 89]], float)


def test_hq_sam_equals_official_hq_predictor():
    pytest.importorskip("segment_anything_hq")
    from segment_anything_hq import SamPredictor

    model = build_model("hq-sam", untrained=True, variant="vit_tiny", device="cpu")
    model.set_image(IMG)
    pred = SamPredictor(model.sam)
    pred.set_image(IMG)
    ours = model.predict(points=PTS[1:], labels=LABELS[1:], boxes=BOXES[1:])
    masks, iou, low = pred.predict(PTS[1], LABELS[1], BOXES[1], multimask_output=True, return_logits=True)
    assert np.array_equal(masks, ours.logits[0].numpy()) and np.array_equal(iou, ours.iou_scores[0].numpy())
    both = model.predict(points=PTS, labels=LABELS, boxes=BOXES)
    torch.testing.assert_close(both.logits[1], ours.logits[0], rtol=0, atol=1e-4)
    assert model.encoder_calls == 1 and model.info.as_dict()["untrained"]


def test_sam2_equals_sam2_image_predictor():
    pytest.importorskip("sam2")
    model = build_model("sam2", untrained=True, variant="t", device="cpu")
    model.set_image(IMG)
    ours = model.predict(points=PTS, labels=LABELS, boxes=BOXES)
    assert ours.logits.shape == (2, 3, 90, 120) and ours.low_res_logits.shape == (2, 3, 256, 256)
    masks, iou, low = model.predictor.predict(PTS[0], LABELS[0], BOXES[0], multimask_output=True, return_logits=True)
    np.testing.assert_allclose(masks, ours.logits[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(iou, ours.iou_scores[0].numpy(), rtol=0, atol=1e-5)
    assert model.encoder_calls == 1 and model.decoder_calls == 1
