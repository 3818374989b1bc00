"""Zero-shot edge detection on BSDS500 (paper section 7.2, Table 3): ODS / OIS / AP / R50.

Per image: a soft edge map in [0, 1] from the model (an edge model's ``edge_map``, or for a
promptable model the SAM edge pipeline: automatic mask generation on a ``grid`` x ``grid`` point
grid, all three masks per point, no predicted-IoU or stability filtering, mask NMS, then
``sam_bench.sam_edges``), then the structured-edges NMS (``sam_bench.metrics.edge_nms``), then the
standard BSDS benchmark counts at ``thresholds`` thresholds (``sam_bench.metrics.bsds``).

Record per image: the (T, 4) counts [cntR, sumR, cntP, sumP] and the image's best F (OIS-style,
interpolated), its threshold, recall and precision; with ``save_edges`` also the final map as a
base64 8-bit PNG, which ``outputs`` writes to ``OUT/edges/<id>.png`` (readable by
``--model edges-from:OUT/edges --no-nms`` or any other BSDS benchmark; 8-bit quantisation can move
the metrics in the third decimal).
"""

from __future__ import annotations

import argparse
import base64
import math
import time
from pathlib import Path

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.metrics import bsds
from sam_bench.metrics.edge_nms import edge_nms
from sam_bench.metrics.spec import MetricSpec
from sam_bench.tasks.base import Task

DEFAULTS = {"split": "test", "grid": 16, "mask_nms_thresh": 0.7, "mask_boundary": "inside", "points_per_batch": None,
            "nms": True, "nms_radius": 1, "nms_border": 5, "nms_multiplier": 1.01, "nms_presmooth": True,
            "thinning": True, "thresholds": 99, "max_dist": 0.0075, "save_edges": False,
            "bench_workers": 1}
TABLE3 = ("ods", "ois", "ap", "r50")


