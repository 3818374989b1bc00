"""Forest plot of a two-run comparison: each metric's difference with its paired interval, one row
per dataset (and the cross-dataset mean), from ``sam-bench compare``'s rows (PNG, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

from sam_bench.reports.plots import _save, plt

COLOURS = {"improved": "#2b8a3e", "regressed": "#c92a2a", "within noise": "#495057"}


def forest_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """{metric: [row, ...]} of the compare rows that have a paired interval, datasets in row order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("significance") and math.isfinite(r.get("ci_low", math.nan)):
            out.setdefault(r["metric"], []).append(r)
    return out


def forest_plot(rows: list[dict], path: str | Path, max_metrics: int = 8) -> list[Path]:
    """Draw ``path``: one panel per metric (at most ``max_metrics``), candidate minus baseline with
    its interval per dataset, coloured by significance; [] when no row has an interval."""
    by_metric = forest_rows(rows)
    if not by_metric:
        return []
    metrics = list(by_metric)[:max_metrics]
    n_rows = max(len(v) for v in by_metric.values())
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.45 * n_rows + 1.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        part = by_metric[metric]
        ys = list(range(len(part)))[::-1]
        for y, r in zip(ys, part):
            colour = COLOURS.get(r["significance"], "#495057")
            ax.errorbar(r["delta"], y, xerr=[[r["delta"] - r["ci_low"]], [r["ci_high"] - r["delta"]]], fmt="o",
                        color=colour, capsize=3, markersize=4)
        ax.axvline(0.0, color="#adb5bd", linewidth=0.8, linestyle="--")
        ax.set_yticks(ys, [f"{r['dataset']} (p={r['p']:.2g})" for r in part], fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("candidate - baseline", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("paired differences, bootstrap intervals (green: improved, red: regressed, grey: within noise)",
                 fontsize=8)
    return [_save(fig, Path(path))]
