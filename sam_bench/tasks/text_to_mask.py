"""Text-to-mask: referring expression -> mask, scored on RefCOCO-style data (paper section 5 / 7.5).

The paper's text-prompted SAM was never released and its results are qualitative, so this task
runs the text-grounded pipelines people use, behind one interface (``sam_bench.grounders``):

- ``clip``: candidate masks from automatic mask generation ranked by CLIP crop-text similarity;
- ``boxes-from``: a text-conditioned detector's top box (from a results file) prompts the model;
- ``native``: a model that takes text itself (SAM 3 via transformers: model ``sam3``);
- ``oracle``: the referred object's ground-truth box (upper bound for box-prompted pipelines).

Every referring expression of an instance (``Instance.texts``) is one sample: the grounder's box
and/or points are decoded by the model (multimask, highest predicted IoU; a box gets one
refinement pass feeding that mask's logits back, as in the instances task, unless
``--no-refine``), or its mask is taken as is; nothing found scores an empty mask. Metrics
(``sam_bench.metrics.refer``): mIoU, cIoU, Pr@0.5/0.7/0.9 in percent, plus ``found`` (percent of
expressions the grounder answered).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.grounders.base import Grounder, Grounding, Query, build_grounder, grounder_class, phrase_id
from sam_bench.grounders.clip import DEFAULT_ARCH, DEFAULT_CANDIDATES
from sam_bench.metrics.refer import HIGHER_IS_BETTER, intersection_union, refer_metrics, sample_iou
from sam_bench.metrics.spec import MetricSpec
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

DEFAULTS = {"grounder": "clip", "clip_checkpoint": None, "clip_arch": DEFAULT_ARCH, "clip_template": "{}",
            "boxes_file": None, "crop_expand": 1.0, "zero_background": False, "refine_center_click": False,
            "candidates": DEFAULT_CANDIDATES, "refine": True, "split_by": None}
METRIC_COLUMNS = {"miou": "mIoU", "ciou": "cIoU", "pr50": "Pr@0.5", "pr70": "Pr@0.7", "pr90": "Pr@0.9",
                  "found": "found"}


class TextToMaskTask(Task):
    name = "text-to-mask"
    description = ("referring expression -> mask through a text grounder (CLIP mask scoring, detector boxes, "
                   "native text prompts): mIoU, cIoU, Pr@0.5/0.7/0.9 on RefCOCO-style data")
    model_kinds = ("promptable", "text")
    default_datasets = ("synthetic",)
    metrics = (*(MetricSpec(k, "percent", higher_is_better=v) for k, v in HIGHER_IS_BETTER.items()),
               MetricSpec("found", "percent"), MetricSpec("num_expressions", "count", higher_is_better=None))

    def __init__(self, **config: Any):
        merged = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k not in DEFAULTS}}
        for key in ("clip_checkpoint", "boxes_file"):
            if merged.get(key):
                merged[key] = str(Path(merged[key]).expanduser().resolve())
        merged.pop("grounder_info", None)  # facts of an earlier run's grounder (report / compare rebuild the task)
        super().__init__(**merged)
        grounder_class(self.config["grounder"]).check_options(self.config)
        self._grounder: Grounder | None = None

    @property
    def grounder(self) -> Grounder:
        """Built on first use (``check_model``, before the run starts), so rebuilding the task from a saved
        config (``sam-bench report``) reads no grounder files."""
        if self._grounder is None:
            self._grounder = build_grounder(self.config["grounder"], self.config)
        return self._grounder

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        from sam_bench import registry

        p.add_argument("--grounder", default=DEFAULTS["grounder"], metavar="NAME",
                       help=f"text grounder: {', '.join(registry.names('grounders'))} (clip: CLIP scoring of "
                            f"generated masks; boxes-from: detector boxes from --boxes-file; native: the model "
                            f"takes text, e.g. --model sam3; oracle: ground-truth box, an upper bound)")
        p.add_argument("--clip-checkpoint", metavar="PATH",
                       help="local CLIP weights for --grounder clip (open_clip state dict / safetensors, or "
                            "OpenAI's TorchScript ViT-L-14-336px.pt); never downloaded")
        p.add_argument("--clip-arch", default=DEFAULTS["clip_arch"], metavar="NAME|CONFIG.json",
                       help="open_clip architecture of --clip-checkpoint, or an open_clip model config JSON "
                            "(default: %(default)s, the CLIP the paper's SAM used)")
        p.add_argument("--clip-template", default=DEFAULTS["clip_template"], metavar="TEXT",
                       help="text template, {} = the expression, e.g. 'a photo of {}.' (default: the bare text)")
        p.add_argument("--boxes-file", metavar="PATH",
                       help="for --grounder boxes-from: JSON {phrase id: {boxes: [[x0,y0,x1,y1],...], scores: "
                            "[...]}}, phrase id = '<item>/<instance>/<sentence index>' (see items.jsonl)")
        p.add_argument("--crop-expand", type=float, default=DEFAULTS["crop_expand"], metavar="F",
                       help="CLIP crop: the candidate's box made square and scaled by F for context "
                            "(1 = tight; default %(default)s)")
        p.add_argument("--zero-background", action="store_true", default=DEFAULTS["zero_background"],
                       help="CLIP crop: set pixels outside the candidate mask to CLIP's mean colour (0 after "
                            "normalisation)")
        p.add_argument("--refine-center-click", action="store_true", default=DEFAULTS["refine_center_click"],
                       help="CLIP: prompt the model again with the chosen mask's center click (the pixel "
                            "farthest from its boundary) and keep that mask instead")
        p.add_argument("--candidates", default=DEFAULTS["candidates"], metavar="K=V,...",
                       help="CLIP candidate masks: automatic mask generation settings over the official ones, "
                            "e.g. 'grid=32,iou=0.88,stability=0.95,nms=0.7,top_k=64' ('none' switches a "
                            "filter off; default: %(default)s)")
        p.add_argument("--no-refine", dest="refine", action="store_false", default=DEFAULTS["refine"],
                       help="box prompts: keep the best of the 3 masks, without the refinement pass that feeds "
                            "its logits and the box back")
        p.add_argument("--split-by", metavar="NAME", help="refcoco datasets: the refs file, e.g. unc, google, umd "
                       "(default: unc for RefCOCO/RefCOCO+, umd for RefCOCOg)")

    def check_model(self, model: Any) -> None:
        """Refuse a model the grounder cannot drive; build the grounder and record its facts in the config."""
        kinds = set(getattr(model, "kinds", (model.kind,)))
        need = grounder_class(self.config["grounder"]).needs_model_kinds
        if not kinds & set(need):
            raise ConfigError(f"--grounder {self.config['grounder']} drives {' or '.join(need)} models; "
                              f"{model.info.name!r} is a {'/'.join(sorted(kinds))} model")
        self.config["grounder_info"] = self.grounder.describe()

    # -- one image ----------------------------------------------------------------------------
    def queries(self, item: Item, sample: Sample) -> list[Query]:
        """Every referring expression of the image (crowd instances left out)."""
        return [Query(phrase_id(item.id, inst.id, k), text, inst, k)
                for inst in sample.instances if not inst.iscrowd
                for k, text in enumerate(inst.texts) if text and text.strip()]

    def process(self, model: Any, item: Item, sample: Sample) -> dict:
        queries = self.queries(item, sample)
        if not queries:
            raise BadInput(f"{item.id}: no referring expression (no instance carries texts)")
        groundings = self.grounder.ground(model, item, sample, queries)
        if len(groundings) != len(queries):
            raise ConfigError(f"grounder {self.grounder.name} returned {len(groundings)} answers for "
                              f"{len(queries)} expressions on {item.id}")
        h, w = sample.image.shape[:2]
        pred = decode(model, groundings, (h, w), refine=self.config["refine"])
        gt_of = {id(q.instance): None for q in queries}
        for q in queries:
            if gt_of[id(q.instance)] is None:
                gt_of[id(q.instance)] = q.instance.mask()
        gt = np.stack([gt_of[id(q.instance)] for q in queries])
        if gt.shape[1:] != (h, w):
            raise BadInput(f"{item.id}: annotation masks are {gt.shape[2]}x{gt.shape[1]} but the image is {w}x{h}")
        inter, union = intersection_union(pred, gt, sample.ignore)
        iou = sample_iou(inter, union)
        exprs = []
        for q, g, i, u, v in zip(queries, groundings, inter.tolist(), union.tolist(), iou.tolist()):
            exprs.append({"phrase": q.phrase_id, "text": q.text, "instance": q.instance.id, "prompt": g.prompt,
                          "score": None if math.isnan(g.score) else g.score, "intersection": i, "union": u,
                          "iou": v, **g.extra})
        return {"expressions": exprs}

    # -- one dataset --------------------------------------------------------------------------
    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        exprs = [e for r in records for e in r["expressions"]]
        out = refer_metrics([e["intersection"] for e in exprs], [e["union"] for e in exprs])
        out["found"] = 100.0 * float(np.mean([e["prompt"] != "none" for e in exprs])) if exprs else float("nan")
        out["num_expressions"] = len(exprs)
        return out

    def outputs(self, results: dict, out_dir: Path) -> list[Path]:
        """``text_to_mask.{md,csv,tex}``: one row per dataset (the paper has no numbers to set beside them)."""
        import pandas as pd

        from sam_bench.reports.tables import write_table

        rows = []
        for name, ds in results["datasets"].items():
            m = ds["metrics"]
            if m:
                rows.append({"dataset": name, "grounder": results["config"].get("grounder"),
                             "expressions": m.get("num_expressions"),
                             **{label: m.get(key, float("nan")) for key, label in METRIC_COLUMNS.items()}})
        if not rows:
            return []
        flag = " [UNTRAINED: random weights]" if results.get("untrained") else ""
        caption = (f"Text-to-mask, {results['model']['name']}{flag}: mIoU, cIoU and precision at IoU 0.5/0.7/0.9 "
                   f"(percent). The SAM paper reports this experiment only qualitatively.")
        return write_table(pd.DataFrame(rows), out_dir, "text_to_mask", caption=caption, results=results)


def decode(model: Any, groundings: list[Grounding], size: tuple[int, int], refine: bool = True) -> np.ndarray:
    """(Q, H, W) bool masks for the groundings: prompts decoded by the model, batched by prompt shape
    (box or not, number of points), final masks taken as they are, nothing found -> empty."""
    import torch

    h, w = size
    out = np.zeros((len(groundings), h, w), dtype=bool)
    groups: dict[tuple[bool, int], list[int]] = {}
    for n, g in enumerate(groundings):
        if g.box is not None or g.points is not None:
            groups.setdefault((g.box is not None, 0 if g.points is None else len(g.points)), []).append(n)
        elif g.mask is not None:
            if g.mask.shape != (h, w):
                raise ConfigError(f"a grounder returned a {g.mask.shape} mask for a {w}x{h} image")
            out[n] = g.mask
    for (has_box, n_pts), idx in groups.items():
        boxes = points = labels = None
        if has_box:
            boxes = torch.as_tensor(np.stack([groundings[n].box for n in idx]), dtype=torch.float32)
            boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([w, h, w, h], dtype=torch.float32))
        if n_pts:
            points = torch.as_tensor(np.stack([groundings[n].points for n in idx]), dtype=torch.float32)
            points = torch.minimum(points.clamp(min=0), torch.tensor([w - 1, h - 1], dtype=torch.float32))
            labels = torch.as_tensor(np.stack([groundings[n].labels for n in idx]), dtype=torch.int64)
        pred, refined = model.predict_refined(boxes=boxes, points=points, labels=labels, refine=has_box and refine)
        if has_box and refine and not refined:
            log.warning("model %s returns no low_res_logits: box refinement not applied", model.info.name)
        out[idx] = pred.masks[:, 0].cpu().numpy()
    return out
