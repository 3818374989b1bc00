"""The edges task end to end on a BSDS-layout folder generated in tmp_path."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io

from sam_bench.metrics import bsds
from sam_bench.runner import run_task


def _bsds_folder(root, n=2, h=48, w=64):
    """Images with a bright rectangle; two annotators drawing its outline (one shifted by a pixel)."""
    for split in ("test",):
        (root / "images" / split).mkdir(parents=True)
        (root / "groundTruth" / split).mkdir(parents=True)
        for k in range(n):
            img = np.full((h, w, 3), 40, np.uint8)
            y0, x0 = 10 + k, 15 + 2 * k
            img[y0:y0 + 20, x0:x0 + 25] = 210
            cv2.imwrite(str(root / "images" / split / f"{k}.jpg"), img)
            cell = np.empty((1, 2), dtype=object)
            for a in range(2):
                seg = np.ones((h, w), np.uint16)
                seg[y0 + a:y0 + 20, x0:x0 + 25] = 2
                bd = np.zeros((h, w), np.uint8)
                inner = seg == 2
                bd[inner & ~np.pad(inner, 1)[2:, 1:-1]] = 1
                bd[inner & ~np.pad(inner, 1)[:-2, 1:-1]] = 1
                bd[inner & ~np.pad(inner, 1)[1:-1, 2:]] = 1
                bd[inner & ~np.pad(inner, 1)[1:-1, :-2]] = 1
                cell[0, a] = {"Segmentation": seg, "Boundaries": bd}
            scipy.io.savemat(root / "groundTruth" / split / f"{k}.mat", {"groundTruth": cell})
    return root


def test_sobel_run_writes_metrics_table_plot_and_maps_that_reevaluate_closely(tmp_path):
    root = _bsds_folder(tmp_path / "bsds")
    out = tmp_path / "run"
    res = run_task("edges", "sobel", datasets=[f"bsds:{root}"], out=out, split="test", save_edges=True,
                   thresholds=19, max_dist=0.02, progress=False)
    m = res["datasets"]["BSDS500"]["metrics"]
    assert set(("ods", "ois", "ap", "r50")) <= set(m) and 0.8 < m["ods"] <= 1
    assert len(m["pr_curve"]["recall"]) == 19 and res["config"]["nms_multiplier"] == 1.01
    # the metrics are exactly the benchmark of the records' counts
    lines = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    again = bsds.summarize([np.asarray(x["record"]["counts"]) for x in lines])
    assert again["ods"] == m["ods"] and again["ap"] == m["ap"]
    for name in ("table3_edges.md", "table3_edges.csv", "table3_edges.tex", "pr_curve_edges.png",
                 "edges/0.png", "edges/1.png"):
        assert (out / name).is_file(), name
    table = (out / "table3_edges.md").read_text()
    assert "Felzenszwalb-Huttenlocher" in table and "0.788" in table and "sobel" in table
    # the saved (post-NMS, 8-bit) maps evaluated with --no-nms give the run's numbers back up to 8-bit rounding
    res2 = run_task("edges", f"edges-from:{out / 'edges'}", datasets=[f"bsds:{root}"], out=tmp_path / "run2",
                    split="test", nms=False, thresholds=19, max_dist=0.02, progress=False)
    m2 = res2["datasets"]["BSDS500"]["metrics"]
    assert res2["config"]["nms"] is False
    assert abs(m2["ods"] - m["ods"]) < 0.01 and abs(m2["ap"] - m["ap"]) < 0.01


def test_missing_edge_map_is_a_recorded_skip(tmp_path):
    root = _bsds_folder(tmp_path / "bsds")
    maps = tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "0.npy", np.zeros((48, 64), np.float32))
    res = run_task("edges", f"edges-from:{maps}", datasets=[f"bsds:{root}"], out=tmp_path / "run", split="test",
                   thresholds=9, progress=False)
    ds = res["datasets"]["BSDS500"]
    assert ds["num_items"] == 1 and ds["num_skipped"] == 1 and "1.npy or 1.png" in ds["skips"][0]["reason"]
    assert ds["metrics"]["ods"] == 0.0


def test_bad_options_are_config_errors():
    from sam_bench.errors import ConfigError
    from sam_bench.tasks.edges import EdgesTask

    with pytest.raises(ConfigError, match="max-dist"):
        EdgesTask(max_dist=2.0)
    with pytest.raises(ConfigError, match="nms-radius"):
        EdgesTask(nms_radius=0)


def test_untrained_sam_runs_the_pipeline_on_one_image(tmp_path):
    pytest.importorskip("segment_anything")
    root = _bsds_folder(tmp_path / "bsds", n=1)
    res = run_task("edges", "sam_vit_b", untrained=True, datasets=[f"bsds:{root}"], out=tmp_path / "run",
                   split="test", grid=4, thresholds=9, device="cpu", progress=False)
    assert res["untrained"] and res["datasets"]["BSDS500"]["num_items"] == 1
    assert 0 <= res["datasets"]["BSDS500"]["metrics"]["ods"] <= 1 and res["config"]["grid"] == 4
