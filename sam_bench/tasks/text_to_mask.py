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
expressions the grounder answered). A record's ``prediction`` (for the report) holds, per expression,
the chosen mask (COCO RLE) and the grounder's box (XYXY, or None).
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError, SamBenchError
from sam_bench.grounders.base import Grounder, Grounding, Query, build_grounder, grounder_class, phrase_id
from sam_bench.metrics.bootstrap import Resampler, weighted_mean
from sam_bench.metrics.refer import (HIGHER_IS_BETTER, THRESHOLDS, intersection_union, refer_metrics, sample_iou,
                                     threshold_key)
from sam_bench.metrics.spec import MetricSpec
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.options import Options, merge, option
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

def _grounder_help() -> str:
    from sam_bench import registry

    return (f"text grounder: {', '.join(registry.names('grounders'))} (clip: CLIP scoring of generated masks; "
            f"boxes-from: detector boxes from --boxes-file; native: the model takes text, e.g. --model sam3; "
            f"oracle: ground-truth box, an upper bound)")


@dataclass(frozen=True)
class TextToMaskOptions(Options):
    """The task's own options; each grounder's (``Grounder.Options``) join them (``options_class``)
    and are checked for the chosen grounder, reading no file."""

    grounder: str = option("clip", _grounder_help, metavar="NAME")
    refine: bool = option(True, "box prompts: keep the best of the 3 masks, without the refinement pass that feeds "
                          "its logits and the box back", flags=("--no-refine",))

    def __post_init__(self):
        chosen = grounder_class(self.grounder).check_options(self.as_config())
        if isinstance(chosen, Options):
            self.normalise(**chosen.as_config())


def grounder_options() -> tuple[type[Options], ...]:
    """The options classes of the registered grounders (one that cannot load offers none)."""
    from sam_bench import registry

    out = []
    for name in registry.names("grounders"):
        try:
            out.append(grounder_class(name).Options)
        except SamBenchError as exc:
            log.debug("grounder %s: options unavailable (%s)", name, exc)
    return tuple(out)


@functools.lru_cache(maxsize=None)
def _composed(extra: tuple[type[Options], ...]) -> type[Options]:
    return merge(TextToMaskOptions, *extra, name="TextToMaskAllOptions")


class TextToMaskTask(Task):
    name = "text-to-mask"
    description = ("referring expression -> mask through a text grounder (CLIP mask scoring, detector boxes, "
                   "native text prompts): mIoU, cIoU, Pr@0.5/0.7/0.9 on RefCOCO-style data")
    model_kinds = ("promptable", "text")
    default_datasets = ("synthetic",)
    metrics = (*(MetricSpec(k, "percent", higher_is_better=v) for k, v in HIGHER_IS_BETTER.items()),
               MetricSpec("found", "percent"), MetricSpec("num_expressions", "count", higher_is_better=None))
    tables = (TableSpec("text_to_mask", "Text to mask (paper Sec. 7.5 is qualitative): referring-expression "
                        "scores (%)", {"miou": "mIoU", "ciou": "cIoU", "pr50": "Pr@0.5", "pr70": "Pr@0.7",
                                       "pr90": "Pr@0.9", "found": "found"}, settings={"grounder": " + {} grounder"}),)
    plots = (PlotSpec("text_to_mask", "bars", "text_to_mask", ylabel="%"),)

    baselines = ("grabcut",)
    recorded = ("grounder_info",)  # the built grounder's facts (checkpoint hash...), written by setup

    def __init__(self, **config: Any):
        super().__init__(**config)
        self._grounder: Grounder | None = None

    @classmethod
    def options_class(cls) -> type[Options]:
        """The task's options and every registered grounder's."""
        return _composed(grounder_options())

    @classmethod
    def reproduce_options(cls, args: argparse.Namespace) -> dict[str, Any]:
        """``reproduce`` prompts through CLIP with ``--clip-checkpoint``, else through the oracle grounder
        (the referred object's ground-truth box: an upper bound, needing no weights)."""
        clip = getattr(args, "clip_checkpoint", None)
        return {"grounder": "clip" if clip else "oracle", "clip_checkpoint": clip}

    def setup(self) -> None:
        """Build the grounder (it opens its files) and record its facts in the config, once."""
        if self._grounder is None:
            self._grounder = build_grounder(self.config["grounder"], self.config)
            self.config["grounder_info"] = self._grounder.describe()

    @property
    def grounder(self) -> Grounder:
        self.setup()
        return self._grounder

    def check_model(self, model: Any) -> None:
        """Refuse a model the grounder cannot drive."""
        kinds = set(model.kinds)
        need = grounder_class(self.config["grounder"]).needs_model_kinds
        if not kinds & set(need):
            raise ConfigError(f"--grounder {self.config['grounder']} drives {' or '.join(need)} models; "
                              f"{model.info.name!r} is a {'/'.join(sorted(kinds))} model")

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
        from sam_bench.data.masks import encode_many

        boxes = [None if g.box is None else np.round(np.asarray(g.box, float), 1).tolist() for g in groundings]
        return {"expressions": exprs, "prediction": {"masks": encode_many(pred), "boxes": boxes}}

    # -- one dataset --------------------------------------------------------------------------
    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        exprs = [e for r in records for e in r["expressions"]]
        out = refer_metrics([e["intersection"] for e in exprs], [e["union"] for e in exprs])
        out["found"] = 100.0 * float(np.mean([e["prompt"] != "none" for e in exprs])) if exprs else float("nan")
        out["num_expressions"] = len(exprs)
        return out

    def resampler(self, dataset: Dataset, records: list[dict]) -> Resampler | None:
        """mIoU, Pr@t and found as weighted means, cIoU as a ratio of weighted sums (unit: expression)."""
        exprs = [e for r in records for e in r["expressions"]]
        if not exprs:
            return None
        inter = np.array([e["intersection"] for e in exprs], np.float64)
        union = np.array([e["union"] for e in exprs], np.float64)
        iou = sample_iou(inter, union)
        means = {"miou": 100 * iou, "found": 100.0 * np.array([e["prompt"] != "none" for e in exprs], np.float64),
                 **{threshold_key(t): 100.0 * (iou >= t) for t in THRESHOLDS}}

        def compute(w: np.ndarray) -> dict[str, np.ndarray]:
            tot = w @ union
            ciou = np.where(tot > 0, 100 * (w @ inter) / np.where(tot > 0, tot, 1), 100.0)
            return {"ciou": ciou, **{k: weighted_mean(v, w) for k, v in means.items()}}

        return Resampler(tuple(e["phrase"] for e in exprs), compute, unit="expression")


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
