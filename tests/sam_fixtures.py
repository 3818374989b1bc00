"""Shared SAM test models: a seeded random ViT-B whose encoder output is memoised (one real
encoder pass per image per session), and a tiny SAM (small ViT, real prompt encoder and decoder)
for the code paths that need many encoder passes (crops, dtypes)."""

from __future__ import annotations

import functools
from functools import partial

import numpy as np
import torch


class MemoEncoder(torch.nn.Module):
    """Wraps an image encoder; returns the cached output when called again on an equal input."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder
        self.img_size = encoder.img_size
        self.real_calls = 0
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for inp, out in self._cache:
            if inp.shape == x.shape and inp.dtype == x.dtype and torch.equal(inp, x):
                return out
        self.real_calls += 1
        out = self.encoder(x)
        self._cache.append((x.clone(), out))
        return out


@functools.lru_cache(maxsize=1)
def random_vit_b():
    """``sam_vit_b`` with random weights (seed 0), encoder memoised. Built once per test session."""
    from sam_bench.models.sam_v1 import build_sam_vit_b

    model = build_sam_vit_b(untrained=True, device="cpu", seed=0)
    model.sam.image_encoder = MemoEncoder(model.sam.image_encoder)
    return model


def tiny_sam(seed: int = 0):
    """A ``segment_anything`` Sam with a 1-block, 64-wide ViT (fast) and the real prompt encoder/decoder."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(depth=1, embed_dim=64, img_size=1024, mlp_ratio=2, num_heads=2,
                                          norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), patch_size=16,
                                          qkv_bias=True, use_rel_pos=True, global_attn_indexes=[0], window_size=14,
                                          out_chans=256),
            prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                         mask_in_chans=16),
            mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                     mlp_dim=2048, num_heads=8), transformer_dim=256, iou_head_depth=3,
                                     iou_head_hidden_dim=256))
    return sam.eval()


def tiny_model(dtype=torch.float32, seed: int = 0, device: str = "cpu"):
    from sam_bench.models.base import ModelInfo
    from sam_bench.models.sam_v1 import SamV1Model

    return SamV1Model(tiny_sam(seed), ModelInfo("tiny-sam", untrained=True), device, dtype)


def make_image(h: int = 200, w: int = 300) -> np.ndarray:
    """Three flat regions plus noise, (H, W, 3) uint8."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 5: 3 * h // 4, w // 5: 2 * w // 3] = 200
    img[:, 3 * w // 4:] = (30, 180, 60)
    return (img + rng.integers(0, 30, img.shape)).astype(np.uint8)


# the tiny ViT of tiny_sam as a transformers vision config, for the official <-> transformers pairs
TINY_VIT = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0, global_attn_indexes=[0])


def tiny_hf(seed: int = 1, hq: bool = False):
    from transformers import SamConfig, SamHQConfig, SamHQModel, SamHQVisionConfig, SamModel
    from transformers.models.sam.configuration_sam import SamVisionConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hq:
            return SamHQModel(SamHQConfig(vision_config=SamHQVisionConfig(**TINY_VIT).to_dict(),
                                          mask_decoder_config={"vit_dim": 64})).eval()
        return SamModel(SamConfig(vision_config=SamVisionConfig(**TINY_VIT).to_dict())).eval()


def tiny_hq(seed: int = 0):
    """A ``segment_anything_hq`` Sam of the tiny ViT (its one block global, feeding the HQ decoder)."""
    from segment_anything_hq.modeling import ImageEncoderViT, MaskDecoderHQ, PromptEncoder, Sam, TwoWayTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Sam(image_encoder=ImageEncoderViT(depth=1, embed_dim=64, img_size=1024, mlp_ratio=2, num_heads=2,
                                                 norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), patch_size=16,
                                                 qkv_bias=True, use_rel_pos=True, global_attn_indexes=[0],
                                                 window_size=14, out_chans=256),
                   prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                                input_image_size=(1024, 1024), mask_in_chans=16),
                   mask_decoder=MaskDecoderHQ(num_multimask_outputs=3, transformer=TwoWayTransformer(
                       depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8), transformer_dim=256,
                       iou_head_depth=3, iou_head_hidden_dim=256, vit_dim=64)).eval()
