"""Parity: a model against a reference on the same images and prompts (``sam-bench parity``).

The pairs: the same weights in two implementations (official SAM vs transformers ``SamModel``,
HQ-SAM vs ``SamHQModel``, SAM 2 vs ``Sam2Model``), or one implementation in two settings (fp32 vs
bf16 / fp16, eager vs ``torch.compile``, prompt batch 1 vs 64), set by ``--reference-option``.
Unless the reference has a checkpoint of its own, it receives the model's weights through
``sam_bench.models.convert.transfer`` (on the first image), so the two really hold the same weights.

Per image, each ground-truth object gives its center point (``center_click``) and its box (XYXY
around the mask); ``--grid N`` adds an NxN grid of points. Every prompt is decoded on both models
with three masks and with one; per prompt the record holds the IoU of each output mask between the
two models, the max |logit difference| and the reference's max |logit|, the max |predicted score
difference| and whether the chosen (highest score) mask differs. A dataset whose mean IoU is below
``--min-iou`` or whose relative (``--max-rel-logit-diff``) or absolute (``--max-logit-diff``) logit
difference is above its tolerance fails the run (exit 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError, SamBenchError
from sam_bench.metrics.clicks import center_click
from sam_bench.metrics.spec import MetricSpec
from sam_bench.metrics.tables import TableSpec
from sam_bench.options import Options, option
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

CHUNK = 64  # prompts per predict call on each model (split further only where a side sets its prompt batch)
SETTINGS = ("dtype", "device", "prompt_batch", "compile")  # reference options that are not model options
KINDS = ("point", "box", "grid")
GROUPS = tuple(f"{k}_{m}" for k in KINDS for m in ("multi", "single"))
STATS = ("miou", "iou_p5", "iou_min", "max_logit_diff", "rel_logit_diff", "max_score_diff", "chosen_differs")
LOWEST, HIGHEST = ("iou_min", "iou_p5"), ("max_logit_diff", "rel_logit_diff", "max_score_diff")
COUNTS = ("num_images", "num_prompts", "num_best_only")  # best_only: prompts compared by their best mask alone


def _fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"--{name.replace('_', '-')} {value}: a fraction in [0, 1]")


@dataclass(frozen=True)
class ParityOptions(Options):
    """The reference and the tolerances; checked on creation (the reference is built in ``setup``)."""

    reference: str | None = option(None, "the model to compare against, e.g. hf-sam (see `sam-bench models list`)",
                                   metavar="MODEL")
    reference_option: list = option([], "a setting of the reference, KEY=VALUE (repeatable): its model options "
                                    "(variant=vit_b, hq=true) and dtype=fp32|bf16|fp16, prompt_batch=N, device=D, "
                                    "compile=all|CHILD,... (torch.compile the named children of its module)",
                                    action="append", metavar="KEY=VALUE")
    reference_checkpoint: str | None = option(None, "the reference's own checkpoint (default: none, the reference "
                                              "receives the model's weights through the converter)", metavar="PATH")
    grid: int = option(0, "also an NxN grid of point prompts per image (e.g. 8: 64 prompts, to compare prompt "
                       "batches; default 0)")
    min_iou: float = option(0.999, "fail when a dataset's mean mask IoU between the two models is below this "
                            "(default 0.999)")
    max_rel_logit_diff: float = option(1e-3, "fail when a prompt's max |logit difference| exceeds this fraction of "
                                       "the reference's max |logit| on it (default 1e-3)")
    max_logit_diff: float | None = option(None, "fail when the max |logit difference| exceeds this (absolute; "
                                          "default: not checked)", type=float)

    def __post_init__(self):
        from sam_bench.models.options import parse_pairs

        _fraction("min_iou", self.min_iou)
        if self.grid < 0 or self.max_rel_logit_diff < 0 or (self.max_logit_diff is not None and self.max_logit_diff < 0):
            raise ConfigError("--grid, --max-rel-logit-diff and --max-logit-diff must be >= 0")
        self.normalise(reference_option=[str(p) for p in self.reference_option])
        parse_pairs(self.reference_option, "--reference-option")


def build_reference(name: str, pairs: dict[str, str], checkpoint: str | None) -> tuple[Any, str | None]:
    """(the reference adapter, its ``compile`` setting) from ``--reference-option`` pairs; without a
    checkpoint it is built with random weights, to receive the model's."""
    from sam_bench.models.base import build_model

    settings = {k: pairs.pop(k) for k in list(pairs) if k in SETTINGS}
    batch = settings.get("prompt_batch")
    try:
        batch = None if batch is None else int(batch)
    except ValueError:
        raise ConfigError(f"--reference-option prompt_batch={batch}: not an integer") from None
    model = build_model(name, checkpoint=checkpoint, untrained=checkpoint is None, device=settings.get("device"),
                        dtype=settings.get("dtype"), prompt_batch=batch, **pairs)
    return model, settings.get("compile")


