"""pycocotools ``COCOeval`` and lvis ``LVISEval``, wrapped once: silent, named keys in percent.

Inputs are plain data: ground truth as a COCO/LVIS-style dict (or the path of its JSON), results
as a list of COCO results dicts (``image_id``, ``category_id``, ``segmentation`` as compressed
RLE, ``score``). Outputs are ``{key: percent}``; a metric with nothing to measure (no results, no
ground truth in that area range or frequency group) is NaN, never -1 and never a crash.

Mask AP (instance segmentation)
    ``coco_mask_ap``: ``COCOeval(iouType="segm")``, ``maxDets=[1, 10, max_dets]``; keys ``ap``,
    ``ap50``, ``ap75``, ``ap_small``, ``ap_medium``, ``ap_large`` = ``summarize``'s ``stats[0:6]``
    (read from ``eval["precision"]`` at ``max_dets``, which ``stats[0]`` ignores unless it is 100).
    ``lvis_mask_ap``: ``LVISEval(iou_type="segm")`` on ``LVISResults(max_dets=max_dets)`` (the LVIS
    federated rules: negative and not-exhaustive categories); adds ``ap_rare``, ``ap_common``,
    ``ap_frequent``. A ``bbox`` field in the results is dropped first, so small/medium/large use the
    mask area (both APIs would otherwise take the box area, as detectron2 also notes).

Class-agnostic mask AR (object proposals), ``mask_ar``
    ``COCOeval(iouType="segm")`` with ``params.useCats = 0``, every ground-truth and proposal
    category mapped to one (id 1), ``params.maxDets = [max_dets]``, ``params.areaRng`` as COCO (all,
    small < 32^2, medium < 96^2, large). AR = the mean over IoU 0.50:0.95 of
    ``eval["recall"][:, 0, area, 0]`` (what ``summarize`` averages). ``LVISEval`` is not used for AR:
    its ``use_cats = 0`` path reads the wrong key (``_gts[img, -1]``) and finds no ground truth; on
    one merged category both agree (tests check it), since LVIS's federated rules only excuse false
    positives, which recall never counts.

    Frequency groups (``groups``): for group g, the ground truth is restricted to the annotations
    whose category is in g (the others are removed, images kept) and the same proposals are
    evaluated again. Removing and ignoring the other annotations give the same recall: a proposal
    that would match an ignored annotation matches no counted one at that threshold.

    ``ious``: the mask IoUs may be given instead of segmentations, ``{image_id: {(proposal id,
    annotation id): IoU}}`` (pairs below 0.5 may be left out: no threshold matches them). They
    are ``pycocotools.mask.iou`` values (``sparse_ious``), so the evaluator's matching and
    accumulation run unchanged on exactly the numbers it would compute itself.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

import numpy as np

if TYPE_CHECKING:  # pycocotools loads on first use, not for --help
    from pycocotools.cocoeval import COCOeval

COCO_AP_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")  # COCOeval.stats[0:6]
LVIS_AP_KEYS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small", "APm": "ap_medium",
                "APl": "ap_large", "APr": "ap_rare", "APc": "ap_common", "APf": "ap_frequent"}
AREAS = ("all", "small", "medium", "large")  # COCOeval.params.areaRngLbl order
FREQUENCY_GROUPS = {"frequent": "f", "common": "c", "rare": "r"}
MIN_IOU = 0.5  # the lowest IoU threshold: smaller IoUs never match


def ar_keys(max_dets: int = 1000, groups: Iterable[str] = ()) -> list[str]:
    """``ar1000``, ``ar1000_small``, ..., then one per group (``ar1000_frequent``, ...)."""
    base = f"ar{max_dets}"
    return [base] + [f"{base}_{a}" for a in AREAS[1:]] + [f"{base}_{g}" for g in groups]


@contextlib.contextmanager
def _silent() -> Iterator[None]:
    """Mute pycocotools' prints and the lvis API's logging and warnings."""
    lv = logging.getLogger("lvis")
    old = lv.level
    lv.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        lv.setLevel(old)


def load_gt(gt: Mapping | str | Path) -> dict:
    """The ground truth read from its JSON path, or a copy of the dict (the APIs write into
    annotations: each is copied, the caller's stay as they were)."""
    if isinstance(gt, (str, Path)):
        with open(gt, "rb") as fh:
            return json.load(fh)
    return {**gt, "annotations": [dict(a) for a in gt["annotations"]]}


def _coco(data: dict):
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = data
    with _silent():
        api.createIndex()
    return api


def _percent(v: float) -> float:
    v = float(v)
    return float("nan") if v < 0 or math.isnan(v) else 100.0 * v


def _clean_results(results: Iterable[Mapping]) -> list[dict]:
    """Copies (the APIs write into them) without ``bbox``, so areas come from the masks."""
    return [{k: v for k, v in r.items() if k not in ("bbox", "id", "area")} for r in results]


def top_per_image(results: list[dict], max_dets: int) -> list[dict]:
    """At most ``max_dets`` results per image, the highest scores (stable for ties)."""
    by_img: dict = {}
    for r in results:
        by_img.setdefault(r["image_id"], []).append(r)
    out = []
    for rs in by_img.values():
        out += sorted(rs, key=lambda r: -r["score"])[:max_dets]
    return out


def _image_ids(gt: dict, image_ids: Iterable | None) -> list:
    return sorted({img["id"] for img in gt["images"]} if image_ids is None else set(image_ids))


def coco_mask_ap(gt: Mapping | str | Path, results: list[dict], *, image_ids: Iterable | None = None,
                 max_dets: int = 100, kept: list | None = None) -> dict[str, float]:
    """COCO mask AP (percent) over ``image_ids`` (default: every image of ``gt``).

    ``max_dets``: results kept per image, highest scores first (COCO: 100). ``kept``: a list the
    evaluated ``COCOeval`` is appended to (its per-image matches resample: ``coco_resample``).
    """
    gt = load_gt(gt)
    for a in gt["annotations"]:
        a.setdefault("iscrowd", 0)  # COCO's default; COCOeval would raise KeyError after all the compute
    ids = _image_ids(gt, image_ids)
    keep = set(ids)
    results = top_per_image([r for r in _clean_results(results) if r["image_id"] in keep], max_dets)
    if not results or not ids:
        return {k: float("nan") for k in COCO_AP_KEYS}
    from pycocotools.cocoeval import COCOeval

    coco_gt = _coco(gt)
    with _silent():
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.imgIds = ids
        ev.params.maxDets = sorted({1, 10, max_dets})
        ev.evaluate()
        ev.accumulate()
    if kept is not None:
        kept.append(ev)
    return _coco_ap_summary(ev)


def _mean_valid(x: np.ndarray) -> float:
    """``summarize``'s reduction: the mean of the entries > -1 (percent), NaN when there are none."""
    v = x[x > -1]
    return float(np.mean(v)) * 100.0 if v.size else float("nan")


def _coco_ap_summary(ev: COCOeval) -> dict[str, float]:
    """``stats[0:6]`` of ``summarize`` at the largest maxDets, read from ``eval["precision"]``
    (T, R, K, A, M); ``summarize`` itself hard-codes 100 for ``stats[0]``."""
    prec = ev.eval["precision"][..., -1]  # (T, R, K, A) at maxDets[-1]
    thr = ev.params.iouThrs
    at = lambda t: prec[np.flatnonzero(np.isclose(thr, t))]
    return {"ap": _mean_valid(prec[..., 0]), "ap50": _mean_valid(at(0.5)[..., 0]), "ap75": _mean_valid(at(0.75)[..., 0]),
            "ap_small": _mean_valid(prec[..., 1]), "ap_medium": _mean_valid(prec[..., 2]),
            "ap_large": _mean_valid(prec[..., 3])}


def lvis_mask_ap(gt: Mapping | str | Path, results: list[dict], *, image_ids: Iterable | None = None,
                 max_dets: int = 300, kept: list | None = None) -> dict[str, float]:
    """LVIS mask AP (percent) with the federated rules, over ``image_ids`` (default: all images).

    ``max_dets``: results kept per image (LVIS: 300). ``kept``: a list the evaluated ``LVISEval`` is
    appended to.
    """
    from sam_bench.data.lvis import lvis_api, lvis_from_dict

    api = lvis_api()
    gt = load_gt(gt)
    ids = _image_ids(gt, image_ids)
    keep = set(ids)
    results = [r for r in _clean_results(results) if r["image_id"] in keep]
    if not results or not ids:
        return {k: float("nan") for k in LVIS_AP_KEYS.values()}
    with _silent():
        lvis_gt = lvis_from_dict(gt)
        lvis_dt = api.LVISResults(lvis_gt, results, max_dets=max_dets)
        ev = api.LVISEval(lvis_gt, lvis_dt, iou_type="segm")
        ev.params.img_ids = ids
        ev.params.max_dets = max_dets
        ev.run()
    if kept is not None:
        kept.append(ev)
    res = ev.get_results()
    return {ours: _percent(res[theirs]) for theirs, ours in LVIS_AP_KEYS.items()}


def agnostic_gt(gt: dict, keep_categories: Iterable | None = None, image_ids: Iterable | None = None) -> dict:
    """``gt`` with every category merged into one (id 1); only ``keep_categories``' annotations kept."""
    keep = None if keep_categories is None else set(keep_categories)
    imgs = None if image_ids is None else set(image_ids)
    anns = []
    for a in gt["annotations"]:
        if (keep is None or a["category_id"] in keep) and (imgs is None or a["image_id"] in imgs):
            anns.append({**a, "category_id": 1, "iscrowd": int(a.get("iscrowd", 0))})  # LVIS has no iscrowd
    images = gt["images"] if imgs is None else [im for im in gt["images"] if im["id"] in imgs]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}