class EdgesTask(Task):
    name = "edges"
    non_scoring = frozenset({"bench_workers"})  # same counts with any number of processes
    description = "zero-shot edge detection on BSDS500: ODS / OIS / AP / R50 (paper Table 3)"
    model_kinds = ("edges", "promptable")
    default_datasets = ("BSDS500",)
    metrics = (*(MetricSpec(k, "unit") for k in ("ods", "ois", "ap")),
               MetricSpec("r50", "unit", required=False),  # undefined when precision never reaches 0.5
               MetricSpec("num_annotations", "count", higher_is_better=None),
               *(MetricSpec(k, "unit", scoring=False) for k in ("ods_threshold", "ods_recall", "ods_precision",
                                                                "ois_recall", "ois_precision")))

    def __init__(self, **config):
        # NMS is on by default, but a precomputed map that is already thin is refused unless
        # --nms / --no-nms was given (see check_thin)
        self.nms_given = config.get("nms") is not None
        super().__init__(**{**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k not in DEFAULTS}})
        c = self.config
        if c["grid"] < 1:
            raise ConfigError(f"--grid must be >= 1, got {c['grid']}")
        if c["mask_nms_thresh"] is not None and not 0 < c["mask_nms_thresh"] <= 1:
            raise ConfigError(f"--mask-nms-thresh must be in (0, 1], got {c['mask_nms_thresh']}")
        if c["mask_boundary"] not in ("inside", "outside"):
            raise ConfigError(f"--mask-boundary must be inside or outside, got {c['mask_boundary']!r}")
        if c["nms_radius"] < 1 or c["nms_border"] < 0 or c["nms_multiplier"] <= 0:
            raise ConfigError("--nms-radius must be >= 1, --nms-border >= 0 and --nms-multiplier > 0; got "
                              f"{c['nms_radius']}, {c['nms_border']}, {c['nms_multiplier']}")
        if c["bench_workers"] < 1:
            raise ConfigError(f"--bench-workers must be >= 1, got {c['bench_workers']}")
        if c["thresholds"] < 1:
            raise ConfigError(f"--thresholds must be >= 1, got {c['thresholds']}")
        if not 0 < c["max_dist"] < 1:
            raise ConfigError(f"--max-dist is a fraction of the image diagonal in (0, 1), got {c['max_dist']}")

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        d = DEFAULTS
        p.add_argument("--grid", type=int, default=d["grid"],
                       help="SAM pipeline: points per side of the prompt grid (paper: 16, all 3 masks per point)")
        p.add_argument("--mask-nms-thresh", type=float, default=d["mask_nms_thresh"],
                       help="SAM pipeline: mask-IoU NMS threshold removing duplicate masks (paper: unstated; 0.7)")
        p.add_argument("--mask-boundary", choices=("inside", "outside"), default=d["mask_boundary"],
                       help="SAM pipeline: the mask boundary pixels where the Sobel response is kept: the mask's "
                            "own pixels next to the background (inside) or the background pixels next to the mask")
        p.add_argument("--points-per-batch", type=int, default=None,
                       help="SAM pipeline: grid points per decoder call (default: the model's prompt batch)")
        p.add_argument("--nms", dest="nms", action="store_true", default=None,
                       help="apply the structured-edges NMS to every model's map (default; an edges-from map "
                            "that is already thin is refused unless --nms or --no-nms is given)")
        p.add_argument("--no-nms", dest="nms", action="store_false", default=None,
                       help="evaluate maps as given (e.g. edges-from maps that are already thinned)")
        p.add_argument("--nms-radius", type=int, default=d["nms_radius"],
                       help="edge NMS: distance along the normal compared against (paper: 1)")
        p.add_argument("--nms-border", type=int, default=d["nms_border"],
                       help="edge NMS: width in px of the linear suppression ramp at the image border (paper: 5)")
        p.add_argument("--nms-multiplier", type=float, default=d["nms_multiplier"],
                       help="edge NMS: a pixel survives if value x this >= its neighbours (paper: 1.01)")
        p.add_argument("--no-nms-presmooth", dest="nms_presmooth", action="store_false", default=d["nms_presmooth"],
                       help="edge NMS: skip the radius-1 triangle smoothing of the map before NMS (the HED/RCF "
                            "and pyEdgeEval scripts smooth)")
        p.add_argument("--no-thinning", dest="thinning", action="store_false", default=d["thinning"],
                       help="benchmark: do not thin each thresholded map to one-pixel width (standard: thin)")
        p.add_argument("--thresholds", type=int, default=d["thresholds"],
                       help="benchmark: number of evenly spaced thresholds (standard: 99)")
        p.add_argument("--max-dist", type=float, default=d["max_dist"],
                       help="benchmark: match tolerance as a fraction of the image diagonal (standard: 0.0075)")
        p.add_argument("--bench-workers", type=int, default=d["bench_workers"],
                       help="benchmark: processes sharing each image's thresholds (same numbers, faster on many cores)")
        p.add_argument("--save-edges", action="store_true", default=d["save_edges"],
                       help="also write each final (post-NMS) map as an 8-bit PNG to OUT/edges/<id>.png")

    # -- per item ------------------------------------------------------------------------------
    def amg_config(self):
        """The paper's generation settings: grid, 3 masks per point, no filters, mask NMS, logits kept."""
        from sam_bench.amg import AMGConfig

        c = self.config
        return AMGConfig(points_per_side=c["grid"], points_per_batch=c["points_per_batch"], multimask=True,
                         pred_iou_thresh=None, stability_score_thresh=None, nms="mask",
                         nms_thresh=c["mask_nms_thresh"], keep_logits=True)

    def soft_map(self, model, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1] before NMS."""
        kinds = getattr(model, "kinds", (model.kind,))
        if "edges" in kinds:
            return np.asarray(model.edge_map(), np.float32)
        from sam_bench.amg import generate
        from sam_bench.sam_edges import sam_edge_map

        masks = generate(model, image, self.amg_config())
        return sam_edge_map(masks, float(getattr(model, "mask_threshold", 0.0)),
                            self.config["mask_boundary"]).cpu().numpy()

    def final_map(self, soft: np.ndarray) -> np.ndarray:
        c = self.config
        if not c["nms"]:
            return soft
        return edge_nms(soft, radius=c["nms_radius"], border=c["nms_border"], multiplier=c["nms_multiplier"],
                        smooth=c["nms_presmooth"])

    def check_thin(self, model, item: Item, soft: np.ndarray) -> None:
        """Refuse to re-thin a precomputed map that is already thin, unless --nms/--no-nms was given.

        Re-applying the NMS to NMS-thinned maps lowers their scores (BSDS500 test: ODS .609 -> .602)."""
        extra = getattr(model.info, "extra", None) or {}
        if self.nms_given or not self.config["nms"] or not extra.get("precomputed"):
            return
        from sam_bench.models.edges import THIN_FRACTION, thin_fraction

        frac = thin_fraction(soft)
        if frac >= THIN_FRACTION:
            where = extra.get("path", model.info.name)
            raise ConfigError(f"{where}: the edge map of {item.id} looks already NMS-thinned ({frac:.1%} of its "
                              f"nonzero pixels lie on one-pixel lines; soft maps measure ~0%, the refusal threshold "
                              f"is {THIN_FRACTION:.0%}). Re-applying the edge NMS would change its scores: give "
                              "--no-nms to score the maps as they are, or --nms to apply it anyway")

    def process(self, model, item: Item, sample: Sample) -> dict:
        gts = sample.boundaries
        if not gts:
            raise BadInput(f"{item.id}: no boundary annotations (the edges task needs an edge dataset)")
        soft = self.soft_map(model, sample.image)
        h, w = sample.image.shape[:2]
        if soft.shape != (h, w):
            raise ConfigError(f"{model.info.name}: edge map {soft.shape} for a {(h, w)} image {item.id}")
        if not np.isfinite(soft).all() or soft.min() < 0 or soft.max() > 1:
            raise ConfigError(f"{model.info.name}: edge map of {item.id} is not within [0, 1]")
        self.check_thin(model, item, soft)
        final = self.final_map(soft)
        t0 = time.perf_counter()
        counts = bsds.image_counts(final, gts, self.config["thresholds"], self.config["max_dist"],
                                   self.config["thinning"], workers=self.config["bench_workers"])
        bench_s = time.perf_counter() - t0
        r, p = bsds._pr(counts)
        f, thr, rr, pp = bsds.max_f(bsds.thresholds(len(counts)), r, p)
        rec = {"counts": counts.tolist(), "f": f, "threshold": thr, "recall": rr, "precision": pp,
               "annotators": len(gts), "metric_seconds": bench_s}
        if self.config["save_edges"]:
            rec["edge_png"] = encode_png(final)
        return rec

    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict:
        n = self.config["thresholds"]
        bad = [r["item"] for r in records if len(r["counts"]) != n]
        if bad:
            raise ConfigError(f"{dataset.name}: items {bad[:3]} were counted at another number of thresholds")
        out = bsds.summarize([np.asarray(r["counts"]) for r in records], n)
        out["num_annotations"] = float(sum(r["annotators"] for r in records))
        return out

    # -- outputs -------------------------------------------------------------------------------
    def outputs(self, results: dict, out_dir: Path) -> list[Path]:
        """Table 3 (paper rows beside ours), the PR-curve plot, and the saved edge maps."""
        out_dir = Path(out_dir)
        written = write_table3(results, out_dir)
        written.append(plot_pr(results, out_dir / "pr_curve_edges.png"))
        if results.get("config", {}).get("save_edges"):
            written += write_saved_edges(out_dir)
        return written


def encode_png(edge: np.ndarray) -> str:
    """An (H, W) [0, 1] map as a base64 8-bit grey PNG (value = round(255 x edge))."""
    import cv2

    ok, buf = cv2.imencode(".png", np.clip(np.rint(edge * 255.0), 0, 255).astype(np.uint8))
    if not ok:
        raise ConfigError("cannot encode an edge map as PNG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def write_saved_edges(out_dir: Path) -> list[Path]:
    """``OUT/edges/<item>.png`` from the records' ``edge_png`` (every dataset of the run)."""
    from sam_bench.results import atomic_write_bytes, merge_items

    written = []
    for line in merge_items(sorted(out_dir.glob("items*.jsonl"))):
        png = (line.get("record") or {}).get("edge_png")
        if line.get("status") == "ok" and png:
            path = out_dir / "edges" / f"{line['item']}.png"
            atomic_write_bytes(path, base64.b64decode(png))
            written.append(path)
    return written