def compile_children(model: Any, which: str) -> list[str]:
    """``torch.compile`` the children of the adapter's torch module named in ``which`` (``all`` or
    ``true``: every one) in place (``Module.compile``: names and weights unchanged); their names."""
    from sam_bench.models.convert import torch_module

    children = dict(torch_module(model).named_children())
    names = list(children) if which.strip().lower() in ("all", "true", "1", "yes") else \
        [n.strip() for n in which.split(",") if n.strip()]
    unknown = sorted(set(names) - set(children))
    if unknown:
        raise ConfigError(f"--reference-option compile={which}: {unknown} are not children of "
                          f"{model.info.name}'s module; it has {sorted(children)}")
    for n in names:
        children[n].compile()
    return names


def object_prompts(item: Item, sample: Sample) -> tuple[list, np.ndarray, np.ndarray, list[dict]]:
    """(object ids, (B, 1, 2) center points, (B, 4) XYXY boxes, skipped objects) of the item's
    non-crowd ground-truth masks."""
    h, w = sample.image.shape[:2]
    ids, points, boxes, skipped = [], [], [], []
    for inst in sample.instances:
        if inst.iscrowd:
            continue
        if tuple(inst.rle.get("size", ())) != (h, w):
            skipped.append({"id": inst.id, "reason": f"mask is {inst.rle.get('size')}, image is {[h, w]}"})
            continue
        gt = inst.mask()
        if not gt.any():
            skipped.append({"id": inst.id, "reason": "empty mask"})
            continue
        click = center_click(gt)
        ys, xs = np.nonzero(gt)
        ids.append(inst.id)
        points.append([[click.x, click.y]])
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return ids, np.array(points, np.float32).reshape(-1, 1, 2), np.array(boxes, np.float32).reshape(-1, 4), skipped


def grid_points(n: int, h: int, w: int) -> np.ndarray:
    """(n*n, 1, 2) (X, Y) points at the centers of an n x n grid over an (h, w) image."""
    side = (np.arange(n) + 0.5) / n
    xs, ys = np.meshgrid(side * w, side * h)
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)[:, None]


def compare(a, b) -> dict[str, list]:
    """Per prompt of two ``Prediction``s of the same prompts: IoU of each mask, max |logit difference|,
    the reference's max |logit|, max |score difference|, whether the highest-score mask differs.
    Where one returns a single mask and the other several, their best masks are compared (``best_only``)."""
    import torch

    best_only = a.logits.shape != b.logits.shape and a.logits.shape[2:] == b.logits.shape[2:] and \
        1 in (a.logits.shape[1], b.logits.shape[1])
    if best_only:  # one gives only its best mask (official HQ-SAM's multimask): compare the best of each
        a, b = a.best(), b.best()
    if a.logits.shape != b.logits.shape:
        raise SamBenchError(f"the two models return masks of different shapes: {tuple(a.logits.shape)} and "
                            f"{tuple(b.logits.shape)}")
    ma, mb = a.masks.flatten(2), b.masks.flatten(2)
    inter, union = (ma & mb).sum(-1).double(), (ma | mb).sum(-1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))  # two empty masks agree
    diff = (a.logits.float() - b.logits.float()).abs().flatten(1).amax(1)
    scale = b.logits.float().abs().flatten(1).amax(1)
    if a.iou_scores is None or b.iou_scores is None:
        score = torch.full_like(diff, float("nan"))
        chosen = torch.zeros_like(diff, dtype=torch.bool)
    else:
        score = (a.iou_scores.float() - b.iou_scores.float()).abs().amax(1)
        chosen = a.iou_scores.argmax(1).cpu() != b.iou_scores.argmax(1).cpu()
    return {"iou": iou.cpu().tolist(), "logit_diff": diff.cpu().tolist(), "logit_max": scale.cpu().tolist(),
            "score_diff": score.cpu().tolist(), "chosen_differs": [bool(c) for c in chosen],
            "best_only": [best_only] * len(diff)}


