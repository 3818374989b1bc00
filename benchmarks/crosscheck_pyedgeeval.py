"""Cross-check our BSDS benchmark against pyEdgeEval on the same saved edge maps.

    pip install pyEdgeEval          # test-only dependency (builds its C++ correspondPixels)
    python benchmarks/crosscheck_pyedgeeval.py --data-root ../shared/data --images 12

For the first N BSDS500 images of a split: a Canny soft map (``sam_bench.models.edges``) after our
edge NMS is saved as an 8-bit PNG (or ``--maps DIR`` gives saved maps), read back by both benchmarks (each its own thinning and
matching), and ODS / OIS / AP are compared (pyEdgeEval's ``AUC`` is the standard code's AP,
the area under the interpolated PR curve; its ``AP`` is a different 101-point average). Prints
both sets of numbers, the differences and the timings (``--workers`` processes over images, the
same for both); with ``--json`` one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def our_maps(root: Path, split: str, n: int, out: Path) -> list[tuple[str, list[np.ndarray]]]:
    """Write Canny + NMS maps as PNGs to ``out``; return (id, annotators) per image."""
    from sam_bench.data.bsds import open_bsds
    from sam_bench.metrics.edge_nms import edge_nms
    from sam_bench.models.edges import CannyEdges

    model = CannyEdges()
    items = []
    for item in open_bsds(root, split).items[:n]:
        sample = item.load()
        model.set_image(sample.image, item.id)
        e = edge_nms(model.edge_map())
        cv2.imwrite(str(out / f"{item.id}.png"), np.clip(np.rint(e * 255), 0, 255).astype(np.uint8))
        items.append((item.id, sample.boundaries))
    return items


def _ours(job) -> np.ndarray:
    from sam_bench.metrics import bsds

    edge, gts, n = job
    return bsds.image_counts(edge, gts, n)


def _theirs(job):
    from pyEdgeEval.common.binary_label import evaluate_boundaries_threshold_multiple_gts

    from sam_bench.metrics import bsds

    edge, gts, n = job
    return evaluate_boundaries_threshold_multiple_gts(bsds.thresholds(n), edge, [g.astype(np.uint8) for g in gts])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                   help="folder holding BSDS500/")
    p.add_argument("--split", default="test", help="BSDS500 split (default test)")
    p.add_argument("--images", type=int, default=12, help="first N images of the split")
    p.add_argument("--thresholds", type=int, default=99, help="number of thresholds (standard 99)")
    p.add_argument("--maps", help="evaluate these saved maps (DIR/<id>.png, e.g. a run's --save-edges "
                   "OUT/edges) instead of computing Canny maps")
    p.add_argument("--pyedgeeval-images", type=int, help="give pyEdgeEval only the first N of those images "
                   "(it is slow: the whole test split takes it hours); numbers and times are compared on "
                   "them, ours is also reported on all")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--workers", type=int, default=1, help="processes, each evaluating whole images, for "
                   "both benchmarks alike (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    try:
        from pyEdgeEval.common.binary_label import calculate_metrics
    except ImportError:
        print("pyEdgeEval is not installed: pip install pyEdgeEval", file=sys.stderr)
        return 2
    from sam_bench.metrics import bsds

    root = Path(args.data_root) / "BSDS500"
    with tempfile.TemporaryDirectory() as tmp:
        if args.maps:
            from sam_bench.data.bsds import open_bsds

            folder = Path(args.maps)
            items = [(it.id, it.load().boundaries) for it in open_bsds(root, args.split).items[: args.images]]
        else:
            folder = Path(tmp)
            items = our_maps(root, args.split, args.images, folder)
        maps = {i: cv2.imread(str(folder / f"{i}.png"), cv2.IMREAD_UNCHANGED) / 255.0 for i, _ in items}
    n_theirs = min(len(items), args.pyedgeeval_images or len(items))
    jobs = [(maps[i], gts, args.thresholds) for i, gts in items]
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        t0 = time.perf_counter()
        ours_counts = list(pool.map(_ours, jobs[:n_theirs]))
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours_counts += list(pool.map(_ours, jobs[n_theirs:]))
        t_ours_all = t_ours + time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs_counts = dict(zip([i for i, _ in items[:n_theirs]], pool.map(_theirs, jobs[:n_theirs])))
        t_theirs = time.perf_counter() - t0
    ours = bsds.summarize(ours_counts[:n_theirs], args.thresholds)
    _, _, overall = calculate_metrics(lambda s: theirs_counts[s["name"]], args.thresholds,
                                      [{"name": i} for i, _ in items[:n_theirs]], nproc=1)
    theirs = {"ods": float(overall["ODS_f1"]), "ois": float(overall["OIS_f1"]), "ap": float(overall["AUC"])}
    keys = ("ods", "ois", "ap", "r50")
    report = {"images": n_theirs, "thresholds": args.thresholds, "workers": args.workers,
              "ours": {k: ours[k] for k in keys}, "pyedgeeval": theirs,
              "diff": {k: ours[k] - theirs[k] for k in theirs},
              "seconds": {"ours": round(t_ours, 2), "pyedgeeval": round(t_theirs, 2)},
              "speedup": round(t_theirs / t_ours, 2)}
    if n_theirs < len(items):
        full = bsds.summarize(ours_counts, args.thresholds)
        report["ours_all"] = {"images": len(items), "seconds": round(t_ours_all, 2), **{k: full[k] for k in keys}}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        for k in ("ours", "pyedgeeval", "diff", "seconds", "ours_all"):
            if k in report:
                print(f"{k:>10}: " + "  ".join(f"{a}={b:.4f}" if isinstance(b, float) else f"{a}={b}"
                                               for a, b in report[k].items()))
        print(f"{'speedup':>10}: {report['speedup']}x on the same {n_theirs} images, {args.workers} worker(s) each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
