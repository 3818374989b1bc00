"""What 1000 bootstrap resamples add to the scoring of a run (issue: < 10%).

    python benchmarks/bench_bootstrap.py --data-root DATA --out benchmarks/results/bootstrap_cpu.json

Three cases, each timing the task's own scoring (what ``summarise`` runs without intervals) and
then its resampler's 1000 replicates (``sam_bench.metrics.bootstrap``), on the same records:

- ``instances`` on COCO_tiny: ``coco_mask_ap`` (pycocotools ``evaluate`` + ``accumulate``) of
  results made from the ground truth (each kept object's own mask at a random score, a few
  dropped, a wrong-category copy at a lower score), then the weighted re-accumulation;
- ``proposals`` on LVIS_v0.5_val100: ``ProposalsTask.score`` (class-agnostic AR@1000 by size and
  frequency) of records with 1000 proposals per image, matching each annotation with probability
  0.8 at a uniform IoU in [0.5, 1] (and a second, weaker match for some);
- ``edges`` on BSDS500 test: the standard benchmark's per-image counts (``bsds.image_counts``, 99
  thresholds, Canny + edge NMS maps) for ``--edge-images`` images, extrapolated to the 200-image
  split, against re-aggregating ODS / OIS / AP / R50 from 200 images' counts 1000 times.

The model's own time is not counted anywhere, so the ratios are an upper bound on the share of a run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

B = 1000
REPEAT = 3  # timings of the cheap cases: the fastest of this many


def _timed(fn, repeat: int = 1):
    """(result, the fastest of ``repeat`` wall times): the machine is shared, the minimum is the cost."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def _entry(key: str, name: str, units: int, score_s: float, boot_s: float, **extra) -> dict:
    return {"key": key, "case": name, "units": units, "scoring_seconds": round(score_s, 4), "bootstrap_seconds": round(boot_s, 4),
            "overhead_percent": round(100 * boot_s / score_s, 2), "replicates": B, **extra}


def _open(name: str, root: str, **data):
    from sam_bench.data import catalog

    specs, absent = catalog.expand([name], root)
    if absent:
        raise SystemExit(f"{name}: {absent}")
    return catalog.open_for_run(specs, root, data)[0]


def instances(root: str) -> dict:
    from pycocotools.coco import COCO

    from sam_bench.metrics import coco_resample
    from sam_bench.metrics.bootstrap import Resampler, replicates, rng_for
    from sam_bench.metrics.coco_eval import coco_mask_ap

    ds = _open("COCO_tiny", root)
    gt = ds.gt.data if ds.gt is not None else json.loads(Path(ds.gt_json).read_text())
    api = COCO()
    api.dataset = gt
    api.createIndex()
    rng = np.random.default_rng(0)
    results = []
    cats = [c["id"] for c in gt["categories"]]
    for a in gt["annotations"]:
        if a.get("iscrowd") or rng.random() < 0.15:
            continue
        rle = api.annToRLE(a)
        rle = {"size": rle["size"], "counts": rle["counts"].decode() if isinstance(rle["counts"], bytes)
               else rle["counts"]}
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle,
                        "score": float(rng.random())})
        if rng.random() < 0.3:
            results.append({"image_id": a["image_id"], "category_id": int(rng.choice(cats)), "segmentation": rle,
                            "score": float(rng.random() * 0.5)})
    kept: list = []
    metrics, score_s = _timed(lambda: coco_mask_ap(gt, results, kept=kept), REPEAT)
    ev = kept[0]

    def boot():
        bl = coco_resample.blocks(ev)
        res = Resampler(tuple(ev.params.imgIds), lambda w: coco_resample.ap_summary(ev, bl, w),
                        chunk=coco_resample.replicate_chunk(ev, bl))
        return replicates(res, B, rng_for(0, "COCO_tiny"))

    reps, boot_s = _timed(boot, REPEAT)
    return _entry("instances", "instances COCO_tiny (COCO mask AP)", len(ev.params.imgIds), score_s, boot_s,
                  results=len(results), ap=round(metrics["ap"], 2),
                  ap_ci=[round(float(v), 2) for v in np.percentile(reps["ap"], [2.5, 97.5])])