@functools.lru_cache(maxsize=None)
def _given_iou_class() -> type:
    """``_GivenIoU``, defined on first use so importing this module does not import pycocotools."""
    from pycocotools.cocoeval import COCOeval

    class _GivenIoU(COCOeval):
        """COCOeval whose mask IoUs are looked up in ``ious`` instead of computed from segmentations.

        ``computeIoU`` returns the same (D, G) matrix as the original: proposals by descending score
        (stable), at most ``maxDets[-1]``, ground truth in evaluator order; absent pairs are 0.
        """

        def __init__(self, coco_gt, coco_dt, ious: Mapping):
            super().__init__(coco_gt, coco_dt, "bbox")  # "bbox": skips rasterising; IoUs are given
            self._given = ious

        def computeIoU(self, imgId, catId):
            p = self.params
            cats = [catId] if p.useCats else p.catIds
            gt = [g for c in cats for g in self._gts[imgId, c]]
            dt = [d for c in cats for d in self._dts[imgId, c]]
            if not gt or not dt:
                return []
            order = np.argsort([-d["score"] for d in dt], kind="mergesort")[: p.maxDets[-1]]
            table = self._given.get(imgId, {})
            return np.array([[table.get((dt[i]["id"], g["id"]), 0.0) for g in gt] for i in order], dtype=np.float64)

    return _GivenIoU


