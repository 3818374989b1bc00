"""HQ-SAM (``segment_anything_hq``, ``pip install 'sam-bench[hq]'``) behind ``PromptableModel``: ``hq-sam``.

The same adapter as SAM v1 (``SamV1Model``): HQ-SAM's encoder also returns intermediate ViT
features, and its decoder takes them plus ``hq_token_only`` (option; default False, i.e. the
HQ mask is added to SAM's, as in the HQ-SAM evaluation). Option ``variant``: vit_b, vit_l,
vit_h (default), vit_tiny (Light HQ-SAM on MobileSAM's TinyViT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sam_bench.errors import NotBuilt
from sam_bench.models import checkpoints
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import SamV1Model, with_weights

if TYPE_CHECKING:
    import torch

VARIANTS = ("vit_b", "vit_l", "vit_h", "vit_tiny")


class HQSamModel(SamV1Model):
    """``segment_anything_hq.modeling.Sam``: encoder -> (embedding, intermediate features)."""

    def __init__(self, *args: Any, hq_token_only: bool = False, **kw: Any):
        super().__init__(*args, **kw)
        self.hq_token_only = hq_token_only
        self.interm: Any = None

    def _run_encoder(self, x: torch.Tensor):
        features, self.interm = self.sam.image_encoder(x)
        return features

    def _encoder_state(self) -> tuple[dict, dict]:
        tensors, sizes = super()._encoder_state()
        return {**tensors, **{f"interm.{i}": t for i, t in enumerate(self.interm)}}, {**sizes, "interm": len(self.interm)}

    def _load_encoder_state(self, tensors: dict, sizes: dict) -> None:
        super()._load_encoder_state(tensors, sizes)
        self.interm = [tensors[f"interm.{i}"] for i in range(sizes["interm"])]

    def _run_decoder(self, sparse, dense, multimask: bool):
        return self.sam.mask_decoder(image_embeddings=self.features, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                                     sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                     multimask_output=multimask, hq_token_only=self.hq_token_only,
                                     interm_embeddings=self.interm)


@declare("hq-sam", choices={"variant": VARIANTS})
def build_hq_sam(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
                 variant: str = "vit_h", seed: int = 0, hq_token_only: bool = False,
                 prompt_batch: int | None = None) -> HQSamModel:
    """``hq-sam``: official ``sam_hq_<variant>.pth`` from the cache, ``--checkpoint``, or ``--untrained``.

    Options: ``variant``, ``hq_token_only`` (the HQ mask alone), ``seed`` (random weights).
    """
    try:
        from segment_anything_hq import sam_model_registry
    except ImportError as exc:
        raise NotBuilt(f"hq-sam needs the segment-anything-hq package: pip install 'sam-bench[hq]' ({exc})") from exc
    from sam_bench.config import resolve_device, resolve_dtype

    device, torch_dtype = resolve_device(None if device is None else str(device)), resolve_dtype(dtype)
    load = lambda module, path: checkpoints.load_into(module, path, strict=False)
    sam, info = with_weights("hq-sam", sam_model_registry[variant], checkpoint, untrained, dtype, seed,
                             default=f"sam_hq_{variant}", load=load, variant=variant, hq_token_only=hq_token_only)
    return HQSamModel(sam, info, device, torch_dtype, prompt_batch, hq_token_only=hq_token_only)
