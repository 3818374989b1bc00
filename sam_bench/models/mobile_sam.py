"""MobileSAM and TinySAM (``mobile_sam``, ``pip install 'sam-bench[mobile]'``) behind ``PromptableModel``.

Both are a ``segment_anything``-style ``Sam`` with MobileSAM's TinyViT-5M encoder
(``mobile_sam.sam_model_registry["vit_t"]``), so ``SamV1Model`` runs them unchanged: same
resize, normalisation, prompt mapping and mask upsampling as ``SamPredictor``.

- ``mobile-sam``: MobileSAM's own weights, ``mobile_sam.pt``.
- ``tinysam``: TinySAM's weights on the same architecture. TinySAM's decoder always returns the
  three multimask outputs (its ``MaskDecoder.forward`` drops SAM's single-mask token, and its
  predictor has no ``multimask_output``), so ``multimask=False`` here gives the one of the three
  with the highest predicted IoU, as TinySAM's own COCO evaluation picks it. Option ``variant``
  picks the default weights: ``42.3`` (``tinysam_42.3.pth``, release 3.0) or ``41.9``
  (``tinysam.pth``, release 1.0), named by the COCO box-prompt AP TinySAM reports for them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from sam_bench.errors import NotBuilt
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import SamV1Model, with_weights

if TYPE_CHECKING:
    import torch

TINYSAM_WEIGHTS = {"42.3": "tinysam_42.3", "41.9": "tinysam"}  # variant -> CHECKPOINTS name


class TinySamModel(SamV1Model):
    """TinySAM: the decoder's three multimask outputs only; a single mask is the best of them."""

    def _run_decoder(self, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool):
        import torch

        low, iou = super()._run_decoder(sparse, dense, True)
        if multimask:
            return low, iou
        b, best = torch.arange(len(iou), device=iou.device), iou.argmax(dim=1)
        return low[b, best][:, None], iou[b, best][:, None]


def _build(name: str, cls: type[SamV1Model], default: str, checkpoint=None, untrained: bool = False,
           device="cpu", dtype: str | None = None, seed: int = 0, prompt_batch: int | None = None,
           **extra: Any) -> SamV1Model:
    try:
        with warnings.catch_warnings():  # mobile_sam re-registers timm's TinyViT names through timm's old paths
            warnings.filterwarnings("ignore", "Overwriting tiny_vit", UserWarning)
            warnings.filterwarnings("ignore", "Importing from timm", FutureWarning)
            from mobile_sam import sam_model_registry
    except ImportError as exc:
        raise NotBuilt(f"{name} needs the mobile_sam package: pip install 'sam-bench[mobile]' ({exc})") from exc
    from sam_bench.config import resolve_device, resolve_dtype

    device, torch_dtype = resolve_device(None if device is None else str(device)), resolve_dtype(dtype)
    sam, info = with_weights(name, sam_model_registry["vit_t"], checkpoint, untrained, dtype, seed, default=default,
                             **extra)
    return cls(sam, info, device, torch_dtype, prompt_batch)


@declare("mobile-sam", options={"seed": 0})
def build_mobile_sam(**kw: Any) -> SamV1Model:
    """``mobile-sam``: official ``mobile_sam.pt`` from the cache, ``--checkpoint``, or ``--untrained``
    (option ``seed``)."""
    return _build("mobile-sam", SamV1Model, "mobile_sam", **kw)


@declare("tinysam", choices={"variant": tuple(TINYSAM_WEIGHTS)})
def build_tinysam(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
                  variant: str = "42.3", seed: int = 0, prompt_batch: int | None = None) -> TinySamModel:
    """``tinysam``: official ``tinysam_42.3.pth`` (variant ``42.3``) or ``tinysam.pth`` (``41.9``)
    from the cache, ``--checkpoint``, or ``--untrained`` (option ``seed``)."""
    return _build("tinysam", TinySamModel, TINYSAM_WEIGHTS[variant], checkpoint, untrained, device, dtype, seed,
                  prompt_batch, variant=variant)
