"""Hugging Face SamModel adapter from a local folder written by the test (small random config)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from transformers import SamConfig, SamImageProcessor, SamModel  # noqa: E402

from sam_bench.errors import CheckpointError, ConfigError  # noqa: E402
from sam_bench.models.base import ModelInfo, build_model  # noqa: E402
from sam_fixtures import make_image  # noqa: E402

IMG = make_image(90, 120)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A saved SamModel with a 1-layer, 32-wide vision encoder (real prompt encoder and decoder)."""
    torch.manual_seed(0)
    config = SamConfig(vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          global_attn_indexes=[0], mlp_dim=64))
    path = tmp_path_factory.mktemp("hf_sam")
    SamModel(config).save_pretrained(path)
    SamImageProcessor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model(folder):
    m = build_model("hf-sam", checkpoint=str(folder), device="cpu")
    m.set_image(IMG)
    return m


def test_contract_one_encoder_call_and_shapes(model):
    calls = model.encoder_calls
    pts = np.array([[[10, 20], [50, 60]], [[100, 30], [0, 0]], [[60, 45], [0, 0]]], float)
    labels = np.array([[1, 0], [1, -1], [1, -1]])
    boxes = np.array([[5, 5, 60, 50], [50, 10, 119, 89], [0, 0, 119, 89]], float)
    p = model.predict(points=pts, labels=labels)
    assert p.logits.shape == (3, 3, 90, 120) and p.iou_scores.shape == (3, 3) and p.low_res_logits.shape == (3, 3, 256, 256)
    q = model.predict(boxes=boxes, mask_input=p.low_res_logits[:, :1], multimask=False)
    assert q.logits.shape == (3, 1, 90, 120) and q.logits.dtype == torch.float32
    model.predict(points=pts, labels=labels, boxes=boxes)
    assert model.encoder_calls == calls


def test_batched_equals_one_by_one(model):
    pts = np.array([[[10, 20], [50, 60]], [[100, 30], [0, 0]]], float)
    labels = np.array([[1, 0], [1, -1]])
    boxes = np.array([[5, 5, 60, 50], [50, 10, 119, 89]], float)
    both = model.predict(points=pts, labels=labels, boxes=boxes)
    for i in range(2):
        one = model.predict(points=pts[i:i + 1], labels=labels[i:i + 1], boxes=boxes[i:i + 1])
        torch.testing.assert_close(one.logits[0], both.logits[i], rtol=0, atol=1e-4)


def test_matches_transformers_own_pipeline(model, folder):
    """Same logits as SamProcessor + SamModel.forward + post_process_masks for one prompt."""
    from transformers import SamProcessor

    proc = SamProcessor.from_pretrained(folder)
    ref = SamModel.from_pretrained(folder).eval()
    inputs = proc(images=IMG, input_points=[[[[30.0, 40.0]]]], return_tensors="pt")
    with torch.no_grad():
        out = ref(**inputs)
    masks = proc.image_processor.post_process_masks(out.pred_masks, inputs["original_sizes"],
                                                    inputs["reshaped_input_sizes"], binarize=False)[0]
    ours = model.predict(points=[[[30.0, 40.0]]], labels=[[1]])
    torch.testing.assert_close(ours.logits, masks, rtol=0, atol=1e-4)
    torch.testing.assert_close(ours.iou_scores, out.iou_scores[0], rtol=0, atol=1e-5)


def test_info_and_errors(model, tmp_path):
    info = model.info.as_dict()
    assert info["name"] == "hf-sam" and len(info["checkpoint_sha256"]) == 64 and not info["untrained"]
    with pytest.raises(CheckpointError, match="no config.json"):
        build_model("hf-sam", checkpoint=str(tmp_path), device="cpu")
    with pytest.raises(CheckpointError, match="--checkpoint DIR"):
        build_model("hf-sam", device="cpu")
    with pytest.raises(ConfigError, match="variant"):
        build_model("hf-sam", untrained=True, variant="vit_x", device="cpu")


def test_samhq_port_difference_is_recorded_beside_its_numbers(caplog):
    from sam_bench.models.hf_sam import HFSamModel, SAMHQ_PORT_NOTE
    from transformers import SamHQConfig, SamHQModel

    config = SamHQConfig(vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            global_attn_indexes=[0], mlp_dim=64), mask_decoder_config={"vit_dim": 32})
    hq = HFSamModel(SamHQModel(config), SamImageProcessor(), ModelInfo("hf-sam"))
    assert hq.info.as_dict()["known_issue"] == SAMHQ_PORT_NOTE and "hq-sam" in caplog.text
    plain = HFSamModel(SamModel(SamConfig(vision_config=config.vision_config.to_dict())), SamImageProcessor(),
                       ModelInfo("hf-sam"))
    assert "known_issue" not in plain.info.as_dict()
    fixed = HFSamModel(SamHQModel(config), SamImageProcessor(), ModelInfo("hf-sam"), hq_fix_upscale=True)
    assert "known_issue" not in fixed.info.as_dict()
    assert len(fixed.model.mask_decoder.upscale_conv1._forward_pre_hooks) == 1