def _paper_rows() -> list[dict]:
    from sam_bench.presets import paper_rows

    try:
        return paper_rows("edges")
    except ConfigError:
        return []


def write_table3(results: dict, out_dir: Path) -> list[Path]:
    import pandas as pd

    from sam_bench.reports.tables import write_table

    rows = [{"method": r["method"], "data": "BSDS500 test (paper)", "edge NMS": None,
             **{k: r.get(k, math.nan) for k in TABLE3}} for r in _paper_rows()]
    label = results["model"]["name"] + (" (untrained)" if results.get("untrained") else "")
    config = results.get("config", {})
    split = config.get("split", "")
    nms = "applied" if config.get("nms", True) else "not applied (maps as given)"
    for name, ds in results["datasets"].items():
        m = ds["metrics"]
        rows.append({"method": label, "data": f"{name} {split} ({ds['num_items']} images)", "edge NMS": nms,
                     **{k: m.get(k, math.nan) for k in TABLE3}})
    df = pd.DataFrame(rows, columns=["method", "data", "edge NMS", *TABLE3])
    df = df.astype(object).where(df.notna(), None)
    return write_table(df, out_dir, "table3_edges", caption="Zero-shot edge detection on BSDS500 (paper Table 3)",
                       floatfmt=".3f", results=results, sources=_paper_rows())


