"""What each task's gallery shows: the units of a record (an object, an image, an expression), the
score they are ranked by, their caption, and how one is drawn from the record and the loaded sample.

A view is a pair: ``units(item, record, ctx)`` from the record alone (``items.jsonl``, with its
``prediction``), and ``draw(unit, record, sample, ctx)`` -> a Pillow image through
``sam_bench.reports.draw``. ``ctx`` holds per-dataset facts: the opened ``dataset`` (instances
score against its ground truth), ``ods_threshold``, ``thresholds``, ``thinning``. Choosing, loading
and writing are ``sam_bench.reports.gallery``'s. A task without a view gets no gallery (the page
says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sam_bench.reports import draw

PROPOSALS_SHOWN = 20


@dataclass
class Unit:
    """One gallery entry: ``key`` finds it again in its record; ``score`` ranks it (lowest = worst)."""

    item: str
    key: Any
    score: float
    caption: str


def _decode(rle: dict) -> np.ndarray:
    from sam_bench.data.masks import decode

    return decode(rle).astype(bool)


def _instance(sample, inst_id):
    return next((i for i in sample.instances if i.id == inst_id), None)


# -- single point: one unit per object ----------------------------------------------------------
def single_point_units(item: str, record: dict, ctx: dict) -> list[Unit]:
    saved = {m["id"] for m in (record.get("prediction") or {}).get("masks", [])}
    out = []
    for o in record.get("objects", []):
        if o["id"] in saved and o.get("ious"):
            n = len(o["clicks"])
            out.append(Unit(item, o["id"], o["ious"][0], f"{item} / object {o['id']}: IoU {100 * o['ious'][0]:.1f} "
                            f"after 1 click, {100 * o['ious'][-1]:.1f} after {n}"))
    return out


def single_point_draw(unit: Unit, record: dict, sample, ctx: dict):
    obj = next(o for o in record["objects"] if o["id"] == unit.key)
    pm = next(m for m in record["prediction"]["masks"] if m["id"] == unit.key)
    inst = _instance(sample, unit.key)
    gt = [inst.mask()] if inst is not None else []
    first = draw.overlay(sample.image, gt=gt, pred=[_decode(pm["first"])], clicks=obj["clicks"][:1],
                         text="after click 1", max_side=256)
    last = draw.overlay(sample.image, gt=gt, pred=[_decode(pm["last"])], clicks=obj["clicks"],
                        text=f"after click {len(obj['clicks'])}", max_side=256)
    return draw.side_by_side([np.asarray(first), np.asarray(last)], max_side=256)


# -- instances: one unit per image ----------------------------------------------------------------
def _best_ious(pred_rles: list[dict], gt_rles: list[dict], crowd: list[bool]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if not pred_rles or not gt_rles:
        return np.zeros(len(pred_rles))
    as_bytes = [{"size": r["size"], "counts": r["counts"].encode() if isinstance(r["counts"], str) else r["counts"]}
                for r in pred_rles]
    gts = [{"size": r["size"], "counts": r["counts"].encode() if isinstance(r["counts"], str) else r["counts"]}
           for r in gt_rles]
    return np.asarray(mask_utils.iou(as_bytes, gts, [int(c) for c in crowd])).max(axis=1)


def _gt_index(ctx: dict) -> dict:
    """{image id: [(RLE, crowd)]} of the context's dataset ground truth, built once per dataset."""
    if "gt_index" not in ctx:
        from sam_bench.data.masks import to_rle

        from sam_bench.metrics.coco_eval import load_gt

        ds, index = ctx.get("dataset"), {}
        gt = None if ds is None else ds.gt.data if ds.gt is not None else load_gt(ds.gt_json) if ds.gt_json else None
        if gt is not None:
            sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in gt["images"]}
            for a in gt["annotations"]:
                if a["image_id"] in sizes:
                    index.setdefault(a["image_id"], []).append((to_rle(a["segmentation"], *sizes[a["image_id"]]),
                                                                bool(a.get("iscrowd"))))
        ctx["gt_index"] = index
    return ctx["gt_index"]


