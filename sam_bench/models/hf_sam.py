"""Hugging Face ``transformers`` SAM (``SamModel``; ``SamHQModel`` too) from the local HF cache or a folder: ``hf-sam``.

``--checkpoint`` (or the ``path`` option) is a Hugging Face model id (``facebook/sam-vit-base``)
found in the local hub cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``), or a folder written by
``save_pretrained`` (config.json, weights, preprocessor_config.json); nothing is downloaded.
``--untrained`` builds the architecture from ``SamConfig`` (option ``variant``: vit_b, vit_l,
vit_h; ``hq=true``: ``SamHQModel`` from ``SamHQConfig``) with random weights. Prompts are
batched along the image axis (the image embedding is expanded, not copied), so every prompt may
carry its own points, box and mask input.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.errors import CheckpointError, ConfigError, NotBuilt
from sam_bench.models import checkpoints
from sam_bench.models.base import ModelInfo, Prediction, PromptableModel
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import model_info

if TYPE_CHECKING:  # torch loads on first use, so listing models needs none
    import torch

log = logging.getLogger("sam_bench")
# transformers' SamHQ mask decoder (5.24, modeling_sam_hq.py) upscales its input embedding, H and W
# swapped, instead of the two-way transformer's output: its masks differ from official HQ-SAM's with the
# same weights (benchmarks/hq_sam_port_difference.py; `sam-bench parity --model hq-sam --reference hf-sam`)
SAMHQ_PORT_NOTE = ("transformers' SamHQModel upscales the decoder's input instead of the two-way transformer's "
                   "output, so its masks differ from official HQ-SAM's with the same weights (mean mask IoU 0.72 "
                   "on one shared random init); use hq-sam for HQ-SAM's own numbers, or option hq_fix_upscale=true")


def upscale_transformer_output(decoder) -> tuple:
    """Forward hooks on a transformers ``SamHQMaskDecoder`` (their handles) that give ``upscale_conv1``
    the two-way transformer's image output, (B*P, 1, HW, C) laid out as (B*P, C, H, W): what official
    HQ-SAM upscales (``hq_fix_upscale``)."""
    seen: dict = {}

    def official_input(_module, args):
        n, c, h, w = args[0].shape
        return (seen["image"].reshape(n, h * w, c).transpose(1, 2).reshape(n, c, h, w),)
    return (decoder.transformer.register_forward_hook(lambda _m, _a, out: seen.__setitem__("image", out[1])),
            decoder.upscale_conv1.register_forward_pre_hook(official_input))
HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # org/name or name, as the Hub spells ids

VARIANTS = {  # SAM v1 image encoders as transformers SamVisionConfig arguments
    "vit_b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11]),
    "vit_l": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, global_attn_indexes=[5, 11, 17, 23]),
    "vit_h": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, global_attn_indexes=[7, 15, 23, 31]),
}


class HFPromptable(PromptableModel):
    """A ``transformers`` SAM-family model with its image processor, on its device; with a reduced
    ``dtype`` the vision encoder is cast and the rest runs under autocast (outputs float32)."""

    def __init__(self, model, image_processor, info: ModelInfo, device="cpu", dtype=None,
                 prompt_batch: int | None = None):
        import torch

        dtype = torch.float32 if dtype is None else dtype
        super().__init__(info, device, prompt_batch)
        self.model = model.to(self.device).eval()
        self.dtype = dtype
        if dtype != torch.float32:
            self.model.vision_encoder.to(dtype)
        self.processor = image_processor

    def _prompt_kwargs(self, points, labels, boxes, mask_input) -> dict[str, Any]:
        """The prompts as the transformers forward takes them, in the processor's input frame
        (points (B, 1, N, 2) with labels (B, 1, N), boxes (B, 1, 4), masks (B, 1, 256, 256))."""
        kw: dict[str, Any] = {}
        if points is not None:
            kw["input_points"] = self._to_input_frame(points)[:, None]
            kw["input_labels"] = labels[:, None]
        if boxes is not None:
            kw["input_boxes"] = self._to_input_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 1, 4)
        if mask_input is not None:
            kw["input_masks"] = mask_input
        return kw


class HFSamModel(HFPromptable):
    """A ``transformers`` SamModel / SamHQModel with its image processor."""

    def __init__(self, model, image_processor, info: ModelInfo, device="cpu", dtype=None,
                 prompt_batch: int | None = None, hq_token_only: bool = False, hq_fix_upscale: bool = False):
        super().__init__(model, image_processor, info, device, dtype, prompt_batch)
        self.hq = getattr(model.config, "model_type", "sam") == "sam_hq"
        if self.hq and hq_fix_upscale:
            upscale_transformer_output(self.model.mask_decoder)
        elif self.hq:
            log.warning("hf-sam: %s", SAMHQ_PORT_NOTE)
            info.extra["known_issue"] = SAMHQ_PORT_NOTE  # in results.json's model info, beside every number
        self.hq_token_only = hq_token_only
        self.embeddings = self.intermediate = None

    def _encode(self, image: np.ndarray) -> None:
        inputs = self.processor(images=image, return_tensors="pt")
        self.original_size = tuple(int(v) for v in inputs["original_sizes"][0])
        self.reshaped_size = tuple(int(v) for v in inputs["reshaped_input_sizes"][0])
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with self._autocast():
            out = self.model.get_image_embeddings(pixels)
        if self.hq:
            self.embeddings, self.intermediate = out[0].float(), [t.float() for t in out[1]]
        else:
            self.embeddings = out.float()

    def _encoder_key(self) -> dict:
        return {"image_size": int(self.model.config.vision_config.image_size), "hq": self.hq}

    def _encoder_state(self) -> tuple[dict, dict]:
        tensors = {"embeddings": self.embeddings, **{f"intermediate.{i}": t for i, t in enumerate(self.intermediate or [])}}
        return tensors, {"original_size": list(self.original_size), "reshaped_size": list(self.reshaped_size),
                         "intermediate": len(self.intermediate or [])}

    def _load_encoder_state(self, tensors: dict, sizes: dict) -> None:
        self.embeddings = tensors["embeddings"]
        self.intermediate = [tensors[f"intermediate.{i}"] for i in range(sizes["intermediate"])] if self.hq else None
        self.original_size, self.reshaped_size = tuple(sizes["original_size"]), tuple(sizes["reshaped_size"])

    def _to_input_frame(self, coords: torch.Tensor) -> torch.Tensor:
        import torch

        (oh, ow), (nh, nw) = self.original_size, self.reshaped_size
        return coords * torch.tensor([nw / ow, nh / oh], dtype=coords.dtype, device=coords.device)

    def _decode(self, points, labels, boxes, mask_input, multimask: bool) -> Prediction:
        import torch.nn.functional as F

        b = next(x.shape[0] for x in (points, boxes, mask_input) if x is not None)
        kw = {"image_embeddings": self.embeddings.expand(b, -1, -1, -1), "multimask_output": multimask,
              **self._prompt_kwargs(points, labels, boxes, mask_input)}
        if self.hq:
            kw["intermediate_embeddings"] = [t.expand(b, *t.shape[1:]) for t in self.intermediate]
            kw["hq_token_only"] = self.hq_token_only
        with self._autocast():
            out = self.model(**kw)
        low = out.pred_masks[:, 0].float()
        side = self.model.config.vision_config.image_size
        full = F.interpolate(low, (side, side), mode="bilinear", align_corners=False)
        full = full[..., : self.reshaped_size[0], : self.reshaped_size[1]]
        logits = F.interpolate(full, self.original_size, mode="bilinear", align_corners=False)
        return Prediction(logits, out.iou_scores[:, 0].float(), low, 0.0)


def _dir_hash(path: Path) -> str:
    """sha256 over the weight files of a saved model folder (name + file sha256, sorted)."""
    h = hashlib.sha256()
    for f in sorted(path.glob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json"):
            h.update(f.name.encode() + checkpoints.file_hash(f).encode())
    return h.hexdigest()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ.get("HF_HUB_CACHE") or os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def resolve_hf(model: str, ref: str) -> tuple[Path, str | None]:
    """(folder, Hub commit or None) for ``ref``: a local ``save_pretrained`` folder, or a Hugging
    Face model id (``facebook/sam-vit-base``) found in the local cache. Nothing is downloaded."""
    folder = Path(ref).expanduser()
    if folder.exists() or not HF_ID.fullmatch(ref):
        if not folder.is_dir():
            raise CheckpointError(f"{model}: --checkpoint {ref}: no such folder (want a folder saved with "
                                  f"save_pretrained, or a Hugging Face model id such as facebook/sam-vit-base)")
        return folder, None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        snap = Path(snapshot_download(ref, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"{model}: {ref} is neither a local model folder nor a model id in the Hugging Face cache {cache} (nothing is downloaded "
            f"at run time). On a machine with internet run `hf download {ref}` (older huggingface_hub: "
            f"`huggingface-cli download {ref}`) and copy its cache here, or set HF_HOME / HF_HUB_CACHE to a cache "
            f"that holds it, or pass a local folder saved with save_pretrained: --checkpoint DIR") from None
    return snap, snap.name


def _untrained(variant: str, hq: bool):
    """A transformers SamModel (``hq``: SamHQModel) of ``variant``, as the default init leaves it."""
    if not hq:
        from transformers import SamConfig, SamModel
        from transformers.models.sam.configuration_sam import SamVisionConfig

        return SamModel(SamConfig(vision_config=SamVisionConfig(**VARIANTS[variant]).to_dict()))
    from transformers import SamHQConfig, SamHQModel, SamHQVisionConfig

    vision = SamHQVisionConfig(**VARIANTS[variant])
    return SamHQModel(SamHQConfig(vision_config=vision.to_dict(), mask_decoder_config={"vit_dim": vision.hidden_size}))


def checkpoint_ref(name: str, checkpoint, path, untrained: bool) -> str | None:
    """The folder or Hub id a transformers builder loads (``--checkpoint`` or option ``path``), None with
    ``--untrained``; a ConfigError when the two disagree or come with ``--untrained``."""
    if checkpoint and path and str(checkpoint) != str(path):
        raise ConfigError(f"{name}: --checkpoint {checkpoint} and path={path} disagree; give one")
    ref = checkpoint or path
    if untrained and ref:
        raise ConfigError("--untrained and --checkpoint exclude each other")
    return ref


def open_saved(name: str, ref, example: str) -> tuple[Path, str | None, str | None]:
    """(folder, Hub revision, config.json's model_type) of ``ref`` (see ``resolve_hf``); a
    CheckpointError naming ``example`` when nothing is given, or when the folder holds no config.json."""
    if not ref:
        raise CheckpointError(f"{name} needs --checkpoint DIR (a folder saved with save_pretrained) or --checkpoint "
                              f"ID (a Hugging Face model id in the local cache, e.g. {example}), or --untrained")
    folder, revision = resolve_hf(name, str(ref))
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"--checkpoint {ref}: not a transformers model folder (no config.json in {folder})")
    return folder, revision, json.loads((folder / "config.json").read_text()).get("model_type")


def load_saved(name: str, cls, processor_cls, folder: Path, ref, revision: str | None, model_type: str | None,
               dtype: str | None) -> tuple[Any, Any, ModelInfo]:
    """(model, image processor, info) of a saved folder: ``cls`` and ``processor_cls`` loaded offline (the
    processor's defaults without a preprocessor_config.json), the info with the folder's hash and Hub id."""
    try:
        model = cls.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: cannot load the model ({exc})") from exc
    processor = (processor_cls.from_pretrained(folder, local_files_only=True)
                 if (folder / "preprocessor_config.json").is_file() else processor_cls())
    hub = {"hf_id": str(ref), "hf_revision": revision} if revision else {}
    return model, processor, model_info(name, ref if revision else folder, _dir_hash(folder), False, dtype,
                                        model_type=model_type, **hub)


@declare("hf-sam", choices={"variant": tuple(VARIANTS)})
def build_hf_sam(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
                 path: str | None = None, variant: str = "vit_b", seed: int = 0, hq_token_only: bool = False,
                 hq: bool = False, hq_fix_upscale: bool = False, prompt_batch: int | None = None) -> HFSamModel:
    """``hf-sam``: a model id in the local HF cache or a saved folder (``--checkpoint`` or ``path``), or
    ``--untrained`` (``variant``, ``seed``; ``hq``: a ``SamHQModel``); ``hq_token_only`` for SamHQ models;
    ``hq_fix_upscale``: upscale the two-way transformer's output as official HQ-SAM does (``SAMHQ_PORT_NOTE``)."""
    try:
        from transformers import SamImageProcessor, SamModel
    except ImportError as exc:
        raise NotBuilt(f"hf-sam needs transformers: pip install 'sam-bench[hf]' ({exc})") from exc
    from sam_bench.config import resolve_device, resolve_dtype
    from sam_bench.models.sam_v1 import random_init

    ref = checkpoint_ref("hf-sam", checkpoint, path, untrained)
    device, torch_dtype = resolve_device(None if device is None else str(device)), resolve_dtype(dtype)
    if untrained:
        model = random_init(lambda: _untrained(variant, hq), seed)
        info = model_info("hf-sam", None, None, True, dtype, seed, variant=variant)
        return HFSamModel(model, SamImageProcessor(), info, device, torch_dtype, prompt_batch, hq_token_only, hq_fix_upscale)
    if hq:
        raise ConfigError("hf-sam: option hq=true builds a SamHQModel with --untrained; a checkpoint's "
                          "config.json says itself whether it is one")
    folder, revision, model_type = open_saved("hf-sam", ref, "facebook/sam-vit-base")
    if model_type == "sam_hq":
        from transformers import SamHQModel as cls
    elif model_type == "sam":
        cls = SamModel
    else:
        raise CheckpointError(f"{folder}/config.json: model_type {model_type!r} is not 'sam' or 'sam_hq'")
    model, processor, info = load_saved("hf-sam", cls, SamImageProcessor, folder, ref, revision, model_type, dtype)
    return HFSamModel(model, processor, info, device, torch_dtype, prompt_batch, hq_token_only, hq_fix_upscale)
