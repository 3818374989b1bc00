"""Every adapter that stores its encoder output gets it back whole: HQ-SAM (intermediate features),
SAM 2 and transformers' SAM 2 / EdgeTAM (high-resolution features), hf-sam and EfficientViT-SAM
decode a hit exactly as the miss that filled it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.models.base import build_model
from sam_bench.models.embedding_cache import EmbeddingCache

IMG = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
PTS = np.array([[[30.0, 40.0]], [[100.0, 20.0]]])
LABELS = np.ones((2, 1))
BOXES = np.array([[5, 5, 60, 50], [50, 10, 119, 89]], float)


def _hf_tiny(tmp_path):
    from transformers import SamConfig, SamImageProcessor, SamModel

    torch.manual_seed(0)
    config = SamConfig(vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          global_attn_indexes=[0], mlp_dim=64))
    SamModel(config).save_pretrained(tmp_path / "hf")
    SamImageProcessor().save_pretrained(tmp_path / "hf")
    return build_model("hf-sam", checkpoint=str(tmp_path / "hf"), device="cpu")


BUILD = {
    "hq-sam": (("segment_anything_hq",), lambda tmp: build_model("hq-sam", untrained=True, variant="vit_tiny")),
    "sam2": (("sam2",), lambda tmp: build_model("sam2", untrained=True, variant="t", device="cpu")),
    "hf-sam": (("transformers",), _hf_tiny),
    "efficientvit-sam": (("efficientsam",), lambda tmp: build_model("efficientvit-sam", untrained=True, device="cpu")),
    "hf-sam2": (("transformers",), lambda tmp: build_model("hf-sam2", untrained=True, variant="t", device="cpu")),
    "edgetam": (("transformers", "timm"), lambda tmp: build_model("edgetam", untrained=True, device="cpu")),
}
MULTI = {"hq-sam", "sam2", "hf-sam2", "edgetam"}  # those storing more than the image embedding


@pytest.mark.parametrize("name", list(BUILD))
def test_a_hit_decodes_exactly_as_the_miss(name, tmp_path):
    packages, build = BUILD[name]
    for package in packages:
        pytest.importorskip(package)
    model = build(tmp_path)
    model.prompt_batch = 2  # fixed: the batch tuner's probes would decode the two calls in different chunks
    model.embedding_cache = EmbeddingCache(tmp_path / "cache")
    model.set_image(IMG)
    miss = model.predict(points=PTS, labels=LABELS, boxes=BOXES)
    model.reset_image()
    model.set_image(IMG)
    hit = model.predict(points=PTS, labels=LABELS, boxes=BOXES)
    assert model.encoder_calls == 1 and model.embedding_cache.hits == 1
    for a, b in [(miss.logits, hit.logits), (miss.iou_scores, hit.iou_scores), (miss.low_res_logits, hit.low_res_logits)]:
        assert torch.equal(a, b)
    tensors, _ = model._encoder_state()
    assert (len(tensors) > 1) == (name in MULTI)  # interm / high-res features stored beside the embedding
