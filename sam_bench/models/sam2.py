"""SAM 2 / 2.1 image predictor (``sam2``, ``pip install 'sam-bench[sam2]'``) behind ``PromptableModel``: ``sam2``.

Option ``variant``: t, s, b+, l (SAM 2.1 Hiera tiny / small / base+ / large; default l).
Encoding and decoding follow ``SAM2ImagePredictor.set_image`` / ``_predict`` (its image
transforms, high-resolution features, box-as-points prompt), with prompts batched in one call.
``--dtype bf16/fp16`` runs under autocast (SAM 2's own recommendation on GPU).
"""

from __future__ import annotations

import numpy as np

from sam_bench.errors import NotBuilt
from sam_bench.models import checkpoints
from sam_bench.models.base import Prediction, PromptableModel
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import with_weights

CONFIGS = {"t": "sam2.1_hiera_t", "s": "sam2.1_hiera_s", "b+": "sam2.1_hiera_b+", "l": "sam2.1_hiera_l"}


class Sam2Model(PromptableModel):
    """A ``SAM2Base`` through ``SAM2ImagePredictor``'s preprocessing and decoder call."""

    def __init__(self, predictor, info, device="cpu", dtype=None, prompt_batch: int | None = None):
        import torch

        super().__init__(info, device, prompt_batch)
        self.predictor = predictor
        self.dtype = torch.float32 if dtype is None else dtype
        self.mask_threshold = float(predictor.mask_threshold)

    def _encode(self, image: np.ndarray) -> None:
        with self._autocast():
            self.predictor.set_image(image)

    def _encoder_key(self) -> dict:
        return {"image_size": int(self.predictor.model.image_size)}

    def _encoder_state(self) -> tuple[dict, dict]:
        f = self.predictor._features
        tensors = {"image_embed": f["image_embed"], **{f"high_res_feats.{i}": t for i, t in enumerate(f["high_res_feats"])}}
        return tensors, {"orig_hw": [list(hw) for hw in self.predictor._orig_hw], "high_res": len(f["high_res_feats"])}

    def _load_encoder_state(self, tensors: dict, sizes: dict) -> None:
        p = self.predictor
        p.reset_predictor()
        p._orig_hw = [tuple(hw) for hw in sizes["orig_hw"]]
        p._features = {"image_embed": tensors["image_embed"],
                       "high_res_feats": [tensors[f"high_res_feats.{i}"] for i in range(sizes["high_res"])]}
        p._is_image_set = True

    def _decode(self, points, labels, boxes, mask_input, multimask: bool) -> Prediction:
        import torch

        p = self.predictor
        mask, coords, labs, box = p._prep_prompts(points, None if labels is None else labels.to(torch.int),
                                                  boxes, mask_input, normalize_coords=True)
        with self._autocast():
            logits, iou, low = p._predict(coords, labs, box, mask, multimask, return_logits=True)
        return Prediction(logits.float(), iou.float(), low.float(), self.mask_threshold)


@declare("sam2", choices={"variant": tuple(CONFIGS)})
def build_sam2(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
               variant: str = "l", seed: int = 0, prompt_batch: int | None = None) -> Sam2Model:
    """``sam2``: official ``sam2.1_hiera_<variant>.pt`` from the cache, ``--checkpoint``, or ``--untrained``.

    Options: ``variant`` (t, s, b+, l: the Hiera size), ``seed`` (random weights with --untrained).
    """
    try:
        from sam2.build_sam import build_sam2 as _build
        from sam2.sam2_image_predictor import SAM2ImagePredictor
    except ImportError as exc:
        raise NotBuilt(f"sam2 needs the sam2 package: pip install 'sam-bench[sam2]' ({exc})") from exc
    from sam_bench.config import resolve_device, resolve_dtype

    device, torch_dtype = resolve_device(None if device is None else str(device)), resolve_dtype(dtype)
    config = f"configs/sam2.1/{CONFIGS[variant]}.yaml"
    model, info = with_weights("sam2", lambda: _build(config, None, device="cpu"), checkpoint, untrained, dtype, seed,
                               default=f"sam2.1_hiera_{variant}",
                               load=lambda m, p: checkpoints.load_into(m, p, key="model"), variant=variant)
    model = model.to(device).eval()
    return Sam2Model(SAM2ImagePredictor(model), info, device, torch_dtype, prompt_batch)
