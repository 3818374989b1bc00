"""Hugging Face ``transformers`` SAM 2.1 (``Sam2Model``) and EdgeTAM (``EdgeTamModel``): ``hf-sam2``, ``edgetam``.

``--checkpoint`` (or the ``path`` option) is a Hugging Face model id found in the local hub cache
(``facebook/sam2.1-hiera-tiny``, ``-small``, ``-base-plus``, ``-large``; ``yonigozlan/EdgeTAM-hf``,
the transformers port of EdgeTAM) or a folder written by ``save_pretrained``; nothing is
downloaded. The Hub's SAM 2.1 / EdgeTAM folders are saved as video models (``sam2_video``,
``edgetam_video``); the image model loads them and ignores the memory weights.
``--untrained`` builds the architecture with random weights: ``hf-sam2`` option ``variant`` (t,
s, b+, l, as transformers' convert_sam2_to_hf.py builds them), ``edgetam`` its RepViT-M1 backbone.

Each step is what transformers' own pipeline does: ``Sam2ImageProcessor`` (a square 1024x1024
resize), ``get_image_embeddings``, ``forward(image_embeddings=...)``, ``post_process_masks`` (a
bilinear resize of the 256x256 logits to the original size). Prompts are batched along the image
axis (the embeddings are expanded, not copied). ``low_res_logits`` are clamped to [-32, 32], as
``SAM2ImagePredictor`` returns them for feeding back.

The one systematic difference from the ``sam2`` package: transformers resizes the uint8 image
(rounding the antialiased result to whole levels), ``SAM2Transforms`` resizes it as float in
[0, 1]. Option ``float_resize`` does the latter, so converted official weights give the
``sam2`` adapter's outputs to float precision (docs/models.md has the figures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sam_bench.errors import CheckpointError, NotBuilt
from sam_bench.models.base import ModelInfo, Prediction
from sam_bench.models.hf_sam import HFPromptable, checkpoint_ref, load_saved, open_saved
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import model_info

if TYPE_CHECKING:  # torch loads on first use, so listing models needs none
    import torch

VARIANTS = {  # SAM 2.1 Hiera sizes as Sam2HieraDetConfig arguments (t is transformers' default)
    "t": {},
    "s": dict(blocks_per_stage=[1, 2, 11, 2], global_attention_blocks=[7, 10, 13]),
    "b+": dict(hidden_size=112, num_attention_heads=2, embed_dim_per_stage=[112, 224, 448, 896],
               num_attention_heads_per_stage=[2, 4, 8, 16], blocks_per_stage=[2, 3, 16, 3],
               global_attention_blocks=[12, 16, 20], window_positional_embedding_background_size=[14, 14]),
    "l": dict(hidden_size=144, num_attention_heads=2, embed_dim_per_stage=[144, 288, 576, 1152],
              num_attention_heads_per_stage=[2, 4, 8, 16], blocks_per_stage=[2, 6, 36, 4],
              global_attention_blocks=[23, 33, 43], window_size_per_stage=[8, 4, 16, 8]),
}
HUB_IDS = {"t": "facebook/sam2.1-hiera-tiny", "s": "facebook/sam2.1-hiera-small",
           "b+": "facebook/sam2.1-hiera-base-plus", "l": "facebook/sam2.1-hiera-large"}
EDGETAM_ID = "yonigozlan/EdgeTAM-hf"
EDGETAM_BACKBONE = dict(architecture="repvit_m1", model_args={"in_chans": 3, "features_only": True,
                                                              "out_indices": [0, 1, 2, 3]})
LOW_RES_CLAMP = 32.0  # SAM2ImagePredictor clamps the low-res logits it returns to +-32
MODEL_TYPES = {"hf-sam2": ("sam2", "sam2_video"), "edgetam": ("edgetam", "edgetam_video")}


class HFSam2Model(HFPromptable):
    """A ``transformers`` Sam2Model / EdgeTamModel with its ``Sam2ImageProcessor``."""

    def __init__(self, model, image_processor, info: ModelInfo, device="cpu", dtype=None,
                 prompt_batch: int | None = None, float_resize: bool = False):
        super().__init__(model, image_processor, info, device, dtype, prompt_batch)
        self.side = int(image_processor.size["height"])  # the processor's target_size for prompts
        self.float_resize = float_resize
        self.embeddings: list | None = None

    def _encode(self, image: np.ndarray) -> None:
        import torch

        if self.float_resize:  # as SAM2Transforms: to float in [0, 1] first, then resize
            x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
            inputs = self.processor(images=x, do_rescale=False, return_tensors="pt")
        else:
            inputs = self.processor(images=image, return_tensors="pt")
        self.original_size = tuple(int(v) for v in inputs["original_sizes"][0])
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with self._autocast():
            self.embeddings = [e.float() for e in self.model.get_image_embeddings(pixels)]

    def _encoder_key(self) -> dict:
        return {"side": self.side, "float_resize": self.float_resize}

    def _encoder_state(self) -> tuple[dict, dict]:
        return ({f"embeddings.{i}": e for i, e in enumerate(self.embeddings)},
                {"original_size": list(self.original_size), "levels": len(self.embeddings)})

    def _load_encoder_state(self, tensors: dict, sizes: dict) -> None:
        self.embeddings = [tensors[f"embeddings.{i}"] for i in range(sizes["levels"])]
        self.original_size = tuple(sizes["original_size"])

    def reset_image(self) -> None:
        super().reset_image()
        self.embeddings = None

    def _to_input_frame(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) (X, Y) original pixels -> the square input frame, as Sam2Processor normalises them."""
        import torch

        h, w = self.original_size
        return coords * torch.tensor([self.side / w, self.side / h], dtype=coords.dtype, device=coords.device)

    def _decode(self, points, labels, boxes, mask_input, multimask: bool) -> Prediction:
        import torch
        import torch.nn.functional as F

        b = next(x.shape[0] for x in (points, boxes, mask_input) if x is not None)
        kw = {"image_embeddings": [e.expand(b, -1, -1, -1) for e in self.embeddings], "multimask_output": multimask,
              **self._prompt_kwargs(points, labels, boxes, mask_input)}
        with self._autocast():
            out = self.model(**kw)
        low = out.pred_masks[:, 0].float()
        logits = F.interpolate(low, self.original_size, mode="bilinear", align_corners=False)
        low = torch.clamp(low, -LOW_RES_CLAMP, LOW_RES_CLAMP)
        return Prediction(logits, out.iou_scores[:, 0].float(), low, 0.0)