def _stats(rows: dict[str, list], multi: bool) -> dict[str, float]:
    ious = np.array([v for r in rows["iou"] for v in r], float)
    diff, scale = np.array(rows["logit_diff"], float), np.array(rows["logit_max"], float)
    rel = diff / np.where(scale > 0, scale, 1.0)
    out = {"miou": float(ious.mean()), "iou_p5": float(np.percentile(ious, 5)), "iou_min": float(ious.min()),
           "max_logit_diff": float(diff.max()), "rel_logit_diff": float(rel.max()),
           "max_score_diff": float(np.nanmax(rows["score_diff"])) if not np.isnan(rows["score_diff"]).all()
           else float("nan")}
    if multi:
        out["chosen_differs"] = float(np.mean(rows["chosen_differs"]))
    return out


def _merge(groups: list[dict[str, list]]) -> dict[str, list]:
    return {k: [v for g in groups for v in g[k]] for k in groups[0]}


class ParityTask(Task):
    name = "parity"
    description = ("parity of a model and a reference on the same prompts: mask IoU, logit and score differences "
                   "(two implementations of the same weights, or two settings of one)")
    model_kinds = ("promptable",)
    default_datasets = ("synthetic",)
    metrics = (*(MetricSpec(p, "unit", tolerance=0.001) for p in ("miou", "*_miou", "iou_p5", "*_iou_p5")),
               *(MetricSpec(p, "unit", tolerance=0.01) for p in ("iou_min", "*_iou_min")),
               MetricSpec("*chosen_differs", "unit", higher_is_better=False, tolerance=0.01),
               *(MetricSpec(f"*{s}", "unit", higher_is_better=False, scoring=False) for s in HIGHEST),
               *(MetricSpec(k, "count", higher_is_better=None) for k in COUNTS))
    tables = (TableSpec("parity", "Parity with the reference: mask IoU between the two outputs, max |logit| and "
                        "score differences, fraction of prompts whose chosen mask differs",
                        {"miou": "mean IoU", "iou_p5": "IoU p5", "iou_min": "min IoU", "max_logit_diff": "max dlogit",
                         "rel_logit_diff": "rel dlogit", "max_score_diff": "max dscore",
                         "chosen_differs": "chosen differs"}, ".4g", settings={"reference": " vs {}"}),
              TableSpec("parity_prompts", "Parity per prompt kind: mean mask IoU",
                        {f"{g}_miou": g.replace("_", " ") for g in GROUPS}, ".5g", settings={"reference": " vs {}"}))
    Options = ParityOptions
    recorded = ("reference_model",)

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.reference: Any = None
        self._bound: Any = None
        self._compile: str | None = None

    def setup(self) -> None:
        """Build the reference (random weights unless ``--reference-checkpoint``); record what it is."""
        if self.reference is not None:
            return
        from sam_bench.models.options import parse_pairs

        c = self.config
        if not c["reference"]:
            raise ConfigError("parity needs --reference MODEL (the model to compare against, e.g. hf-sam)")
        self.reference, self._compile = build_reference(c["reference"], parse_pairs(c["reference_option"],
                                                        "--reference-option"), c["reference_checkpoint"])
        info = {**self.reference.info.as_dict(), "prompt_batch": self.reference.prompt_batch}
        if c["reference_checkpoint"] is None:
            info["weights"] = "the model's, through sam_bench.models.convert.transfer"
        if self._compile:
            info["compile"] = self._compile
        c["reference_model"] = info

    def _reference_for(self, model: Any) -> Any:
        """The reference, holding ``model``'s weights (once per model) and compiled where asked."""
        if self._bound is not model:
            if self.config["reference_checkpoint"] is None:
                from sam_bench.models.convert import transfer

                name = transfer(model, self.reference)
                log.info("parity: %s weights loaded into %s (%s)", model.info.name, self.reference.info.name, name)
            if self._compile:
                compile_children(self.reference, self._compile)
            self._bound = model
        return self.reference

    def _run(self, ref: Any, what: str, call):
        """``call()`` on the reference; a torch.compile failure is an error naming the setting."""
        try:
            return call()
        except Exception as exc:
            if not self._compile or isinstance(exc, SamBenchError):
                raise
            raise SamBenchError(f"parity: the reference {ref.info.name} with compile={self._compile} failed in "
                                f"{what} on {ref.device} (torch.compile does not work here: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''})") from exc

    def process(self, model, item: Item, sample: Sample) -> dict:
        ref = self._reference_for(model)
        self._run(ref, "the image encoder", lambda: ref.set_image(sample.image, image_id=item.id))
        ids, points, boxes, skipped = object_prompts(item, sample)
        prompts = {"point": {"points": points, "labels": np.ones(points.shape[:2], np.int64)},
                   "box": {"boxes": boxes}}
        if self.config["grid"]:
            grid = grid_points(self.config["grid"], *sample.image.shape[:2])
            prompts["grid"] = {"points": grid, "labels": np.ones(grid.shape[:2], np.int64)}
        if not ids and not self.config["grid"]:
            reasons = "; ".join(f"{s['id']}: {s['reason']}" for s in skipped) or "no non-crowd instance"
            raise BadInput(f"{item.id}: no object to prompt ({reasons})")
        groups: dict[str, dict[str, list]] = {}
        for kind, kw in prompts.items():
            n = len(next(iter(kw.values())))
            for multimask in (True, False):
                parts = []
                for s in range(0, n, CHUNK):
                    part = {k: v[s:s + CHUNK] for k, v in kw.items()}
                    # decoder chunks as each side was told (--prompt-batch, prompt_batch=), else the same
                    # whole chunk on both: a CPU batch tuner's timing-dependent choice would change the floats
                    a_batch = model.prompt_batch or len(next(iter(part.values())))
                    b_batch = ref.prompt_batch or a_batch
                    pa = model.predict(multimask=multimask, batch_size=a_batch, **part)
                    pb = self._run(ref, "the decoder",
                                   lambda: ref.predict(multimask=multimask, batch_size=b_batch, **part))
                    parts.append(compare(pa, pb))
                if parts:
                    groups[f"{kind}_{'multi' if multimask else 'single'}"] = _merge(parts)
        return {"objects": ids, "skipped_objects": skipped, "groups": groups}

    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        by_group: dict[str, list] = {}
        for r in records:
            for g, rows in r["groups"].items():
                by_group.setdefault(g, []).append(rows)
        out: dict[str, float] = {"num_images": len(records),
                                 "num_prompts": sum(len(rows["iou"]) for g in by_group.values() for rows in g),
                                 "num_best_only": sum(sum(rows.get("best_only", [])) for g in by_group.values()
                                                      for rows in g)}
        if not by_group:
            return out
        merged = {g: _merge(parts) for g, parts in by_group.items()}
        out.update(_stats(_merge(list(merged.values())), multi=False))
        multi = [rows for g, rows in merged.items() if g.endswith("_multi")]
        if multi:
            out["chosen_differs"] = _stats(_merge(multi), multi=True)["chosen_differs"]
        for g in GROUPS:
            if g in merged:
                out.update({f"{g}_{k}": v for k, v in _stats(merged[g], g.endswith("_multi")).items()})
        return out

    def aggregate(self, per_dataset: dict[str, dict[str, float]]) -> dict[str, float]:
        """Means over datasets, except the extremes (the lowest IoUs, the highest differences) and counts."""
        out = super().aggregate(per_dataset)
        for k in out:
            vals = [m[k] for m in per_dataset.values() if isinstance(m.get(k), (int, float)) and not np.isnan(m[k])]
            if not vals:
                continue
            if k in COUNTS:
                out[k] = int(sum(vals))
            elif k.endswith(LOWEST):
                out[k] = min(vals)
            elif k.endswith(HIGHEST):
                out[k] = max(vals)
        return out

    def gate(self, results: dict) -> list[str]:
        """A dataset beyond the tolerances: mean IoU below --min-iou, logit differences above theirs."""
        c, out = self.config, []
        for name, d in results.get("datasets", {}).items():
            m = d.get("metrics", {})
            if "miou" not in m:
                continue
            if m["miou"] < c["min_iou"]:
                out.append(f"{name}: mean mask IoU {m['miou']:.6f} is below --min-iou {c['min_iou']:g} "
                           f"(min {m['iou_min']:.4f})")
            if m["rel_logit_diff"] > c["max_rel_logit_diff"]:
                out.append(f"{name}: max |logit difference| is {m['rel_logit_diff']:.3g} of the reference's max "
                           f"|logit|, above --max-rel-logit-diff {c['max_rel_logit_diff']:g}")
            if c["max_logit_diff"] is not None and m["max_logit_diff"] > c["max_logit_diff"]:
                out.append(f"{name}: max |logit difference| {m['max_logit_diff']:.3g} is above --max-logit-diff "
                           f"{c['max_logit_diff']:g}")
        return out
