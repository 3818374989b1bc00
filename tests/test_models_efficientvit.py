"""EfficientViT-SAM adapter (``efficientsam``; skipped where it is not installed): the runner
contract, equality with ``EfficientViTSamPredictor``, checkpoint loading and the missing-checkpoint
message. One random L0 (seed 0, 512 px encoder input) serves the module; its encoder output is
memoised, so each image is encoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("efficientsam")

from contract import BOXES, IMG, LABELS, PTS, check_promptable_contract, check_unverified_checkpoint  # noqa: E402
from sam_bench.errors import CheckpointError, ConfigError  # noqa: E402
from sam_bench.models.base import build_model  # noqa: E402
from sam_fixtures import MemoEncoder  # noqa: E402


@pytest.fixture(scope="module")
def l0():
    model = build_model("efficientvit-sam", untrained=True, device="cpu")
    encoder = model.sam.image_encoder
    encoder.img_size = model.sam.image_size[1]  # MemoEncoder copies it; EfficientViT's encoder has none
    model.sam.image_encoder = MemoEncoder(encoder)
    return model


def _plain_state(model) -> dict:
    return {k.replace("image_encoder.encoder.", "image_encoder."): v for k, v in model.sam.state_dict().items()}


def test_passes_the_contract(l0):
    check_promptable_contract(l0)
    info = l0.info.as_dict()
    assert info["untrained"] and info["variant"] == "l0" and l0.parameter_count() == 34_792_784


def test_equals_the_packages_predictor(l0):
    """Same encoder input bit for bit (one real encoder call for both), same masks, scores and low-res logits."""
    from efficientsam.models.efficientvit.sam import EfficientViTSamPredictor

    l0.set_image(IMG)
    assert l0.sam.image_size == (1024, 512) and l0.input_size == (768, 1024)
    pred = EfficientViTSamPredictor(l0.sam)
    pred.set_image(IMG)
    assert l0.sam.image_encoder.real_calls == 1, "the predictor's preprocessed image differs from ours"
    assert l0.features.shape == (1, 256, 64, 64)
    ours = l0.predict(points=PTS[:2], labels=LABELS[:2], boxes=BOXES[:2], batch_size=2)
    for i in range(2):
        masks, iou, low = pred.predict(PTS[i], LABELS[i], BOXES[i], multimask_output=True, return_logits=True)
        torch.testing.assert_close(ours.logits[i], torch.as_tensor(masks), rtol=0, atol=1e-4)
        torch.testing.assert_close(ours.iou_scores[i], torch.as_tensor(iou), rtol=0, atol=1e-5)
    one = l0.predict(points=PTS[1:2], labels=LABELS[1:2], boxes=BOXES[1:2], batch_size=1)
    assert np.array_equal(masks, one.logits[0].numpy()) and np.array_equal(iou, one.iou_scores[0].numpy())
    assert np.array_equal(low, one.low_res_logits[0].numpy()) and low.shape == (3, 256, 256)
    again = l0.predict(points=PTS[:1], labels=LABELS[:1], mask_input=one.low_res_logits[:, :1], multimask=False)
    masks, iou, _ = pred.predict(PTS[0], LABELS[0], mask_input=low[:1], multimask_output=False, return_logits=True)
    assert np.array_equal(masks, again.logits[0].numpy()) and np.array_equal(iou, again.iou_scores[0].numpy())


def test_official_file_loads_unverified_with_its_sha256(l0, tmp_path, caplog):
    state = _plain_state(l0)
    path = tmp_path / "efficientvit_sam_l0.pt"
    torch.save({"state_dict": state}, path)  # the package's loader also takes a training checkpoint's nesting
    check_unverified_checkpoint("efficientvit-sam", path, state, caplog)
    bare = tmp_path / "bare" / "efficientvit_sam_l0.pt"
    bare.parent.mkdir()
    torch.save(state, bare)
    model = build_model("efficientvit-sam", checkpoint=str(bare), device="cpu")
    assert torch.equal(model.sam.mask_decoder.iou_token.weight, state["mask_decoder.iou_token.weight"])


def test_wrong_variant_and_options_are_refused(l0, tmp_path):
    path = tmp_path / "efficientvit_sam_l0.pt"
    torch.save(_plain_state(l0), path)
    with pytest.raises(CheckpointError, match=f"{path}: does not fit EfficientViT-SAM l1"):
        build_model("efficientvit-sam", checkpoint=str(path), variant="l1", device="cpu")
    with pytest.raises(ConfigError, match="variant='xl2' is not allowed; choose one of l0, l1, l2, xl0, xl1"):
        build_model("efficientvit-sam", untrained=True, variant="xl2", device="cpu")


@pytest.mark.parametrize("variant", ["l0", "xl1"])
def test_missing_default_checkpoint_says_how_to_download(variant, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as exc:
        build_model("efficientvit-sam", variant=variant, device="cpu")
    msg = str(exc.value)
    assert f"sam-bench models download efficientvit_sam_{variant}`" in msg
    assert f"https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/efficientvit_sam_{variant}.pt" in msg
    assert str(tmp_path / "checkpoints" / f"efficientvit_sam_{variant}.pt") in msg


def test_bf16_runs_the_encoder_in_bf16_and_outputs_float32(l0):
    low = build_model("efficientvit-sam", untrained=True, device="cpu", dtype="bf16")
    assert next(low.sam.image_encoder.parameters()).dtype == torch.bfloat16 and low.info.as_dict()["dtype"] == "bf16"
    l0.set_image(IMG)
    low.set_image(IMG)
    a = l0.predict(points=PTS, labels=LABELS, boxes=BOXES)
    b = low.predict(points=PTS, labels=LABELS, boxes=BOXES)
    assert b.logits.dtype == b.iou_scores.dtype == b.low_res_logits.dtype == torch.float32
    err = (a.low_res_logits - b.low_res_logits).abs().mean() / a.low_res_logits.abs().mean()
    assert 0 < err < 0.1, f"bf16 deviates from fp32 by {err:.3f} (relative)"
