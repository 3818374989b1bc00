"""Catalog names, ``expand``, ``open_for_run``, subsampling, and the synthetic default."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from sam_bench.data import catalog
from sam_bench.data import masks as M
from sam_bench.data.base import Dataset, Item
from sam_bench.data.synthetic import boundary_map, make_scene, open_synthetic
from sam_bench.errors import ConfigError


def test_cards_cover_the_23_and_local_sets():
    names = set(catalog.cards())
    assert len(catalog.sa23_names()) == 23
    assert {"BSDS500", "GrabCut", "Berkeley", "COCO_MVal", "DAVIS", "COCO_tiny", "COCO_fizyr_test",
            "LVIS_v0.5_val100", "COCO", "LVIS", "RefCOCO", "RefCOCO+", "RefCOCOg"} <= names
    for card in catalog.cards().values():
        assert card.get("homepage") and card.get("license") and card.get("domain"), card["name"]
        if card.get("sa23"):
            assert card["paper"]["masks"] > 0 and card.get("prepare", {}).get("instructions"), card["name"]


def test_unknown_name_suggests():
    with pytest.raises(ConfigError, match="Did you mean GrabCut"):
        catalog.get_card("grabcat")
    assert catalog.get_card("ZEROWASTE")["name"] == "ZeroWaste-f"


def test_expand_sa23_and_absent(tmp_path):
    (tmp_path / "grabcut" / "data").mkdir(parents=True)
    (tmp_path / "grabcut" / "segmentation").mkdir()
    (tmp_path / "ndd20").mkdir()
    specs, absent = catalog.expand(["sa23", "GrabCut", "synthetic", "coco:a.json:imgs", "Berkeley"], tmp_path)
    assert specs == ["GrabCut", "synthetic", "coco:a.json:imgs"]
    reasons = dict(absent)
    assert len(absent) == 24 and "sam-bench datasets prepare Berkeley" in reasons["Berkeley"]
    assert "not converted" in reasons["NDD20"] and "sam-bench datasets prepare NDD20" in reasons["NDD20"]


def test_subsample_whole_images_seeded():
    items = [Item(id=str(k), loader=None, meta={"num_masks": 100 + k % 7}) for k in range(200)]
    ds = catalog.subsample(Dataset("x", list(items), "coco"), seed=3)
    kept = ds.meta["sampled_image_ids"]
    masks = sum(100 + int(k) % 7 for k in kept)
    assert 10000 <= masks < 10000 + 107 and ds.meta["subsample"]["masks_after"] == masks
    assert kept == sorted(kept, key=int)  # dataset order kept
    again = catalog.subsample(Dataset("x", list(items), "coco"), seed=3)
    assert again.meta["sampled_image_ids"] == kept
    assert catalog.subsample(Dataset("x", list(items), "coco"), seed=4).meta["sampled_image_ids"] != kept
    small = catalog.subsample(Dataset("x", items[:10], "coco"))
    assert small.meta["sampled_image_ids"] is None and len(small.items) == 10


def test_open_for_run_gives_each_dataset_what_its_reader_takes(tmp_path, data_root):
    opts = {"split": "val", "split_by": "umd", "subsample_seed": 5}
    bsds, grabcut, syn = catalog.open_for_run(["bsds500", "GrabCut", "synthetic:2"], data_root, opts)
    assert bsds.name == "BSDS500" and len(bsds.items) == 100 and bsds.meta["split"] == "val"
    assert grabcut.name == "GrabCut" and grabcut.meta["split"] == "all"  # single split: ignored
    assert syn.name == "synthetic" and len(syn.items) == 2 and syn.meta["params"]["seed"] == 0
    assert catalog.options_for("bsds500", opts) == {"split": "val", "subsample_seed": 5}
    assert catalog.options_for("GrabCut", opts) == {"subsample_seed": 5}
    assert catalog.options_for(f"refcoco:{tmp_path}", opts) == {"split": "val", "split_by": "umd"}
    assert catalog.options_for("synthetic:2", {**opts, "seed": 3}) == {"seed": 3}


def test_open_for_run_refuses_a_reader_option_no_dataset_takes(tmp_path):
    with pytest.raises(ConfigError, match=r"data option 'threshold': no dataset of this run \(synthetic:2\) "
                                          r"takes it"):
        catalog.open_for_run(["synthetic:2"], None, {"threshold": 128})


def test_synthetic_default(tmp_path):
    ds = open_synthetic(cache=tmp_path)
    assert ds.name == "synthetic" and len(ds.items) == 8
    again = open_synthetic(cache=tmp_path)
    s, s2 = ds.items[3].load(), again.items[3].load()
    assert np.array_equal(s.image, s2.image) and s.image.shape == (240, 320, 3) and s.image.dtype == np.uint8
    sizes, texts = set(), []
    for it in ds.items:
        smp = it.load()
        labels = smp.segmentations[0]
        assert 3 <= len(smp.instances) <= 8
        assert np.array_equal(smp.boundaries[0], boundary_map(labels))
        for k, inst in enumerate(smp.instances):
            assert np.array_equal(inst.mask(), labels == k + 1)
            word = inst.texts[0].split()[0]
            area = M.area(inst.rle)
            assert word == ("small" if area < 1024 else "medium" if area < 9216 else "large")
            sizes.add(word)
        descs = [i.texts[0] for i in smp.instances]
        assert len(set(descs)) == len(descs)
        texts += descs
    assert sizes == {"small", "medium", "large"}
    gt = COCO(str(ds.gt_json))
    assert len(gt.anns) == len(texts) and {c["frequency"] for c in ds.categories.values()} == {"f", "c", "r"}
    full = json.loads(ds.gt_json.read_text())
    assert full["images"][0]["neg_category_ids"] and "not_exhaustive_category_ids" in full["images"][0]
    other = open_synthetic(seed=1, cache=tmp_path)
    assert not np.array_equal(other.items[0].load().image, s.image) or other.gt_json != ds.gt_json


def test_synthetic_has_partial_occlusion():
    """Every scene has an object whose visible mask is smaller than its full shape (but >= half of it)."""
    for i in range(8):
        scene = make_scene(0, i)
        vis = [(scene["labels"] == k + 1).sum() / o["full_area"] for k, o in enumerate(scene["objects"])]
        assert min(vis) < 1.0 and min(vis) >= 0.5, (i, vis)
