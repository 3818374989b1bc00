"""Time the BSDS boundary benchmark (99 thresholds, thinning, correspondence) on BSDS500.

    python benchmarks/bench_bsds.py --data-root ../shared/data --images 200     # the whole test split

Edge maps (Canny soft map + edge NMS, computed first and not timed) are benchmarked image by
image with ``sam_bench.metrics.bsds.image_counts``; prints seconds per image, the total, the
extrapolation to the 200-image test split and the resulting ODS / OIS / AP. The classic MATLAB
benchmark takes hours for 200 images; pyEdgeEval (compiled CSA matcher) took about 40 s per image
(99 thresholds, one process) here against our 3.7 s (``crosscheck_pyedgeeval.py`` times both).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                   help="folder holding BSDS500/")
    p.add_argument("--split", default="test", help="BSDS500 split (default test)")
    p.add_argument("--images", type=int, default=20, help="first N images (200 = the whole test split)")
    p.add_argument("--thresholds", type=int, default=99, help="number of thresholds (standard 99)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    from sam_bench.data.bsds import open_bsds
    from sam_bench.metrics import bsds
    from sam_bench.metrics.edge_nms import edge_nms
    from sam_bench.models.edges import CannyEdges

    model = CannyEdges()
    data = []
    for item in open_bsds(Path(args.data_root) / "BSDS500", args.split).items[: args.images]:
        s = item.load()
        model.set_image(s.image, item.id)
        data.append((edge_nms(model.edge_map()), s.boundaries))
    times, counts = [], []
    for e, gts in data:
        t0 = time.perf_counter()
        counts.append(bsds.image_counts(e, gts, args.thresholds))
        times.append(time.perf_counter() - t0)
    m = bsds.summarize(counts, args.thresholds)
    per = sum(times) / len(times)
    report = {"images": len(data), "thresholds": args.thresholds, "seconds_total": round(sum(times), 1),
              "seconds_per_image": round(per, 2), "seconds_max": round(max(times), 2),
              "extrapolated_200_images_minutes": round(per * 200 / 60, 1),
              "ods": round(m["ods"], 4), "ois": round(m["ois"], 4), "ap": round(m["ap"], 4),
              "machine": platform.processor() or platform.machine()}
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
