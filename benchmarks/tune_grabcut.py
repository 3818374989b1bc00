"""Choose the ``grabcut`` baseline's probable-foreground disk radii on data held out from every
single-point benchmark set.

    python benchmarks/tune_grabcut.py --data-root ../shared/data

Runs the single-point task (center first click, up to ``--max-clicks`` clicks) with GrabCut at
several radius triples (small, medium, large = r/2, r, 3r/2 as fractions of the working copy's
shorter side) on COCO_tiny's objects (COCO-format instance annotations, not one of the Fig. 9
sets), and prints mIoU@1 (the medium-radius default mask), oracle mIoU@1 (the best of the three)
and mIoU at the last click for each. Writes ``benchmarks/results/tune_grabcut.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--dataset", default="COCO_tiny", help="held-out dataset with object masks")
    p.add_argument("--medium", default="0.1,0.15,0.2,0.25,0.3", help="medium radii to try")
    p.add_argument("--max-clicks", type=int, default=3)
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_grabcut.json"))
    args = p.parse_args(argv)
    from sam_bench.models.grabcut import build_grabcut
    from sam_bench.runner import run_task

    rows = []
    clicks = sorted({1, args.max_clicks})
    for r in (float(x) for x in args.medium.split(",")):
        radii = (round(r / 2, 4), r, round(1.5 * r, 4))
        with tempfile.TemporaryDirectory() as tmp:
            res = run_task("single-point", build_grabcut(probable_radii=radii), datasets=[args.dataset],
                           data_root=args.data_root, out=tmp, limit=args.limit, progress=False,
                           clicks=",".join(map(str, clicks)), max_clicks=args.max_clicks)
        m = res["datasets"][next(iter(res["datasets"]))]["metrics"]
        row = {"probable_radii": radii, "objects": m.get("num_objects"), "miou_1": m["miou_1"],
               "miou_oracle_1": m["miou_oracle_1"], f"miou_{args.max_clicks}": m[f"miou_{args.max_clicks}"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = max(rows, key=lambda x: x["miou_1"])
    report = {"dataset": args.dataset, "max_clicks": args.max_clicks, "rows": rows, "best_by_miou_1": best}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("best by mIoU@1:", best["probable_radii"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