def proposals(root: str) -> dict:
    from sam_bench.metrics.bootstrap import replicates, rng_for
    from sam_bench.tasks.proposals import ProposalsTask

    ds = _open("LVIS_v0.5_val100", root)
    gt = ds.gt.data if ds.gt is not None else json.loads(Path(ds.gt_json).read_text())
    rng = np.random.default_rng(0)
    by_img: dict = {}
    for a in gt["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    item_of = {it.image_id: it.id for it in ds.items}
    records = []
    for img in sorted(by_img):
        anns = by_img[img]
        ranks = rng.permutation(1000)
        matches, props = [], {}
        for g, a in enumerate(anns):
            for k, p_match in enumerate((0.8, 0.3)):
                if rng.random() < p_match:
                    r = int(ranks[(2 * g + k) % 1000])
                    matches.append([r, g, float(rng.uniform(0.5, 1.0) * (1 - 0.2 * k))])
                    props[r] = int(a.get("area", 100))
        records.append({"item": item_of.get(img, str(img)), "image_id": img, "num_proposals": 1000,
                        "gt": [[a["id"], a["category_id"], float(a.get("area", 100)), int(a.get("iscrowd", 0))]
                               for a in anns],
                        "proposals": [[r, ar] for r, ar in sorted(props.items())],
                        "matches": [m for m in matches if m[2] >= 0.5]})
    task = ProposalsTask(top_k=1000)
    (metrics, res), score_s = _timed(lambda: task.score(ds, records), REPEAT)
    _, only_s = _timed(lambda: task.evaluate(ds, records), REPEAT)
    reps, boot_s = _timed(lambda: replicates(res, B, rng_for(0, ds.name)), REPEAT)
    return _entry("proposals", "proposals LVIS_v0.5_val100 (class-agnostic AR@1000, sizes and frequency groups)", len(records),
                  only_s, boot_s + max(0.0, score_s - only_s), ar1000=round(metrics["ar1000"], 2),
                  ar1000_ci=[round(float(v), 2) for v in np.percentile(reps["ar1000"], [2.5, 97.5])],
                  groups=sorted(k for k in metrics if k.startswith("ar1000_")))


def edges(root: str, n_images: int, split_size: int = 200) -> dict:
    from sam_bench.data.bsds import open_bsds
    from sam_bench.metrics import bsds
    from sam_bench.metrics.bootstrap import Resampler, replicates, rng_for
    from sam_bench.metrics.edge_nms import edge_nms
    from sam_bench.models.edges import CannyEdges

    model = CannyEdges()
    counts, score_s = [], 0.0
    for item in open_bsds(Path(root) / "BSDS500", "test").items[:n_images]:
        s = item.load()
        model.set_image(s.image, item.id)
        final = edge_nms(model.edge_map())
        c, dt = _timed(lambda: bsds.image_counts(final, s.boundaries, 99))
        counts.append(c)
        score_s += dt
    full = np.stack([counts[i % len(counts)] for i in range(split_size)])  # 200 images' worth of counts
    _, summ_s = _timed(lambda: bsds.summarize(list(full)))
    res = Resampler(tuple(range(split_size)), lambda w: bsds.summarize_weighted(full, w), chunk=250)
    reps, boot_s = _timed(lambda: replicates(res, B, rng_for(0, "BSDS500")))
    scoring = score_s / len(counts) * split_size + summ_s
    return _entry("edges", f"edges BSDS500 test (ODS/OIS/AP/R50; counts timed on {len(counts)} images, x{split_size / len(counts):g})",
                  split_size, scoring, boot_s, seconds_per_image=round(score_s / len(counts), 3),
                  ods_ci=[round(float(v), 4) for v in np.percentile(reps["ods"], [2.5, 97.5])])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="folder holding COCO_tiny, LVIS_v0.5_val100, BSDS500")
    p.add_argument("--edge-images", type=int, default=10, help="BSDS500 test images whose counts are timed")
    p.add_argument("--cases", nargs="+", choices=["instances", "proposals", "edges"],
                   default=["instances", "proposals", "edges"], help="which to run (the others are kept from --out)")
    p.add_argument("--out", help="write the JSON here too (merged with the cases it already holds)")
    args = p.parse_args(argv)
    run = {"instances": lambda: instances(args.data_root), "proposals": lambda: proposals(args.data_root),
           "edges": lambda: edges(args.data_root, args.edge_images)}
    old = {c.get("key"): c for c in json.loads(Path(args.out).read_text())["cases"]} \
        if args.out and Path(args.out).exists() else {}
    new = {k: run[k]() for k in args.cases}
    rows = [new.get(k) or old[k] for k in run if k in new or k in old]
    out = {"benchmark": "bootstrap overhead, 1000 resamples", "machine": platform.platform(),
           "processor": platform.processor(), "cpu_count": __import__("os").cpu_count(), "cases": rows}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
