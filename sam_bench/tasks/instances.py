"""Instance segmentation from boxes: mask AP on COCO / LVIS (paper section 7.4, Table 5).

Each box of an image (a detector's, from a COCO results file, or the ground truth's) prompts
the model. Per chunk of boxes (the model's prompt batch): one multimask call, the mask with the
highest predicted IoU, then one refinement call feeding that mask's low-res logits and the box
back for a single mask (``--no-refine`` skips it). Score = detector score (ground-truth boxes:
1.0); category = the box's. The record of an image is its COCO results (compressed RLE), scored
by pycocotools' COCOeval or the lvis LVISEval by ``Dataset.format`` against exactly the ground
truth the model was given: the annotations that passed the reader's open-time checks
(``Dataset.gt``), less those that rasterised to empty masks on loading, restricted to the
evaluated images; its ``prediction`` (for the report) holds the prompted boxes, XYXY, in the
order of the results. ``outputs`` also writes every dataset's results as
``segm_results.<dataset>.json`` for other tools.

Detections are checked entry by entry when the file is read and against each dataset in
``prepare`` (the runner's hook, before the dataset's items run): a refused entry is a skip naming
the file, its index and why (``sam_bench.data.detections``). ``evaluate`` adds ``inputs``, not a
metric: ``{"gt": {"annotations", "left_out", "reasons"}, "detections": {"used", "left_out",
"other_images", "reasons"}}``, the counts of what was scored and what was left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.data.detections import (CheckedDetections, check_detections, detection_counts, detection_skips,
                                       read_detections)
from sam_bench.data.validate import count_codes, detection_image_problem
from sam_bench.errors import BadInput, ConfigError
from sam_bench.metrics import coco_resample
from sam_bench.metrics.bootstrap import Resampler
from sam_bench.metrics.coco_eval import coco_mask_ap, load_gt, lvis_mask_ap, rle_encode
from sam_bench.metrics.spec import MetricSpec
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.options import Options, option
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

MAX_DETS = {"coco": 100, "lvis": 300}  # the benchmarks' own per-image limits


@dataclass(frozen=True)
class InstancesOptions(Options):
    """Box prompts and decoding; a detections file is only named here and read in ``setup``."""

    boxes: str = option("gt", "box prompts: 'gt' (ground-truth boxes, score 1; an upper bound) or a detector's "
                        "results in COCO results format, e.g. the ViTDet-H files the paper used", metavar="gt|PATH.json")
    max_dets: int | None = option(None, "boxes prompted and masks scored per image, highest detector scores first "
                                  "(default: 100 for COCO, 300 for LVIS, the benchmarks' limits)", type=int)
    refine: bool = option(True, "skip the refinement pass (the best of the 3 masks is final)", flags=("--no-refine",))

    def __post_init__(self):
        if self.max_dets is not None and self.max_dets < 1:
            raise ConfigError(f"--max-dets must be positive, got {self.max_dets}")
        if self.boxes != "gt":
            self.normalise(boxes=str(Path(self.boxes).expanduser().resolve()))


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(B, 4) XYWH -> XYXY, pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)


class InstancesTask(Task):
    name = "instances"
    description = "instance segmentation from detector (or ground-truth) boxes: COCO / LVIS mask AP (paper Table 5)"
    model_kinds = ("promptable",)
    default_datasets = ("COCO",)
    # size and frequency groups are undefined on images without such an object (LVIS alone has rare/common)
    metrics = (*(MetricSpec(k, "percent") for k in ("ap", "ap50", "ap75")),
               MetricSpec("ap_*", "percent", required=False),
               MetricSpec("inputs.*", "count", higher_is_better=None, required=False))
    tables = (TableSpec("table5_instances", "Table 5. Instance segmentation from boxes, mask AP (%)",
                        {"ap": "AP", "ap_small": "APs", "ap_medium": "APm", "ap_large": "APl"}),)
    plots = (PlotSpec("table5_instances", "bars", "table5_instances", ylabel="mask AP (%)"),)

    Options = InstancesOptions
    baselines = ("grabcut",)
    resample_needs_data = True  # scored against the dataset's ground truth

    def __init__(self, **config):
        super().__init__(**config)
        self._detections = None  # read by setup (--boxes PATH)
        self._by_image: dict = {}
        self._checked: dict[int, CheckedDetections] = {}  # id(dataset) -> its detections
        self._prepared: set[int] = set()
        self._loaded = False
        self._warned = False
        self._warned_refine = False

    def setup(self) -> None:
        """Read and check the ``--boxes`` detections file, entry by entry (once)."""
        if self._loaded or self.config["boxes"] == "gt":
            return
        self._detections = read_detections(self.config["boxes"])
        self._by_image = self._detections.by_image()
        self._loaded = True

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
        dets = sorted(self._image_detections(item, sample), key=lambda kd: -kd[1]["score"])[: self._limit()]
        return xywh_to_xyxy([d["bbox"] for _, d in dets]), [d["category_id"] for _, d in dets], \
            [float(d["score"]) for _, d in dets]

    def _check(self, dataset: Dataset) -> CheckedDetections:
        """The detections checked against ``dataset``'s images and categories (once per dataset)."""
        if id(dataset) not in self._checked:
            self._checked[id(dataset)] = check_detections(self._detections, image_sizes(dataset),
                                                          set(dataset.categories) or None)
        return self._checked[id(dataset)]

    def prepare(self, dataset: Dataset) -> None:
        """Check the detections against ``dataset`` before its items run (the runner's hook):
        each refused one becomes a skip in ``dataset.missing``, each item keeps its usable ones."""
        self.setup()
        if self._detections is None or id(dataset) in self._prepared:
            return
        self._prepared.add(id(dataset))
        checked = self._check(dataset)
        dataset.missing += detection_skips(self._detections, checked, dataset.name)
        for item in dataset.items:
            item.meta["detections"] = checked.by_image.get(item.image_id, [])

    def _image_detections(self, item: Item, sample: Sample) -> list[tuple[int, dict]]:
        """(index, entry) of the item's usable detections: as ``prepare`` left them, else checked
        here against the image alone (categories are then checked when scoring)."""
        if "detections" in item.meta:
            return item.meta["detections"]
        if not self._warned:
            log.warning("--boxes %s: detections were not checked against the dataset before the run "
                        "(InstancesTask.prepare); their categories are checked when scoring", self.config["boxes"])
            self._warned = True
        h, w = sample.image.shape[:2]
        return [(k, d) for k, d in self._by_image.get(item.image_id, [])
                if detection_image_problem(d, h, w, None) is None]

    def segment(self, model, boxes: np.ndarray) -> tuple[list[dict], bool]:
        """(RLEs, refined) for (B, 4) XYXY boxes on the model's current image, 64 boxes (or the
        model's prompt batch, when larger) per predict call; the model splits them into its own
        decoder batches. ``refined`` is False when the refinement was asked for and the model gives
        no low-res logits to feed back."""
        import torch

        rles: list[dict] = []
        refined = True
        chunk = max(64, model.prompt_batch or 0)
        for s in range(0, len(boxes), chunk):
            b = torch.as_tensor(boxes[s:s + chunk], dtype=torch.float32)
            pred, done = model.predict_refined(boxes=b, refine=self.config["refine"])
            refined &= done or not self.config["refine"]
            rles += rle_encode(pred.masks[:, 0])
        if not refined and not self._warned_refine:
            log.warning("model %s returns no low_res_logits: the refinement pass is not applied (records say "
                        "refine_skipped)", model.info.name)
            self._warned_refine = True
        return rles, refined

    def process(self, model, item: Item, sample: Sample) -> dict:
        if item.image_id is None:
            raise BadInput(f"{item.id}: no COCO/LVIS image id, so its masks cannot be scored against the annotations")
        boxes, cats, scores = self.boxes_for(item, sample)
        h, w = sample.image.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])  # detector boxes may reach past the border
        rles, refined = self.segment(model, boxes) if len(boxes) else ([], True)
        record = {"image_id": item.image_id,
                  "results": [{"image_id": item.image_id, "category_id": c, "segmentation": r, "score": s}
                              for c, r, s in zip(cats, rles, scores)],
                  "prediction": {"boxes": np.round(boxes, 1).tolist()}}
        if not refined:
            record["refine_skipped"] = True
        if item.meta.get("dropped_empty_annotations"):
            record["gt_left_out"] = list(item.meta["dropped_empty_annotations"])  # not scored either
        return record

    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict:
        return self.score(dataset, records, resample=False)[0]

    def score(self, dataset: Dataset, records: list[dict], *, resample: bool = True) -> tuple[dict, Resampler | None]:
        """Mask AP against exactly the ground truth the model was given (``ground_truth``), plus
        ``inputs``: what was scored and left out ({"gt": ..., "detections": ...}), not a metric.
        The resampler (unit: image) re-accumulates COCO AP from the one COCOeval's per-image
        matches (``coco_resample``), COCOeval's or LVISEval's."""
        ids = [r["image_id"] for r in records]
        results = [res for r in records for res in r["results"]]
        dropped = [(r["image_id"], a) for r in records for a in r.get("gt_left_out", [])]
        inputs = {}
        if self._detections is not None:
            known = set(dataset.categories)
            if known:  # only unprepared runs have results of other categories
                results = [res for res in results if res["category_id"] in known]
            inputs["detections"] = detection_counts(self._detections, self._check(dataset), ids)
            if not results:
                log.warning("%s: no detection of %s names an evaluated image id", dataset.name, self.config["boxes"])
        gt = ground_truth(dataset, ids, dropped)
        inputs["gt"] = gt_counts(dataset, ids, gt, dropped)
        limit = self._limit(dataset.format)
        kept: list = []
        score = lvis_mask_ap if dataset.format == "lvis" else coco_mask_ap
        metrics = score(gt, results, image_ids=ids, max_dets=limit, kept=kept if resample else None)
        res = None
        if kept:
            ev, item_of = kept[0], {r["image_id"]: r["item"] for r in records}
            bl = coco_resample.blocks(ev)
            res = Resampler(tuple(item_of[i] for i in coco_resample.layout(ev).images),
                            lambda w: coco_resample.ap_summary(ev, bl, w), unit="image",
                            chunk=coco_resample.replicate_chunk(ev, bl))
        return {**metrics, "inputs": dict(sorted(inputs.items()))}, res

    @classmethod
    def outputs(cls, results: dict, out_dir: Path) -> list[Path]:
        """Each dataset's COCO results file, ``segm_results.DATASET.json``; Table 5 is declared above."""
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
        return written


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def image_sizes(dataset: Dataset) -> dict:
    """{image id: (height, width)} of the images the dataset lists (checked ground truth, else its items)."""
    if dataset.gt is not None:
        return {im["id"]: (int(im["height"]), int(im["width"])) for im in dataset.gt.data["images"]}
    return {it.image_id: (it.height, it.width) for it in dataset.items
            if it.image_id is not None and it.height and it.width}


def ground_truth(dataset: Dataset, image_ids: list, dropped: list = ()) -> dict:
    """The ground truth of ``image_ids``: the dataset's checked annotations (``Dataset.gt``), else its
    annotation file, else its items' instances; without the ``dropped`` (image id, annotation id)
    pairs (annotations that rasterised to empty masks when loaded)."""
    keep, drop = set(image_ids), set(dropped)
    if dataset.gt is not None or dataset.gt_json is not None:
        gt = dataset.gt.data if dataset.gt is not None else load_gt(dataset.gt_json)
        return {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
                "annotations": [a for a in gt["annotations"] if a["image_id"] in keep
                                and (a["image_id"], a["id"]) not in drop]}
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


def gt_counts(dataset: Dataset, image_ids: list, gt: dict, dropped: list = ()) -> dict:
    """{"annotations": scored, "left_out": refused annotations of ``image_ids``, "reasons": {code: n}}."""
    keep = set(image_ids)
    left = [code for img, _, code in (dataset.gt.left_out if dataset.gt is not None else []) if img in keep]
    left += ["empty_mask"] * len(set(dropped))
    return {"annotations": len(gt["annotations"]), "left_out": len(left),
            "reasons": count_codes(left)}
