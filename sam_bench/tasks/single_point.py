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
clicks [[x, y, positive]]}] and ``skipped_objects`` [{id, reason}]. Metrics per dataset (mIoU in
percent): ``miou_N`` per N in ``--clicks``, ``miou_oracle_1``, ``nocT`` (mean clicks to reach T%
IoU, failures counted as ``--max-clicks``), ``nocT_failures``, ``num_objects``,
``num_skipped_objects``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
from pathlib import Path

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError, SamBenchError
from sam_bench.metrics.clicks import Click, center_click, mask_iou, next_click, number_of_clicks, random_click
from sam_bench.metrics.spec import MetricSpec
from sam_bench.tasks.base import Task

log = logging.getLogger("sam_bench")

DEFAULTS = {"point": "center", "clicks": [1, 2, 3, 5, 9], "max_clicks": 20, "noc_thresholds": [85, 90],
            "feed_logits": False, "seed": 0, "object_batch": 16, "object_memory": 1.0, "compare_to": None}
# bytes per image pixel held for each object of a click round at its peak (the first click,
# multimask, see _simulate): the model's (3, H, W) float32 logits twice (its decoder chunks and
# their concatenation), their 3 bool masks, the oracle IoU's temporaries (2 x 3 bool and a 1-byte
# ground-truth copy), and the object's own ground-truth and clicked maps (2 x 1 byte)
OBJECT_BYTES_PER_PIXEL = 2 * 3 * 4 + 3 + 2 * 3 + 1 + 2
GIB = 1 << 30
DATA_KEYS = ("split", "split_by", "subsample", "subsample_seed")  # passed through to the data layer
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

    def __init__(self, **config):
        unknown = set(config) - set(DEFAULTS) - set(DATA_KEYS)
        if unknown:
            raise ConfigError(f"single-point: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        c = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k not in DEFAULTS}}
        try:
            c["clicks"], c["noc_thresholds"] = _numbers(c["clicks"]), _numbers(c["noc_thresholds"], float)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--clicks / --noc-thresholds: {exc}") from None
        c["noc_thresholds"] = [int(t) if float(t).is_integer() else t for t in c["noc_thresholds"]]
        if c["point"] not in ("center", "random"):
            raise ConfigError(f"--point {c['point']!r}: choose center or random")
        if not c["clicks"] or c["clicks"][0] < 1:
            raise ConfigError(f"--clicks {c['clicks']}: click counts must be >= 1")
        if c["max_clicks"] < c["clicks"][-1]:
            raise ConfigError(f"--max-clicks {c['max_clicks']} is below the largest --clicks value {c['clicks'][-1]}")
        if not c["noc_thresholds"] or not all(0 < t <= 100 for t in c["noc_thresholds"]):
            raise ConfigError(f"--noc-thresholds {c['noc_thresholds']}: IoU percentages in (0, 100]")
        if c["object_batch"] < 1:
            raise ConfigError(f"--object-batch {c['object_batch']}: must be >= 1")
        if not c["object_memory"] > 0:
            raise ConfigError(f"--object-memory {c['object_memory']}: a memory budget in GiB, must be > 0")
        if c["compare_to"] is not None and not Path(c["compare_to"]).is_file():
            raise ConfigError(f"--compare-to {c['compare_to']}: no such results file")
        c["compare_to"] = str(c["compare_to"]) if c["compare_to"] is not None else None
        super().__init__(**c)

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        p.add_argument("--point", choices=["center", "random"], default=DEFAULTS["point"],
                       help="first click: the object's center (farthest from its boundary; paper default) or a "
                            "random pixel of it, seeded by --seed, the item and the object (default: center)")
        p.add_argument("--clicks", type=_numbers, default=DEFAULTS["clicks"], metavar="N,N,...",
                       help="click counts at which mIoU is reported (default: 1,2,3,5,9 as in Fig. 9)")
        p.add_argument("--max-clicks", type=int, default=DEFAULTS["max_clicks"],
                       help="click budget for NoC; objects that never reach a threshold count this many "
                            "(default: 20, as RITM)")
        p.add_argument("--noc-thresholds", type=lambda s: _numbers(s, float), default=DEFAULTS["noc_thresholds"],
                       metavar="T,T,...", help="IoU targets in percent for NoC (default: 85,90)")
        p.add_argument("--feed-logits", action="store_true",
                       help="feed the previous click's low-res logits back as a mask prompt (the paper does not "
                            "say; default: off)")
        p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of --point random (default: 0)")
        p.add_argument("--object-batch", type=int, default=DEFAULTS["object_batch"],
                       help="objects of one image decoded together per click round, at most (default: 16; "
                            "fewer on large images, see --object-memory)")
        p.add_argument("--object-memory", type=float, default=DEFAULTS["object_memory"], metavar="GIB",
                       help="memory budget of one click round in GiB: the object batch shrinks so that its "
                            f"full-resolution arrays ({OBJECT_BYTES_PER_PIXEL} bytes per pixel per object) fit, "
                            "down to one object (default: 1; never changes the results)")
        p.add_argument("--compare-to", metavar="RESULTS_JSON",
                       help="another single-point results.json: the bar chart then shows per-dataset "
                            "differences (this run minus that one) and the click plot both runs")

    # -- one image ---------------------------------------------------------------------
    def process(self, model, item: Item, sample: Sample) -> dict:
        h, w = sample.image.shape[:2]
        ignore = self._ignore_region(item, sample)
        objects, insts, skipped = [], [], []  # masks are decoded again per batch: only a batch's are held
        for inst in sample.instances:
            if inst.iscrowd:
                continue
            size = tuple(inst.rle.get("size", ()))
            if size != (h, w):
                skipped.append({"id": inst.id, "reason": f"mask is {size}, image is {(h, w)}"})
                continue
            gt = inst.mask()
            area = int((gt & ~ignore).sum()) if ignore is not None else int(gt.sum())
            if area == 0:
                why = "empty mask" if not gt.any() else "mask lies entirely in the ignore region"
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
        for start in range(0, len(objects), step):
            part = objects[start:start + step]
            gts = np.stack([inst.mask() for inst in insts[start:start + step]])
            firsts = [self._first_click(item, obj["id"], gt, ignore) for obj, gt in zip(part, gts)]
            for obj, res in zip(part, self._simulate(model, gts, ignore, firsts)):
                obj.update(res)
        return {"objects": objects, "skipped_objects": skipped}

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
        """Click loop for B objects (gts (B, H, W) bool) on the model's current image."""
        c = self.config
        n_min, n_max, target = c["clicks"][-1], c["max_clicks"], max(c["noc_thresholds"]) / 100
        b = len(gts)
        clicks = [[f] for f in firsts]
        clicked = np.zeros_like(gts)
        for i, f in enumerate(firsts):
            clicked[i, f.y, f.x] = True
        ious: list[list[float]] = [[] for _ in range(b)]
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
                if k >= n_max or (k >= n_min and iou_k[a] >= target):
                    continue
                nxt = next_click(gts[i], masks[a], ignore, clicked[i])
                if nxt is None:  # nothing left to correct: the mask stays as it is
                    ious[i].extend([float(iou_k[a])] * max(0, n_min - k))
                    continue
                clicks[i].append(nxt)
                clicked[i, nxt.y, nxt.x] = True
                still.append(i)
            active = still
            if not active:
                break
        return [{"ious": ious[i], "oracle_iou_1": float(oracle[i]),
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

    def aggregate(self, per_dataset: dict[str, dict[str, float]]) -> dict[str, float]:
        """Mean over datasets; object and failure counts are summed."""
        out = super().aggregate(per_dataset)
        for k in out:
            if k in COUNT_KEYS or k.endswith("_failures"):
                out[k] = int(sum(m.get(k, 0) for m in per_dataset.values()))
        return out

    # -- tables and plots ----------------------------------------------------------------
    def outputs(self, results: dict, out_dir: Path) -> list[Path]:
        """``single_point.{md,csv,tex}``, ``single_point_bars.png`` (Fig. 9a), ``single_point_clicks.png`` (9c/d)."""
        from sam_bench.reports.tables import write_table
        from sam_bench.results import load_json

        out_dir = Path(out_dir)
        other = None
        if self.config.get("compare_to"):
            try:
                other = load_json(self.config["compare_to"])
            except ConfigError as exc:
                log.warning("--compare-to: %s; plotting this run alone", exc)
        caption = (f"Single-point valid mask, {self.config['point']} first click: mIoU (%) after N clicks, "
                   f"NoC within {self.config['max_clicks']} clicks")
        paths = write_table(self._table(results), out_dir, "single_point", caption=caption, floatfmt=".2f",
                            results=results, sources=_paper_rows())
        paths.append(self._bars(results, other, out_dir / "single_point_bars.png"))
        paths.append(self._curves(results, other, out_dir / "single_point_clicks.png"))
        return paths

    def _columns(self) -> dict[str, str]:
        """metric key -> column title."""
        cols = {f"miou_{n}": f"mIoU@{n}" for n in self.config["clicks"]}
        cols["miou_oracle_1"] = "oracle mIoU@1"
        for t in self.config["noc_thresholds"]:
            cols[_key(t)] = f"NoC@{t:g}"
        for t in self.config["noc_thresholds"]:
            cols[_key(t) + "_failures"] = f">={self.config['max_clicks']}@{t:g}"
        return cols

    def _table(self, results: dict):
        import pandas as pd

        cols, label = self._columns(), _label(results)
        rows = [{"method": label, "dataset": name, "objects": ds["metrics"].get("num_objects"),
                 **{title: ds["metrics"].get(k, math.nan) for k, title in cols.items()}}
                for name, ds in results["datasets"].items() if ds["metrics"]]
        if len(rows) > 1 and results.get("metrics"):
            rows.append({"method": label, "dataset": f"mean of {len(rows)}", "objects": results["metrics"].get(
                "num_objects"), **{title: results["metrics"].get(k, math.nan) for k, title in cols.items()}})
        for ref in _paper_rows():
            scope = ref.get("dataset", ref.get("scope", "23-dataset mean"))
            if "dataset" in ref and ref["dataset"] not in results["datasets"]:
                continue
            rows.append({"method": f"{ref['method']} (reported)", "dataset": scope, "objects": None,
                         **{title: ref.get(k, math.nan) for k, title in cols.items()}})
        df = pd.DataFrame(rows, columns=["method", "dataset", "objects", *cols.values()]).astype(object)
        # counts as ints; missing values as None, which every output format prints as missing
        counts = {"objects", *(title for k, title in cols.items() if k.endswith("_failures"))}
        for col in df.columns[2:]:
            df[col] = pd.Series([None if v is None or (isinstance(v, float) and math.isnan(v))
                                 else int(v) if col in counts else float(v) for v in df[col]], dtype=object)
        return df

    def _bars(self, results: dict, other: dict | None, path: Path) -> Path:
        """Fig. 9a: per-dataset mIoU at one click, or the difference to ``other`` when given."""
        plt = _pyplot()
        ours = {n: d["metrics"]["miou_1"] for n, d in results["datasets"].items() if "miou_1" in d["metrics"]}
        if other is not None:
            theirs = {n: d["metrics"].get("miou_1") for n, d in other.get("datasets", {}).items()}
            vals = {n: v - theirs[n] for n, v in ours.items() if theirs.get(n) is not None}
            xlabel = f"mIoU at 1 point: {_label(results)} minus {_label(other)} (IoU points)"
        else:
            vals, xlabel = ours, f"mIoU at 1 point (%), {_label(results)}"
        names = sorted(vals, key=vals.get)
        fig, ax = plt.subplots(figsize=(6, 0.35 * max(len(names), 3) + 1.2))
        colors = ["tab:green" if vals[n] >= 0 else "tab:red" for n in names] if other is not None else "tab:blue"
        ax.barh(names, [vals[n] for n in names], color=colors)
        for y, n in enumerate(names):
            ax.annotate(f"{vals[n]:+.1f}" if other is not None else f"{vals[n]:.1f}", (vals[n], y),
                        xytext=(3 if vals[n] >= 0 else -3, 0), textcoords="offset points", va="center",
                        ha="left" if vals[n] >= 0 else "right", fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_title(f"Single point ({self.config['point']}), per dataset")
        return _save(fig, path)

    def _curves(self, results: dict, other: dict | None, path: Path) -> Path:
        """Fig. 9c/d: mIoU against the number of points, per dataset and the mean over datasets."""
        plt = _pyplot()
        ns = self.config["clicks"]
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for name, ds in results["datasets"].items():
            if ds["metrics"]:
                ax.plot(ns, [ds["metrics"].get(f"miou_{n}", math.nan) for n in ns], lw=0.8, alpha=0.5, marker=".",
                        label=name if len(results["datasets"]) <= 8 else None)
        runs = [(results, "-")] + ([(other, "--")] if other is not None else [])
        for run, style in runs:
            m = run.get("metrics", {})
            ax.plot(ns, [m.get(f"miou_{n}", math.nan) for n in ns], style, color="black", lw=2, marker="o",
                    label=f"mean, {_label(run)}")
        ax.set_xticks(ns)
        ax.set_xlabel("number of points")
        ax.set_ylabel("mIoU (%)")
        ax.set_title(f"mIoU vs points ({self.config['point']} first point)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return _save(fig, path)


def _label(results: dict) -> str:
    model = results.get("model", {})
    return f"{model.get('name', '?')}{' [untrained]' if results.get('untrained') or model.get('untrained') else ''}"


def _paper_rows() -> list[dict]:
    """Reference rows of the presets that run this task (``tasks/single_point.toml``, ``interactive.toml``)."""
    from sam_bench.presets import load_presets

    try:
        presets = load_presets()
    except ConfigError as exc:
        log.warning("paper reference rows unavailable: %s", exc)
        return []
    return [dict(r) for name in sorted(presets) if presets[name]["task"] == SinglePointTask.name
            for r in presets[name].get("paper", [])]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import io

    from sam_bench.results import atomic_write_bytes

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
