"""Single-point valid mask (SAM paper section 7.1, Fig. 9) and click-based NoC (RITM protocol).

For every object of an image the task simulates clicks (``sam_bench.metrics.clicks``): the first
at the object's center (or a seeded random pixel of it), each later one at the pixel farthest from
the boundary of the error region. With one click the model gives its multimask output and the
mask with the highest predicted IoU is kept (the "oracle" mIoU takes the best of them against
the ground truth); with more clicks it gives its single-mask output. ``--feed-logits`` also
passes the previous low-res logits back as a mask prompt (the paper does not say; off).

The encoder runs once per image (the runner's ``set_image``); each click round sends all the
image's objects (up to ``--object-batch``, fewer where their full-resolution arrays would pass
``--object-memory``: ``object_batch_for``) to the decoder in one ``predict`` call. An object is
simulated for at least ``max(--clicks)`` clicks and then until it reaches the highest NoC
threshold or ``--max-clicks``. Crowd instances and the dataset's ignore region (GrabCut's band)
are ignored pixels: never clicked, left out of every IoU. Objects that cannot be scored (empty,
wrong size, entirely ignored) are listed in the record with the reason.

Record per image: ``objects`` [{id, area, ious (after each click, fractions), oracle_iou_1,
clicks [[x, y, positive]]}], ``skipped_objects`` [{id, reason}] and, for the report,
``prediction`` {"masks": [{id, first, last}]}: each object's mask after click 1 and after its last
click as COCO RLE. Metrics per dataset (mIoU in
percent): ``miou_N`` per N in ``--clicks``, ``miou_oracle_1``, ``nocT`` (mean clicks to reach T%
IoU, failures counted as ``--max-clicks``), ``nocT_failures``, ``num_objects``,
``num_skipped_objects``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError, SamBenchError
from sam_bench.metrics.bootstrap import Resampler, weighted_mean
from sam_bench.metrics.clicks import Click, center_click, mask_iou, next_click, number_of_clicks, random_click
from sam_bench.metrics.spec import MetricSpec
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.options import Options, option
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

# bytes per image pixel held for each object of a click round at its peak (the first click,
# multimask, see _simulate): the model's (3, H, W) float32 logits twice (its decoder chunks and
# their concatenation), their 3 bool masks, the oracle IoU's temporaries (2 x 3 bool and a 1-byte
# ground-truth copy), and the object's own ground-truth and clicked maps (2 x 1 byte)
OBJECT_BYTES_PER_PIXEL = 2 * 3 * 4 + 3 + 2 * 3 + 1 + 2
GIB = 1 << 30
COUNT_KEYS = ("num_objects", "num_skipped_objects")  # summed, not averaged, over datasets


def _numbers(text: str | list, kind=int) -> list:
    """'1,2,3' or [1, 2, 3] -> sorted unique list of ``kind``."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = [kind(str(p).strip()) if isinstance(p, str) else kind(p) for p in parts if str(p).strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return sorted(set(values))


def _key(threshold: float) -> str:
    return f"noc{threshold:g}"


def bytes_per_object(h: int, w: int) -> int:
    """Peak full-resolution bytes one object of an (h, w) image holds during a click round."""
    return OBJECT_BYTES_PER_PIXEL * h * w


