"""Classical edge / segment models and the SAM edge pipeline on hand-made images and mask sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.errors import BadInput, ConfigError
from sam_bench.models.base import build_model


def _step(h=40, w=50, col=25):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, col:] = 200
    return img


def _edges(model, image, image_id=None):
    model.set_image(image, image_id=image_id)
    return model.edge_map()


def test_sobel_peaks_on_the_step_and_is_normalised():
    e = _edges(build_model("sobel"), _step())
    assert e.dtype == np.float32 and e.max() == pytest.approx(1.0) and e.min() >= 0
    cols = np.nonzero(e[20] == 1.0)[0]
    assert set(cols) == {24, 25}  # the 3x3 Sobel responds on both sides of the step, equally
    assert e[20, :23].max() == 0 and e[20, 27:].max() == 0


def test_canny_soft_is_smoothed_sobel_and_hysteresis_nests():
    img = _step()
    soft = _edges(build_model("canny", sigma=2.0), img)
    assert soft[20, 10] < 0.05 and soft[20, 24:26].max() == pytest.approx(1.0) and soft[20, 22] > 0.3
    hyst = _edges(build_model("canny", mode="hysteresis", levels=10), img)
    assert set(np.unique(hyst)) <= {0.0, *[np.float32(k / 10) for k in range(1, 11)]}
    assert hyst[20].max() == pytest.approx(1.0) and np.count_nonzero(hyst[20]) == 1  # Canny's own NMS: one pixel
    with pytest.raises(ConfigError):
        build_model("canny", mode="fancy")
    with pytest.raises(ConfigError):
        build_model("sobel", checkpoint="x.pth")


def test_felzenszwalb_edges_and_proposals_on_two_regions():
    img = _step()
    model = build_model("felzenszwalb", scales=(100, 400), proposal_scales=(100, 400), min_size=50)
    assert set(model.kinds) == {"edges", "proposals"}
    e = _edges(model, img)
    assert e[:, 24].min() == pytest.approx(1.0) and e[:, :23].max() == 0 and e[:, 26:].max() == 0
    masks, scores = model.propose(max_masks=10)
    assert masks.shape[1:] == img.shape[:2] and np.all(np.diff(scores) < 0)
    # the two halves are proposed, once each (duplicates across scales removed)
    left = np.zeros(img.shape[:2], bool)
    left[:, :25] = True
    assert len(masks) == 2 and any(np.array_equal(m, left) for m in masks) and any(np.array_equal(m, ~left) for m in masks)


def test_edges_from_reads_png_and_npy_and_reports_bad_files(tmp_path):
    import cv2

    m = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", m)
    cv2.imwrite(str(tmp_path / "b.png"), np.array([[0, 255, 51, 102]] * 3, np.uint8))
    np.save(tmp_path / "bad.npy", m * 2)
    model = build_model(f"edges-from:{tmp_path}")
    img = np.zeros((3, 4, 3), np.uint8)
    assert np.array_equal(_edges(model, img, "a"), m)
    assert _edges(model, img, "b")[0].tolist() == pytest.approx([0, 1, 0.2, 0.4])
    with pytest.raises(BadInput, match="bad.npy"):
        _edges(model, img, "bad")
    with pytest.raises(BadInput, match="missing"):
        _edges(model, img, "missing")
    with pytest.raises(BadInput, match="4x3"):
        _edges(model, np.zeros((5, 5, 3), np.uint8), "a")
    with pytest.raises(ConfigError):
        build_model(f"edges-from:{tmp_path / 'nope'}")


def test_sam_edge_map_keeps_sobel_only_on_mask_boundaries():
    from sam_bench.sam_edges import edge_map_from_logits, mask_boundary

    h, w = 30, 40
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    sq = ((yy >= 10) & (yy < 20) & (xx >= 10) & (xx < 25)).float()
    logits = torch.stack([sq * 8 - 4, torch.full((h, w), -4.0)])  # a square; an empty mask
    e = edge_map_from_logits(logits)
    inside = mask_boundary(logits[:1] > 0)[0]
    ring = torch.zeros(h, w, dtype=torch.bool)
    ring[10:20, 10:25] = True
    ring[11:19, 11:24] = False
    assert torch.equal(inside, ring)
    assert e.max() == pytest.approx(1.0) and torch.all(e[~ring] == 0) and torch.all(e[ring] > 0)
    # the corner has the strongest gradient (two sides change) -> the maximum
    assert e[10, 10] == pytest.approx(1.0)
    outside = mask_boundary(logits[:1] > 0, "outside")[0]
    assert outside[9, 15] and outside[15, 9] and not outside[9, 9] and not outside[15, 15]
    assert torch.all(edge_map_from_logits(torch.full((2, h, w), -3.0)) == 0)
