"""``ritm``: RITM (Sofiiuk et al., "Reviving Iterative Training with Mask Guidance for Interactive
Segmentation"), the HRNet ITER-M click model of SAM's Fig. 9 comparison, behind ``PromptableModel``.

The network, predictor and zoom-in are the ``ritm_annotation`` package's copy of RITM's ``isegm``
code (``pip install 'sam-bench[ritm]'``), run as RITM's evaluation runs them (``cvpr`` mode, NoBRS):
``BasePredictor`` with horizontal-flip averaging and ``ZoomIn(target_size=400)`` (600 on DAVIS in
RITM's script: option ``zoom_target``), probabilities thresholded at 0.49.

RITM has no separate encoder: ``set_image`` only hands the image to the predictor; every prompt
runs the whole network (on the zoomed crop from its second click on). Prompts are decoded one by
one, each from a fresh predictor state rebuilt from the prompt itself, so a batch equals its
prompts one at a time:

- clicks: points (B, N, 2) (X, Y) pixels, labels 1 / 0 / -1 (padding); RITM's clicks are (row,
  column) pixel indices, so points are clipped to the last row / column;
- previous mask: ``mask_input`` is the ``low_res_logits`` of the previous call, which for this
  model are **full resolution**, (B, 1, H, W) logits of RITM's probability map (RITM feeds its
  previous full-size prediction back as an input channel; a 256x256 copy would not reproduce
  it). Without ``mask_input`` the previous mask is zeros and there is no zoom-in, as on RITM's
  first click. The single-point task passes it with ``--feed-logits``: run RITM with it, as
  RITM's own evaluation always feeds the previous mask;
- zoom-in: RITM keeps its crop from click to click until a positive click leaves it or the new
  object box overlaps it less than IoU 0.5. The adapter remembers, per image, the crop behind
  each mask it returned (keyed by the mask's bytes), so feeding a mask back resumes RITM's state
  exactly; an unknown mask starts with no crop, as RITM does after its first click.

Outputs: one mask per prompt (K = 1, also when ``multimask`` is asked); ``logits`` and
``low_res_logits`` = logit(probability), at most +-27.6 (zero probability outside a zoom-in crop),
threshold logit(0.49);
``iou_scores`` = mean probability inside the mask (0 for an empty mask), a confidence, **not** a
predicted IoU. Boxes are refused (RITM takes clicks only). fp32 only.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np

from sam_bench.errors import CheckpointError, ConfigError, NotBuilt
from sam_bench.models import checkpoints
from sam_bench.models.base import ModelInfo, Prediction, PromptableModel
from sam_bench.models.options import declare
from sam_bench.models.sam_v1 import model_info, random_init

if TYPE_CHECKING:  # torch loads on first use
    import torch

# HRNetModel keywords per variant (ritm_annotation/models/iter_mask/*_itermask_3p.py) and the ITER-M
# settings they share; the default checkpoint of each variant is RITM's release file of that name
VARIANTS = {"h18": {"width": 18, "ocr_width": 64}, "h32": {"width": 32, "ocr_width": 128},
            "h18s": {"width": 18, "ocr_width": 48, "small": True}, "sbd_h18": {"width": 18, "ocr_width": 64}}
DEFAULT_CHECKPOINT = {"h18": "coco_lvis_h18_itermask", "h32": "coco_lvis_h32_itermask",
                      "h18s": "coco_lvis_h18s_itermask", "sbd_h18": "sbd_h18_itermask"}
ITER_M = {"with_aux_output": True, "use_leaky_relu": True, "use_rgb_conv": False, "use_disks": True,
          "norm_radius": 5, "with_prev_mask": True}
PROB_THRESH = 0.49  # RITM's evaluation threshold (evaluate_sample's pred_thr)
EPS = 1e-12  # probabilities are clamped to [EPS, 1 - EPS] before the logit (exact zeros: outside a crop)
NO_BOXES = "model ritm takes clicks only (RITM has no box prompt): give points and labels, not boxes"


class _Clicks:
    """The one method of RITM's ``Clicker`` that its predictor calls."""

    click_indx_offset = 0

    def __init__(self, clicks: list):
        self.clicks = clicks

    def get_clicks(self, clicks_limit=None):
        return self.clicks[:clicks_limit]


