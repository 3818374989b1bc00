"""Report plots (PNG, Agg backend): paper rows beside ours, and the Fig. 9 single-point views.

Inputs are plain rows (dicts of metric values), so the plots can be rebuilt from saved results.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 130
PAPER_COLOURS = ["#4d4d4d", "#8c8c8c", "#b3b3b3", "#d0d0d0", "#e3e3e3"]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def error_bars(row: dict, keys: list[str], vals: list[float]) -> np.ndarray | None:
    """(2, len(keys)) distances below and above each value to its interval ``row["_ci"][key]``
    (0 where a key has none); None when the row has no interval."""
    ci = row.get("_ci") or {}
    if not any(k in ci for k in keys):
        return None
    return np.array([[max(0.0, v - ci[k][0]) if k in ci and v == v else 0.0 for k, v in zip(keys, vals)],
                     [max(0.0, ci[k][1] - v) if k in ci and v == v else 0.0 for k, v in zip(keys, vals)]])


def grouped_bars(paper: list[dict], ours: list[dict], columns: dict[str, str], path: Path, *, title: str,
                 ylabel: str) -> Path:
    """One group per metric; grey bars for the paper's rows, coloured bars for ours.

    ``paper`` / ``ours``: [{"label": str, KEY: value, ...}]; ``columns``: KEY -> axis label. A row's
    ``_ci`` ({KEY: [lo, hi]}, its bootstrap intervals) is drawn as error bars.
    """
    rows = [(r, True) for r in paper] + [(r, False) for r in ours]
    keys = list(columns)
    n = max(len(rows), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) + 0.25 * n * len(keys)), 4.2))
    x = np.arange(len(keys))
    ours_colours = plt.get_cmap("tab10")
    k_paper = k_ours = 0
    for i, (row, is_paper) in enumerate(rows):
        vals = [_num(row.get(k)) for k in keys]
        if is_paper:
            colour, hatch = PAPER_COLOURS[k_paper % len(PAPER_COLOURS)], "//"
            k_paper += 1
        else:
            colour, hatch = ours_colours(k_ours % 10), None
            k_ours += 1
        bars = ax.bar(x - 0.4 + width * (i + 0.5), vals, width, color=colour, hatch=hatch, edgecolor="white",
                      label=row["label"] + (" (paper)" if is_paper else ""), yerr=error_bars(row, keys, vals),
                      error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#343a40"})
        if n <= 8:
            ax.bar_label(bars, fmt="%.3g", fontsize=6.5, padding=1, rotation=90 if n > 3 else 0)
    ax.set_xticks(x, [columns[k] for k in keys])
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    top = np.nanmax([_num(r.get(k)) for r, _ in rows for k in keys] + [0])
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    return _save(fig, path)


def single_point_bars(rows: list[dict], path: Path, *, key: str = "miou_1", references: list[dict] = ()) -> Path:
    """Fig. 9a-style: mIoU at one point per dataset, one bar per (dataset, model), best at the top.

    ``rows``: [{"dataset", "model", key: value}]; ``references``: [{"label", "value"}] drawn as
    dashed vertical lines (the paper's 23-dataset means).
    """
    rows = [r for r in rows if not math.isnan(_num(r.get(key)))]
    models = list(dict.fromkeys(r["model"] for r in rows))
    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: np.nanmean(
        [_num(r[key]) for r in rows if r["dataset"] == d]))
    h = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * max(len(datasets) * max(len(models), 1), 3) + 1.5))
    for j, model in enumerate(models):
        ys = [i - 0.4 + h * (j + 0.5) for i, d in enumerate(datasets)]
        mine = [next((r for r in rows if r["dataset"] == d and r["model"] == model), {}) for d in datasets]
        vals = [_num(r.get(key)) for r in mine]
        err = [error_bars(r, [key], [v]) for r, v in zip(mine, vals)]
        xerr = np.concatenate([e if e is not None else np.zeros((2, 1)) for e in err], 1) if any(
            e is not None for e in err) else None
        bars = ax.barh(ys, vals, h, label=model, color=plt.get_cmap("tab10")(j % 10), xerr=xerr,
                       error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#343a40"})
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    for k, ref in enumerate(references):
        ax.axvline(ref["value"], ls="--", lw=1, color=PAPER_COLOURS[k % 3],
                   label=f"{ref['label']}: {ref['value']:.1f} (paper)")
    ax.set_yticks(range(len(datasets)), datasets)
    ax.set_xlim(0, 100)
    ax.set_xlabel("mIoU (%) with one center point")
    ax.set_title("Single point valid mask, per dataset (cf. paper Fig. 9a)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return _save(fig, path)


def dataset_delta_bars(rows: list[dict], path: Path, *, title: str, xlabel: str) -> Path:
    """Fig. 9a-style differences: one horizontal bar per (dataset, pair), largest gain at the top,
    blue above zero, red below. ``rows``: [{"dataset", "label" ("A minus B"), "delta"}]."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: np.mean(
        [r["delta"] for r in rows if r["dataset"] == d]))
    h = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * max(len(datasets) * len(labels), 3) + 1.5))
    for j, label in enumerate(labels):
        vals = [next((_num(r["delta"]) for r in rows if r["dataset"] == d and r["label"] == label), math.nan)
                for d in datasets]
        bars = ax.barh([i - 0.4 + h * (j + 0.5) for i in range(len(datasets))], vals, h, label=label,
                       color=["#4878a8" if v >= 0 else "#c44e52" for v in vals], alpha=1 - 0.35 * (j % 2))
        ax.bar_label(bars, fmt="%+.1f", fontsize=7, padding=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.margins(x=0.15)  # room for the value labels on both sides
    ax.set_yticks(range(len(datasets)), datasets)
    ax.set_xlabel(xlabel)
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.legend(fontsize=7, loc="lower right", handlelength=0 if len(labels) == 1 else 2)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return _save(fig, path)


def clicks_curves(curves: list[dict], path: Path, *, references: list[dict] = ()) -> Path:
    """Fig. 9c-style: mIoU against the number of points.

    ``curves``: [{"label", "clicks": [N...], "miou": [...], "mean": bool}] (means drawn thick);
    ``references``: [{"label", "clicks": [...], "miou": [...]}] drawn as paper markers.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for k, c in enumerate(curves):
        ax.plot(c["clicks"], c["miou"], marker="o", ms=4 if c.get("mean") else 3, lw=2.2 if c.get("mean") else 1,
                alpha=1 if c.get("mean") else 0.7, label=c["label"], color=plt.get_cmap("tab10")(k % 10))
    for k, ref in enumerate(references):
        ax.plot(ref["clicks"], ref["miou"], ls=":", marker="s", ms=6, color=PAPER_COLOURS[k % 3],
                label=f"{ref['label']} (paper)")
    ticks = sorted({n for c in list(curves) + list(references) for n in c["clicks"]})
    ax.set_xticks(ticks)
    ax.set_ylim(0, 100)
    ax.set_xlabel("number of points")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Single point valid mask vs number of points (cf. paper Fig. 9c)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _iso_f(r: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) points of the F = ``f`` contour."""
    p = f * r / (2 * r - f)
    ok = (p > 0) & (p <= 1) & (2 * r > f)
    return r[ok], p[ok]


def pr_curves(curves: list[dict], references: list[dict], path: Path) -> Path:
    """Boundary precision / recall curves with their ODS points; the paper's rows as their R50
    operating points (recall at precision 0.5) and dotted iso-F contours at their ODS.

    ``curves``: [{"label", "recall": [...], "precision": [...], "ods", "ods_recall", "ods_precision"}];
    ``references``: paper rows ({"method", "ods"?, "r50"?}).
    """
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    r = np.linspace(0.01, 1, 200)
    for f in np.arange(0.1, 1.0, 0.1):
        ax.plot(*_iso_f(r, f), color="0.88", lw=0.7, zorder=0)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(references):
        c = colours[(i + len(curves)) % len(colours)]
        text = f"{row['method']} (paper)"
        if isinstance(row.get("ods"), (int, float)):
            ax.plot(*_iso_f(r, row["ods"]), ls=":", color=c, lw=0.9)
            text += f" ODS={row['ods']:.3f} (dotted)"
        if isinstance(row.get("r50"), (int, float)):
            ax.plot([row["r50"]], [0.5], marker="s", color=c, ls="none")
            text += f", R50={row['r50']:.3f} (square)"
        ax.plot([], [], ls=":", marker="s" if "R50" in text else None, color=c, label=text)
    for i, c in enumerate(curves):
        rr, pp = np.asarray(c["recall"], float), np.asarray(c["precision"], float)
        keep = rr >= 1e-3
        colour = colours[i % len(colours)]
        ax.plot(rr[keep], pp[keep], lw=2, color=colour, label=f"{c['label']} (ODS={_num(c.get('ods')):.3f})")
        if c.get("ods_recall") is not None and c.get("ods_precision") is not None:
            ax.plot([c["ods_recall"]], [c["ods_precision"]], marker="o", color=colour)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Recall", ylabel="Precision", aspect="equal",
           title="BSDS500 boundaries: precision / recall")
    ax.grid(True, lw=0.3)
    ax.legend(loc="lower left", fontsize=6.5)
    return _save(fig, path)


def latency_plot(rows: list[dict], path: Path, *, title: str) -> Path:
    """Encoder ms per image (bars, log scale) and decoder ms per prompt at each timed batch (dots),
    one row per model and precision; ``rows`` as ``sam_bench.latency`` writes them."""
    labels = [" ".join(str(r[k]) for k in ("model", "options", "dtype") if r.get(k)) for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(rows) + 1.4))
    ax.barh(y, [_num(r.get("encoder_ms_per_image")) for r in rows], color="#4878a8", label="encoder ms / image")
    batches = sorted({int(k[len("decoder_ms_b"):]) for r in rows for k in r if k.startswith("decoder_ms_b")})
    for i, b in enumerate(batches):
        ax.scatter([_num(r.get(f"decoder_ms_b{b}")) for r in rows], y, marker="os^D"[i % 4], zorder=3,
                   color=plt.get_cmap("tab10")(i + 1), label=f"decoder ms / prompt, batch {b}")
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
