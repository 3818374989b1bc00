"""Object proposals: class-agnostic mask AR@1000 on LVIS (paper section 7.3, Table 4).

A promptable model proposes through automatic mask generation (``sam_bench.amg.generate``) in
the paper's setting: a 64x64 point grid, no crops, no predicted-IoU or stability filtering, mask
NMS at 0.9, the top 1000 by the mean of predicted IoU and stability. A proposal model (a
classical baseline) proposes through ``model.propose``. The rank order of the proposals is their
score for the evaluator (score = (K - rank) / K).

Record per image, kept small (no RLEs): the image's annotations ``[id, category, area, crowd]``,
``num_proposals``, and the proposals that reach IoU >= 0.5 with some annotation ``[rank, area]``
with their IoUs ``[rank, annotation index, IoU]``, and for the report ``prediction`` {"masks": the top
``SHOWN`` proposals as COCO RLE, best first} (``mask_ious``: the values ``pycocotools.mask.iou``
gives, computed on the masks' device without RLE-encoding 1000 masks). ``evaluate`` hands
exactly these to pycocotools' COCOeval (``sam_bench.metrics.coco_eval.mask_ar``): a proposal
with every IoU below 0.5 matches nothing at any threshold and leaves recall unchanged, so AR equals
a COCOeval run on all proposals' masks (tested). Annotations are those the dataset reader
delivers for evaluated images: images absent on disk are skips, not zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import ConfigError
from sam_bench.metrics import coco_resample
from sam_bench.metrics.bootstrap import Resampler
from sam_bench.metrics.coco_eval import MIN_IOU, ar_keys, frequency_groups, mask_ar, mask_ious, rle_encode
from sam_bench.metrics.spec import MetricSpec
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.options import Options, option
from sam_bench.tasks.base import Task

RANKINGS = ("score_stability_mean", "score", "random")
SHOWN = 20  # top proposals kept per image for the report


@dataclass(frozen=True)
class ProposalsOptions(Options):
    """Automatic mask generation in the paper's proposal setting (Table 4), and the ablation's switches."""

    grid: int = option(64, "points per side of the prompt grid (paper: 64; single-output ablation: 128)", quick=16)
    nms_thresh: float = option(0.9, "mask-IoU NMS threshold between proposals (paper: 0.9; ablation: 0.95)")
    ranking: str = option("score_stability_mean", "order for the top-k cut: mean of predicted IoU and stability "
                          "(paper), predicted IoU, or random (seeded; the single-output ablation)", choices=RANKINGS)
    top_k: int = option(1000, "proposals kept per image; the metric is AR@top-k (paper: 1000)")
    multimask: bool = option(True, "keep SAM's 3 masks per point (default)", action="store_true",
                             also=((("--single-output",), {"action": "store_false",
                                                           "help": "one mask per point (the single-output ablation)"}),))
    pred_iou_thresh: float | None = option(None, "drop masks with predicted IoU below this (default: off, as the "
                                           "paper)", type=float)
    stability_thresh: float | None = option(None, "drop masks with stability score below this (default: off, as "
                                            "the paper)", type=float)
    crop_layers: int = option(0, "crop layers of automatic mask generation (paper: 0, no crops)")
    points_per_batch: int | None = option(None, "grid points per decoder call (default: the model's prompt batch)",
                                          type=int)
    seed: int = option(0, "seed of the random ranking")

    def __post_init__(self):
        if self.grid < 1 or self.top_k < 1:
            raise ConfigError(f"--grid and --top-k must be positive, got {self.grid} and {self.top_k}")
        if self.ranking not in RANKINGS:
            raise ConfigError(f"--ranking {self.ranking!r}: choose one of {', '.join(RANKINGS)}")
        if not 0 < self.nms_thresh <= 1:
            raise ConfigError(f"--nms-thresh must be in (0, 1], got {self.nms_thresh}")


class ProposalsTask(Task):
    name = "proposals"
    description = "object proposals: class-agnostic mask AR@1000 by size and LVIS frequency (paper Table 4)"
    model_kinds = ("promptable", "proposals")
    default_datasets = ("LVIS",)
    # AR@top-k (ar1000); its size and frequency groups (ar1000_rare...) may be undefined on few images
    metrics = (MetricSpec("ar*_*", "percent", required=False), MetricSpec("ar*", "percent"),
               MetricSpec("proposals_per_image", "count", higher_is_better=None, scoring=False))
    tables = (TableSpec("table4_proposals", "Table 4. Object proposals, class-agnostic mask AR@1000 (%)",
                        {"ar1000": "all", "ar1000_small": "small", "ar1000_medium": "med.", "ar1000_large": "large",
                         "ar1000_frequent": "freq.", "ar1000_common": "com.", "ar1000_rare": "rare"}),)
    plots = (PlotSpec("table4_proposals", "bars", "table4_proposals", ylabel="AR@1000 (%)"),)

    Options = ProposalsOptions
    baselines = ("felzenszwalb", "slic-proposals")

    def amg_config(self):
        """The paper's settings (``AMGConfig.paper_proposals``: mask NMS, no filters) with these options."""
        from sam_bench.amg import AMGConfig

        c = self.config
        return AMGConfig.paper_proposals().but(
            points_per_side=c["grid"], points_per_batch=c["points_per_batch"], multimask=c["multimask"],
            pred_iou_thresh=c["pred_iou_thresh"], stability_score_thresh=c["stability_thresh"],
            nms_thresh=c["nms_thresh"], crop_n_layers=c["crop_layers"], ranking=c["ranking"], top_k=c["top_k"],
            seed=c["seed"])

    def propose(self, model, image: np.ndarray):
        """(K, H, W) bool masks, best first, K <= top-k (torch or numpy)."""
        if "promptable" in model.kinds:
            from sam_bench.amg import generate

            return generate(model, image, self.amg_config()).masks[: self.config["top_k"]]
        masks, _ = model.propose(max_masks=self.config["top_k"])
        return masks[: self.config["top_k"]]

    def process(self, model, item: Item, sample: Sample) -> dict:
        import torch

        masks = torch.as_tensor(self.propose(model, sample.image))
        if tuple(masks.shape[1:]) != sample.image.shape[:2]:
            raise ConfigError(f"{model.info.name}: proposals are {tuple(masks.shape[1:])} for a "
                              f"{sample.image.shape[:2]} image {item.id}")
        gts = sample.instances
        gt_masks = np.stack([i.mask() for i in gts]) if gts else np.zeros((0,) + masks.shape[1:], bool)
        iou = mask_ious(masks, torch.from_numpy(gt_masks), [i.iscrowd for i in gts])
        d, g = np.nonzero(iou >= MIN_IOU)
        kept = np.unique(d)
        areas = masks[torch.as_tensor(kept, dtype=torch.long, device=masks.device)].sum((1, 2)).tolist()
        return {"image_id": item.image_id if item.image_id is not None else item.id,
                "num_proposals": int(masks.shape[0]),
                "gt": [[i.id, i.category_id, float(i.area if i.area is not None else m.sum()), int(i.iscrowd)]
                       for i, m in zip(gts, gt_masks)],
                "proposals": [[int(k), int(a)] for k, a in zip(kept, areas)],
                "matches": [[int(a), int(b), float(iou[a, b])] for a, b in zip(d, g)],
                "prediction": {"masks": rle_encode(masks[:SHOWN])}}

    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        return self.score(dataset, records, resample=False)[0]

    def score(self, dataset: Dataset, records: list[dict], *, resample: bool = True
              ) -> tuple[dict[str, float], Resampler | None]:
        """AR by size and frequency group; the resampler (unit: image) reweights the evaluators' per-image
        true positives (``coco_resample``)."""
        gt, proposals, ious = evaluator_inputs(records)
        groups = frequency_groups(dataset.categories)
        kept: dict = {}
        out = mask_ar(gt, proposals, max_dets=self.config["top_k"], groups=groups, ious=ious,
                      kept=kept if resample else None)
        res = _resampler(records, kept, ar_keys(self.config["top_k"])) if kept else None
        for key in ar_keys(self.config["top_k"], [g for g in ("frequent", "common", "rare") if g not in groups]):
            out.setdefault(key, float("nan"))
        out["proposals_per_image"] = float(np.mean([r["num_proposals"] for r in records])) if records else math.nan
        return out, res