def _ar_once(gt: dict, proposals: list[dict], ids: list, max_dets: int, ious: Mapping | None,
             keep: list | None = None) -> list[float]:
    """[AR all, small, medium, large] in percent for one (already class-agnostic) ground truth."""
    if not ids or not gt["annotations"]:
        return [float("nan")] * 4
    from pycocotools.cocoeval import COCOeval

    coco_gt = _coco(gt)
    with _silent():
        if ious is None:
            coco_dt = coco_gt.loadRes([dict(p) for p in proposals]) if proposals else \
                _coco({**gt, "annotations": []})  # loadRes writes into its input; it is reused per group
            ev = COCOeval(coco_gt, coco_dt, "segm")
        else:
            coco_dt = _coco({"images": gt["images"], "categories": gt["categories"], "annotations": proposals})
            ev = _given_iou_class()(coco_gt, coco_dt, ious)
        ev.params.imgIds = ids
        ev.params.useCats = 0
        ev.params.maxDets = [max_dets]
        ev.evaluate()
        ev.accumulate()
    if keep is not None:
        keep.append(ev)
    recall = ev.eval["recall"][:, 0, :, 0]  # (T, A)
    return [_mean_valid(recall[:, a]) for a in range(len(AREAS))]


def mask_ar(gt: Mapping | str | Path, proposals: list[dict], *, image_ids: Iterable | None = None,
            max_dets: int = 1000, groups: Mapping[str, Iterable] | None = None,
            ious: Mapping | None = None, kept: dict | None = None) -> dict[str, float]:
    """Class-agnostic mask AR@``max_dets`` (percent) with size and category-group breakdowns.

    ``proposals``: ``{"image_id", "score", "segmentation"}`` (with ``ious``: ``{"id", "image_id",
    "score", "area"}``, segmentation not needed). ``groups``: ``{name: category ids}``, each adding
    ``ar{max_dets}_{name}`` computed on the ground truth restricted to those categories. ``kept``: a
    dict given ``{"": COCOeval of all, name: COCOeval of group}`` (what ``coco_resample`` reweights).
    """
    gt = load_gt(gt)
    ids = _image_ids(gt, image_ids)
    wanted = set(ids)
    props = [{**p, "category_id": 1} for p in _clean_results(proposals) if p["image_id"] in wanted] \
        if ious is None else [{**p, "category_id": 1} for p in proposals if p["image_id"] in wanted]
    keys = ar_keys(max_dets)
    evs: list = []
    out = dict(zip(keys, _ar_once(agnostic_gt(gt, image_ids=wanted), props, ids, max_dets, ious, evs)))
    found = {"": evs[-1]} if evs else {}
    for name, cats in (groups or {}).items():
        out[f"{keys[0]}_{name}"] = _ar_once(agnostic_gt(gt, cats, wanted), props, ids, max_dets, ious, evs)[0]
        if len(evs) > len(found):
            found[name] = evs[-1]
    if kept is not None:
        kept.update(found)  # a group without annotations has no evaluator (its AR is NaN)
    return out


