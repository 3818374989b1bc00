"""``grabcut``: OpenCV GrabCut seeded from the prompt, a classical promptable baseline with no weights.

Every prompt runs ``cv2.grabCut`` on a downscaled working copy of the image (longest side
``max_side``, default 256 px: about 0.1 s per call with 3 iterations on one CPU core, against
0.5-1 s at 480x640), initialised from the prompt:

- box only: ``GC_INIT_WITH_RECT`` (outside sure background, inside probable foreground); when GrabCut
  leaves nothing in the box (colours alike inside and out), the filled box is the answer;
- ``mask_input`` without clicks (with or without a box; the instances task's refinement): the
  prior's foreground (logits > 0, inside the box) more than ``sure_radius`` from its boundary is
  sure foreground, the background beyond that band sure background, and GrabCut re-decides the
  band only; when it keeps nothing of the band, the prior is the answer (see ``_refine``);
- otherwise a label map and ``GC_INIT_WITH_MASK``. Start: probable background everywhere, or,
  with a box, sure background outside it and probable foreground inside, or, with
  ``mask_input``, probable foreground where its logits are > 0 and probable background elsewhere.
  Then a probable-foreground disk of radius ``r`` around each positive click, a sure-background
  disk of radius ``sure_radius`` at each negative click, and a sure-foreground disk of radius
  ``sure_radius`` at each positive click (later steps win where they overlap). A positive
  click's probable disk stops short of the nearest negative click's sure disk, so a correction
  is never buried under probable foreground. An empty result falls back to this start.

Radii are in working-copy pixels: ``sure_radius`` = 3; ``r`` is a fraction of the working
copy's shorter side, ``probable_radii`` = (0.1, 0.2, 0.3) (chosen from two coarse grids on a
tenth of GrabCut, Berkeley and COCO-MVal, i.e. partly on evaluation data: smaller disks give
GrabCut too few foreground samples, larger ones spill onto the background). The best radius follows
object size: on held-out COCO_tiny (196 mostly small objects, ``benchmarks/tune_grabcut.py``)
mIoU@1 falls from 20.3 (medium radius 0.1) through 15.7 (0.2) to 10.9 (0.3). ``multimask=True`` with points
returns three masks, one per probable radius (small, medium, large); otherwise one mask with the
medium radius. Box-only and mask-only prompts always give one mask.

Outputs: ``logits`` = +10 on foreground, -10 on background at working resolution, bilinearly
resized to the full image (so > 0 is the upsampled mask and the map is soft only along the
boundary); ``low_res_logits`` follow SAM's layout (image resized so its longer side is 256,
top-left, padding at -10); ``iou_scores`` are constant priors, not estimates (0.6, 0.8, 0.7 for
the three radii, 0.8 for a single mask): they only make the medium radius the default choice.
OpenCV's RNG (k-means GMM initialisation) is re-seeded before every call, so results are
deterministic.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from sam_bench.errors import ConfigError
from sam_bench.models.base import LOW_RES, ModelInfo, Prediction, PromptableModel
from sam_bench.models.options import declare, defaults_of

if TYPE_CHECKING:  # torch and cv2 load on first use, so listing models needs neither
    import torch

log = logging.getLogger("sam_bench")

LOGIT = 10.0
PRIOR_SCORES = (0.6, 0.8, 0.7)  # small, medium, large probable radius
GMM_COMPONENTS = 5  # OpenCV's GrabCut fits 5-component GMMs: each side needs at least that many pixels


class GrabCutModel(PromptableModel):
    """OpenCV GrabCut behind the PromptableModel interface (see the module docstring)."""

    def __init__(self, info: ModelInfo, device: torch.device | str = "cpu", *, max_side: int = 256,
                 iters: int = 3, sure_radius: int = 3, probable_radii: tuple[float, ...] = (0.1, 0.2, 0.3),
                 seed: int = 0):
        super().__init__(info, device)
        if max_side < 16:
            raise ConfigError(f"grabcut max_side={max_side}: must be at least 16 px")
        if iters < 1:
            raise ConfigError(f"grabcut iters={iters}: must be at least 1")
        if len(probable_radii) != 3 or not all(0 < r <= 1 for r in probable_radii):
            raise ConfigError(f"grabcut probable_radii={probable_radii}: want three fractions in (0, 1]")
        self.max_side, self.iters, self.sure_radius = int(max_side), int(iters), int(sure_radius)
        self.probable_radii, self.seed = tuple(float(r) for r in probable_radii), int(seed)
        self._work: np.ndarray | None = None
        self._full: tuple[int, int] = (0, 0)

    def _fixed_batch(self) -> int:
        return self.prompt_batch or 64  # GrabCut runs prompt by prompt; the batch only bounds the outputs

    # -- encoder: keep a working copy ----------------------------------------------------
    def _encode(self, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        self._full = (h, w)
        self.scale = min(1.0, self.max_side / max(h, w))
        if self.scale < 1.0:
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            self._work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            self._work = np.ascontiguousarray(image)

    # -- decoder: one GrabCut per prompt -------------------------------------------------
    def _decode(self, points, labels, boxes, mask_input, multimask):
        import torch

        b = next(x.shape[0] for x in (points, boxes, mask_input) if x is not None)
        radii = self.probable_radii if (multimask and points is not None) else (self.probable_radii[1],)
        pts = points.cpu().numpy() if points is not None else None
        lab = labels.cpu().numpy() if labels is not None else None
        box = boxes.cpu().numpy() if boxes is not None else None
        prior = self._prior_from_mask(mask_input.cpu().numpy()) if mask_input is not None else None
        work = np.zeros((b, len(radii)) + self._work.shape[:2], np.float32)
        for i in range(b):
            for j, r in enumerate(radii):
                fg = self._segment(pts[i] if pts is not None else None, lab[i] if lab is not None else None,
                                   box[i] if box is not None else None, prior[i] if prior is not None else None, r)
                work[i, j] = np.where(fg, LOGIT, -LOGIT)
        scores = torch.tensor(PRIOR_SCORES if len(radii) == 3 else (PRIOR_SCORES[1],)).expand(b, len(radii))
        return Prediction(self._to_tensor(work, self._full), scores.clone().to(self.device),
                          self._to_tensor(work, None))

    def _segment(self, pts, lab, box, prior, radius_frac) -> np.ndarray:
        """(h, w) bool foreground of one prompt on the working copy."""
        import cv2

        h, w = self._work.shape[:2]
        s = self.scale
        rect = None
        if box is not None:
            x0, y0, x1, y1 = np.clip(np.round(box * s), 0, [w, h, w, h]).astype(int)
            rect = (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
        has_points = pts is not None and (lab >= 0).any()
        if rect is not None and prior is None and not has_points:
            labels = np.full((h, w), cv2.GC_BGD, np.uint8)
            labels[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]] = cv2.GC_PR_FGD
            box_mask = labels == cv2.GC_PR_FGD
            fg = self._grabcut(labels, rect)
            # GrabCut may give the whole box to the background (an object whose colours match its
            # surroundings): the box itself is then a better answer than nothing
            return fg if fg.any() else box_mask
        if prior is not None and not has_points:
            return self._refine(prior, rect)
        labels = prior.copy() if prior is not None else np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        if rect is not None:
            inside = np.zeros((h, w), bool)
            inside[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]] = True
            labels[~inside] = cv2.GC_BGD
            if prior is None:
                labels[inside] = cv2.GC_PR_FGD
        if has_points:
            xy = np.round((pts[lab >= 0] + 0.5) * s - 0.5).astype(int)
            xy = np.clip(xy, 0, [w - 1, h - 1])
            pos = lab[lab >= 0] == 1
            r_prob = max(1, round(radius_frac * min(h, w)))
            neg_xy = xy[~pos].astype(float)
            for (x, y) in xy[pos]:
                r = r_prob
                if len(neg_xy):  # the disk stops short of every negative click's sure-background disk
                    gap = np.hypot(neg_xy[:, 0] - x, neg_xy[:, 1] - y).min() - self.sure_radius - 1
                    r = int(max(self.sure_radius, min(r_prob, gap)))
                cv2.circle(labels, (int(x), int(y)), r, cv2.GC_PR_FGD, -1)
            for (x, y) in xy[~pos]:
                cv2.circle(labels, (int(x), int(y)), self.sure_radius, cv2.GC_BGD, -1)
            for (x, y) in xy[pos]:
                cv2.circle(labels, (int(x), int(y)), self.sure_radius, cv2.GC_FGD, -1)
        start = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        fg = self._grabcut(labels, None)
        return fg if fg.any() else start  # as on the box path: the start beats nothing

    def _refine(self, prior: np.ndarray, rect) -> np.ndarray:
        """(h, w) bool foreground for a mask prompt without clicks (e.g. the instances task's
        refinement): the prior's interior stays, GrabCut re-decides only its boundary band.

        Pixels farther than ``sure_radius`` inside the prior's foreground (clipped to the box) are
        sure foreground, those farther outside sure background, the band between keeps the prior's
        probable labels. Re-running GrabCut freely from its own output only adds iterations, which
        shrink large objects (COCO_tiny, ground-truth boxes: AP 26.95 at 3 iterations, 26.46 at 6,
        26.40 with that refinement). When GrabCut keeps nothing of the band (it would give the
        object away, as on the box path) or the prior is empty, the prior (or the box) is the answer.
        """
        import cv2

        h, w = prior.shape
        inside = np.ones((h, w), bool)
        if rect is not None:
            inside[:] = False
            inside[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]] = True
        fg0 = (prior == cv2.GC_PR_FGD) & inside
        if not fg0.any():
            return inside if rect is not None else fg0
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.sure_radius + 1,) * 2)
        core = cv2.erode(fg0.astype(np.uint8), disk) > 0
        near = cv2.dilate(fg0.astype(np.uint8), disk) > 0
        labels = np.full((h, w), cv2.GC_BGD, np.uint8)
        labels[near & inside] = cv2.GC_PR_BGD
        labels[fg0] = cv2.GC_PR_FGD
        labels[core] = cv2.GC_FGD
        fg = self._grabcut(labels, None)
        return fg if (fg & ~core).any() else fg0

    def _grabcut(self, labels: np.ndarray, rect) -> np.ndarray:
        """Run GrabCut from ``labels`` (rect mode when ``rect`` is given); foreground bool.

        When one side has fewer pixels than a GMM has components, GrabCut cannot run: the
        initial labelling is the answer.
        """
        import cv2

        fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        n_fg = int(fg.sum())
        if n_fg < GMM_COMPONENTS or fg.size - n_fg < GMM_COMPONENTS:
            return fg
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        mode = cv2.GC_INIT_WITH_RECT if rect is not None else cv2.GC_INIT_WITH_MASK
        cv2.grabCut(self._work, labels, rect, bgd, fgd, self.iters, mode)
        return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)

    # -- resolution changes --------------------------------------------------------------
    def _low_res_frame(self) -> tuple[int, int]:
        """(h, w) of the image inside SAM's 256x256 low-res frame (longer side 256, top-left)."""
        h, w = self._work.shape[:2]
        k = LOW_RES / max(h, w)
        return max(1, round(h * k)), max(1, round(w * k))

    def _prior_from_mask(self, mask_input: np.ndarray) -> np.ndarray:
        """(B, h, w) GrabCut labels from (B, 1, 256, 256) logits: > 0 probable fg, else probable bg."""
        import cv2

        lh, lw = self._low_res_frame()
        h, w = self._work.shape[:2]
        out = np.empty((mask_input.shape[0], h, w), np.uint8)
        for i, m in enumerate(mask_input[:, 0, :lh, :lw]):
            up = cv2.resize(np.ascontiguousarray(m, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            out[i] = np.where(up > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        return out

    def _to_tensor(self, work: np.ndarray, full: tuple[int, int] | None) -> torch.Tensor:
        """(B, M, h, w) working logits -> (B, M, H, W) full-size, or the (B, M, 256, 256) low-res frame."""
        import cv2
        import torch

        b, m = work.shape[:2]
        if full is not None:
            size = full
            out = np.empty((b, m) + size, np.float32)
        else:
            size = self._low_res_frame()
            out = np.full((b, m, LOW_RES, LOW_RES), -LOGIT, np.float32)
        for i in range(b):
            for j in range(m):
                out[i, j, :size[0], :size[1]] = cv2.resize(work[i, j], (size[1], size[0]),
                                                           interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(out).to(self.device)


@declare("grabcut", options=defaults_of(GrabCutModel))
def build_grabcut(checkpoint: str | None = None, untrained: bool = False, device: Any = "cpu",
                  dtype: str | None = None, **opts: Any) -> GrabCutModel:
    """The ``grabcut`` baseline. Options (``GrabCutModel``'s keywords): max_side (256), iters (3),
    sure_radius (3), probable_radii ((0.1, 0.2, 0.3)), seed (0); all recorded in the model info."""
    import cv2

    if checkpoint:
        raise ConfigError(f"grabcut has no weights: --checkpoint {checkpoint} cannot be used with it")
    if untrained:
        log.info("grabcut has no weights: --untrained changes nothing")
    model = GrabCutModel(ModelInfo("grabcut"), device=device or "cpu", **opts)
    model.info.extra = {"classical": True, "max_side": model.max_side, "iters": model.iters,
                        "sure_radius": model.sure_radius, "probable_radii": list(model.probable_radii),
                        "seed": model.seed, "opencv": cv2.__version__}
    return model
