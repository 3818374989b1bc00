"""Instance segmentation from boxes: mask AP on COCO / LVIS (paper section 7.4, Table 5).

Each box of an image (a detector's, from a COCO results file, or the ground truth's) prompts
the model. Per chunk of boxes (the model's prompt batch): one multimask call, the mask with the
highest predicted IoU, then one refinement call feeding that mask's low-res logits and the box
back for a single mask (``--no-refine`` skips it). Score = detector score (ground-truth boxes:
1.0); category = the box's. The record of an image is its COCO results (compressed RLE), scored
by pycocotools' COCOeval or the lvis LVISEval by ``Dataset.format`` against the dataset's
annotation file, restricted to the evaluated images. ``outputs`` also writes every dataset's
results as ``segm_results.<dataset>.json`` for other tools.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.metrics.coco_eval import coco_mask_ap, load_gt, lvis_mask_ap, rle_encode
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

DEFAULTS = {"boxes": "gt", "max_dets": None, "refine": True}
MAX_DETS = {"coco": 100, "lvis": 300}  # the benchmarks' own per-image limits
TABLE5 = {"AP": "ap", "APs": "ap_small", "APm": "ap_medium", "APl": "ap_large"}


def load_detections(path: str | Path) -> dict[int, list[dict]]:
    """{image_id: detections} from a COCO results JSON (image_id, category_id, bbox XYWH, score)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--boxes {path}: no such file (give a COCO results JSON, or 'gt')")
    try:
        dets = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--boxes {path}: not valid JSON ({exc})") from None
    if not isinstance(dets, list):
        raise ConfigError(f"--boxes {path}: expected a list of detections (COCO results format)")
    out: dict[int, list[dict]] = {}
    for k, d in enumerate(dets):
        if not isinstance(d, dict) or any(key not in d for key in ("image_id", "category_id", "bbox", "score")):
            raise ConfigError(f"--boxes {path}: entry {k} lacks image_id, category_id, bbox or score")
        if len(d["bbox"]) != 4 or d["bbox"][2] < 0 or d["bbox"][3] < 0:
            raise ConfigError(f"--boxes {path}: entry {k} has bbox {d['bbox']}; want [x, y, w, h] with w, h >= 0")
        out.setdefault(d["image_id"], []).append(d)
    return out


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(B, 4) XYWH -> XYXY, pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)