def frequency_groups(categories: Mapping[int, Mapping]) -> dict[str, set]:
    """LVIS ``{"frequent": ids with frequency "f", "common": "c", "rare": "r"}``; {} without frequencies."""
    if not any("frequency" in c for c in categories.values()):
        return {}
    return {name: {cid for cid, c in categories.items() if c.get("frequency") == f}
            for name, f in FREQUENCY_GROUPS.items()}


def sparse_ious(dt_rles: list[dict], gt_rles: list[dict], iscrowd: list[bool],
                min_iou: float = MIN_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mask IoUs >= ``min_iou`` between D proposals and G annotations, as COCOeval computes them.

    ``pycocotools.mask.iou`` (crowd annotations: intersection over the proposal's area).
    Returns (dt index, gt index, IoU) arrays of equal length.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if not dt_rles or not gt_rles:
        return empty
    as_bytes = lambda r: {"size": r["size"], "counts": r["counts"].encode() if isinstance(r["counts"], str)
                          else r["counts"]}
    from pycocotools import mask as mask_utils

    m = np.asarray(mask_utils.iou([as_bytes(r) for r in dt_rles], [as_bytes(r) for r in gt_rles],
                                  [int(c) for c in iscrowd]), dtype=np.float64).reshape(len(dt_rles), len(gt_rles))
    d, g = np.nonzero(m >= min_iou)
    return d, g, m[d, g]



def rle_encode(masks) -> list[dict]:
    """(K, H, W) bool masks (torch, any device, or numpy) -> K compressed RLEs with str counts.

    The transpose to pycocotools' column-major layout happens on the masks' device, so a GPU
    does it; about 0.4 s for 1000 masks of 640x480 on one CPU core.
    """
    import torch
    from pycocotools import mask as mask_utils

    if not torch.is_tensor(masks):
        masks = torch.from_numpy(np.asarray(masks, dtype=bool))
    if masks.ndim != 3:
        raise ValueError(f"rle_encode takes (K, H, W) masks, got shape {tuple(masks.shape)}")
    if masks.shape[0] == 0:
        return []
    cols = masks.to(torch.bool).permute(0, 2, 1).contiguous().cpu().numpy()  # (K, W, H)
    rles = mask_utils.encode(cols.transpose(2, 1, 0).view(np.uint8))  # (H, W, K) Fortran order
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def mask_ious(masks, gt_masks, iscrowd, chunk: int = 64) -> np.ndarray:
    """(K, G) float64 IoUs of (K, H, W) bool proposals with (G, H, W) bool annotations, equal to
    ``pycocotools.mask.iou`` (crowd: intersection over the proposal's area) without RLE-encoding.

    Pixel counts are exact integers, divided in float64 as pycocotools does. On CUDA the
    intersections are a float32 matrix product (0/1 products: exact below 2^24 pixels), ``chunk``
    proposals at a time; on CPU each annotation's pixels are counted inside its tight box only.
    """
    import torch

    masks = torch.as_tensor(masks)
    k, g = masks.shape[0], len(gt_masks)
    if k == 0 or g == 0:
        return np.zeros((k, g))
    gt = torch.as_tensor(gt_masks, device=masks.device).to(torch.bool)
    if masks.shape[1:] != gt.shape[1:]:
        raise ValueError(f"proposals are {tuple(masks.shape[1:])} but annotations {tuple(gt.shape[1:])} (H, W)")
    if masks.is_cuda:
        if masks.shape[1] * masks.shape[2] >= 2 ** 24:
            raise ValueError("images of 2^24 pixels or more: float32 pixel counts would not be exact")
        gf = gt.reshape(g, -1).to(torch.float32)
        inter = torch.cat([masks[s:s + chunk].reshape(-1, gf.shape[1]).to(torch.float32) @ gf.T
                           for s in range(0, k, chunk)]).double().cpu().numpy()
        a = masks.reshape(k, -1).sum(1, dtype=torch.float64).cpu().numpy()
        b = gf.sum(1, dtype=torch.float64).cpu().numpy()
    else:
        m, gn = masks.numpy().astype(bool, copy=False), gt.numpy()
        a = np.count_nonzero(m.reshape(k, -1), axis=1).astype(np.float64)
        b = np.count_nonzero(gn.reshape(g, -1), axis=1).astype(np.float64)
        inter = np.zeros((k, g))
        for j in np.flatnonzero(b):
            ys, xs = np.flatnonzero(gn[j].any(1)), np.flatnonzero(gn[j].any(0))
            box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
            both = m[(slice(None),) + box] & gn[j][box]
            inter[:, j] = np.count_nonzero(both.reshape(k, -1), axis=1)
    a, b = a[:, None], b[None, :]
    union = np.where(np.asarray(iscrowd, bool)[None, :], a, a + b - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)