def plot_pr(results: dict, path: Path) -> Path:
    """PR curves of the run's datasets with their ODS points; the paper's rows as their R50 operating
    points (recall at precision 0.5) and dotted iso-F contours at their ODS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    r = np.linspace(0.01, 1, 200)
    for f in np.arange(0.1, 1.0, 0.1):
        p = f * r / (2 * r - f)
        ok = (p > 0) & (p <= 1) & (2 * r > f)
        ax.plot(r[ok], p[ok], color="0.88", lw=0.7, zorder=0)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(_paper_rows()):
        c = colours[(i + 1) % len(colours)]
        text = f"{row['method']} (paper)"
        if isinstance(row.get("ods"), (int, float)):
            f = row["ods"]
            p = f * r / (2 * r - f)
            ok = (p > 0) & (p <= 1) & (2 * r > f)
            ax.plot(r[ok], p[ok], ls=":", color=c, lw=0.9)
            text += f" ODS={f:.3f} (dotted)"
        if isinstance(row.get("r50"), (int, float)):
            ax.plot([row["r50"]], [0.5], marker="s", color=c, ls="none")
            text += f", R50={row['r50']:.3f} (square)"
        ax.plot([], [], ls=":", marker="s" if "R50" in text else None, color=c, label=text)
    label = results["model"]["name"] + (" (untrained)" if results.get("untrained") else "")
    for name, ds in results["datasets"].items():
        m = ds["metrics"]
        curve = m.get("pr_curve")
        if not curve:
            continue
        rr, pp = np.asarray(curve["recall"]), np.asarray(curve["precision"])
        keep = rr >= 1e-3
        ax.plot(rr[keep], pp[keep], lw=2, color=colours[0], label=f"{label} on {name} (ODS={m['ods']:.3f})")
        ax.plot([m["ods_recall"]], [m["ods_precision"]], marker="o", color=colours[0])
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Recall", ylabel="Precision", aspect="equal",
           title="BSDS500 boundaries: precision / recall")
    ax.grid(True, lw=0.3)
    ax.legend(loc="lower left", fontsize=6.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