class RITMModel(PromptableModel):
    """An ``ritm_annotation`` ISModel with RITM's evaluation predictor (see the module docstring)."""

    needs_previous_mask = True

    def __init__(self, net: torch.nn.Module, info: ModelInfo, device: torch.device | str = "cpu",
                 prompt_batch: int | None = None, zoom_in: bool = True, zoom_target: int = 400, flip: bool = True):
        from ritm_annotation.inference.predictors import get_predictor

        super().__init__(info, device, prompt_batch)
        self.net = net.to(self.device).eval()
        self.predictor = get_predictor(self.net, "NoBRS", self.device, prob_thresh=PROB_THRESH, with_flip=flip,
                                       zoom_in_params={"target_size": zoom_target} if zoom_in else None)
        self.mask_threshold = math.log(PROB_THRESH / (1 - PROB_THRESH))
        self._rois: dict[bytes, tuple | None] = {}

    def _fixed_batch(self) -> int:
        return self.prompt_batch or 16  # prompts run one by one; the batch only bounds the outputs

    def _encode(self, image: np.ndarray) -> None:
        self.predictor.set_input_image(image)
        self._rois = {}

    def reset_image(self) -> None:
        super().reset_image()
        self._rois = {}

    def _check_prompts(self, points, labels, boxes, mask_input):
        """As the base class, but boxes are refused and ``mask_input`` is (B, 1, H, W) full-resolution logits."""
        import torch

        if boxes is not None:
            raise ConfigError(NO_BOXES)
        masks = None
        if mask_input is not None:
            masks = torch.as_tensor(mask_input if torch.is_tensor(mask_input) else np.asarray(mask_input),
                                    dtype=torch.float32, device=self.device)
            h, w = self.image_size
            if masks.shape[1:] != (1, h, w):
                raise ConfigError(f"model ritm: mask_input must be (B, 1, {h}, {w}), the full-resolution "
                                  f"low_res_logits of an earlier call on this image, got {tuple(masks.shape)}")
        if points is None:
            if masks is None:
                raise ConfigError("model ritm: predict() needs points (clicks) or mask_input")
            return None, None, None, masks
        points, labels, _, _ = super()._check_prompts(points, labels, None, None)
        if masks is not None and masks.shape[0] != points.shape[0]:
            raise ConfigError(f"prompts disagree on the batch size B: {points.shape[0]} points, {masks.shape[0]} masks")
        return points, labels, None, masks

    def _decode(self, points, labels, boxes, mask_input, multimask: bool) -> Prediction:
        import torch

        b = points.shape[0] if points is not None else mask_input.shape[0]
        runs = [self._one(points[i] if points is not None else None, labels[i] if labels is not None else None,
                          mask_input[i:i + 1] if mask_input is not None else None) for i in range(b)]
        prob = torch.cat([p for p, _ in runs]).float()  # (B, 1, H, W)
        logits = torch.logit(prob.double(), eps=EPS).float()  # float64: sigmoid gives the probabilities back
        for i, (_, roi) in enumerate(runs):
            self._rois[_key(logits[i:i + 1])] = roi
        inside = prob > PROB_THRESH
        conf = (prob * inside).sum((2, 3)) / inside.sum((2, 3)).clamp(min=1)
        return Prediction(logits, conf, logits, self.mask_threshold)

    def _one(self, points, labels, prev_logits) -> tuple[torch.Tensor, tuple | None]:
        """((1, 1, H, W) probabilities, zoom-in crop) of one prompt, from RITM's predictor with its
        state rebuilt from the prompt: clicks (N, 2) / (N,), previous logits (1, 1, H, W) or None."""
        import torch
        from ritm_annotation.inference.clicker import Click

        h, w = self.image_size
        clicks = []
        if points is not None:
            keep = labels >= 0
            xy, pos = points[keep].cpu().numpy(), (labels[keep] == 1).cpu().numpy()
            clicks = [Click(is_positive=bool(p), coords=(min(float(y), h - 1), min(float(x), w - 1)), indx=k)
                      for k, ((x, y), p) in enumerate(zip(xy, pos))]
        pred = self.predictor
        if prev_logits is None:
            prev, prev_np, roi = torch.zeros((1, 1, h, w), device=self.device), None, None
        else:
            prev = torch.sigmoid(prev_logits)
            prev_np, roi = prev.cpu().numpy(), self._rois.get(_key(prev_logits))
        for t in pred.transforms:
            t.reset()
        if pred.zoom_in is not None:  # (input shape, crop, previous probabilities, crop image, changed)
            pred.zoom_in.set_state((None, roi, prev_np, None, False))
        pred.prev_prediction = prev
        pred.get_prediction(_Clicks(clicks))
        return pred.prev_prediction, (pred.zoom_in._object_roi if pred.zoom_in is not None else None)