def _resampler(records: list[dict], evs: dict, keys: list[str]) -> Resampler:
    """AR of every kept evaluator ({"": all, group: ...}) under image weights, units the records' items."""
    item_of = {r["image_id"]: r["item"] for r in records}
    ids = evs[""].params.imgIds
    parts = {name: (ev, coco_resample.blocks(ev)) for name, ev in evs.items()}
    if any(list(ev.params.imgIds) != list(ids) for ev, _ in parts.values()):
        raise ValueError("the AR evaluators of one dataset cover different images")

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        out = coco_resample.ar_summary(*parts[""], w, keys)
        for name, (ev, bl) in parts.items():
            if name:
                out[f"{keys[0]}_{name}"] = coco_resample.ar_summary(ev, bl, w, [keys[0]])[keys[0]]
        return out

    return Resampler(tuple(item_of[i] for i in ids), compute, unit="image")


def evaluator_inputs(records: list[dict]) -> tuple[dict, list[dict], dict]:
    """(class-aware GT dict, proposals, {image: {(proposal id, annotation id): IoU}}) from records.

    Annotation and proposal ids are renumbered 1.. over the dataset (a reader's ids need not be
    unique across images); a proposal's score is (K - rank) / K, so the evaluator keeps the rank order.
    """
    images, anns, props, ious = [], [], [], {}
    for rec in records:
        img = rec["image_id"]
        images.append({"id": img})
        gt_ids = []
        for aid, cat, area, crowd in rec["gt"]:
            gt_ids.append(len(anns) + 1)
            anns.append({"id": gt_ids[-1], "image_id": img, "category_id": cat, "area": area, "iscrowd": crowd})
        k = rec["num_proposals"]
        local = {}
        for rank, area in rec["proposals"]:
            local[rank] = len(props) + 1
            props.append({"id": local[rank], "image_id": img, "score": (k - rank) / k, "area": area})
        ious[img] = {(local[r], gt_ids[g]): v for r, g, v in rec["matches"]}
    cats = sorted({a["category_id"] for a in anns if a["category_id"] is not None})
    return {"images": images, "annotations": anns, "categories": [{"id": c} for c in cats]}, props, ious
