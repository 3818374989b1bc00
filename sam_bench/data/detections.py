"""A detector's COCO results file (``--boxes``), read once and checked entry by entry.

A results file is a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
Reading it (``read_detections``) refuses, entry by entry, what no dataset could use (missing
keys, non-int ids, a score or box that is not finite numbers, ``w`` or ``h`` <= 0); checking it
against a dataset (``check_detections``) refuses, entry by entry, an unlisted category and a box
with no area inside its image, and counts the entries naming images the dataset does not list
(normal when a file covers a whole split and the dataset is a part of it). ``detection_skips``
words each refusal as a recorded skip naming the file, the entry's index and the reason. The
checks themselves are pure (``sam_bench.data.validate``).

Skip items: ``#det<k>`` (refused on reading), ``<image id>#det<k>`` (refused on its image) and
one ``#det:other_images`` summarising the entries for other images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping

from sam_bench.data import validate as V
from sam_bench.errors import ConfigError

EXAMPLES = 5  # image ids quoted in the other-images skip


@dataclass
class Detections:
    """A read results file: ``usable`` (index, entry) in file order, ``refused`` (index, entry, why)."""

    path: Path
    usable: list[tuple[int, dict]]
    refused: list[tuple[int, Any, V.Problem]] = field(default_factory=list)

    def by_image(self) -> dict[int, list[tuple[int, dict]]]:
        """{image id: [(index, entry)]} of the usable entries, file order kept."""
        out: dict[int, list[tuple[int, dict]]] = {}
        for k, d in self.usable:
            out.setdefault(d["image_id"], []).append((k, d))
        return out


@dataclass
class CheckedDetections:
    """The detections of one dataset: ``by_image`` usable ones, ``refused`` (index, entry, why) on
    that dataset's images, ``other_images`` (index, image id) of entries naming unlisted images."""

    by_image: dict[int, list[tuple[int, dict]]]
    refused: list[tuple[int, dict, V.Problem]]
    other_images: list[tuple[int, int]]


def read_detections(path: str | Path) -> Detections:
    """The file's entries, each usable or refused with its reason.

    ``ConfigError`` naming the file when it is absent, not JSON, not a list, or holds entries of
    which none is usable (a wrong file, not a few bad lines).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--boxes {path}: no such file (give a COCO results JSON, or 'gt')")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--boxes {path}: not valid JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ConfigError(f"--boxes {path}: expected a list of detections (COCO results format)")
    dets = Detections(path, [])
    for k, d in enumerate(entries):
        bad = V.detection_problem(d)
        if bad:
            dets.refused.append((k, d, bad))
        else:
            dets.usable.append((k, d))
    if entries and not dets.usable:
        k, _, bad = dets.refused[0]
        raise ConfigError(f"--boxes {path}: entry {k} {bad.text} (and no entry of the file is usable)")
    return dets


def check_detections(dets: Detections, sizes: Mapping[int, tuple[int, int]],
                     category_ids: Collection | None) -> CheckedDetections:
    """``dets`` against a dataset's images (``sizes``: {image id: (height, width)}) and categories
    (None: not checked)."""
    out = CheckedDetections({}, [], [])
    for k, d in dets.usable:
        size = sizes.get(d["image_id"])
        if size is None:
            out.other_images.append((k, d["image_id"]))
            continue
        bad = V.detection_image_problem(d, size[0], size[1], category_ids)
        if bad:
            out.refused.append((k, d, bad))
        else:
            out.by_image.setdefault(d["image_id"], []).append((k, d))
    return out


def detection_skips(dets: Detections, checked: CheckedDetections, dataset: str) -> list[dict]:
    """``Dataset.missing`` entries for every refused entry, and one for the entries of other images."""
    where = f"--boxes {dets.path}"
    skips = [{"item": f"#det{k}", "reason": f"{where}: detection {k}: {bad.text}"} for k, _, bad in dets.refused]
    skips += [{"item": f"{d['image_id']}#det{k}", "reason": f"{where}: detection {k} (image {d['image_id']}): "
               f"{bad.text}"} for k, d, bad in checked.refused]
    if checked.other_images:
        ids = sorted({i for _, i in checked.other_images})
        skips.append({"item": "#det:other_images",
                      "reason": f"{where}: {len(checked.other_images)} detections name {len(ids)} image ids that "
                                f"{dataset} does not list (e.g. {', '.join(map(str, ids[:EXAMPLES]))}); not used"})
    return skips


def detection_counts(dets: Detections, checked: CheckedDetections, image_ids: Collection) -> dict:
    """{"used": usable entries of ``image_ids``, "left_out": refused entries, "other_images": entries
    for images the dataset does not list, "reasons": {code: n}} for results.json."""
    keep = set(image_ids)
    return {"used": sum(len(checked.by_image.get(i, [])) for i in keep),
            "left_out": len(dets.refused) + len(checked.refused), "other_images": len(checked.other_images),
            "reasons": V.count_codes(p.code for *_, p in dets.refused + checked.refused)}