def _key(logits: torch.Tensor) -> bytes:
    """A digest of one (1, 1, H, W) mask's float32 bytes: finds the zoom-in crop it came with."""
    return hashlib.blake2b(logits.detach().float().cpu().numpy().tobytes(), digest_size=16).digest()


def _architecture(ckpt: dict, path, variant: str) -> None:
    """CheckpointError unless ``ckpt`` is RITM's format (``config`` + ``state_dict``) for an HRNet
    ITER-M of ``variant``; the message names the variant that fits, if one does."""
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "state_dict" not in ckpt or not isinstance(config.get("params"), dict):
        raise CheckpointError(f"{path}: not an RITM checkpoint (a dict with 'config' and 'state_dict')")
    if not str(config.get("class", "")).endswith("HRNetModel"):
        raise CheckpointError(f"{path}: an RITM {config.get('class')} checkpoint; model ritm loads HRNet ITER-M only")
    given = {k: v.get("value") for k, v in config["params"].items() if isinstance(v, dict)}

    def fits(name: str) -> bool:
        want = {"small": False, **VARIANTS[name], **ITER_M}
        return all(given.get(k, False if k == "small" else None) == v for k, v in want.items())

    if not fits(variant):
        other = [v for v in VARIANTS if fits(v)]
        hint = f"; it is variant {other[0]}: --model-option variant={other[0]}" if other else ""
        arch = {k: given.get(k) for k in ("width", "ocr_width", "small", "with_prev_mask", "use_disks")}
        raise CheckpointError(f"{path}: its architecture {arch} is not RITM variant {variant}{hint}")


def _net(variant: str):
    from ritm_annotation.model.is_hrnet_model import HRNetModel

    return HRNetModel(**VARIANTS[variant], **ITER_M)


def _random_net(variant: str):
    """The architecture initialised as RITM's training scripts do before pretraining (Xavier, gaussian)."""
    from ritm_annotation.model import initializer

    net = _net(variant)
    net.apply(initializer.XavierGluon(rnd_type="gaussian", magnitude=2.0))
    return net


@declare("ritm", choices={"variant": tuple(VARIANTS)})
def build_ritm(checkpoint=None, untrained: bool = False, device="cpu", dtype: str | None = None,
               variant: str = "h32", seed: int = 0, zoom_in: bool = True, zoom_target: int = 400, flip: bool = True,
               prompt_batch: int | None = None) -> RITMModel:
    """``ritm``: RITM HRNet ITER-M from its release file in the cache, ``--checkpoint``, or ``--untrained``.

    Options: ``variant`` h32 (HRNet-32, COCO+LVIS; default), h18, h18s (COCO+LVIS), sbd_h18 (SBD);
    ``zoom_in`` / ``zoom_target`` (RITM's ZoomIn and its crop's longer side), ``flip`` (average with
    the mirrored image), ``seed`` (random weights).
    """
    try:
        import ritm_annotation  # noqa: F401
    except ImportError as exc:
        raise NotBuilt(f"ritm needs the ritm-annotation package: pip install 'sam-bench[ritm]' ({exc})") from exc
    from sam_bench.config import resolve_device

    if dtype not in (None, "fp32"):
        raise ConfigError(f"model ritm runs in fp32 only, not --dtype {dtype}")
    device = resolve_device(None if device is None else str(device))
    opts = {"variant": variant, "zoom_in": zoom_in, "zoom_target": zoom_target, "flip": flip}
    if untrained:
        if checkpoint:
            raise ConfigError("--untrained and --checkpoint exclude each other")
        net = random_init(lambda: _random_net(variant), seed)
        info = model_info("ritm", None, None, True, dtype, seed, **opts)
    else:
        path, sha = checkpoints.resolve("ritm", checkpoint, default=DEFAULT_CHECKPOINT[variant])
        ckpt = checkpoints.load_state_dict(path)  # weights_only: the config is read as data, never imported
        _architecture(ckpt, path, variant)
        net = _net(variant)
        result = net.load_state_dict(ckpt["state_dict"], strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(f"{path}: does not fit RITM {variant} (missing {list(result.missing_keys)[:5]}, "
                                  f"unexpected {list(result.unexpected_keys)[:5]})")
        info = model_info("ritm", path, sha, False, dtype, **opts)
    return RITMModel(net, info, device, prompt_batch, zoom_in=zoom_in, zoom_target=zoom_target, flip=flip)
