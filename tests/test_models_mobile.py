"""MobileSAM and TinySAM adapters (``mobile_sam``; skipped where it is not installed): the runner
contract, equality with the package's own predictor, TinySAM's multimask-only decoder, checkpoint
loading and the missing-checkpoint message. One random TinyViT (seed 0) serves the module; its
encoder output is memoised, so each image is encoded once."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("mobile_sam")

from contract import BOXES, IMG, LABELS, PTS, check_promptable_contract, check_unverified_checkpoint  # noqa: E402
from sam_bench.cli import main  # noqa: E402
from sam_bench.errors import CheckpointError  # noqa: E402
from sam_bench.models.base import build_model  # noqa: E402
from sam_bench.models.mobile_sam import TinySamModel  # noqa: E402
from sam_fixtures import MemoEncoder  # noqa: E402

TINYSAM = "https://github.com/xinghaochen/TinySAM/releases/download"


@pytest.fixture(scope="module")
def mobile():
    model = build_model("mobile-sam", untrained=True, device="cpu")
    model.sam.image_encoder = MemoEncoder(model.sam.image_encoder)
    return model


@pytest.fixture(scope="module")
def tiny(mobile):
    """``tinysam`` with seed 0: the same weights as ``mobile`` (checked), so it shares the memoised encoder."""
    model = build_model("tinysam", untrained=True, device="cpu")
    for name, p in model.sam.named_parameters():
        assert torch.equal(p, mobile.sam.get_parameter(name.replace("image_encoder.", "image_encoder.encoder.")))
    model.sam.image_encoder = mobile.sam.image_encoder
    return model


def _plain_state(model) -> dict:
    """The state dict as the official file holds it (the memo wrapper's prefix removed)."""
    return {k.replace("image_encoder.encoder.", "image_encoder."): v for k, v in model.sam.state_dict().items()}


def test_mobile_sam_passes_the_contract(mobile):
    check_promptable_contract(mobile)
    assert mobile.parameter_count() == 10_130_092 and mobile.info.as_dict()["untrained"]


def test_tinysam_passes_the_contract(tiny):
    check_promptable_contract(tiny)
    assert isinstance(tiny, TinySamModel) and tiny.info.extra["variant"] == "42.3"


def test_mobile_sam_equals_its_sam_predictor(mobile):
    from mobile_sam import SamPredictor

    mobile.set_image(IMG)
    pred = SamPredictor(mobile.sam)
    pred.set_image(IMG)
    assert mobile.sam.image_encoder.real_calls == 1, "the predictor's preprocessed image differs from ours"
    ours = mobile.predict(points=PTS[1:2], labels=LABELS[1:2], boxes=BOXES[1:2])
    masks, iou, low = pred.predict(PTS[1], LABELS[1], BOXES[1], multimask_output=True, return_logits=True)
    assert np.array_equal(masks, ours.logits[0].numpy()) and np.array_equal(iou, ours.iou_scores[0].numpy())
    assert np.array_equal(low, ours.low_res_logits[0].numpy())
    again = mobile.predict(points=PTS[:1], labels=LABELS[:1], mask_input=ours.low_res_logits[:, :1], multimask=False)
    masks, iou, _ = pred.predict(PTS[0], LABELS[0], mask_input=low[:1], multimask_output=False, return_logits=True)
    assert np.array_equal(masks, again.logits[0].numpy()) and np.array_equal(iou, again.iou_scores[0].numpy())


def test_tinysam_gives_the_three_multimask_outputs_and_picks_the_best(tiny, mobile):
    """TinySAM's predictor is SamPredictor with multimask output always on: equal to ours; a single mask
    is the best-scored of the three, never SAM's single-mask token (which MobileSAM decodes)."""
    from mobile_sam import SamPredictor

    tiny.set_image(IMG)
    pred = SamPredictor(tiny.sam)
    pred.set_image(IMG)
    masks, iou, low = pred.predict(PTS[0], LABELS[0], multimask_output=True, return_logits=True)
    multi = tiny.predict(points=PTS[:1], labels=LABELS[:1])
    assert np.array_equal(masks, multi.logits[0].numpy()) and np.array_equal(iou, multi.iou_scores[0].numpy())
    one = tiny.predict(points=PTS[:1], labels=LABELS[:1], multimask=False)
    k = int(iou.argmax())
    assert one.logits.shape == (1, 1, *IMG.shape[:2])
    assert np.array_equal(masks[k], one.logits[0, 0].numpy()) and one.iou_scores[0, 0].item() == iou[k]
    assert np.array_equal(low[k], one.low_res_logits[0, 0].numpy())
    mobile.set_image(IMG)
    sam_single = mobile.predict(points=PTS[:1], labels=LABELS[:1], multimask=False)
    assert not torch.equal(sam_single.iou_scores, one.iou_scores)


def test_tinysam_checkpoint_loads_unverified_with_its_sha256(mobile, tmp_path, caplog):
    path = tmp_path / "tinysam_42.3.pth"
    state = _plain_state(mobile)
    torch.save(state, path)
    check_unverified_checkpoint("tinysam", path, state, caplog)


def test_mobile_sam_checkpoint_is_hash_checked(mobile, tmp_path, caplog):
    official = tmp_path / "mobile_sam.pt"
    torch.save(_plain_state(mobile), official)
    actual = hashlib.sha256(official.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError) as exc:
        build_model("mobile-sam", checkpoint=str(official), device="cpu")
    assert "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f" in str(exc.value)
    assert actual in str(exc.value)
    mine = official.rename(tmp_path / "my_mobile_sam.pt")
    with caplog.at_level(logging.WARNING):
        model = build_model("mobile-sam", checkpoint=str(mine), device="cpu")
    assert "not an official checkpoint" in caplog.text and model.info.checkpoint_sha256 == actual
    with pytest.raises(CheckpointError, match="not one for 'mobile-sam'"):
        build_model("mobile-sam", checkpoint=str(mine.rename(tmp_path / "tinysam.pth")), device="cpu")


@pytest.mark.parametrize("name,opts,entry,url", [
    ("mobile-sam", {}, "mobile_sam", "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"),
    ("tinysam", {}, "tinysam_42.3", f"{TINYSAM}/3.0/tinysam_42.3.pth"),
    ("tinysam", {"variant": "41.9"}, "tinysam", f"{TINYSAM}/1.0/tinysam.pth"),
])
def test_missing_default_checkpoint_says_how_to_download(name, opts, entry, url, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as exc:
        build_model(name, device="cpu", **opts)
    msg = str(exc.value)
    assert f"sam-bench models download {entry}`" in msg and url in msg
    assert str(tmp_path / "checkpoints" / url.rsplit("/", 1)[1]) in msg


def test_models_list_shows_family_params_and_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path))
    assert main(["models", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for name, family, file in [("mobile-sam", "MobileSAM", "mobile_sam.pt"), ("tinysam", "TinySAM", "tinysam.pth")]:
        row = next(r for r in rows if r.startswith(f"| {name} ") and f" {file} " in r)
        assert f"| {family} " in row and "| 10.1M " in row and "| mobile_sam " in row and "| mobile " in row, row
