"""Masks read as their authors meant: palette PNGs by index (DAVIS), label PNGs, 0/255 greyscale,
spec ``key=value`` options, and the end-to-end run that evaluates every palette frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sam_bench import registry
from sam_bench.data.catalog import open_dataset
from sam_bench.data.folder import open_folder, read_mask
from sam_bench.data.specs import spec_value, split_spec
from sam_bench.errors import BadInput, ConfigError

H, W = 48, 64
# DAVIS' palette: index 1 (128, 0, 0), 2 (0, 128, 0), 3 (128, 128, 0); 255 is void (224, 224, 192)
DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 251 + [224, 224, 192]


def write_image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8))


def palette_frame(k: int) -> np.ndarray:
    """(H, W) uint8 object indices of frame k: objects 1..3 (fewer in early frames); frame 4 has a 255 void rim."""
    idx = np.zeros((H, W), np.uint8)
    idx[8:30, 6 + k:26 + k] = 1
    if k >= 1:
        idx[30:44, 30:50] = 2
    if k >= 2:
        idx[4:14, 40 + k:60] = 3
    if k == 4:
        idx[7, 6 + k:26 + k] = 255
    return idx


def write_palette(path: Path, idx: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(idx, mode="P")
    img.putpalette(DAVIS_PALETTE)
    img.save(path)


@pytest.fixture
def davis(tmp_path):
    """5 DAVIS-style frames: img/0000N.jpg + gt/0000N.png palette PNGs; returns (img, gt, indices)."""
    frames = [palette_frame(k) for k in range(5)]
    for k, idx in enumerate(frames):
        write_image(tmp_path / "img" / f"{k:05d}.jpg", seed=k)
        write_palette(tmp_path / "gt" / f"{k:05d}.png", idx)
    return tmp_path / "img", tmp_path / "gt", frames


def test_fixture_is_what_broke_the_old_rule(davis):
    """OpenCV expands the palette to colours whose channel max is 128: `> 128` saw no object."""
    _, gt, frames = davis
    colours = cv2.imread(str(gt / "00003.png"), cv2.IMREAD_UNCHANGED).max(axis=2)
    assert colours[frames[3] == 1].max() == 128 and not ((colours > 128) & (frames[3] != 255)).any()


def test_palette_png_reads_indices_pixel_for_pixel(davis):
    img, gt, frames = davis
    ds = open_folder(img, gt)
    assert [it.id for it in ds.items] == [f"{k:05d}" for k in range(5)]
    for it, idx in zip(ds.items, frames):
        mask = read_mask(Path(it.meta["mask_path"]))
        assert mask.kind == "palette" and np.array_equal(mask.values, idx)
        s = it.load()
        assert np.array_equal(s.instances[0].mask(), (idx > 0) & (idx != 255))
        assert np.array_equal(s.ignore, idx == 255) if (idx == 255).any() else s.ignore is None
    assert "palette PNG -> index > 0, index 255 void" in ds.meta["mask_rule"]


def test_label_png_and_16_bit_labels(tmp_path):
    write_image(tmp_path / "img" / "a.jpg")
    write_image(tmp_path / "img" / "b.jpg", seed=1)
    labels = np.zeros((H, W), np.uint8)
    labels[5:20, 5:20], labels[25:40, 30:60], labels[0, :] = 1, 3, 255
    (tmp_path / "gt").mkdir()
    assert cv2.imwrite(str(tmp_path / "gt" / "a.png"), labels)
    wide = np.zeros((H, W), np.uint16)
    wide[10:30, 10:30], wide[30:40, 40:50] = 1000, 255
    assert cv2.imwrite(str(tmp_path / "gt" / "b.png"), wide)
    a, b = open_folder(tmp_path / "img", tmp_path / "gt").items
    assert read_mask(Path(a.meta["mask_path"])).kind == "labels"
    sa = a.load()
    assert np.array_equal(sa.instances[0].mask(), (labels > 0) & (labels != 255))
    assert np.array_equal(sa.ignore, labels == 255)
    assert read_mask(Path(b.meta["mask_path"])).kind == "labels-wide"
    sb = b.load()
    assert np.array_equal(sb.instances[0].mask(), wide > 0) and sb.ignore is None


def test_grey_masks_and_grey_palette(tmp_path):
    write_image(tmp_path / "img" / "binary.jpg")
    write_image(tmp_path / "img" / "band.jpg", seed=1)
    write_image(tmp_path / "img" / "greypal.jpg", seed=2)
    binary = np.zeros((H, W), np.uint8)
    binary[10:30, 10:50] = 255
    band = binary.copy()
    band[8:10, 10:50] = 128  # GrabCut's unlabeled band: not foreground unless told otherwise
    (tmp_path / "gt").mkdir()
    assert cv2.imwrite(str(tmp_path / "gt" / "binary.png"), binary)
    assert cv2.imwrite(str(tmp_path / "gt" / "band.bmp"), band)
    pal = Image.fromarray((binary > 0).astype(np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 255, 255, 255])
    pal.save(tmp_path / "gt" / "greypal.png")
    items = {it.id: it for it in open_folder(tmp_path / "img", tmp_path / "gt").items}
    for stem, raw in (("binary", binary), ("band", band), ("greypal", binary)):
        mask = read_mask(Path(items[stem].meta["mask_path"]))
        assert mask.kind == "grey" and np.array_equal(mask.values, raw)
        s = items[stem].load()
        assert np.array_equal(s.instances[0].mask(), raw == 255) and s.ignore is None


def test_explicit_threshold_and_ignore_win(davis):
    img, gt, frames = davis
    strict = open_dataset(f"folder:{img}:{gt}:threshold=1:ignore=none")
    s = strict.items[4].load()
    assert np.array_equal(s.instances[0].mask(), frames[4] > 1) and s.ignore is None
    assert (frames[4] == 255).any() and (frames[4] == 1).any()
    assert strict.meta["mask_rule"] == "value > 1 (palette PNGs: index); nothing ignored"
    davis_rule = open_dataset(f"folder:{img}:{gt}:threshold=0:ignore=255")
    assert davis_rule.meta["threshold"] == 0 and davis_rule.meta["ignore_value"] == 255
    for it, idx in zip(davis_rule.items, frames):
        s = it.load()
        assert np.array_equal(s.instances[0].mask(), (idx > 0) & (idx != 255))
        assert np.array_equal(s.ignore, idx == 255) if (idx == 255).any() else s.ignore is None


def test_empty_foreground_is_a_skip_naming_file_and_rule(davis):
    img, gt, frames = davis
    void_only = np.where(frames[4] == 255, 255, 0).astype(np.uint8)
    write_palette(gt / "00000.png", void_only)
    ds = open_folder(img, gt)
    with pytest.raises(BadInput, match=r"00000\.png: mask has no foreground pixel \(palette mask, rule value > 0, "
                                       r"255 void"):
        ds.items[0].load()


def test_spec_values_and_options_reach_any_format(monkeypatch):
    seen = {}

    def opener(a, b=None, *, x=0, y=0.0, z=False, w="w", s="", **_):
        seen.update(args=(a, b), x=x, y=y, z=z, w=w, s=s)

    monkeypatch.setitem(registry._extra["formats"], "fake", opener)
    open_dataset("fake:p1:p2:x=1:y=0.5:z=true:w=none:s=text")
    assert seen == {"args": ("p1", "p2"), "x": 1, "y": 0.5, "z": True, "w": None, "s": "text"}
    texts = ("-3", "1e2", "False", "NULL", "a/b", "nan")
    assert [spec_value(v) for v in texts] == [-3, 100.0, False, None, "a/b", "nan"]
    assert split_spec("folder:/d/img:./k=v:threshold=0") == (["/d/img", "./k=v"], {"threshold": 0})


@pytest.mark.parametrize("spec, message", [
    ("folder:{img}:{gt}:thresh=0", r"unknown option 'thresh'; folder takes name, threshold, ignore_value, ignore, "
                                    r"domain"),
    ("folder:{img}:{gt}:threshold=0:threshold=1", r"option 'threshold' given twice"),
    ("folder:{img}:threshold=0:{gt}", r"comes after key=value options; put the paths first"),
    ("folder:{img}", r"missing a required argument: 'mask_dir'"),
    ("folder:{img}:{gt}:threshold=high", r"threshold='high' is neither a number nor 'auto'"),
    ("folder:{img}:{gt}:ignore=0:ignore_value=255", r"ignore=0 and ignore_value=255 disagree"),
    ("synthetic:2:colour=red", r"unknown option 'colour'; synthetic takes n, seed, height, width"),
])
def test_bad_spec_options_are_config_errors(davis, spec, message):
    img, gt, _ = davis
    with pytest.raises(ConfigError, match=message):
        open_dataset(spec.format(img=img, gt=gt))


def test_spec_option_clashing_with_task_option(tmp_path):
    with pytest.raises(ConfigError, match=r"split='val' in the spec but 'test' from the run's data options; set it once, "
                                          r"with --split"):
        open_dataset(f"bsds:{tmp_path}:split=val", split="test")


def _run(tmp_path, spec: str, out: str) -> dict:
    from sam_bench.cli import main

    rc = main(["run", "single-point", "--model", "grabcut", "--dataset", spec, "--limit", "5", "--clicks", "1",
               "--max-clicks", "1", "--no-progress", "--out", str(tmp_path / out)])
    assert rc == 0
    return json.loads((tmp_path / out / "results.json").read_text())


def test_cli_run_on_palette_folder_evaluates_every_frame(davis, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path / "cache"))
    img, gt, _ = davis
    for spec, out in ((f"folder:{img}:{gt}", "auto"), (f"folder:{img}:{gt}:threshold=0:ignore=255", "davis")):
        res = _run(tmp_path, spec, out)
        (ds,) = res["datasets"].values()
        assert ds["num_items"] == 5 and ds["num_skipped"] == 0 and ds["skips"] == []
        assert ds["metrics"]["num_objects"] == 5


@pytest.mark.realdata
def test_catalog_masks_match_ritm_rule(data_root):
    """GrabCut, Berkeley, COCO-MVal: foreground is max over channels > 128 (GrabCut: 128 ignored), as before."""
    from sam_bench.data.catalog import open_catalog

    for name in ("GrabCut", "Berkeley", "COCO_MVal"):
        ds = open_catalog(name, data_root)
        for it in ds.items[:: max(1, len(ds.items) // 12)]:
            raw = cv2.imread(it.meta["mask_path"], cv2.IMREAD_UNCHANGED)
            raw = raw.max(axis=2) if raw.ndim == 3 else raw
            s = it.load()
            assert np.array_equal(s.instances[0].mask(), raw > 128), it.meta["mask_path"]
            if name == "GrabCut" and (raw == 128).any():
                assert np.array_equal(s.ignore, raw == 128)
