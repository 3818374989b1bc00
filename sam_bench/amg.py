"""Automatic mask generation on any PromptableModel, shared by the edge and proposal tasks.

    masks = generate(model, image, AMGConfig(points_per_side=16, ...))

``generate`` prompts a regular grid of foreground points (optionally on crops), batched through
``model.predict``, filters and de-duplicates the masks, ranks them and keeps the top k. With the
official defaults (``AMGConfig.official()``) and the official SAM model it returns the same masks,
in the same order, as ``segment_anything.SamAutomaticMaskGenerator`` (tests/test_amg.py): it
follows ``automatic_mask_generator.py`` step for step (grids, crops, predicted-IoU and stability
filters, crop-edge filter, torchvision box NMS per crop then across crops, small-region cleanup),
but decodes at the model's best prompt batch (bit-identical masks need the official batch of 64:
``points_per_batch=64``, as ``AMGConfig.official()`` sets), keeps masks as bit-packed tensors instead of
Python-loop RLEs, and adds exact mask-IoU NMS, ranking and top-k.

Memory: candidate masks are stored bit-packed (K x H*W / 8 bytes: 12288 masks of 640x480 take
470 MB); logits are kept only with ``keep_logits`` (float32 K x H x W, for the edge pipeline).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from sam_bench.errors import ConfigError
from sam_bench.mask_nms import mask_nms, pack_masks, unpack_masks  # noqa: F401 (re-exported)

LOGIT_PAD = -1e4  # logit given to pixels outside a crop (sigmoid = 0) when keep_logits is on


@dataclass
class AMGConfig:
    """Every knob of automatic mask generation; recorded in results as a dict (``asdict``).

    Thresholds set to None (or 0, as in the official generator) switch a filter off. ``nms``:
    "box" (official: box IoU via torchvision) or "mask" (exact mask IoU, as the paper's edge and
    proposal experiments say); ``nms_thresh`` None switches within-crop NMS off. ``ranking``:
    "score" (predicted IoU), "score_stability_mean", "random" (seeded) or None (generation
    order, the official one). ``keep_logits``: also return each mask's full-resolution logits
    (needed by the edge pipeline; memory K x H x W float).
    """

    points_per_side: int = 32
    points_per_batch: int | None = None  # None: the model's prompt batch
    multimask: bool = True
    pred_iou_thresh: float | None = 0.88
    stability_score_thresh: float | None = 0.95
    stability_score_offset: float = 1.0
    nms: Literal["box", "mask"] = "box"
    nms_thresh: float | None = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0
    ranking: Literal["score", "score_stability_mean", "random"] | None = None
    top_k: int | None = None
    keep_logits: bool = False
    seed: int = 0

    @classmethod
    def official(cls) -> "AMGConfig":
        """segment_anything.SamAutomaticMaskGenerator's defaults, its decoder batch of 64 included:
        float sums depend on the batch (up to ~3e-7 in the logits between batch 1 and 64 on CPU),
        which can flip a pixel whose logit is that close to the threshold."""
        return cls(points_per_batch=64)

    @classmethod
    def paper_edges(cls) -> "AMGConfig":
        """Paper section 7.2: 16x16 grid, all 3 masks, no filters, mask NMS (threshold: ours, 0.7)."""
        return cls(points_per_side=16, pred_iou_thresh=None, stability_score_thresh=None, nms="mask",
                   nms_thresh=0.7, keep_logits=True)

    @classmethod
    def paper_proposals(cls) -> "AMGConfig":
        """Paper section 7.3: 64x64 grid, no crops, no filters, mask NMS 0.9, mean of score and stability, top 1000."""
        return cls(points_per_side=64, pred_iou_thresh=None, stability_score_thresh=None, nms="mask",
                   nms_thresh=0.9, ranking="score_stability_mean", top_k=1000)

    def but(self, **changes) -> "AMGConfig":
        """A copy with ``changes`` (a task's own grid, batch, thresholds over a paper preset)."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        if self.points_per_side < 1:
            raise ConfigError(f"AMG points_per_side must be >= 1, got {self.points_per_side}")
        if self.points_per_batch is not None and self.points_per_batch < 1:
            raise ConfigError(f"AMG points_per_batch must be >= 1, got {self.points_per_batch}")
        if self.nms not in ("box", "mask"):
            raise ConfigError(f"AMG nms must be 'box' or 'mask', got {self.nms!r}")
        if self.ranking not in (None, "score", "score_stability_mean", "random"):
            raise ConfigError(f"AMG ranking must be score, score_stability_mean, random or None, got {self.ranking!r}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"AMG top_k must be >= 1, got {self.top_k}")


@dataclass
class MaskSet:
    """K generated masks, in rank order. ``masks`` (K, H, W) bool; ``iou_preds``, ``stability`` (K,);
    ``points`` (K, 2) the (X, Y) prompt of each; ``boxes`` (K, 4) XYXY; ``logits`` (K, H, W) float
    or None (only with ``keep_logits``). ``extra``: ``crop_boxes`` (K, 4) XYXY and ``num_candidates``
    (masks decoded before filtering)."""

    masks: torch.Tensor
    iou_preds: torch.Tensor
    stability: torch.Tensor
    points: torch.Tensor
    boxes: torch.Tensor
    logits: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.masks.shape[0])


def _nms(kind: str, packed, h, w, boxes, scores, thresh: float) -> torch.Tensor:
    from torchvision.ops.boxes import batched_nms

    if kind == "box":
        return batched_nms(boxes.float(), scores, torch.zeros(len(boxes), device=boxes.device), iou_threshold=thresh)
    return mask_nms(packed, h, w, boxes, scores, thresh)


# -- generation -------------------------------------------------------------------------------
class _Cands:
    """Candidate masks as parallel tensors (``MaskData`` of the official code, bit-packed masks)."""

    KEYS = ("packed", "iou_preds", "stability", "points", "boxes", "crop_boxes", "logits")

    def __init__(self, **kw):
        self.d = {k: kw.get(k) for k in self.KEYS}

    def __len__(self) -> int:
        return 0 if self.d["iou_preds"] is None else len(self.d["iou_preds"])

    def filter(self, keep: torch.Tensor) -> "_Cands":
        return _Cands(**{k: None if v is None else v[keep.to(v.device)] for k, v in self.d.items()})

    @staticmethod
    def cat(parts: list["_Cands"]) -> "_Cands":
        parts = [p for p in parts if len(p)]
        if not parts:
            return _Cands()
        return _Cands(**{k: None if parts[0].d[k] is None else torch.cat([p.d[k] for p in parts]) for k in _Cands.KEYS})


def _stability(logits: torch.Tensor, thresh: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at thresh +- offset (``calculate_stability_score``)."""
    inter = (logits > thresh + offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    union = (logits > thresh - offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inter / union


def _points_chunk(cfg: AMGConfig) -> tuple[int, int | None]:
    """(points per predict call, prompts per decoder call): decode at the configured batch, else
    at the model's (measured on CPU); filter in chunks of at least 64 points so Python overhead
    stays small and memory bounded."""
    return max(cfg.points_per_batch or 0, 64), cfg.points_per_batch


def _process_crop(model, image, crop_box, points_norm: np.ndarray, cfg: AMGConfig, orig_hw) -> _Cands:
    from segment_anything.utils.amg import batched_mask_to_box, is_box_near_crop_edge, uncrop_masks

    x0, y0, x1, y1 = crop_box
    orig_h, orig_w = orig_hw
    full = (x0, y0, x1, y1) == (0, 0, orig_w, orig_h)
    crop = image[y0:y1, x0:x1]
    if not full or model.image_size is None:
        model.set_image(np.ascontiguousarray(crop))
    ch, cw = crop.shape[:2]
    pts_all = points_norm * np.array([[cw, ch]])  # (P, 2) (X, Y) in the crop, float64 like the official code
    chunk, batch = _points_chunk(cfg)
    thr = float(model.mask_threshold)
    parts = []
    for s in range(0, len(pts_all), chunk):
        pts = pts_all[s:s + chunk]
        pred = model.predict(points=torch.as_tensor(pts)[:, None, :], labels=torch.ones(len(pts), 1, dtype=torch.long),
                             multimask=cfg.multimask, batch_size=batch)
        m = pred.logits.shape[1]
        logits = pred.logits.flatten(0, 1)
        if pred.iou_scores is None:
            raise ConfigError(f"automatic mask generation ranks masks by predicted IoU, and model "
                              f"{model.info.name!r} returns no iou_scores")
        iou = pred.iou_scores.flatten(0, 1)
        points = torch.as_tensor(pts, device=logits.device).repeat_interleave(m, 0)
        del pred
        keep = torch.ones(len(iou), dtype=torch.bool, device=iou.device)
        if cfg.pred_iou_thresh:
            keep &= iou > cfg.pred_iou_thresh
        logits, iou, points = logits[keep], iou[keep], points[keep]
        stab = _stability(logits, thr, cfg.stability_score_offset)
        if cfg.stability_score_thresh:
            keep = stab >= cfg.stability_score_thresh
            logits, iou, points, stab = logits[keep], iou[keep], points[keep], stab[keep]
        masks = logits > thr
        boxes = batched_mask_to_box(masks)
        keep = ~is_box_near_crop_edge(boxes, list(crop_box), [0, 0, orig_w, orig_h])
        if not torch.all(keep):
            logits, iou, points, stab, masks, boxes = (t[keep] for t in (logits, iou, points, stab, masks, boxes))
        masks = uncrop_masks(masks, list(crop_box), orig_h, orig_w)
        kept_logits = None
        if cfg.keep_logits:
            kept_logits = logits.float().cpu()
            if not full:
                pad = (x0, orig_w - x1, y0, orig_h - y1)
                kept_logits = torch.nn.functional.pad(kept_logits, pad, value=LOGIT_PAD)
        parts.append(_Cands(packed=pack_masks(masks), iou_preds=iou, stability=stab, points=points, boxes=boxes,
                            logits=kept_logits))
        del logits, masks
    data = _Cands.cat(parts)
    if len(data) and cfg.nms_thresh is not None:
        data = data.filter(_nms(cfg.nms, data.d["packed"], orig_h, orig_w, data.d["boxes"], data.d["iou_preds"],
                                cfg.nms_thresh))
    if len(data):
        data.d["boxes"] = _uncrop_boxes(data.d["boxes"], crop_box)
        data.d["points"] = data.d["points"] + torch.tensor([[x0, y0]], dtype=data.d["points"].dtype,
                                                           device=data.d["points"].device)
        data.d["crop_boxes"] = torch.tensor([list(crop_box)], device=data.d["boxes"].device).expand(len(data), 4)
    data.num_candidates = len(pts_all) * (3 if cfg.multimask else 1)
    return data


def _uncrop_boxes(boxes: torch.Tensor, crop_box) -> torch.Tensor:
    x0, y0 = crop_box[:2]
    return boxes + torch.tensor([[x0, y0, x0, y0]], device=boxes.device)


def _remove_small_regions(data: _Cands, h: int, w: int, cfg: AMGConfig) -> _Cands:
    """Fill small holes and drop small islands of each mask (official ``postprocess_small_regions``),
    then NMS again preferring masks that did not change."""
    from segment_anything.utils.amg import batched_mask_to_box, remove_small_regions

    masks = unpack_masks(data.d["packed"], h, w).cpu().numpy()
    new, scores = [], []
    for mask in masks:
        mask, ch1 = remove_small_regions(mask, cfg.min_mask_region_area, mode="holes")
        mask, ch2 = remove_small_regions(mask, cfg.min_mask_region_area, mode="islands")
        new.append(torch.as_tensor(mask))
        scores.append(float(not (ch1 or ch2)))
    dev = data.d["packed"].device
    masks_t = torch.stack(new).to(dev)
    boxes = batched_mask_to_box(masks_t)
    scores_t = torch.as_tensor(scores, device=dev)
    packed = pack_masks(masks_t)
    thresh = max(cfg.nms_thresh or 0.0, cfg.crop_nms_thresh)
    keep = _nms(cfg.nms, packed, h, w, boxes, scores_t, thresh)
    changed = scores_t == 0
    data.d["packed"] = torch.where(changed[:, None], packed, data.d["packed"])
    data.d["boxes"] = torch.where(changed[:, None], boxes.to(data.d["boxes"].dtype), data.d["boxes"])
    return data.filter(keep)


def _rank(data: _Cands, cfg: AMGConfig) -> torch.Tensor | None:
    if cfg.ranking is None:
        return None
    if cfg.ranking == "score":
        key = data.d["iou_preds"]
    elif cfg.ranking == "score_stability_mean":
        key = (data.d["iou_preds"] + data.d["stability"]) / 2
    else:
        gen = torch.Generator().manual_seed(cfg.seed)
        return torch.randperm(len(data), generator=gen)
    return torch.sort(key, descending=True, stable=True).indices


def generate(model, image: np.ndarray, config: AMGConfig | None = None) -> MaskSet:
    """Masks for ``image`` (H, W, 3 uint8) from a grid of point prompts on ``model``.

    The model's image must already be ``image`` (the runner sets it once per item); crops, when
    ``crop_n_layers > 0``, set their own and the full image's embedding is restored afterwards
    (no second encoder pass).
    """
    from segment_anything.utils.amg import build_all_layer_point_grids, generate_crop_boxes
    from torchvision.ops.boxes import box_area

    cfg = config or AMGConfig()
    cfg.check()
    h, w = image.shape[:2]
    if model.image_size is not None and tuple(model.image_size) != (h, w):
        raise ConfigError(f"amg.generate: the model's image is {model.image_size}, not {(h, w)}; set_image first")
    grids = build_all_layer_point_grids(cfg.points_per_side, cfg.crop_n_layers, cfg.crop_n_points_downscale_factor)
    crop_boxes, layers = generate_crop_boxes((h, w), cfg.crop_n_layers, cfg.crop_overlap_ratio)
    saved = _snapshot(model) if len(crop_boxes) > 1 and model.image_size is not None else None
    parts, n_cand = [], 0
    try:
        for crop_box, layer in zip(crop_boxes, layers):
            part = _process_crop(model, image, crop_box, grids[layer], cfg, (h, w))
            n_cand += part.num_candidates
            parts.append(part)
    finally:
        if saved is not None:
            _restore(model, saved)
    data = _Cands.cat(parts)
    if len(crop_boxes) > 1 and len(data):
        scores = (1 / box_area(data.d["crop_boxes"].float())).to(data.d["boxes"].device)
        data = data.filter(_nms(cfg.nms, data.d["packed"], h, w, data.d["boxes"], scores, cfg.crop_nms_thresh))
    if cfg.min_mask_region_area > 0 and len(data):
        data = _remove_small_regions(data, h, w, cfg)
    order = _rank(data, cfg) if len(data) else None
    if order is not None:
        data = data.filter(order)
    if cfg.top_k is not None and len(data) > cfg.top_k:
        data = data.filter(torch.arange(cfg.top_k))
    if not len(data):
        dev = model.device
        z = torch.zeros(0, device=dev)
        return MaskSet(torch.zeros(0, h, w, dtype=torch.bool, device=dev), z, z, torch.zeros(0, 2, device=dev),
                       torch.zeros(0, 4, device=dev), torch.zeros(0, h, w) if cfg.keep_logits else None,
                       {"crop_boxes": torch.zeros(0, 4), "num_candidates": n_cand})
    d = data.d
    return MaskSet(unpack_masks(d["packed"], h, w), d["iou_preds"], d["stability"], d["points"], d["boxes"],
                   d["logits"], {"crop_boxes": d["crop_boxes"], "num_candidates": n_cand})


_COUNTERS = ("encoder_calls", "decoder_calls", "decoded_prompts", "encoder_seconds", "decoder_seconds", "prompt_batch",
             "tuner")


def _snapshot(model) -> dict:
    """The model's per-image state (its attributes), to restore after crops replaced the image."""
    return {k: v for k, v in vars(model).items() if k not in _COUNTERS}


def _restore(model, saved: dict) -> None:
    for k, v in saved.items():
        setattr(model, k, v)
