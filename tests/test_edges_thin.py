"""edges-from maps that are already NMS-thinned: detected, refused without --nms/--no-nms, scored as given."""

from __future__ import annotations

import argparse
import re

import cv2
import numpy as np
import pytest
from test_edges_task import _bsds_folder

from sam_bench.errors import ConfigError
from sam_bench.metrics import bsds
from sam_bench.metrics.edge_nms import edge_nms
from sam_bench.models.edges import THIN_FRACTION, read_edge_map, sobel_magnitude, thin_fraction
from sam_bench.runner import run_task
from sam_bench.tasks.edges import EdgesTask

BENCH = {"split": "test", "thresholds": 19, "max_dist": 0.02, "progress": False}


def _scene(h=64, w=80, seed=0):
    """A noisy image with a rectangle, a disk and a diagonal bar: edges in every orientation."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 60.0)
    img[10:40, 8:35] = 190
    cv2.circle(img, (58, 40), 14, 130, -1)
    cv2.line(img, (5, 60), (40, 45), 230, 3)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


def _soft_bsds(root):
    """``_bsds_folder`` with blurred, noisy images: a pixel-aligned clean step gives a 2 px wide Sobel
    response that NMS keeps whole (a tie), so neither map would be told apart there."""
    root = _bsds_folder(root)
    rng = np.random.default_rng(0)
    for path in sorted((root / "images" / "test").glob("*.jpg")):
        img = cv2.GaussianBlur(cv2.imread(str(path)).astype(float), (0, 0), 1.0) + rng.normal(0, 3, (48, 64, 3))
        cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


def _write_maps(root, folder, thin: bool):
    """One 8-bit PNG per BSDS image of ``root``: its Sobel map, NMS-thinned when ``thin``."""
    folder.mkdir()
    for path in sorted((root / "images" / "test").glob("*.jpg")):
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        m = sobel_magnitude(img)
        m = edge_nms(m) if thin else m
        cv2.imwrite(str(folder / f"{path.stem}.png"), np.rint(m * 255).astype(np.uint8))
    return folder


def test_thin_fraction_separates_nms_thinned_from_soft_maps():
    soft = sobel_magnitude(_scene())
    thin = edge_nms(soft)
    q8 = lambda m: np.rint(m * 255) / 255
    assert thin_fraction(soft) < 0.05 and thin_fraction(q8(soft)) < 0.05
    assert thin_fraction(cv2.GaussianBlur(soft, (0, 0), 2)) < 0.05
    assert thin_fraction(thin) > 0.8 and thin_fraction(q8(thin)) > 0.8
    assert thin_fraction(np.zeros((5, 6))) == 0.0
    line = np.zeros((9, 9))
    np.fill_diagonal(line, 0.7)
    band = np.zeros((9, 9))
    band[3:6, 1:8] = 0.5
    assert thin_fraction(line) == 1.0
    assert thin_fraction(band) == pytest.approx(4 / 21)  # of a 3 px wide band only its 4 corners


@pytest.mark.realdata
def test_thin_fraction_on_a_real_bsds_image(data_root):
    path = sorted((data_root / "BSDS500" / "images" / "test").glob("*.jpg"))[0]
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    soft = sobel_magnitude(img, 2.0)
    assert thin_fraction(soft) < 0.05 < THIN_FRACTION < 0.8 < thin_fraction(edge_nms(soft))


def test_nms_options_are_tri_state():
    p = argparse.ArgumentParser()
    EdgesTask.add_arguments(p)
    assert p.parse_args([]).nms is None
    assert p.parse_args(["--nms"]).nms is True and p.parse_args(["--no-nms"]).nms is False
    assert EdgesTask(nms=None).config["nms"] is True and not EdgesTask(nms=None).nms_given
    assert EdgesTask(nms=True).nms_given and EdgesTask(nms=False).nms_given


def test_thin_maps_are_refused_without_an_explicit_choice(tmp_path):
    root = _soft_bsds(tmp_path / "bsds")
    maps = _write_maps(root, tmp_path / "thin", thin=True)
    with pytest.raises(ConfigError, match=re.escape(str(maps)) + r": the edge map of 0 looks already NMS-thinned "
                       r"\(8\d\.\d% .*--no-nms"):
        run_task("edges", f"edges-from:{maps}", datasets=[f"bsds:{root}"], out=tmp_path / "run", **BENCH)
    res = run_task("edges", f"edges-from:{maps}", datasets=[f"bsds:{root}"], out=tmp_path / "forced", nms=True,
                   **BENCH)
    assert res["config"]["nms"] is True
    assert "edge NMS on" in (tmp_path / "forced" / "table3_edges.md").read_text()


def test_no_nms_on_thin_maps_scores_them_as_given(tmp_path):
    root = _soft_bsds(tmp_path / "bsds")
    maps = _write_maps(root, tmp_path / "thin", thin=True)
    out = tmp_path / "run"
    res = run_task("edges", f"edges-from:{maps}", datasets=[f"bsds:{root}"], out=out, nms=False, **BENCH)
    assert res["config"]["nms"] is False
    assert "edge NMS off" in (out / "table3_edges.md").read_text()
    direct = []
    for path in sorted(maps.glob("*.png")):
        gts = [b.astype(bool) for b in _boundaries(root, path.stem)]
        direct.append(bsds.image_counts(read_edge_map(maps, path.stem), gts, 19, 0.02, True))
    want = bsds.summarize(direct, 19)
    got = res["datasets"]["BSDS500"]["metrics"]
    assert got["ods"] == want["ods"] and got["ap"] == want["ap"] and got["ods"] > 0.5


def test_thick_maps_run_with_nms_by_default(tmp_path):
    root = _soft_bsds(tmp_path / "bsds")
    maps = _write_maps(root, tmp_path / "thick", thin=False)
    out = tmp_path / "run"
    res = run_task("edges", f"edges-from:{maps}", datasets=[f"bsds:{root}"], out=out, **BENCH)
    assert res["config"]["nms"] is True and res["datasets"]["BSDS500"]["num_items"] == 2
    assert "edge NMS on" in (out / "table3_edges.md").read_text()


def _boundaries(root, stem):
    import scipy.io

    cells = scipy.io.loadmat(root / "groundTruth" / "test" / f"{stem}.mat")["groundTruth"][0]
    return [c["Boundaries"][0, 0] for c in cells]
