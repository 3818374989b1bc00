"""Hypersim HDF5 (``semantic_instance``) -> COCO; needs h5py (``pip install h5py``).

Per scene ``<scene>/images/scene_cam_XX_geometry_hdf5/frame.NNNN.semantic_instance.hdf5`` holds a
(H, W) int array ``dataset`` (-1 = no instance); the image is
``scene_cam_XX_final_preview/frame.NNNN.tonemap.jpg``. Each instance id >= 0 is one mask.
``exclude``: scene-name prefixes left out (the paper drops volumes 20, 25, 40, 49).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sam_bench.data.converters import CocoBuilder
from sam_bench.data.converters.instance_png import ids_to_masks
from sam_bench.errors import BadInput, ConfigError


def read_instances(path: Path) -> np.ndarray:
    """(H, W) int64 instance ids (-1 none) of one ``semantic_instance.hdf5``; ``BadInput`` naming the file."""
    try:
        import h5py
    except ImportError:
        raise ConfigError("the Hypersim converter needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as fh:
            return np.asarray(fh["dataset"], dtype=np.int64)
    except (OSError, KeyError) as exc:
        raise BadInput(f"{path}: cannot read 'dataset' from HDF5 ({exc})") from None


def convert(folder: Path, out_json: Path, scenes: str = "*", exclude: list[str] | None = None) -> dict:
    b = CocoBuilder(folder, "Hypersim HDF5")
    drop = tuple(exclude or [])
    files = sorted(folder.glob(f"{scenes}/images/scene_cam_*_geometry_hdf5/frame.*.semantic_instance.hdf5"))
    for h5 in files:
        scene = h5.parts[-4]
        if drop and scene.startswith(drop):
            continue
        cam = re.sub(r"_geometry_hdf5$", "", h5.parent.name)
        frame = h5.name.split(".")[1]
        img = h5.parent.parent / f"{cam}_final_preview" / f"frame.{frame}.tonemap.jpg"
        if not img.is_file():
            b.skipped.append(f"{h5}: image {img} not found")
            continue
        ids = read_instances(h5)
        image_id = b.add_image(img, *ids.shape)
        for k, m in ids_to_masks(ids + 1).items():
            b.add_mask(image_id, m, where=f"{h5} instance {k - 1}")
    return b.write(out_json)