def instances_units(item: str, record: dict, ctx: dict) -> list[Unit]:
    res = record.get("results", [])
    if "prediction" not in record:
        return []
    gts = _gt_index(ctx).get(record.get("image_id"))
    if not gts:
        return [Unit(item, None, 0.0, f"{item}: {len(res)} masks from boxes")]
    best = _best_ious([r["segmentation"] for r in res], [g for g, _ in gts], [c for _, c in gts])
    score = float(best.mean()) if len(best) else 0.0
    return [Unit(item, None, score, f"{item}: {len(res)} masks from boxes; mean IoU with the best-matching "
                 f"ground truth {100 * score:.1f}")]


def instances_draw(unit: Unit, record: dict, sample, ctx: dict):
    res = record.get("results", [])
    preds = [_decode(r["segmentation"]) for r in res]
    return draw.overlay(sample.image, gt=[i.mask() for i in sample.instances if not i.iscrowd], pred=preds,
                        colours=draw.palette(len(preds)), boxes=record["prediction"].get("boxes", []))


# -- proposals: one unit per image ----------------------------------------------------------------
def proposals_units(item: str, record: dict, ctx: dict) -> list[Unit]:
    if "prediction" not in record:
        return []
    n_gt = sum(1 for g in record.get("gt", []) if not g[3])
    best: dict[int, float] = {}
    for _, g, v in record.get("matches", []):
        best[g] = max(best.get(g, 0.0), v)
    found = sum(1 for g, (_, _, _, crowd) in enumerate(record.get("gt", [])) if not crowd and best.get(g, 0) >= 0.5)
    recall = found / n_gt if n_gt else 1.0
    return [Unit(item, None, recall, f"{item}: {found} of {n_gt} objects found at IoU 0.5 among "
                 f"{record.get('num_proposals', 0)} proposals; top {PROPOSALS_SHOWN} shown")]


def proposals_draw(unit: Unit, record: dict, sample, ctx: dict):
    masks = [_decode(r) for r in record["prediction"]["masks"][:PROPOSALS_SHOWN]]
    return draw.overlay(sample.image, gt=[i.mask() for i in sample.instances if not i.iscrowd],
                        pred=masks[::-1], colours=draw.palette(len(masks))[::-1])  # best drawn last, on top


# -- edges: one unit per image ----------------------------------------------------------------------
def edges_units(item: str, record: dict, ctx: dict) -> list[Unit]:
    if "prediction" not in record:
        return []
    return [Unit(item, None, float(record.get("f", 0.0)), f"{item}: best F {record.get('f', 0):.3f} on this image "
                 f"(threshold {record.get('threshold', 0):.2f}); ours at the dataset's ODS threshold")]


def edges_draw(unit: Unit, record: dict, sample, ctx: dict):
    from sam_bench.tasks.edges import ods_map

    thr = ctx.get("ods_threshold")
    thr = record.get("threshold", 0.5) if thr is None or thr != thr else thr
    ours = ods_map(record["prediction"]["levels_png"], thr, ctx.get("thresholds", 99),
                   ctx.get("thinning", True))
    s = draw.scale_for(sample.image.shape, 256)
    human = draw.boundary_map([draw.thicken(b, s) for b in sample.boundaries]) if sample.boundaries else \
        np.full_like(sample.image, 255)
    return draw.side_by_side([sample.image, human, draw.edge_panel(draw.thicken(ours, s))], max_side=256)


# -- text to mask: one unit per expression ------------------------------------------------------------
def text_units(item: str, record: dict, ctx: dict) -> list[Unit]:
    if "prediction" not in record:
        return []
    return [Unit(item, k, float(e["iou"]), f"{item}: \u201c{e['text']}\u201d IoU {100 * e['iou']:.1f} "
                 f"(prompt: {e['prompt']})") for k, e in enumerate(record.get("expressions", []))]


def text_draw(unit: Unit, record: dict, sample, ctx: dict):
    e = record["expressions"][unit.key]
    pred = record["prediction"]
    inst = _instance(sample, e["instance"])
    return draw.overlay(sample.image, gt=[inst.mask()] if inst is not None else [],
                        pred=[_decode(pred["masks"][unit.key])], boxes=[pred["boxes"][unit.key]], text=e["text"])


VIEWS: dict[str, tuple[Callable, Callable]] = {
    "single-point": (single_point_units, single_point_draw),
    "instances": (instances_units, instances_draw),
    "proposals": (proposals_units, proposals_draw),
    "edges": (edges_units, edges_draw),
    "text-to-mask": (text_units, text_draw),
}
