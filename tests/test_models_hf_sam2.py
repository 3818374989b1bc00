"""hf-sam2 (transformers Sam2Model) and edgetam (EdgeTamModel): the runner contract, equality with
transformers' own pipeline, folders the tests save, and the official <-> transformers weight
converter checked against the official ``sam2`` adapter (random weights throughout)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")
import transformers  # noqa: E402

from contract import BOXES, IMG, LABELS, PTS, check_promptable_contract  # noqa: E402
from sam_bench.errors import CheckpointError, ConfigError  # noqa: E402
from sam_bench.models.base import build_model  # noqa: E402
from sam_bench.models.convert_sam2 import VIDEO_ONLY, hf_to_sam2, sam2_to_hf  # noqa: E402
from sam_bench.models.hf_sam2 import VARIANTS, HFSam2Model, edgetam_config, sam2_config  # noqa: E402


def small_sam2_config():
    """A 5-block, 16-wide Hiera (real neck, prompt encoder and decoder) for fast tests."""
    backbone = transformers.Sam2HieraDetConfig(
        hidden_size=16, embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 2, 2],
        blocks_per_stage=[1, 1, 2, 1], global_attention_blocks=[3])
    return transformers.Sam2Config(vision_config=transformers.Sam2VisionConfig(
        backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16]))


def save(path, model):
    model.save_pretrained(path)
    transformers.Sam2Processor(transformers.Sam2ImageProcessor()).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf_sam2")
    return {"hf-sam2": save(root / "sam2", transformers.Sam2Model(small_sam2_config())),
            "edgetam": save(root / "edgetam", transformers.EdgeTamModel(edgetam_config()))}


@pytest.fixture(scope="module")
def loaded(folders):
    """Each adapter built from its saved folder, once."""
    return {name: build_model(name, checkpoint=str(path), device="cpu") for name, path in folders.items()}


@pytest.fixture(scope="module")
def official():
    pytest.importorskip("sam2")
    model = build_model("sam2", untrained=True, variant="t", device="cpu")
    model.set_image(IMG)
    return model


@pytest.fixture(scope="module")
def converted(official):
    """hf-sam2, the real variant t architecture, holding the official model's weights; ``float_resize``
    on, and a second adapter on the same module with transformers' own uint8 resize."""
    model = build_model("hf-sam2", untrained=True, variant="t", seed=1, device="cpu", float_resize=True)
    model.model.load_state_dict(sam2_to_hf(official.predictor.model.state_dict()), strict=True)
    plain = HFSam2Model(model.model, model.processor, model.info)
    model.set_image(IMG)
    plain.set_image(IMG)
    return model, plain


@pytest.mark.parametrize("name", ["hf-sam2", "edgetam"])
def test_contract_from_saved_folder(loaded, folders, name):
    check_promptable_contract(loaded[name])
    info = loaded[name].info.as_dict()
    assert info["checkpoint"] == str(folders[name]) and len(info["checkpoint_sha256"]) == 64
    assert not info["untrained"] and info["model_type"] == name.replace("hf-", "")


def test_contract_variant_t(converted):
    check_promptable_contract(converted[0])


def test_untrained_builds_record_the_seed():
    edgetam = build_model("edgetam", untrained=True, seed=3, device="cpu")
    assert edgetam.info.untrained and "seed 3" in edgetam.info.extra["weights"]
    assert edgetam.model.vision_encoder.backbone.config.architecture == "repvit_m1"


@pytest.mark.parametrize("name", ["hf-sam2", "edgetam"])
def test_matches_transformers_own_pipeline(loaded, folders, name):
    """Same logits and scores as Sam2Processor + forward + post_process_masks, for points and for a
    box (the box call reuses the first call's image embeddings, as transformers' docs do)."""
    proc = transformers.Sam2Processor.from_pretrained(folders[name])
    cls = transformers.Sam2Model if name == "hf-sam2" else transformers.EdgeTamModel
    ref = cls.from_pretrained(folders[name]).eval()
    model = loaded[name]
    model.set_image(IMG)
    embeddings = None
    for ref_kw, ours_kw in [({"input_points": [[[[30.0, 40.0], [80.0, 20.0]]]], "input_labels": [[[1, 0]]]},
                             {"points": [[[30.0, 40.0], [80.0, 20.0]]], "labels": [[1, 0]]}),
                            ({"input_boxes": [[[5.0, 5.0, 60.0, 50.0]]]}, {"boxes": [[5.0, 5.0, 60.0, 50.0]]})]:
        inputs = proc(images=IMG, return_tensors="pt", **ref_kw)
        if embeddings is not None:
            inputs["image_embeddings"] = embeddings
            del inputs["pixel_values"]
        with torch.no_grad():
            out = ref(**inputs)
        embeddings = out.image_embeddings
        masks = proc.post_process_masks(out.pred_masks, inputs["original_sizes"], binarize=False)[0]
        ours = model.predict(**ours_kw)
        torch.testing.assert_close(ours.logits, masks, rtol=0, atol=1e-4)
        torch.testing.assert_close(ours.iou_scores, out.iou_scores[0], rtol=0, atol=1e-5)
        assert ours.low_res_logits.abs().max() <= 32