class InstancesTask(Task):
    name = "instances"
    description = "instance segmentation from detector (or ground-truth) boxes: COCO / LVIS mask AP (paper Table 5)"
    model_kinds = ("promptable",)
    default_datasets = ("COCO",)

    def __init__(self, **config):
        super().__init__(**{**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k not in DEFAULTS}})
        c = self.config
        if c["max_dets"] is not None and c["max_dets"] < 1:
            raise ConfigError(f"--max-dets must be positive, got {c['max_dets']}")
        self._detections: dict | None = None
        if c["boxes"] != "gt":
            self._detections = load_detections(c["boxes"])
            c["boxes"] = str(Path(c["boxes"]).resolve())

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        p.add_argument("--boxes", default=DEFAULTS["boxes"], metavar="gt|PATH.json",
                       help="box prompts: 'gt' (ground-truth boxes, score 1; an upper bound) or a detector's "
                            "results in COCO results format, e.g. the ViTDet-H files the paper used")
        p.add_argument("--max-dets", type=int, default=None,
                       help="boxes prompted and masks scored per image, highest detector scores first "
                            "(default: 100 for COCO, 300 for LVIS, the benchmarks' limits)")
        p.add_argument("--no-refine", dest="refine", action="store_false", default=DEFAULTS["refine"],
                       help="skip the refinement pass (the best of the 3 masks is final)")

    def _limit(self, fmt: str | None = None) -> int:
        return self.config["max_dets"] or MAX_DETS.get(fmt or "", max(MAX_DETS.values()))

    def boxes_for(self, item: Item, sample: Sample) -> tuple[np.ndarray, list, list[float]]:
        """(B, 4) XYXY boxes, categories, scores for one image, best score first, at most max-dets."""
        if self._detections is None:
            insts = [i for i in sample.instances if not i.iscrowd]
            if any(i.bbox is None or i.category_id is None for i in insts):
                raise BadInput(f"{item.id}: --boxes gt needs a bbox and category on every annotation")
            boxes = xywh_to_xyxy([i.bbox for i in insts])
            return boxes, [i.category_id for i in insts], [1.0] * len(insts)
        dets = sorted(self._detections.get(item.image_id, []), key=lambda d: -d["score"])[: self._limit()]
        return xywh_to_xyxy([d["bbox"] for d in dets]), [d["category_id"] for d in dets], \
            [float(d["score"]) for d in dets]

    def segment(self, model, boxes: np.ndarray) -> list[dict]:
        """RLEs for (B, 4) XYXY boxes on the model's current image, 64 boxes (or the model's prompt
        batch, when larger) per predict call; the model splits them into its own decoder batches."""
        rles: list[dict] = []
        chunk = max(64, getattr(model, "prompt_batch", None) or 0)
        for s in range(0, len(boxes), chunk):
            b = torch.as_tensor(boxes[s:s + chunk], dtype=torch.float32)
            pred = model.predict(boxes=b, multimask=True).best()
            if self.config["refine"]:
                pred = model.predict(boxes=b, mask_input=pred.low_res_logits, multimask=False)
            rles += rle_encode(pred.masks[:, 0])
        return rles

    def process(self, model, item: Item, sample: Sample) -> dict:
        if item.image_id is None:
            raise BadInput(f"{item.id}: no COCO/LVIS image id, so its masks cannot be scored against the annotations")
        boxes, cats, scores = self.boxes_for(item, sample)
        h, w = sample.image.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])  # detector boxes may reach past the border
        rles = self.segment(model, boxes) if len(boxes) else []
        return {"image_id": item.image_id,
                "results": [{"image_id": item.image_id, "category_id": c, "segmentation": r, "score": s}
                            for c, r, s in zip(cats, rles, scores)]}

    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        ids = [r["image_id"] for r in records]
        results = [res for r in records for res in r["results"]]
        if self._detections is not None and not results:
            log.warning("%s: no detection of %s names an evaluated image id", dataset.name, self.config["boxes"])
        gt = ground_truth(dataset, ids)
        limit = self._limit(dataset.format)
        if dataset.format == "lvis":
            return lvis_mask_ap(gt, results, image_ids=ids, max_dets=limit)
        return coco_mask_ap(gt, results, image_ids=ids, max_dets=limit)

    def outputs(self, results: dict, out_dir: Path) -> list[Path]:
        """Table 5 (paper rows beside ours) and each dataset's COCO results file."""
        from sam_bench.presets import paper_rows
        from sam_bench.reports.tables import write_table
        from sam_bench.results import atomic_write_text, dumps, merge_items

        out_dir = Path(out_dir)
        written = []
        lines = merge_items(sorted(out_dir.glob("items*.jsonl")))
        for name in results["datasets"]:
            segm = [res for ln in lines if ln["dataset"] == name and ln["status"] == "ok"
                    for res in ln["record"]["results"]]
            path = out_dir / f"segm_results.{_slug(name)}.json"
            atomic_write_text(path, dumps(segm))
            written.append(path)
        rows = {}
        for preset, bench in (("instances_coco", "COCO"), ("instances_lvis", "LVIS")):
            try:
                for r in paper_rows(preset):
                    row = rows.setdefault(r["method"], {"method": r["method"], "boxes": "ViTDet-H (paper)"})
                    row.update({f"{bench} {col}": r.get(key, math.nan) for col, key in TABLE5.items()})
            except ConfigError:
                continue
        table = list(rows.values())
        boxes = "ground truth" if self.config["boxes"] == "gt" else Path(self.config["boxes"]).name
        label = results["model"]["name"] + (" (untrained)" if results.get("untrained") else "")
        for name, ds in results["datasets"].items():
            m = ds["metrics"]
            bench = "LVIS" if "ap_frequent" in m else "COCO"
            table.append({"method": f"{label} on {name} ({ds['num_items']} images)", "boxes": boxes,
                          **{f"{bench} {col}": m.get(key, math.nan) for col, key in TABLE5.items()}})
        df = pd.DataFrame(table)
        cols = ["method", "boxes"] + [f"{b} {c}" for b in ("COCO", "LVIS") for c in TABLE5]
        df = df.reindex(columns=cols)
        df = df.astype(object).where(df.notna(), None)  # write_table's Markdown prints NaN as 'nan'; None as '-'
        written += write_table(df, out_dir, "table5_instances",
                               caption="Instance segmentation from boxes, mask AP (paper Table 5)")
        return written


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def ground_truth(dataset: Dataset, image_ids: list) -> dict:
    """The dataset's annotation file restricted to ``image_ids`` (or, without a file, the items' instances)."""
    keep = set(image_ids)
    if dataset.gt_json is not None:
        gt = load_gt(dataset.gt_json)
        return {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
                "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    images, anns = [], []
    for item in dataset.items:
        if item.image_id not in keep:
            continue
        sample = item.load()
        h, w = sample.image.shape[:2]
        images.append({"id": item.image_id, "height": h, "width": w})
        anns += [{"id": len(anns) + 1, "image_id": item.image_id, "category_id": i.category_id, "segmentation": i.rle,
                  "area": i.area, "bbox": i.bbox, "iscrowd": int(i.iscrowd)} for i in sample.instances]
    cats = [{"id": cid, **meta} for cid, meta in dataset.categories.items()] or \
        [{"id": c} for c in sorted({a["category_id"] for a in anns})]
    return {"images": images, "annotations": anns, "categories": cats}