def object_batch_for(configured: int, h: int, w: int, budget_bytes: float) -> int:
    """Objects decoded together on an (h, w) image: at most ``configured`` and at most what fits
    in ``budget_bytes``, never below 1 (one object over the budget still runs, alone)."""
    return max(1, min(configured, int(budget_bytes // bytes_per_object(h, w))))


def _floats(text: str | list) -> list:
    return _numbers(text, float)


@dataclass(frozen=True)
class SinglePointOptions(Options):
    """The task's options; checked on creation, reading no file (``--compare-to`` is checked in ``setup``)."""

    point: str = option("center", "first click: the object's center (farthest from its boundary; paper default) "
                        "or a random pixel of it, seeded by --seed, the item and the object (default: center)",
                        choices=("center", "random"))
    clicks: list = option([1, 2, 3, 5, 9], "click counts at which mIoU is reported (default: 1,2,3,5,9 as in "
                          "Fig. 9)", type=_numbers, metavar="N,N,...")
    max_clicks: int = option(20, "click budget for NoC; objects that never reach a threshold count this many "
                             "(default: 20, as RITM)", quick=9)
    noc_thresholds: list = option([85, 90], "IoU targets in percent for NoC (default: 85,90)", type=_floats,
                                  metavar="T,T,...")
    feed_logits: bool = option(False, "feed the previous click's low-res logits back as a mask prompt (the paper "
                               "does not say; default: off)")
    seed: int = option(0, "seed of --point random (default: 0)")
    object_batch: int = option(16, "objects of one image decoded together per click round, at most (default: 16; "
                               "fewer on large images, see --object-memory)")
    object_memory: float = option(1.0, "memory budget of one click round in GiB: the object batch shrinks so that "
                                  f"its full-resolution arrays ({OBJECT_BYTES_PER_PIXEL} bytes per pixel per "
                                  "object) fit, down to one object (default: 1; never changes the results)",
                                  metavar="GIB")
    compare_to: str | None = option(None, "another single-point results.json, drawn beside this run in its Fig. 9 "
                                    "bar chart and click plot", metavar="RESULTS_JSON")

    def __post_init__(self):
        try:
            clicks, thresholds = _numbers(self.clicks), _floats(self.noc_thresholds)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--clicks / --noc-thresholds: {exc}") from None
        self.normalise(clicks=clicks, noc_thresholds=[int(t) if float(t).is_integer() else t for t in thresholds],
                       compare_to=str(self.compare_to) if self.compare_to is not None else None)
        if self.point not in ("center", "random"):
            raise ConfigError(f"--point {self.point!r}: choose center or random")
        if not self.clicks or self.clicks[0] < 1:
            raise ConfigError(f"--clicks {self.clicks}: click counts must be >= 1")
        if self.max_clicks < self.clicks[-1]:
            raise ConfigError(f"--max-clicks {self.max_clicks} is below the largest --clicks value {self.clicks[-1]}")
        if not self.noc_thresholds or not all(0 < t <= 100 for t in self.noc_thresholds):
            raise ConfigError(f"--noc-thresholds {self.noc_thresholds}: IoU percentages in (0, 100]")
        if self.object_batch < 1:
            raise ConfigError(f"--object-batch {self.object_batch}: must be >= 1")
        if not self.object_memory > 0:
            raise ConfigError(f"--object-memory {self.object_memory}: a memory budget in GiB, must be > 0")


class SinglePointTask(Task):
    name = "single-point"
    # compare_to: only what the plots draw beside this run; object_memory: how many objects share
    # a decoder round, never their clicks or masks
    non_scoring = frozenset({"compare_to", "object_memory"})
    description = ("single-point valid mask: mIoU after 1..N simulated clicks, oracle mIoU, NoC@85/90 "
                   "(paper section 7.1, Fig. 9; RITM protocol)")
    model_kinds = ("promptable",)
    default_datasets = ("GrabCut", "Berkeley", "COCO_MVal")
    # names follow --clicks and --noc-thresholds (miou_1, noc90, noc90_failures)
    metrics = (MetricSpec("miou_*", "percent"), MetricSpec("noc*_failures", "count", higher_is_better=False),
               MetricSpec("noc*", "clicks", higher_is_better=False),
               *(MetricSpec(k, "count", higher_is_better=None) for k in COUNT_KEYS))
    tables = (TableSpec("fig9_single_point", "Fig. 9. Single point valid mask: mIoU (%) after N center points",
                        {"miou_1": "1 pt", "miou_2": "2 pts", "miou_3": "3 pts", "miou_5": "5 pts", "miou_9": "9 pts",
                         "miou_oracle_1": "1 pt oracle"}),
              TableSpec("interactive_noc", "Interactive segmentation: NoC@85 / NoC@90 (clicks, lower is better; "
                        "RITM protocol)", {"noc85": "NoC@85", "noc90": "NoC@90"}, ".2f"))
    # Fig. 9a (per dataset) and 9c (mIoU vs points); a --compare-to run is drawn beside this one; with
    # an ritm run among them (this, --compare-to, or a report folder's), Fig. 9a's "model minus RITM"
    plots = (PlotSpec("fig9_single_point_bars", "dataset_bars", "fig9_single_point", metric="miou_1"),
             PlotSpec("fig9a_minus_ritm", "dataset_delta", "fig9_single_point", metric="miou_1", baseline="ritm"),
             PlotSpec("fig9_single_point_clicks", "clicks_curves", "fig9_single_point"))

    Options = SinglePointOptions
    baselines = ("grabcut",)


    def check_model(self, model) -> None:
        super().check_model(model)
        if model.needs_previous_mask and not self.options.feed_logits:
            raise ConfigError(f"model {model.info.name}: its protocol feeds the previous mask back with every click "
                              f"(RITM's evaluation); without it the numbers are not that model's. Add --feed-logits")

    def setup(self) -> None:
        """``--compare-to`` must name an existing results file (it is read when the plots are drawn)."""
        if self.config["compare_to"] is not None and not Path(self.config["compare_to"]).is_file():
            raise ConfigError(f"--compare-to {self.config['compare_to']}: no such results file")

    # -- one image ---------------------------------------------------------------------
    def process(self, model, item: Item, sample: Sample) -> dict:
        from sam_bench.data.masks import area as rle_area

        h, w = sample.image.shape[:2]
        ignore = self._ignore_region(item, sample)
        objects, insts, skipped = [], [], []  # masks are decoded per batch below: only a batch's are held
        for inst in sample.instances:
            if inst.iscrowd:
                continue
            size = tuple(inst.rle.get("size", ()))
            if size != (h, w):
                skipped.append({"id": inst.id, "reason": f"mask is {size}, image is {(h, w)}"})
                continue
            if ignore is None:  # the pixel count straight from the RLE, no decode
                area = rle_area(inst.rle)
                empty = area == 0
            else:
                gt = inst.mask()
                area, empty = int((gt & ~ignore).sum()), not gt.any()
            if area == 0:
                why = "empty mask" if empty else "mask lies entirely in the ignore region"
                skipped.append({"id": inst.id, "reason": why})
                continue
            objects.append({"id": inst.id, "area": area})
            insts.append(inst)
        if not objects:
            reasons = "; ".join(f"{s['id']}: {s['reason']}" for s in skipped) or "no non-crowd instance"
            raise BadInput(f"{item.id}: no object to evaluate ({reasons})")
        step = object_batch_for(self.config["object_batch"], h, w, self.config["object_memory"] * GIB)
        if bytes_per_object(h, w) > self.config["object_memory"] * GIB:
            log.warning("%s: one object of a %dx%d image needs about %.1f GiB, over --object-memory %g; "
                        "running one object at a time", item.id, w, h, bytes_per_object(h, w) / GIB,
                        self.config["object_memory"])
        masks: list[dict] = []
        for start in range(0, len(objects), step):
            part = objects[start:start + step]
            gts = np.stack([inst.mask() for inst in insts[start:start + step]])
            firsts = [self._first_click(item, obj["id"], gt, ignore) for obj, gt in zip(part, gts)]
            for obj, res in zip(part, self._simulate(model, gts, ignore, firsts)):
                masks.append({"id": obj["id"], "first": res.pop("first"), "last": res.pop("last")})
                obj.update(res)
        return {"objects": objects, "skipped_objects": skipped, "prediction": {"masks": masks}}

    def _ignore_region(self, item: Item, sample: Sample) -> np.ndarray | None:
        """(H, W) bool: the dataset's ignore mask plus crowd instances; None if nothing is ignored."""
        h, w = sample.image.shape[:2]
        ignore = None
        if sample.ignore is not None:
            if sample.ignore.shape != (h, w):
                raise BadInput(f"{item.id}: ignore mask is {sample.ignore.shape}, image is {(h, w)}")
            ignore = sample.ignore.astype(bool)
        for inst in sample.instances:
            if inst.iscrowd and tuple(inst.rle.get("size", ())) == (h, w):
                ignore = inst.mask() if ignore is None else ignore | inst.mask()
        return ignore

    def _first_click(self, item: Item, obj_id, gt: np.ndarray, ignore: np.ndarray | None) -> Click:
        if self.config["point"] == "center":
            return center_click(gt, ignore)
        digest = hashlib.sha256(f"{item.id}\0{obj_id}".encode()).digest()
        rng = np.random.default_rng([self.config["seed"], int.from_bytes(digest[:8], "little")])
        return random_click(gt, rng, ignore)

    def _simulate(self, model, gts: np.ndarray, ignore: np.ndarray | None, firsts: list[Click]) -> list[dict]:
        """Click loop for B objects (gts (B, H, W) bool) on the model's current image; each result
        also holds the object's masks after click 1 and its last click (``first``, ``last``: RLE)."""
        from sam_bench.data.masks import encode
        c = self.config
        n_min, n_max, target = c["clicks"][-1], c["max_clicks"], max(c["noc_thresholds"]) / 100
        b = len(gts)
        clicks = [[f] for f in firsts]
        clicked = np.zeros_like(gts)
        for i, f in enumerate(firsts):
            clicked[i, f.y, f.x] = True
        ious: list[list[float]] = [[] for _ in range(b)]
        first: list[dict | None] = [None] * b
        last: list[dict | None] = [None] * b
        oracle = np.zeros(b)
        low_res = None
        active = list(range(b))
        for k in range(1, n_max + 1):
            pts = np.array([[(q.x, q.y) for q in clicks[i]] for i in active], np.float32)
            lab = np.array([[int(q.positive) for q in clicks[i]] for i in active], np.int64)
            mask_in = low_res[active] if (c["feed_logits"] and low_res is not None) else None
            pred = model.predict(points=pts, labels=lab, mask_input=mask_in, multimask=(k == 1))
            if tuple(pred.logits.shape[-2:]) != gts.shape[1:] or len(pred) != len(active):
                raise SamBenchError(f"model {model.info.name} returned masks of shape {tuple(pred.logits.shape)} "
                                    f"for {len(active)} prompts on a {gts.shape[1:]} image")
            if k == 1:
                oracle[active] = mask_iou(pred.masks.cpu().numpy(), gts[active][:, None], ignore).max(axis=1)
            chosen = pred.best()
            masks = chosen.masks[:, 0].cpu().numpy()
            iou_k = mask_iou(masks, gts[active], ignore)
            if c["feed_logits"]:
                if chosen.low_res_logits is None:
                    raise ConfigError(f"--feed-logits feeds back low-res mask logits, and model {model.info.name!r} "
                                      f"returns none; run without --feed-logits")
                if low_res is None:
                    low_res = chosen.low_res_logits.new_zeros((b,) + tuple(chosen.low_res_logits.shape[1:]))
                low_res[active] = chosen.low_res_logits
            still = []
            for a, i in enumerate(active):
                ious[i].append(float(iou_k[a]))
                if k == 1:
                    first[i] = encode(masks[a])
                if k >= n_max or (k >= n_min and iou_k[a] >= target):
                    last[i] = encode(masks[a])
                    continue
                nxt = next_click(gts[i], masks[a], ignore, clicked[i])
                if nxt is None:  # nothing left to correct: the mask stays as it is
                    ious[i].extend([float(iou_k[a])] * max(0, n_min - k))
                    last[i] = encode(masks[a])
                    continue
                clicks[i].append(nxt)
                clicked[i, nxt.y, nxt.x] = True
                still.append(i)
            active = still
            if not active:
                break
        return [{"ious": ious[i], "oracle_iou_1": float(oracle[i]), "first": first[i], "last": last[i],
                 "clicks": [[q.x, q.y, int(q.positive)] for q in clicks[i]]} for i in range(b)]

    # -- one dataset ---------------------------------------------------------------------
    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        c = self.config
        objs = [o for r in records for o in r["objects"]]
        out: dict[str, float] = {"num_objects": len(objs),
                                 "num_skipped_objects": sum(len(r.get("skipped_objects", [])) for r in records)}
        if not objs:
            return out
        ious = np.full((len(objs), c["max_clicks"]), np.nan)
        for row, o in zip(ious, objs):
            seq = o["ious"][: c["max_clicks"]]
            row[: len(seq)] = seq
        for n in c["clicks"]:
            out[f"miou_{n}"] = 100 * float(np.nanmean(ious[:, n - 1]))
        out["miou_oracle_1"] = 100 * float(np.mean([o["oracle_iou_1"] for o in objs]))
        for t in c["noc_thresholds"]:
            noc, failed = number_of_clicks(ious, t / 100, c["max_clicks"])
            out[_key(t)] = float(noc.mean())
            out[_key(t) + "_failures"] = int(failed.sum())
        return out

    def resampler(self, dataset: Dataset, records: list[dict]) -> Resampler | None:
        """mIoU and NoC as weighted means over objects (unit: (item, object id)), NoC failures as weighted
        counts."""
        c = self.config
        objs = [(r["item"], o) for r in records for o in r["objects"]]
        if not objs:
            return None
        ious = np.full((len(objs), c["max_clicks"]), np.nan)
        for row, (_, o) in zip(ious, objs):
            seq = o["ious"][: c["max_clicks"]]
            row[: len(seq)] = seq
        columns = {f"miou_{n}": 100 * ious[:, n - 1] for n in c["clicks"]}
        columns["miou_oracle_1"] = 100 * np.array([o["oracle_iou_1"] for _, o in objs], np.float64)
        failed = {}
        for t in c["noc_thresholds"]:
            noc, failed[_key(t) + "_failures"] = number_of_clicks(ious, t / 100, c["max_clicks"])
            columns[_key(t)] = noc.astype(np.float64)

        def compute(w: np.ndarray) -> dict[str, np.ndarray]:
            out = {k: weighted_mean(v, w) for k, v in columns.items()}
            return {**out, **{k: w @ v.astype(np.float64) for k, v in failed.items()}}  # counts: weighted sums

        return Resampler(tuple((item, o["id"]) for item, o in objs), compute, unit="object")

    def aggregate(self, per_dataset: dict[str, dict[str, float]]) -> dict[str, float]:
        """Mean over datasets; object and failure counts are summed."""
        out = super().aggregate(per_dataset)
        for k in out:
            if k in COUNT_KEYS or k.endswith("_failures"):
                out[k] = int(sum(m.get(k, 0) for m in per_dataset.values()))
        return out
