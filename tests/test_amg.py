"""Automatic mask generation: equality with segment_anything's generator, mask NMS against a
brute-force reference, packing, ranking and top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.amg import AMGConfig, MaskSet, generate, mask_nms, pack_masks, unpack_masks
from sam_bench.errors import ConfigError
from sam_bench.models.base import ModelInfo, Prediction, PromptableModel
from sam_fixtures import make_image, random_vit_b, tiny_model

IMG = make_image()


def _official(sam, image, **kw):
    from segment_anything import SamAutomaticMaskGenerator

    return SamAutomaticMaskGenerator(sam, **kw).generate(image)


def _assert_same(ref: list[dict], ours: MaskSet):
    assert len(ref) == len(ours)
    for r, mask, iou, stab, pt, box in zip(ref, ours.masks.numpy(), ours.iou_preds, ours.stability, ours.points,
                                          ours.boxes):
        assert np.array_equal(r["segmentation"], mask)
        assert r["predicted_iou"] == pytest.approx(float(iou), abs=0) and r["stability_score"] == pytest.approx(float(stab), abs=1e-7)
        assert r["point_coords"][0] == pytest.approx(pt.tolist())
        x0, y0, x1, y1 = box.tolist()
        assert r["bbox"] == [x0, y0, x1 - x0, y1 - y0]


def test_equals_official_generator_random_vit_b():
    """Random-weight ViT-B, 6x6 grid, low thresholds so that some but not all masks pass the filters."""
    model = random_vit_b()
    kw = dict(points_per_side=6, pred_iou_thresh=0.01, stability_score_thresh=0.02, stability_score_offset=0.05,
              box_nms_thresh=1.0)
    ref = _official(model.sam, IMG, **kw)
    model.set_image(IMG)
    calls = model.encoder_calls
    ours = generate(model, IMG, AMGConfig(points_per_side=6, points_per_batch=64, pred_iou_thresh=0.01, stability_score_thresh=0.02,
                                          stability_score_offset=0.05, nms_thresh=1.0))
    assert model.encoder_calls == calls  # the runner's embedding is reused
    assert 0 < len(ref) < 6 * 6 * 3, len(ref)
    _assert_same(ref, ours)
    assert ours.extra["num_candidates"] == 108


@pytest.mark.parametrize("crops, min_area", [(1, 0), (1, 30)])
def test_equals_official_generator_crops_and_small_regions(crops, min_area):
    """Crops, crop NMS, crop-edge filter and the small-region cleanup, on a tiny SAM (fast encoder)."""
    model = tiny_model()
    kw = dict(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0, stability_score_offset=0.05,
              box_nms_thresh=0.99, crop_n_layers=crops, crop_nms_thresh=0.99, min_mask_region_area=min_area,
              crop_n_points_downscale_factor=2)
    ref = _official(model.sam, IMG, **kw)
    model.set_image(IMG)
    ours = generate(model, IMG, AMGConfig(points_per_side=4, points_per_batch=64, pred_iou_thresh=None, stability_score_thresh=None,
                                          stability_score_offset=0.05, nms_thresh=0.99, crop_n_layers=crops,
                                          crop_nms_thresh=0.99, min_mask_region_area=min_area,
                                          crop_n_points_downscale_factor=2))
    assert len(ref) > 0
    _assert_same(ref, ours)
    assert model.image_size == IMG.shape[:2] and model.original_size == IMG.shape[:2]  # full image restored


def _reference_mask_nms(masks: np.ndarray, scores: np.ndarray, thresh: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        ok = True
        for j in kept:
            inter = np.logical_and(masks[i], masks[j]).sum()
            union = np.logical_or(masks[i], masks[j]).sum()
            if union and inter / union > thresh:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.7, 0.9])
def test_mask_nms_matches_bruteforce(thresh):
    from segment_anything.utils.amg import batched_mask_to_box

    g = np.random.default_rng(1)
    h, w = 40, 50
    masks = []
    for _ in range(300):  # rectangles with jittered duplicates, plus empty and full masks
        x0, y0 = g.integers(0, w - 5), g.integers(0, h - 5)
        m = np.zeros((h, w), bool)
        m[y0:y0 + g.integers(2, 20), x0:x0 + g.integers(2, 25)] = True
        masks.append(m)
        if g.random() < 0.5:
            m2 = m.copy()
            m2[y0, :] |= g.random(w) < 0.3
            masks.append(m2)
    masks += [np.zeros((h, w), bool), np.ones((h, w), bool)]
    masks = np.stack(masks)
    scores = np.round(g.random(len(masks)), 2).astype(np.float32)  # ties on purpose
    mt = torch.as_tensor(masks)
    got = mask_nms(pack_masks(mt), h, w, batched_mask_to_box(mt), torch.as_tensor(scores), thresh, block=64)
    assert got.tolist() == _reference_mask_nms(masks, scores, thresh)


def test_pack_unpack_matches_numpy():
    m = torch.rand(5, 7, 13) > 0.5
    packed = pack_masks(m)
    assert np.array_equal(packed.numpy(), np.packbits(m.reshape(5, -1).numpy(), axis=1))
    assert torch.equal(unpack_masks(packed, 7, 13), m)


class BlobModel(PromptableModel):
    """Disk of radius r around each point for r = 4, 8, 12; scores and stabilities set by the point."""

    def _encode(self, image):
        self.h, self.w = image.shape[:2]

    def _decode(self, points, labels, boxes, mask_input, multimask):
        yy, xx = torch.meshgrid(torch.arange(self.h), torch.arange(self.w), indexing="ij")
        c = points[:, 0]
        d = ((xx[None] - c[:, 0, None, None]) ** 2 + (yy[None] - c[:, 1, None, None]) ** 2).sqrt()
        logits = torch.stack([(r - d) * (0.2 + 0.4 * k) for k, r in enumerate((4.0, 8.0, 12.0))], 1)
        scores = torch.stack([c[:, 0] / self.w, c[:, 1] / self.h, 1 - c[:, 0] / self.w], 1)
        return Prediction(logits, scores, torch.zeros(len(c), 3, 256, 256))


@pytest.fixture()
def blob():
    model = BlobModel(ModelInfo("blob"))
    model.set_image(np.zeros((60, 80, 3), np.uint8))
    return model


def test_ranking_and_top_k(blob):
    image = np.zeros((60, 80, 3), np.uint8)
    base = dict(points_per_side=4, pred_iou_thresh=None, stability_score_thresh=None, nms_thresh=None)
    plain = generate(blob, image, AMGConfig(**base))
    assert len(plain) == 48 and plain.masks.dtype == torch.bool and plain.logits is None
    by_score = generate(blob, image, AMGConfig(**base, ranking="score", top_k=10))
    assert len(by_score) == 10
    assert torch.equal(by_score.iou_preds, torch.sort(plain.iou_preds, descending=True, stable=True).values[:10])
    mean = generate(blob, image, AMGConfig(**base, ranking="score_stability_mean"))
    key = (mean.iou_preds + mean.stability) / 2
    assert torch.all(key[:-1] >= key[1:]) and not torch.all(mean.iou_preds[:-1] >= mean.iou_preds[1:])
    r1 = generate(blob, image, AMGConfig(**base, ranking="random", seed=3))
    r2 = generate(blob, image, AMGConfig(**base, ranking="random", seed=3))
    r3 = generate(blob, image, AMGConfig(**base, ranking="random", seed=4))
    assert torch.equal(r1.points, r2.points) and not torch.equal(r1.points, r3.points)
    assert sorted(map(tuple, r1.points.tolist())) == sorted(map(tuple, plain.points.tolist()))


def test_mask_nms_removes_nested_duplicates_and_keeps_logits(blob):
    image = np.zeros((60, 80, 3), np.uint8)
    cfg = AMGConfig(points_per_side=2, pred_iou_thresh=None, stability_score_thresh=None, nms="mask", nms_thresh=0.5,
                    keep_logits=True)
    out = generate(blob, image, cfg)
    # radius 4 inside radius 8: IoU 0.25, radius 8 inside 12: 0.44, so nothing suppressed at 0.5 ...
    assert len(out) == 12 and out.logits.shape == (12, 60, 80)
    assert torch.equal(out.masks, out.logits > 0)
    out = generate(blob, image, AMGConfig(**{**cfg.as_dict(), "nms_thresh": 0.4}))
    assert len(out) == 8  # ... at 0.4 the 12-disk of each point is suppressed by its higher-scored 8-disk


def test_config_checks_and_paper_presets():
    with pytest.raises(ConfigError, match="nms"):
        AMGConfig(nms="boxes").check()
    with pytest.raises(ConfigError, match="ranking"):
        AMGConfig(ranking="area").check()
    edges, props = AMGConfig.paper_edges(), AMGConfig.paper_proposals()
    assert (edges.points_per_side, edges.nms, edges.pred_iou_thresh, edges.multimask) == (16, "mask", None, True)
    assert (props.points_per_side, props.nms_thresh, props.ranking, props.top_k, props.crop_n_layers) == \
        (64, 0.9, "score_stability_mean", 1000, 0)
