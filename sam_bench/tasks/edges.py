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
the metrics in the third decimal). For the report the record's ``prediction`` holds the map as
``levels_png``: per pixel the number of benchmark thresholds it reaches (0..T, a base64 PNG), so
binarising it at any threshold gives exactly the benchmark's map; ``outputs`` writes it at its
dataset's ODS threshold, thinned, as drawn, to ``OUT/edges/ods/<id>.png``.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.metrics import bsds
from sam_bench.metrics.bootstrap import Resampler
from sam_bench.metrics.edge_nms import edge_nms
from sam_bench.metrics.spec import MetricSpec
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.options import Options, option
from sam_bench.tasks.base import Task

@dataclass(frozen=True)
class EdgesOptions(Options):
    """The SAM edge pipeline's, the edge NMS's and the benchmark's settings; ``nms`` None (not given)
    means on, and lets ``check_thin`` refuse an already thin precomputed map."""

    grid: int = option(16, "SAM pipeline: points per side of the prompt grid (paper: 16, all 3 masks per point)",
                       quick=8)
    mask_nms_thresh: float = option(0.7, "SAM pipeline: mask-IoU NMS threshold removing duplicate masks (paper: "
                                    "unstated; 0.7)")
    mask_boundary: str = option("inside", "SAM pipeline: the mask boundary pixels where the Sobel response is "
                                "kept: the mask's own pixels next to the background (inside) or the background "
                                "pixels next to the mask", choices=("inside", "outside"))
    points_per_batch: int | None = option(None, "SAM pipeline: grid points per decoder call (default: the model's "
                                          "prompt batch)", type=int)
    nms: bool | None = option(None, "apply the structured-edges NMS to every model's map (default; an edges-from "
                              "map that is already thin is refused unless --nms or --no-nms is given)",
                              action="store_true",
                              also=((("--no-nms",), {"action": "store_false", "default": None, "help": "evaluate "
                                     "maps as given (e.g. edges-from maps that are already thinned)"}),))
    nms_radius: int = option(1, "edge NMS: distance along the normal compared against (paper: 1)")
    nms_border: int = option(5, "edge NMS: width in px of the linear suppression ramp at the image border (paper: 5)")
    nms_multiplier: float = option(1.01, "edge NMS: a pixel survives if value x this >= its neighbours (paper: 1.01)")
    nms_presmooth: bool = option(True, "edge NMS: skip the radius-1 triangle smoothing of the map before NMS (the "
                                 "HED/RCF and pyEdgeEval scripts smooth)", flags=("--no-nms-presmooth",))
    thinning: bool = option(True, "benchmark: do not thin each thresholded map to one-pixel width (standard: thin)",
                            flags=("--no-thinning",))
    thresholds: int = option(99, "benchmark: number of evenly spaced thresholds (standard: 99)")
    max_dist: float = option(0.0075, "benchmark: match tolerance as a fraction of the image diagonal (standard: "
                             "0.0075)")
    save_edges: bool = option(False, "also write each final (post-NMS) map as an 8-bit PNG to OUT/edges/<id>.png")
    bench_workers: int = option(1, "benchmark: processes sharing each image's thresholds (same numbers, faster on "
                                "many cores)")

    def __post_init__(self):
        if self.nms is None:
            self.normalise(nms=True)
        if self.grid < 1:
            raise ConfigError(f"--grid must be >= 1, got {self.grid}")
        if not 0 < self.mask_nms_thresh <= 1:
            raise ConfigError(f"--mask-nms-thresh must be in (0, 1], got {self.mask_nms_thresh}")
        if self.mask_boundary not in ("inside", "outside"):
            raise ConfigError(f"--mask-boundary must be inside or outside, got {self.mask_boundary!r}")
        if self.nms_radius < 1 or self.nms_border < 0 or self.nms_multiplier <= 0:
            raise ConfigError("--nms-radius must be >= 1, --nms-border >= 0 and --nms-multiplier > 0; got "
                              f"{self.nms_radius}, {self.nms_border}, {self.nms_multiplier}")
        if self.bench_workers < 1:
            raise ConfigError(f"--bench-workers must be >= 1, got {self.bench_workers}")
        if self.thresholds < 1:
            raise ConfigError(f"--thresholds must be >= 1, got {self.thresholds}")
        if not 0 < self.max_dist < 1:
            raise ConfigError(f"--max-dist is a fraction of the image diagonal in (0, 1), got {self.max_dist}")


