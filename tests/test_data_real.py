"""The readers and ``datasets verify`` on the real data root (skipped where it is absent)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pytest

from sam_bench.data import catalog, commands
from sam_bench.data import masks as M

pytestmark = pytest.mark.realdata


def test_bsds_test_all_annotators_fast(data_root):
    t0 = time.perf_counter()
    ds = catalog.open_catalog("bsds500", data_root, split="test")
    samples = [it.load() for it in ds.items]
    elapsed = time.perf_counter() - t0
    assert ds.name == "BSDS500" and len(samples) == 200 and ds.missing == []
    assert sum(len(s.boundaries) for s in samples) == 1063
    assert {len(s.boundaries) for s in samples} <= set(range(4, 9))
    assert all(b.shape == s.image.shape[:2] for s in samples for b in s.boundaries)
    assert elapsed < 10, f"loading BSDS500 test took {elapsed:.1f} s"


def test_grabcut_ignore_band(data_root):
    from sam_bench.data.folder import read_mask_values

    ds = catalog.open_catalog("GRABCUT", data_root)
    assert ds.name == "GrabCut" and len(ds.items) == 50
    banded = 0
    for it in ds.items:
        s = it.load()
        raw = read_mask_values(Path(it.meta["mask_path"]))
        assert np.array_equal(s.instances[0].mask(), raw == 255)
        if (raw == 128).any():
            banded += 1
            assert np.array_equal(s.ignore, raw == 128)
        else:
            assert s.ignore is None
    assert banded > 0


def test_berkeley_and_coco_mval(data_root):
    b = catalog.open_catalog("berkeley", data_root)
    assert len(b.items) == 100 and {"189011a", "239007b"} <= {it.id for it in b.items}
    mv = catalog.open_catalog("coco-mval", data_root)
    assert len(mv.items) == 80 and any(" " in it.id for it in mv.items)
    inst = mv.items[0].load().instances[0]
    assert M.area(inst.rle) > 0


def test_coco_tiny_matches_pycocotools(data_root):
    from pycocotools.coco import COCO

    ds = catalog.open_catalog("coco_tiny", data_root)
    ref = COCO(str(ds.gt_json))
    assert len(ds.items) == 16 and ds.missing == []
    n, crowd = 0, 0
    for it in ds.items:
        s = it.load()
        for inst in s.instances:
            assert np.array_equal(inst.mask(), ref.annToMask(ref.anns[inst.id]).astype(bool))
            crowd += inst.iscrowd
        n += len(s.instances)
    assert (n, crowd) == (197, 1)


def test_lvis_val100_present_and_missing(data_root):
    ds = catalog.open_catalog("LVIS_v0.5_val100", data_root)
    assert len(ds.items) == 18 and len(ds.missing) == 82 and len(ds.meta["image_ids"]) == 18
    assert sum(len(it.load().instances) for it in ds.items) == 160
    assert all("neg_category_ids" in it.meta for it in ds.items)
    assert sum(1 for c in ds.categories.values() if c["frequency"] == "r") == 454


def test_verify_real_root_passes(data_root, capsys):
    args = argparse.Namespace(action="verify", data_root=str(data_root), names=["BSDS500", "GrabCut", "Berkeley",
                              "COCO_MVal", "COCO_tiny", "COCO_fizyr_test", "LVIS_v0.5_val100"], split=None,
                              quick=False, show=2)
    assert commands.main(args) == 0
    out = capsys.readouterr().out
    assert "OK   BSDS500 [test]: images 200 (expected 200), annotators 1063 (expected 1063)" in out
    assert "OK   COCO_tiny: images 16 (expected 16), annotations 197 (expected 197)" in out
    assert "missing_images 82 (expected 82)" in out and "annotations 977 (expected 977)" in out
    assert "OK   GrabCut: images 50" in out and "OK   Berkeley: images 100" in out and "OK   COCO_MVal: images 80" in out
