"""CLIP mask scoring: rank automatically generated masks by CLIP similarity to the expression.

Per image (once for all its expressions):

1. candidate masks from automatic mask generation on the model (``--candidates``, AMG settings);
2. each candidate's crop: its box, made square around its centre and scaled by ``--crop-expand``
   (context), cut and resized to CLIP's input size in one batched ``roi_align`` (bilinear,
   averaging several samples per output pixel, so large crops are not aliased; outside the image
   is black); with ``--zero-background`` the pixels outside the mask are set to 0 after CLIP's
   normalisation (CLIP's mean colour);
3. the crops' CLIP image embeddings against each expression's text embedding (cosine similarity;
   ``--clip-template`` wraps the text, e.g. "a photo of {}.").

The most similar candidate is the answer; with ``--refine-center-click`` its center (the pixel
farthest from its boundary) prompts the model once more instead.

The CLIP weights are a local file (``--clip-checkpoint``; nothing is downloaded): an open_clip
state dict (``.pt``/``.bin``/``.safetensors``, what ``open_clip`` saves or hosts) for the
architecture ``--clip-arch`` (an open_clip model name, default ViT-L-14-336, or a model config
JSON file), or OpenAI's original TorchScript file (``ViT-L-14-336px.pt``; its architecture is
read from the weights).
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.data.base import Item, Sample
from sam_bench.errors import CheckpointError, ConfigError
from sam_bench.grounders.base import Grounder, Grounding, Query, mask_center
from sam_bench.options import Options, option

if TYPE_CHECKING:  # torch and amg (which imports torch) load on first use, not for --help
    import torch

    from sam_bench.amg import AMGConfig, MaskSet

DEFAULT_ARCH = "ViT-L-14-336"
DEFAULT_CANDIDATES = "grid=16,top_k=64,ranking=score"
CANDIDATE_ALIASES = {"grid": "points_per_side", "iou": "pred_iou_thresh", "stability": "stability_score_thresh",
                     "nms": "nms_thresh", "nms_kind": "nms", "crops": "crop_n_layers",
                     "min_area": "min_mask_region_area", "batch": "points_per_batch"}
EMBED_BATCH = 32  # crops per CLIP forward pass


def parse_candidates(spec: str | None) -> AMGConfig:
    """``"grid=32,iou=0.8,stability=none"`` -> AMGConfig: the official settings, then ``DEFAULT_CANDIDATES``
    (16x16 grid, top 64 by predicted IoU), then ``spec`` (later keys win).

    Keys: AMGConfig field names or the aliases grid, iou, stability, nms (threshold), nms_kind
    (box/mask), crops, min_area, batch; ``none``/``off`` switches a filter off.
    """
    from sam_bench.amg import AMGConfig

    cfg = AMGConfig()
    types = {f.name: f.type for f in fields(AMGConfig)}
    full = ",".join(filter(None, (DEFAULT_CANDIDATES, spec)))
    for part in filter(None, (p.strip() for p in full.split(","))):
        key, sep, raw = part.partition("=")
        name = CANDIDATE_ALIASES.get(key.strip(), key.strip())
        if not sep or name not in types or name == "keep_logits":
            known = sorted(set(CANDIDATE_ALIASES) | set(types) - {"keep_logits"})
            raise ConfigError(f"--candidates {spec!r}: bad item {part!r}; want key=value with key one of "
                              f"{', '.join(known)}")
        raw = raw.strip()
        current = getattr(cfg, name)
        if raw.lower() in ("none", "off"):
            if "None" not in str(types[name]):
                raise ConfigError(f"--candidates {spec!r}: {key} cannot be switched off")
            value = None
        elif isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"--candidates {spec!r}: {key} takes true or false, got {raw!r}")
            value = raw.lower() in ("true", "1", "yes")
        elif name in ("nms", "ranking"):
            value = raw
        else:
            try:
                value = int(raw) if "int" in str(types[name]) and "float" not in str(types[name]) else float(raw)
            except ValueError:
                raise ConfigError(f"--candidates {spec!r}: {key}={raw!r} is not a number") from None
        setattr(cfg, name, value)
    try:
        cfg.check()
    except ConfigError as exc:
        raise ConfigError(f"--candidates {spec!r}: {exc}") from None
    return cfg


def square_boxes(boxes: torch.Tensor, expand: float) -> torch.Tensor:
    """(K, 4) XYXY -> squares with the same centres and side max(w, h) * expand (at least 1 px)."""
    import torch

    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = ((boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) * expand).clamp(min=1.0)
    return torch.cat([centre - side / 2, centre + side / 2], 1)


def crop_batch(image: torch.Tensor, masks: torch.Tensor | None, boxes: torch.Tensor, size: int,
               mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(K, 3, size, size) normalised crops of a (3, H, W) float [0, 1] image at (K, 4) XYXY boxes.

    ``masks``: (K, H, W) bool; when given, pixels outside each crop's mask become 0 (after
    normalisation). Bilinear ``roi_align`` with adaptive sampling; outside the image reads 0.
    """
    import torch
    from torchvision.ops import roi_align

    rois = torch.cat([torch.zeros(len(boxes), 1, device=boxes.device), boxes], 1).to(image.dtype)
    crops = roi_align(image[None], rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    crops = (crops - mean[None, :, None, None]) / std[None, :, None, None]
    if masks is not None:
        idx = torch.arange(len(boxes), device=boxes.device, dtype=image.dtype)[:, None]
        inside = roi_align(masks[:, None].to(image.dtype), torch.cat([idx, boxes.to(image.dtype)], 1),
                           output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        crops = crops * (inside >= 0.5)
    return crops


def load_clip(arch: str, checkpoint: str | Path, device: torch.device):
    """(model in eval mode, tokenizer, image size, mean (3,), std (3,)) from a local file; never downloads."""
    import open_clip

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointError(f"--clip-checkpoint {path}: no such file")
    if arch.endswith(".json"):
        cfg_path = Path(arch).expanduser()
        if not cfg_path.is_file():
            raise ConfigError(f"--clip-arch {cfg_path}: no such model config file")
        open_clip.add_model_config(cfg_path)
        arch = cfg_path.stem
    with _quiet():
        return _load_clip(arch, path, device)


@contextlib.contextmanager
def _quiet():
    """open_clip logs every loading step at INFO on the root logger; keep warnings only."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _load_clip(arch: str, path: Path, device: torch.device):
    import open_clip
    import torch

    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import build_model_from_openai_state_dict

    jit = _is_torchscript(path)
    if jit:
        try:
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
            state.pop("attn_mask", None)  # a buffer open_clip rebuilds; present in re-scripted models
            model = build_model_from_openai_state_dict(state).float()
            model.visual.image_mean, model.visual.image_std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
        except Exception as exc:  # torch / open_clip raise many types for a file they cannot read
            raise CheckpointError(f"--clip-checkpoint {path}: a TorchScript file but not an OpenAI CLIP ({exc})") from exc
    else:
        if arch not in open_clip.list_models():
            raise ConfigError(f"--clip-arch {arch!r}: not an open_clip architecture or config JSON "
                              f"(e.g. ViT-L-14-336, ViT-B-16)")
        try:
            model = open_clip.create_model(arch, pretrained=str(path), device="cpu", require_pretrained=True)
        except Exception as exc:  # torch / safetensors / open_clip raise many types for a bad or mismatched file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"--clip-checkpoint {path}: cannot load as open_clip weights for --clip-arch "
                                  f"{arch} ({first}); wrong architecture or not a weights file?") from exc
    model = model.to(device).eval()
    pp = open_clip.get_model_preprocess_cfg(model)
    size = pp["size"] if isinstance(pp["size"], int) else int(pp["size"][0])
    tokenizer = open_clip.get_tokenizer("ViT-L-14" if jit else arch)
    mean = torch.tensor(pp["mean"], dtype=torch.float32, device=device)
    std = torch.tensor(pp["std"], dtype=torch.float32, device=device)
    return model, tokenizer, size, mean, std


def _is_torchscript(path: Path) -> bool:
    """OpenAI's CLIP files are TorchScript archives (a zip with a code/ folder)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n for n in zf.namelist()[:200])


@dataclass(frozen=True)
class ClipOptions(Options):
    """The CLIP grounder's options (checked without opening the weights, which load on first use)."""

    clip_checkpoint: str | None = option(None, "local CLIP weights for --grounder clip (open_clip state dict / "
                                         "safetensors, or OpenAI's TorchScript ViT-L-14-336px.pt); never downloaded",
                                         metavar="PATH")
    clip_arch: str = option(DEFAULT_ARCH, "open_clip architecture of --clip-checkpoint, or an open_clip model "
                            "config JSON (default: %(default)s, the CLIP the paper's SAM used)",
                            metavar="NAME|CONFIG.json")
    clip_template: str = option("{}", "text template, {} = the expression, e.g. 'a photo of {}.' (default: the "
                                "bare text)", metavar="TEXT")
    crop_expand: float = option(1.0, "CLIP crop: the candidate's box made square and scaled by F for context "
                                "(1 = tight; default %(default)s)", metavar="F")
    zero_background: bool = option(False, "CLIP crop: set pixels outside the candidate mask to CLIP's mean colour "
                                   "(0 after normalisation)")
    refine_center_click: bool = option(False, "CLIP: prompt the model again with the chosen mask's center click "
                                       "(the pixel farthest from its boundary) and keep that mask instead")
    candidates: str = option(DEFAULT_CANDIDATES, "CLIP candidate masks: automatic mask generation settings over "
                             "the official ones, e.g. 'grid=32,iou=0.88,stability=0.95,nms=0.7,top_k=64' ('none' "
                             "switches a filter off; default: %(default)s)", metavar="K=V,...",
                             quick="grid=8,top_k=16,ranking=score")

    def __post_init__(self):
        if not self.clip_checkpoint:
            raise ConfigError("--grounder clip needs --clip-checkpoint PATH: a local CLIP weights file for "
                              f"--clip-arch (default {DEFAULT_ARCH}); nothing is downloaded at run time")
        self.normalise(clip_checkpoint=str(Path(self.clip_checkpoint).expanduser().resolve()),
                       clip_arch=self.clip_arch or DEFAULT_ARCH, clip_template=self.clip_template or "{}")
        if float(self.crop_expand) < 1.0:
            raise ConfigError(f"--crop-expand must be >= 1 (1 = the tight box), got {self.crop_expand}")
        if "{}" not in self.clip_template:
            raise ConfigError(f"--clip-template {self.clip_template!r} needs a {{}} where the expression goes")
        parse_candidates(self.candidates)


class ClipGrounder(Grounder):
    """Best candidate mask by CLIP image-text similarity (``ClipOptions``)."""

    name = "clip"
    Options = ClipOptions

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        o = self.options
        self.arch = o.clip_arch
        self.checkpoint = Path(o.clip_checkpoint)
        self.expand = float(o.crop_expand)
        self.template = o.clip_template
        self.amg = parse_candidates(o.candidates)
        self._clip = None
        self._device: torch.device | None = None

    def describe(self) -> dict[str, Any]:
        from sam_bench.models.checkpoints import file_hash

        return {"name": self.name, "clip_arch": self.arch, "clip_checkpoint": str(self.checkpoint),
                "clip_checkpoint_sha256": file_hash(self.checkpoint), "candidates": self.amg.as_dict()}

    def _model(self, device: torch.device):
        if self._clip is None or self._device != device:
            self._clip = load_clip(self.arch, self.checkpoint, device)
            self._device = device
        return self._clip

    def embed_texts(self, texts: list[str], device: torch.device) -> torch.Tensor:
        """(T, D) unit-norm text embeddings (in inference mode)."""
        import torch

        with torch.inference_mode():
            clip, tokenizer, *_ = self._model(device)
            tokens = tokenizer([self.template.format(t) for t in texts]).to(device)
            return torch.nn.functional.normalize(clip.encode_text(tokens).float(), dim=-1)

    def embed_masks(self, image: np.ndarray, cands: MaskSet, device: torch.device) -> torch.Tensor:
        """(K, D) unit-norm image embeddings of the candidates' crops (in inference mode)."""
        import torch

        with torch.inference_mode():
            clip, _, size, mean, std = self._model(device)
            img = torch.as_tensor(image, device=device).permute(2, 0, 1).float() / 255.0
            boxes = cands.boxes.to(device, torch.float32) + torch.tensor([0, 0, 1, 1], device=device)  # incl. -> XYXY
            boxes = square_boxes(boxes, self.expand)
            zero_bg = self.options.zero_background
            out = []
            for s in range(0, len(boxes), EMBED_BATCH):
                masks = cands.masks[s:s + EMBED_BATCH].to(device) if zero_bg else None
                crops = crop_batch(img, masks, boxes[s:s + EMBED_BATCH], size, mean, std)
                out.append(clip.encode_image(crops).float())
            return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def ground(self, model: Any, item: Item, sample: Sample, queries: list[Query]) -> list[Grounding]:
        if not queries:
            return []
        import torch

        from sam_bench.amg import generate

        cands = generate(model, sample.image, self.amg)
        if not len(cands):
            return [Grounding.not_found("no candidate mask survived the --candidates filters") for _ in queries]
        device = torch.device(model.device)
        sims = self.embed_masks(sample.image, cands, device) @ self.embed_texts([q.text for q in queries], device).T
        best = sims.argmax(0).tolist()  # (T,) candidate index per expression
        out = []
        for t, k in enumerate(best):
            mask = cands.masks[k].cpu().numpy()
            extra = {"candidate": k, "num_candidates": len(cands)}
            score = float(sims[k, t])
            center = mask_center(mask) if self.options.refine_center_click else None
            out.append(Grounding(score=score, points=center[None], labels=[1], extra=extra) if center is not None
                       else Grounding(score=score, mask=mask, extra=extra))
        return out