def sam2_config(variant: str):
    """The ``Sam2Config`` of the official SAM 2.1 size ``variant`` (t, s, b+, l)."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig

    backbone = Sam2HieraDetConfig(**VARIANTS[variant])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=backbone.embed_dim_per_stage[::-1])
    return Sam2Config(vision_config=vision)


def edgetam_config():
    """The ``EdgeTamConfig`` of EdgeTAM (RepViT-M1 backbone, named explicitly: transformers' default
    backbone config misspells ``architecture`` and would build a ResNet-50)."""
    from transformers import EdgeTamConfig, TimmWrapperConfig

    return EdgeTamConfig(vision_config=dict(backbone_config=TimmWrapperConfig(**EDGETAM_BACKBONE)))


def _build(name: str, checkpoint, path, untrained: bool, device, dtype, seed: int, prompt_batch,
           float_resize: bool, make_config, **extra) -> HFSam2Model:
    """Shared by both builders: ``make_config()`` for --untrained, else a folder / Hub id."""
    try:
        import transformers
        from transformers import Sam2ImageProcessor
    except ImportError as exc:
        raise NotBuilt(f"{name} needs transformers: pip install 'sam-bench[hf]' ({exc})") from exc
    from sam_bench.config import resolve_device, resolve_dtype
    from sam_bench.models.sam_v1 import random_init

    cls = transformers.Sam2Model if name == "hf-sam2" else transformers.EdgeTamModel
    ref = checkpoint_ref(name, checkpoint, path, untrained)
    device, torch_dtype = resolve_device(None if device is None else str(device)), resolve_dtype(dtype)
    if untrained:
        model = random_init(lambda: cls(make_config()), seed)
        info = model_info(name, None, None, True, dtype, seed, **extra)
        return HFSam2Model(model, Sam2ImageProcessor(), info, device, torch_dtype, prompt_batch, float_resize)
    folder, revision, model_type = open_saved(name, ref, HUB_IDS["t"] if name == "hf-sam2" else EDGETAM_ID)
    if model_type not in MODEL_TYPES[name]:
        raise CheckpointError(f"{folder}/config.json: model_type {model_type!r} is not one {name} loads "
                              f"({' or '.join(MODEL_TYPES[name])})")
    model, processor, info = load_saved(name, cls, Sam2ImageProcessor, folder, ref, revision, model_type, dtype)
    return HFSam2Model(model, processor, info, device, torch_dtype, prompt_batch, float_resize)


@declare("hf-sam2", choices={"variant": tuple(VARIANTS)})
def build_hf_sam2(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
                  path: str | None = None, variant: str = "l", seed: int = 0, float_resize: bool = False,
                  prompt_batch: int | None = None) -> HFSam2Model:
    """``hf-sam2``: a model id in the local HF cache or a saved folder (``--checkpoint`` or ``path``), or
    ``--untrained`` (``variant`` t, s, b+, l; ``seed``); ``float_resize`` as the sam2 package."""
    return _build("hf-sam2", checkpoint, path, untrained, device, dtype, seed, prompt_batch, float_resize,
                  lambda: sam2_config(variant), **({"variant": variant} if untrained else {}))


@declare("edgetam")
def build_edgetam(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
                  path: str | None = None, seed: int = 0, float_resize: bool = False,
                  prompt_batch: int | None = None) -> HFSam2Model:
    """``edgetam``: ``yonigozlan/EdgeTAM-hf`` in the local HF cache or a saved folder, or ``--untrained``
    (``seed``); ``float_resize`` as the EdgeTAM package (a SAM 2 fork)."""
    return _build("edgetam", checkpoint, path, untrained, device, dtype, seed, prompt_batch, float_resize,
                  edgetam_config)
