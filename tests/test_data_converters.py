"""Each native format of the 23 -> COCO, on fixtures written here; then opened through the catalog."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from sam_bench.data import catalog, commands
from sam_bench.data import masks as M
from sam_bench.data.coco import open_coco
from sam_bench.data.converters import convert
from sam_bench.errors import BadInput, ConfigError

H, W = 30, 40


def img(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8))
    return path


def png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def areas(folder, out):
    ds = open_coco(out, folder)
    assert ds.missing == []
    return sorted(int(M.area(i.rle)) for it in ds.items for i in it.load().instances)


def test_via_polygons_and_prepare_through_catalog(tmp_path):
    folder = tmp_path / "NDD20"
    img(folder / "ABOVE" / "a.jpg")
    img(folder / "BELOW" / "b.jpg", 1)
    square = {"shape_attributes": {"name": "polygon", "all_points_x": [5, 15, 15, 5], "all_points_y": [5, 5, 15, 15]},
              "region_attributes": {}}
    (folder / "ABOVE_LABELS.json").write_text(json.dumps({"a.jpg1": {"filename": "a.jpg", "regions": [square]}}))
    rect = {"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 3, "height": 3}}
    (folder / "BELOW_LABELS.json").write_text(json.dumps({"_via_img_metadata": {"b": {"filename": "b.jpg",
                                                          "regions": {"0": square, "1": rect}}}}))
    assert commands.prepare(tmp_path, "ndd20") == 0
    ds = catalog.open_catalog("NDD20", tmp_path, subsample_masks=False)
    assert ds.name == "NDD20" and len(ds.items) == 2
    (inst,) = ds.items[1].load().instances
    assert 90 <= M.area(inst.rle) <= 121
    (folder / "BELOW_LABELS.json").write_text("[1, 2]")
    with pytest.raises(BadInput, match="not a VIA annotation export"):
        commands.prepare(tmp_path, "NDD20")


def test_object_pngs_bbbc_and_pairs(tmp_path):
    for k in range(2):
        sub = tmp_path / "stage1_train" / f"id{k}"
        img(sub / "images" / f"id{k}.png", k)
        for j in range(k + 1):
            m = np.zeros((H, W), np.uint8)
            m[2 + 5 * j: 4 + 5 * j, 2:6] = 255
            png(sub / "masks" / f"m{j}.png", m)
    out = tmp_path / "out.json"
    s = convert("object_pngs", tmp_path, out, layout="bbbc", root="stage1_train")
    assert (s["images"], s["annotations"]) == (2, 3) and areas(tmp_path, out) == [8, 8, 8]
    img(tmp_path / "DS1" / "images" / "r0.png")
    m = np.zeros((H, W), np.uint8)
    m[0:10, 0:10] = 1
    png(tmp_path / "DS1" / "masks" / "r0.png", m)
    s = convert("object_pngs", tmp_path, out, layout="pairs", root="DS1", images="images/*.png",
                masks="masks/{stem}*.png")
    assert s["annotations"] == 1 and areas(tmp_path, out) == [100]


def test_instance_png_ids_16bit_components_and_ade20k(tmp_path):
    img(tmp_path / "p" / "plant1_rgb.png")
    lab = np.zeros((H, W), np.uint16)
    lab[0:5, 0:5], lab[10:20, 10:12], lab[25:30, 0:40] = 3, 700, 9
    cv2.imwrite(str(tmp_path / "p" / "plant1_label.png"), lab)  # 16-bit PNG, ids up to 700
    out = tmp_path / "o.json"
    s = convert("instance_png", tmp_path, out, images="**/*_rgb.png", labels="{dir}/{stem}_label.png",
                strip_suffix="_rgb")
    assert s["annotations"] == 3 and areas(tmp_path, out) == [20, 25, 200]
    img(tmp_path / "g" / "Images" / "f.jpg")
    hands = np.zeros((H, W), np.uint8)
    hands[2:6, 2:6], hands[20:25, 30:36] = 255, 255
    png(tmp_path / "g" / "Masks" / "f.png", hands)
    s = convert("instance_png", tmp_path, out, images="g/Images/*.jpg", labels="g/Masks/{stem}.png",
                decode="components")
    assert areas(tmp_path, out) == [16, 30]
    img(tmp_path / "ade" / "x.jpg")
    seg = np.zeros((H, W, 3), np.uint8)
    seg[0:10, :, 0], seg[0:10, :, 1], seg[0:10, 0:20, 2], seg[0:10, 20:, 2] = 10, 5, 1, 2  # class 261, 2 instances
    png(tmp_path / "ade" / "x_seg.png", seg)
    parts = np.zeros((H, W, 3), np.uint8)
    parts[0:3, 0:3] = (20, 1, 7)
    png(tmp_path / "ade" / "x_parts_1.png", parts)
    s = convert("instance_png", tmp_path, out, images="ade/*.jpg", labels="{dir}/{stem}_seg.png", decode="ade20k")
    assert areas(tmp_path, out) == [9, 200, 200]


def test_panoptic_semantic(tmp_path):
    img(tmp_path / "leftImg8bit" / "val" / "aachen" / "a_1_leftImg8bit.png")
    ids = np.zeros((H, W), np.int64)
    ids[0:10, 0:10], ids[20:30, :] = 26 * 1000 + 1, 7
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    png(tmp_path / "gtFine" / "pan" / "a_1_gtFine_panoptic.png", rgb)
    (tmp_path / "gtFine" / "pan.json").write_text(json.dumps({
        "annotations": [{"file_name": "a_1_gtFine_panoptic.png", "image_id": "a_1",
                         "segments_info": [{"id": 26001, "category_id": 26}, {"id": 7, "category_id": 7}]}],
        "categories": [{"id": 26, "name": "car"}, {"id": 7, "name": "road"}]}))
    out = tmp_path / "o.json"
    convert("panoptic", tmp_path, out, json="gtFine/pan.json", png_dir="gtFine/pan",
            images="leftImg8bit/val/*/{stem}_leftImg8bit.png", strip_suffix="_gtFine_panoptic")
    assert areas(tmp_path, out) == [100, 400]
    img(tmp_path / "test" / "art" / "p.jpg")
    lab = np.zeros((H, W), np.uint8)
    lab[0:4, 0:4], lab[10:12, :], lab[29, :] = 15, 3, 255
    png(tmp_path / "labels" / "test" / "art" / "p.png", lab)
    s = convert("semantic", tmp_path, out, images="test/**/*.jpg", labels="labels/{dir}/{stem}.png")
    assert areas(tmp_path, out) == [16, 80] and s["annotations"] == 2


def test_youtube_vis_visor_woodscape(tmp_path):
    for t in range(3):
        img(tmp_path / "train" / "v1" / f"{t:05d}.jpg", t)
    a = np.zeros((H, W), bool)
    a[0:5, 0:5] = True
    (tmp_path / "ovis.json").write_text(json.dumps({
        "videos": [{"id": 1, "height": H, "width": W, "file_names": [f"v1/{t:05d}.jpg" for t in range(3)]}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1,
                         "segmentations": [M.encode(a), None, M.encode(np.roll(a, 3, 1))]}],
        "categories": [{"id": 1, "name": "fish"}]}))
    out = tmp_path / "o.json"
    s = convert("youtube_vis", tmp_path, out, json="ovis.json", frames="train")
    assert (s["images"], areas(tmp_path, out)) == (2, [25, 25])
    img(tmp_path / "frames" / "P01" / "P01_01_frame_0000000001.jpg")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "P01_01.json").write_text(json.dumps({"video_annotations": [
        {"image": {"name": "P01_01_frame_0000000001.jpg", "video": "P01_01"},
         "annotations": [{"id": "x", "name": "knife", "segments": [[[0, 0], [10, 0], [10, 10], [0, 10]],
                                                                  [[20, 20], [30, 20], [30, 25]]]}]}]}))
    s = convert("visor", tmp_path, out, annotations="ann", frames="frames")
    assert s["annotations"] == 1 and 100 <= areas(tmp_path, out)[0] <= 160
    img(tmp_path / "rgb_images" / "00001_FV.png")
    (tmp_path / "instance_annotations").mkdir()
    (tmp_path / "instance_annotations" / "00001_FV.json").write_text(json.dumps({"00001_FV.json": {
        "annotation": [{"tags": ["car"], "segmentation": [[0, 0], [20, 0], [20, 10], [0, 10]]},
                       {"tags": ["person"], "segmentation": [[50, 50], [60, 50], [60, 60]]}]}}))
    s = convert("woodscape", tmp_path, out)
    assert s["annotations"] == 1 and "outside" in s["skipped"][0]


def test_hypersim(tmp_path):
    h5py = pytest.importorskip("h5py")
    cam = tmp_path / "ai_001_001" / "images"
    img(cam / "scene_cam_00_final_preview" / "frame.0000.tonemap.jpg")
    ids = -np.ones((H, W), np.int64)
    ids[0:10, 0:10], ids[15:20, 0:4] = 0, 5
    (cam / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    with h5py.File(cam / "scene_cam_00_geometry_hdf5" / "frame.0000.semantic_instance.hdf5", "w") as fh:
        fh["dataset"] = ids
    out = tmp_path / "o.json"
    assert convert("hypersim", tmp_path, out, scenes="ai_0*")["annotations"] == 2
    assert areas(tmp_path, out) == [20, 100]
    with pytest.raises(BadInput, match="found no images"):
        convert("hypersim", tmp_path, out, exclude=["ai_001_"])


def test_coco_merge_and_unknown_converter(tmp_path):
    img(tmp_path / "images" / "a.jpg")
    img(tmp_path / "images" / "b.jpg", 1)
    for split, name in (("train", "a.jpg"), ("val", "b.jpg")):
        (tmp_path / f"{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": name, "height": H, "width": W}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 6, 0, 6, 6, 0, 6]],
                             "area": 36, "bbox": [0, 0, 6, 6], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "animal"}]}))
    out = tmp_path / "o.json"
    s = convert("coco_merge", tmp_path, out, sources=[{"json": "train.json", "images": "images"},
                                                     {"json": "val.json", "images": "images"}])
    assert (s["images"], s["annotations"]) == (2, 2)
    with pytest.raises(ConfigError, match="unknown converter"):
        convert("nope", tmp_path, out)


def test_prepare_offline_and_no_url(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError, match="may be offline"):
        commands.prepare(tmp_path, "BBBC038v1", download=True)
    with pytest.raises(ConfigError, match="no public download URL"):
        commands.prepare(tmp_path, "WoodScape", download=True)
    assert commands.prepare(tmp_path, "WoodScape") == 1


def test_hypersim_without_h5py_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from sam_bench.data.converters.hypersim import read_instances

    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ConfigError, match="pip install h5py"):
        read_instances(tmp_path / "frame.0000.semantic_instance.hdf5")
