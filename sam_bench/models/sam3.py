"""SAM 3 through transformers (``Sam3Model``): a text-promptable model for ``--grounder native``.

``set_image`` runs the vision encoder once; ``predict_text`` runs the text encoder, DETR
encoder/decoder and mask decoder per expression on the cached image features, and returns every
query's mask (bilinear upsampling to the image, threshold 0.5 on the sigmoid) with score =
sigmoid(query logit) x sigmoid(presence logit), transformers' own post-processing
(``Sam3ImageProcessor.post_process_instance_segmentation`` with no score threshold).

Checkpoint: ``facebook/sam3`` in the local Hugging Face cache, or a local folder saved by
``save_pretrained`` (nothing is fetched at run time), with its processor (tokenizer).
``--untrained``: the architecture from ``config`` (a dict or a JSON file; default:
``Sam3Config()``, the full size) with random weights, tokenised with CLIP's BPE from open_clip (the same vocabulary).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.errors import CheckpointError, ConfigError, SamBenchError
from sam_bench.models.base import ModelInfo, _sync
from sam_bench.models.hf_sam import resolve_hf
from sam_bench.models.options import declare
from sam_bench.models.text import TextMasks, TextModel

if TYPE_CHECKING:  # torch loads on first use, so listing models needs none
    import torch

DTYPES = {None: "float32", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # --dtype -> torch dtype name


class Sam3TextModel(TextModel):
    """``Sam3Model`` + its image processor and tokenizer behind ``set_image`` / ``predict_text``."""

    def __init__(self, model, image_processor, tokenize, info: ModelInfo, device: torch.device,
                 dtype: torch.dtype | None = None):
        import torch

        dtype = torch.float32 if dtype is None else dtype
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = image_processor
        self.tokenize = tokenize  # list[str] -> (input_ids (T, L), attention_mask (T, L))
        self.info = info
        self.device = torch.device(device)
        self.dtype = dtype
        self.image_size: tuple[int, int] | None = None
        self._vision = None
        self._init_counters()

    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None:
        """Encode an (H, W, 3) uint8 RGB image once for all its expressions."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise ConfigError(f"set_image wants an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', type(image))}")
        import torch

        t0 = time.perf_counter()
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            self._vision = self.model.get_vision_features(pixel_values=pixels)
        _sync(self.device)
        self.encoder_seconds += time.perf_counter() - t0
        self.encoder_calls += 1
        self.image_size = image.shape[:2]

    def reset_image(self) -> None:
        self._vision, self.image_size = None, None

    def predict_text(self, texts: list[str]) -> list[TextMasks]:
        """Every query's mask and score for each text, on the current image."""
        if self._vision is None:
            raise SamBenchError("predict_text() called before set_image(): set an image first")
        import torch

        ids, attn = self.tokenize(texts)
        out = []
        t0 = time.perf_counter()
        with torch.inference_mode():
            for t in range(len(texts)):
                res = self.model(vision_embeds=self._vision, input_ids=ids[t:t + 1].to(self.device),
                                 attention_mask=attn[t:t + 1].to(self.device))
                res.pred_masks, res.pred_logits = res.pred_masks.float(), res.pred_logits.float()
                res.presence_logits = None if res.presence_logits is None else res.presence_logits.float()
                post = self.processor.post_process_instance_segmentation(
                    res, threshold=-1.0, mask_threshold=0.5, target_sizes=[tuple(self.image_size)])[0]
                out.append(TextMasks(masks=post["masks"].bool(), scores=post["scores"]))
                self.decoder_calls += 1
        _sync(self.device)
        self.decoder_seconds += time.perf_counter() - t0
        self.decoded_prompts += len(texts)
        return out


def clip_bpe_tokenizer(context_length: int):
    """list[str] -> (input_ids, attention_mask) (T, context_length) with CLIP's BPE (open_clip's copy)."""
    import torch
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer(context_length=context_length)

    def tokenize(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = tok(texts)
        lengths = (ids != 0).sum(1)
        attn = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
        return ids, attn

    return tokenize


def _config(config: Any):
    from transformers import Sam3Config

    if config is None:
        return Sam3Config()
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"sam3 config {path}: no such file")
        config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ConfigError(f"sam3 config must be a dict or a JSON file, got {type(config).__name__}")
    return Sam3Config(**config)


@declare("sam3")
def build_sam3(*, checkpoint: str | None = None, untrained: bool = False, device: Any = "cpu",
               dtype: str | None = None, config: Any = None, path: str | None = None) -> Sam3TextModel:
    """The ``sam3`` model: a model id in the local HF cache or a saved folder (``--checkpoint`` or
    ``path``), or ``untrained`` random weights of ``config`` (a dict or a JSON file)."""
    import torch

    try:
        from transformers import Sam3ImageProcessor, Sam3Model, Sam3Processor
    except ImportError as exc:
        raise ConfigError(f"model sam3 needs transformers with Sam3Model (>= 5.0): {exc}") from None
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: choose fp32, bf16 or fp16")
    if untrained:
        cfg = _config(config)
        model = Sam3Model(cfg)
        size = cfg.vision_config.image_size
        processor = Sam3ImageProcessor(size={"height": size, "width": size})
        tokenize = clip_bpe_tokenizer(cfg.text_config.max_position_embeddings)
        info = ModelInfo(name="sam3", untrained=True, extra={"image_size": size})
    else:
        ref = checkpoint or path
        if ref is None:
            raise CheckpointError("model sam3 needs --checkpoint DIR (a local `save_pretrained` folder of "
                                  "facebook/sam3, with its processor files), --checkpoint facebook/sam3 (in the "
                                  "local Hugging Face cache) or --untrained")
        path, revision = resolve_hf("sam3", str(ref))
        try:
            model = Sam3Model.from_pretrained(path, local_files_only=True)
            full = Sam3Processor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"--checkpoint {path}: cannot load Sam3Model / Sam3Processor ({exc})") from exc
        processor = full.image_processor

        def tokenize(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            enc = full.tokenizer(texts, padding="max_length", truncation=True,
                                 max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
            return enc["input_ids"], enc["attention_mask"]

        from sam_bench.models.checkpoints import file_hash

        weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        info = ModelInfo(name="sam3", checkpoint=str(ref if revision else path),
                         checkpoint_sha256=file_hash(weights[0]) if len(weights) == 1 else None,
                         extra={"hf_revision": revision} if revision else {})
    return Sam3TextModel(model, processor, tokenize, info, torch.device(device or "cpu"), getattr(torch, DTYPES[dtype]))