def test_hub_video_layout_loads(tmp_path):
    """The Hub's SAM 2.1 folders are saved as Sam2VideoModel (model_type sam2_video): the image
    model loads their weights and leaves the memory modules out."""
    torch.manual_seed(1)
    image_cfg = small_sam2_config()
    video = transformers.Sam2VideoModel(transformers.Sam2VideoConfig(
        vision_config=image_cfg.vision_config.to_dict(), prompt_encoder_config=image_cfg.prompt_encoder_config.to_dict(),
        mask_decoder_config=image_cfg.mask_decoder_config.to_dict()))
    save(tmp_path, video)
    model = build_model("hf-sam2", checkpoint=str(tmp_path), device="cpu")
    assert model.info.extra["model_type"] == "sam2_video"
    theirs = video.state_dict()
    ours = model.model.state_dict()
    assert set(ours) < set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_errors(folders, tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        build_model("hf-sam2", checkpoint=str(tmp_path), device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam"}))
    with pytest.raises(CheckpointError, match="model_type 'sam' is not one hf-sam2 loads"):
        build_model("hf-sam2", checkpoint=str(tmp_path), device="cpu")
    with pytest.raises(CheckpointError, match="model_type 'sam2' is not one edgetam loads"):
        build_model("edgetam", checkpoint=str(folders["hf-sam2"]), device="cpu")
    with pytest.raises(CheckpointError, match="yonigozlan/EdgeTAM-hf"):
        build_model("edgetam", device="cpu")
    with pytest.raises(CheckpointError, match="neither a local model folder nor a model id"):
        build_model("hf-sam2", checkpoint="facebook/sam2.1-hiera-nonexistent", device="cpu")
    with pytest.raises(ConfigError, match="variant"):
        build_model("hf-sam2", untrained=True, variant="xl", device="cpu")
    with pytest.raises(ConfigError, match="exclude"):
        build_model("hf-sam2", untrained=True, checkpoint=str(folders["hf-sam2"]), device="cpu")


# -- official sam2 <-> transformers weights ------------------------------------------------------
def test_round_trip_is_identical(official):
    state = official.predictor.model.state_dict()
    back = hf_to_sam2(sam2_to_hf(state))
    image_keys = {k for k in state if not k.startswith(VIDEO_ONLY)}
    assert set(back) == image_keys and len(image_keys) < len(state)
    assert all(torch.equal(back[k], state[k]) for k in image_keys)
    hf_state = transformers.Sam2Model(sam2_config("t")).state_dict()
    with pytest.raises(CheckpointError, match="differs"):  # a fresh model's two copies are not tied
        hf_to_sam2(hf_state)
    pe = hf_state["prompt_encoder.shared_embedding.positional_embedding"]
    hf_state["shared_image_embedding.positional_embedding"] = pe
    again = sam2_to_hf(hf_to_sam2(hf_state))
    assert set(again) == set(hf_state) and all(torch.equal(again[k], hf_state[k]) for k in hf_state)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_is_the_official_architecture(variant):
    """Converted official weights fill the transformers model of that size exactly, key by key."""
    pytest.importorskip("sam2")
    from sam2.build_sam import build_sam2

    from sam_bench.models.sam2 import CONFIGS

    official = build_sam2(f"configs/sam2.1/{CONFIGS[variant]}.yaml", None, device="cpu")
    converted = {k: tuple(v.shape) for k, v in sam2_to_hf(official.state_dict()).items()}
    with torch.device("meta"):
        hf = transformers.Sam2Model(sam2_config(variant))
    assert converted == {k: tuple(v.shape) for k, v in hf.state_dict().items()}


def test_converter_refuses_other_layouts(official):
    with pytest.raises(CheckpointError, match="unknown keys"):
        sam2_to_hf({"model.image_encoder.trunk.pos_embed": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not a transformers Sam2Model"):
        hf_to_sam2(official.predictor.model.state_dict())


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter, union = (a & b).flatten(2).sum(-1), (a | b).flatten(2).sum(-1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union, dtype=torch.float32))


def test_converted_weights_give_the_official_outputs(official, converted):
    """With ``float_resize`` (the sam2 package's float resize) the outputs are the official ones to
    float precision; with transformers' uint8 resize the masks still agree closely."""
    same, plain = converted
    for prompts in [dict(points=PTS, labels=LABELS), dict(boxes=BOXES),
                    dict(points=PTS, labels=LABELS, boxes=BOXES, multimask=False)]:
        ref, ours, other = official.predict(**prompts), same.predict(**prompts), plain.predict(**prompts)
        torch.testing.assert_close(ours.logits, ref.logits, rtol=0, atol=1e-4)
        torch.testing.assert_close(ours.iou_scores, ref.iou_scores, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.low_res_logits, ref.low_res_logits, rtol=0, atol=1e-4)
        assert 1e-5 < (other.logits - ref.logits).abs().max() < 0.02
        assert _mask_iou(other.logits > 0, ref.logits > 0).mean() > 0.99