class EdgesTask(Task):
    name = "edges"
    non_scoring = frozenset({"bench_workers"})  # same counts with any number of processes
    description = "zero-shot edge detection on BSDS500: ODS / OIS / AP / R50 (paper Table 3)"
    model_kinds = ("edges", "promptable")
    default_datasets = ("BSDS500",)
    data_defaults = {"split": "test"}  # the paper's Table 3 split
    metrics = (*(MetricSpec(k, "unit") for k in ("ods", "ois", "ap")),
               MetricSpec("r50", "unit", required=False),  # undefined when precision never reaches 0.5
               MetricSpec("num_annotations", "count", higher_is_better=None),
               *(MetricSpec(k, "unit", scoring=False) for k in ("ods_threshold", "ods_recall", "ods_precision",
                                                                "ois_recall", "ois_precision")))
    tables = (TableSpec("table3_edges", "Table 3. Zero-shot edge detection (BSDS500 protocol), 0-1",
                        {"ods": "ODS", "ois": "OIS", "ap": "AP", "r50": "R50"}, ".3f",
                        settings={"nms": ", edge NMS {}"}),)
    plots = (PlotSpec("table3_edges", "bars", "table3_edges", ylabel="score (0-1)"),
             PlotSpec("pr_curve_edges", "pr_curves", "table3_edges"))

    Options = EdgesOptions
    baselines = ("sobel", "canny", "felzenszwalb")

    def __init__(self, **config):
        # NMS is on by default, but a precomputed map that is already thin is refused unless
        # --nms / --no-nms was given (see check_thin)
        self.nms_given = config.get("nms") is not None
        super().__init__(**config)

    # -- per item ------------------------------------------------------------------------------
    def amg_config(self):
        """The paper's generation settings (``AMGConfig.paper_edges``) at this run's grid, batch and NMS threshold."""
        from sam_bench.amg import AMGConfig

        c = self.config
        return AMGConfig.paper_edges().but(points_per_side=c["grid"], points_per_batch=c["points_per_batch"],
                                           nms_thresh=c["mask_nms_thresh"])

    def soft_map(self, model, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1] before NMS."""
        if "edges" in model.kinds:
            return np.asarray(model.edge_map(), np.float32)
        from sam_bench.amg import generate
        from sam_bench.sam_edges import sam_edge_map

        masks = generate(model, image, self.amg_config())
        return sam_edge_map(masks, model.mask_threshold,
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
        if self.nms_given or not self.config["nms"] or not model.info.extra.get("precomputed"):
            return
        from sam_bench.models.edges import THIN_FRACTION, thin_fraction

        frac = thin_fraction(soft)
        if frac >= THIN_FRACTION:
            where = model.info.extra.get("path", model.info.name)
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
        rec["prediction"] = {"levels_png": encode_levels(final, self.config["thresholds"])}
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

    def resampler(self, dataset: Dataset, records: list[dict]) -> Resampler | None:
        """ODS / OIS / AP / R50 re-aggregated from the images' kept (T, 4) counts (unit: image)."""
        if not records:
            return None
        counts = np.stack([np.asarray(r["counts"], np.float64) for r in records])
        return Resampler(tuple(r["item"] for r in records), lambda w: bsds.summarize_weighted(counts, w),
                         unit="image", chunk=250)

    # -- outputs -------------------------------------------------------------------------------
    @classmethod
    def outputs(cls, results: dict, out_dir: Path) -> list[Path]:
        """The saved edge maps (``--save-edges``) and the drawn ODS maps of the saved predictions;
        Table 3 and the PR curves are declared above."""
        saved = write_saved_edges(Path(out_dir)) if results.get("config", {}).get("save_edges") else []
        return saved + write_ods_maps(results, Path(out_dir))


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


def encode_levels(edge: np.ndarray, n_thresholds: int) -> str:
    """An (H, W) [0, 1] map as a base64 PNG of the number of the ``n_thresholds`` benchmark thresholds
    each pixel reaches (``>=``): 8-bit up to 255 thresholds, else 16-bit; pixels below the lowest are 0."""
    import cv2

    levels = np.searchsorted(bsds.thresholds(n_thresholds), edge, side="right")
    ok, buf = cv2.imencode(".png", levels.astype(np.uint8 if n_thresholds < 256 else np.uint16))
    if not ok:
        raise ConfigError("cannot encode an edge map as PNG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def ods_map(levels_png: str, threshold: float, n_thresholds: int, thinning: bool = True) -> np.ndarray:
    """(H, W) bool: an ``encode_levels`` map binarised at ``threshold`` (exactly the benchmark's map at one
    of its thresholds; between two, at the next one up) and, as the benchmark does, thinned."""
    import cv2
    from skimage.morphology import thin

    levels = cv2.imdecode(np.frombuffer(base64.b64decode(levels_png), np.uint8), cv2.IMREAD_UNCHANGED)
    need = int(np.searchsorted(bsds.thresholds(n_thresholds), threshold - 1e-9)) + 1
    edge = levels >= need
    return thin(edge) if thinning else edge


def write_ods_maps(results: dict, out_dir: Path) -> list[Path]:
    """``OUT/edges/ods/<item>.png`` (0/255): each saved prediction at its dataset's ODS threshold."""
    import cv2

    from sam_bench.results import PREDICTION, atomic_write_bytes, merge_items

    config = results.get("config", {})
    thin, n = config.get("thinning", True), config.get("thresholds", 99)
    written = []
    for line in merge_items(sorted(out_dir.glob("items*.jsonl"))):
        png = ((line.get("record") or {}).get(PREDICTION) or {}).get("levels_png")
        t = results.get("datasets", {}).get(line["dataset"], {}).get("metrics", {}).get("ods_threshold")
        if line.get("status") != "ok" or not png or not isinstance(t, (int, float)) or t != t:
            continue
        ok, buf = cv2.imencode(".png", ods_map(png, t, n, thin).astype(np.uint8) * 255)
        if ok:
            path = out_dir / "edges" / "ods" / f"{line['item']}.png"
            atomic_write_bytes(path, buf.tobytes())
            written.append(path)
    return written
