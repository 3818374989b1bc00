"""``grabcut``'s mask-prior path (the instances task's refinement pass) never empties a mask GrabCut gave up on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sam_bench.models.base import LOW_RES
from sam_bench.models.grabcut import LOGIT, build_grabcut

H, W = 120, 160
BOX = [40, 30, 100, 90]


def _box_extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.fixture()
def flat():
    """On a flat grey image GrabCut's colour models cannot tell inside from outside: every run empties."""
    m = build_grabcut(max_side=96)
    m.set_image(np.full((H, W, 3), 128, np.uint8))
    return m


def test_refinement_of_a_box_fallback_keeps_the_box(flat):
    first = flat.predict(boxes=[BOX], multimask=True).best()
    assert first.masks.any()  # the box path's own fallback: the filled box
    refined = flat.predict(boxes=[BOX], mask_input=first.low_res_logits, multimask=False)
    mask = refined.masks[0, 0].numpy()
    assert np.abs(np.subtract(_box_extent(mask), BOX)).max() <= 2
    assert mask.sum() == pytest.approx(60 * 60, rel=0.1)
    assert torch.equal(refined.masks, first.masks)  # nothing to refine: the first pass's mask


def test_mask_prior_alone_falls_back_to_the_prior(flat, monkeypatch):
    """Without a box (a flat image then gives GrabCut's all-probable labelling wholly to the
    foreground), an empty GrabCut result is forced: the prior mask comes back."""
    monkeypatch.setattr(flat, "_grabcut", lambda labels, rect: np.zeros(labels.shape, bool))
    prior = torch.full((1, 1, LOW_RES, LOW_RES), -LOGIT)
    prior[0, 0, 64:128, 96:160] = LOGIT  # the image fills the top 192 rows of the 256 x 256 frame
    mask = flat.predict(mask_input=prior, multimask=False).masks[0, 0].numpy()
    scale = W / LOW_RES  # 160 px across 256 frame columns, 120 px down 192 rows
    want = (96 * scale, 64 * scale, 160 * scale, 128 * scale)
    assert np.abs(np.subtract(_box_extent(mask), want)).max() <= 2


def test_prior_outside_the_box_falls_back_to_the_box(flat):
    prior = torch.full((1, 1, LOW_RES, LOW_RES), -LOGIT)
    prior[0, 0, :20, :20] = LOGIT  # the top-left corner, far from the box
    mask = flat.predict(boxes=[BOX], mask_input=prior, multimask=False).masks[0, 0].numpy()
    assert np.abs(np.subtract(_box_extent(mask), BOX)).max() <= 2


def test_refinement_only_moves_the_prior_boundary():
    """A noisy disk GrabCut does find: the refined mask keeps the first mask's interior and stays
    within its boundary band (sure_radius 3 working px = 5 image px at max_side 96)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    disk = np.hypot(xx - 70, yy - 60) <= 30
    img = np.where(disk[..., None], [200, 40, 50], [20, 110, 130]) + rng.normal(0, 25, (H, W, 3))
    m = build_grabcut(max_side=96)
    m.set_image(np.clip(img, 0, 255).astype(np.uint8))
    box = [[30, 20, 110, 100]]
    first = m.predict(boxes=box, multimask=True).best()
    refined = m.predict(boxes=box, mask_input=first.low_res_logits, multimask=False)
    a, b = first.masks[0, 0].numpy().astype(np.uint8), refined.masks[0, 0].numpy()
    disk7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    assert not (b & ~(cv2.dilate(a, disk7) > 0)).any() and not (~b & (cv2.erode(a, disk7) > 0)).any()
    assert 0.8 < b.sum() / a.sum() < 1.2
