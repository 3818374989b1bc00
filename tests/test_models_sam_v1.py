"""SAM v1 adapter: checkpoint loading and hashing, the runner contract, equality with SamPredictor."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import torch

from sam_bench.errors import CheckpointError, ConfigError
from sam_bench.models.base import build_model
from sam_fixtures import make_image, random_vit_b, tiny_model

IMG = make_image()
H, W = IMG.shape[:2]


@pytest.fixture(scope="module")
def vitb():
    model = random_vit_b()
    model.set_image(IMG)
    return model


def _prompts():
    """Six prompts mixing points (with -1 padding), boxes and both."""
    pts = np.array([[[30, 40], [0, 0]], [[150, 100], [160, 90]], [[290, 10], [0, 0]], [[5, 190], [100, 100]],
                    [[120, 60], [0, 0]], [[60, 150], [0, 0]]], np.float32)
    labels = np.array([[1, -1], [1, 0], [1, -1], [1, 1], [1, -1], [0, -1]])
    boxes = np.array([[10, 10, 120, 90], [100, 50, 250, 180], [0, 0, 299, 199], [20, 100, 80, 190],
                      [110, 40, 140, 80], [40, 120, 90, 180]], np.float32)
    return pts, labels, boxes


def test_one_encoder_call_for_many_prompts(vitb):
    enc, real = vitb.encoder_calls, vitb.sam.image_encoder.real_calls
    pts, labels, boxes = _prompts()
    vitb.predict(points=pts, labels=labels)
    vitb.predict(boxes=boxes, multimask=False)
    first = vitb.predict(points=pts, labels=labels, boxes=boxes)
    vitb.predict(points=pts[:, :1], labels=labels[:, :1], mask_input=first.low_res_logits[:, :1], multimask=False)
    assert vitb.encoder_calls == enc and vitb.sam.image_encoder.real_calls == real
    assert vitb.decoded_prompts >= 24


def test_batched_decode_equals_one_by_one(vitb):
    pts, labels, boxes = _prompts()
    together = vitb.predict(points=pts, labels=labels, boxes=boxes, batch_size=6)
    assert together.logits.shape == (6, 3, H, W) and together.low_res_logits.shape == (6, 3, 256, 256)
    for i in range(6):
        one = vitb.predict(points=pts[i:i + 1], labels=labels[i:i + 1], boxes=boxes[i:i + 1], batch_size=1)
        torch.testing.assert_close(one.logits[0], together.logits[i], rtol=0, atol=1e-5)
        torch.testing.assert_close(one.iou_scores[0], together.iou_scores[i], rtol=0, atol=1e-6)
        # float sums depend on the batch: a pixel whose logit is within 1e-5 of 0 may flip
        near = together.logits[i].abs() < 1e-5
        assert torch.equal(one.masks[0] | near, together.masks[i] | near)


def test_equals_official_predictor(vitb):
    from segment_anything import SamPredictor

    pred = SamPredictor(vitb.sam)
    pred.set_image(IMG)
    pts, labels, boxes = _prompts()
    ours = vitb.predict(points=pts, labels=labels, boxes=boxes, multimask=True, batch_size=6)
    coords = torch.as_tensor(pred.transform.apply_coords(pts.astype(np.float64), (H, W)))
    box_t = torch.as_tensor(pred.transform.apply_boxes(boxes.astype(np.float64), (H, W)), dtype=torch.float)
    with torch.inference_mode():
        masks, iou, low = pred.predict_torch(coords, torch.as_tensor(labels, dtype=torch.int), box_t,
                                             multimask_output=True, return_logits=True)
    assert torch.equal(masks, ours.logits) and torch.equal(iou, ours.iou_scores) and torch.equal(low, ours.low_res_logits)
    one = vitb.predict(points=pts[3:4], labels=labels[3:4], boxes=boxes[3:4], batch_size=1)
    masks, iou, _ = pred.predict(pts[3], labels[3], boxes[3], multimask_output=True, return_logits=True)
    assert np.array_equal(masks, one.logits[0].numpy()) and np.array_equal(iou, one.iou_scores[0].numpy())
    masks, iou, _ = pred.predict(pts[1], labels[1], mask_input=ours.low_res_logits[1, :1].numpy(), multimask_output=False)
    again = vitb.predict(points=pts[1:2], labels=labels[1:2], mask_input=ours.low_res_logits[1:2, :1], multimask=False)
    assert np.array_equal(masks, again.masks[0].numpy()) and np.array_equal(iou, again.iou_scores[0].numpy())


def test_checkpoint_file_loads_and_is_recorded(vitb, tmp_path, caplog):
    path = tmp_path / "my_vit_b.pth"
    state = {k.replace("image_encoder.encoder.", "image_encoder."): v for k, v in vitb.sam.state_dict().items()}
    torch.save(state, path)
    with caplog.at_level(logging.WARNING):
        model = build_model("sam_vit_b", checkpoint=str(path), device="cpu")
    assert "not an official checkpoint" in caplog.text
    assert model.info.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not model.info.untrained and model.info.as_dict()["checkpoint"] == str(path)
    for name, p in model.sam.named_parameters():
        assert torch.equal(p, state[name]), name


def test_wrong_hash_is_refused(tmp_path):
    bad = tmp_path / "sam_vit_b_01ec64.pth"
    bad.write_bytes(b"not the official weights")
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError) as exc:
        build_model("sam_vit_b", checkpoint=str(bad), device="cpu")
    msg = str(exc.value)
    assert str(bad) in msg and "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912" in msg and actual in msg


def test_official_file_of_another_model_is_refused(tmp_path):
    other = tmp_path / "sam_vit_h_4b8939.pth"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not one for 'sam_vit_b'"):
        build_model("sam_vit_b", checkpoint=str(other), device="cpu")


def test_missing_default_checkpoint_says_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as exc:
        build_model("sam_vit_l", device="cpu")
    msg = str(exc.value)
    assert "sam-bench models download sam_vit_l" in msg
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth" in msg
    assert str(tmp_path / "checkpoints" / "sam_vit_l_0b3195.pth") in msg


def test_untrained_is_labelled_and_options_checked():
    info = random_vit_b().info.as_dict()
    assert info["untrained"] and info["checkpoint_sha256"] == "untrained" and "random weights" in info["weights"]
    with pytest.raises(ConfigError, match="unknown option colour; its options .*seed=0"):
        build_model("sam_vit_b", untrained=True, device="cpu", colour="red")
    with pytest.raises(ConfigError, match="exclude"):
        build_model("sam_vit_b", untrained=True, checkpoint="x.pth", device="cpu")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_outputs_float32(dtype):
    fp32, low = tiny_model(), tiny_model(dtype)
    assert next(low.sam.image_encoder.parameters()).dtype == dtype
    fp32.set_image(IMG)
    low.set_image(IMG)
    pts, labels, boxes = _prompts()
    a = fp32.predict(points=pts, labels=labels, boxes=boxes)
    b = low.predict(points=pts, labels=labels, boxes=boxes)
    assert b.logits.dtype == b.iou_scores.dtype == b.low_res_logits.dtype == torch.float32
    assert torch.isfinite(b.logits).all()
    err = (a.low_res_logits - b.low_res_logits).abs().mean() / a.low_res_logits.abs().mean()
    assert err < 0.1, f"{dtype} deviates from fp32 by {err:.3f} (relative)"
