"""The one renderer of the tables and plots tasks declare (``Task.tables``, ``Task.plots``).

The same code writes a run's own tables (in its folder: after ``sam-bench run`` and on ``sam-bench
report``) and the tables across runs (a reproduce folder): each holds the paper's rows, ours and
the difference rows (``paper_tables.build_table``), written as .md/.csv/.tex (``tables.write_table``)
with the task's plots beside them. One file per stem and folder; nothing is rendered twice.
Reads task classes through the registry, never builds a task or runs a model.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from sam_bench.errors import ConfigError, SamBenchError
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.reports.paper_tables import Built, build_table, infer_presets, paper_rows
from sam_bench.reports.runs import model_label
from sam_bench.reports.tables import dataset_totals, write_table

log = logging.getLogger("sam_bench")

CLICKS = (1, 2, 3, 5, 9)  # a single-point run's --clicks when its config does not say


def task_class(task: str, known: dict | None = None) -> type | None:
    """The class of task ``task``: from ``known`` (name -> class), else the registry; None, with a
    warning, for a task not registered here."""
    from sam_bench import registry

    if known and task in known:
        return known[task]
    try:
        return registry.get_task(task)
    except SamBenchError as exc:
        log.warning("task %s: its tables and files are unknown here, none written: %s", task, exc)
        return None


def declared(task: str, known: dict | None = None) -> tuple[tuple[TableSpec, ...], tuple[PlotSpec, ...]]:
    """(tables, plots) task ``task`` declares (``Task.tables``, ``Task.plots``)."""
    cls = task_class(task, known)
    return (tuple(cls.tables), tuple(cls.plots)) if cls is not None else ((), ())


def declared_tables(tasks) -> dict[str, tuple[str, TableSpec]]:
    """stem -> (task, table) over ``tasks``."""
    return {t.stem: (task, t) for task in tasks for t in declared(task)[0]}


def run_entry(results: dict, folder: str | Path, label: str = ".") -> dict:
    """A run as the renderer takes it: results, its folder's dataset sizes and its inferred presets
    (none, with a warning, when the presets cannot be read: the tables then lack the paper's rows)."""
    try:
        presets = infer_presets(results)
    except ConfigError as exc:
        log.warning("%s: tables without the paper's rows: %s", folder, exc)
        presets = []
    return {"dir": label, "task": results.get("task"), "model": results.get("model", {}).get("name"),
            "results": results, "totals": dataset_totals(folder), "presets": presets,
            "preset": presets[0] if len(presets) == 1 else None, "standin_for": {}, "status": "done"}


def write_tables(entries: list[dict], out_dir: str | Path, *, extra: list[dict] = (),
                 known: dict | None = None) -> tuple[list[Path], list[str]]:
    """Every declared table and plot of the tasks of ``entries`` into ``out_dir``.

    Returns (paths written, report.md lines: per table its caption, body, plots and files).
    ``extra``: runs drawn in the plots only (a run's ``--compare-to``). ``known``: task name ->
    class, for a task not in the registry (one given to ``runner.evaluate`` as an object).
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    md: list[str] = []
    tasks = dict.fromkeys(e["results"].get("task") for e in entries if "results" in e)
    owner: dict[str, str] = {}
    for task in tasks:
        cls = task_class(task, known)
        if cls is None:
            continue
        for table in cls.tables:
            if owner.setdefault(table.stem, task) != task:
                raise ConfigError(f"tasks {owner[table.stem]!r} and {task!r} both declare a table {table.stem!r}; "
                                  f"one of them must rename it (it names the files in {out_dir})")
            built = build_table(task, table, entries, cls)
            if built is None:
                continue
            add_significance(built, table, entries, out_dir, cls)
            written = write_table(built.df, out_dir, table.stem, caption=table.caption, floatfmt=table.floatfmt,
                                  info=built.info, better=built.better, notes=built.notes, long=built.long,
                                  ci=built.ci)
            paths += written
            md += [f"## {table.caption}", "", written[0].read_text().split("\n\n", 1)[-1].rstrip(), ""]
            figs = [f for p in cls.plots if p.table == table.stem
                    for f in [draw(p, table, built, [*entries, *extra], task, out_dir)] if f is not None]
            paths += figs
            if figs:
                md += [f"![{f.stem}]({f.name})" for f in figs] + [""]
            md += [f"Files: [{table.stem}.md]({table.stem}.md), [{table.stem}.csv]({table.stem}.csv), "
                   f"[{table.stem}.tex]({table.stem}.tex)", ""]
    return paths, md


def add_significance(built: Built, table: TableSpec, entries: list[dict], out_dir: Path, cls) -> None:
    """A "significance" column (``sam_bench.reports.significance``) where several runs share a dataset."""
    from sam_bench.reports.significance import NOTE, significance_column

    cells = significance_column(built, table, entries, out_dir, cls)
    if cells is not None:
        built.df["significance"] = cells
        built.notes.append(NOTE)


def task_files(results: dict, out_dir: str | Path, known: dict | None = None) -> list[Path]:
    """The files a run's task writes besides tables and plots (``Task.outputs``, a class method)."""
    cls = task_class(results.get("task", "?"), known)
    return cls.outputs(results, Path(out_dir)) if cls is not None else []


def write_run_outputs(results: dict, out_dir: str | Path, task: type | None = None,
                      datasets: list | None = None) -> list[Path]:
    """One run's files in its folder: the task's own files, its declared tables and plots, and
    ``report.html`` with them and its gallery; a ``compare_to`` results.json in its settings is
    drawn beside it in the plots. ``task``: the run's task class when it is not in the registry;
    ``datasets``: the run's opened datasets, which the gallery draws from (else it reopens them)."""
    from sam_bench.reports.html import write_run_page

    known = {results.get("task"): task} if task is not None else None
    paths = task_files(results, out_dir, known)
    written, md = write_tables([run_entry(results, out_dir)], out_dir, extra=_compare_to(results), known=known)
    return paths + written + [write_run_page(results, out_dir, md, datasets)]


def _compare_to(results: dict) -> list[dict]:
    path = results.get("config", {}).get("compare_to")
    if not path:
        return []
    from sam_bench.results import load_results

    try:
        other = load_results(path)
    except ConfigError as exc:
        log.warning("--compare-to: %s; plotting this run alone", exc)
        return []
    return [{"dir": str(path), "results": other, "presets": [], "plot_only": True}]


# -- plots ----------------------------------------------------------------------------------
def draw(plot: PlotSpec, table: TableSpec, built: Built, entries: list[dict], task: str, out: Path) -> Path | None:
    """``out/STEM.png`` of one declared plot; None when no run has what it draws."""
    runs = [e for e in entries if "results" in e and e["results"].get("task") == task]
    return PLOTTERS[plot.kind](plot, table, built, runs, out / f"{plot.stem}.png")


def _bars(plot, table, built, runs, path):
    from sam_bench.reports import plots

    return plots.grouped_bars(built.paper_plot, built.ours_plot, dict(table.columns), path, title=table.caption,
                              ylabel=plot.ylabel)


def _refs(runs: list[dict], key: str) -> list[dict]:
    """The paper rows of the runs' presets that report ``key``, one per method."""
    refs = [r for e in runs if not e.get("plot_only") for p in e.get("presets") or [e.get("preset")]
            for r in paper_rows(p) if key in r]
    return list({r["method"]: r for r in refs}.values())


def _dataset_bars(plot, table, built, runs, path):
    from sam_bench.reports import plots

    key = plot.metric
    bars = [{"dataset": name, "model": model_label(e["results"]), key: ds.get("metrics", {})[key],
             "_ci": {key: ds["metrics"][f"{key}_ci"]} if f"{key}_ci" in ds["metrics"] else {}}
            for e in runs for name, ds in e["results"].get("datasets", {}).items() if key in ds.get("metrics", {})]
    if not bars:
        return None
    refs = [{"label": r["method"] + ", " + r["_data"], "value": r[key]} for r in _refs(runs, key)]
    return plots.single_point_bars(bars, path, key=key, references=refs)


def _dataset_delta(plot, table, built, runs, path):
    """Every run minus each run of model ``plot.baseline``, per dataset both have; None without a pair."""
    from sam_bench.reports import plots

    key, name = plot.metric, lambda e: (e["results"].get("model") or {}).get("name")
    values = lambda e: {d: ds["metrics"][key] for d, ds in e["results"].get("datasets", {}).items()
                        if isinstance(ds.get("metrics", {}).get(key), (int, float))}
    bases = [e for e in runs if name(e) == plot.baseline]
    rows = [{"dataset": d, "label": f"{model_label(e['results'])} minus {model_label(b['results'])}",
             "delta": v - values(b)[d]}
            for b in bases for e in runs if name(e) != plot.baseline for d, v in values(e).items() if d in values(b)]
    if not rows:
        return None
    return plots.dataset_delta_bars(rows, path, title=f"Per dataset, model minus {plot.baseline.upper()}: both from "
                                    f"our runs (cf. paper Fig. 9a)", xlabel=f"Δ {key} (model minus {plot.baseline})")


def _clicks_curves(plot, table, built, runs, path):
    from sam_bench.reports import plots

    curves = []
    for e in runs:
        res = e["results"]
        clicks, label = res.get("config", {}).get("clicks", list(CLICKS)), model_label(res)
        for name, ds in res.get("datasets", {}).items():
            m = ds.get("metrics", {})
            if "miou_1" in m:
                curves.append({"label": f"{label}, {name}", "clicks": clicks,
                               "miou": [_num(m.get(f"miou_{n}")) for n in clicks]})
        if len(res.get("datasets", {})) > 1 and res.get("metrics"):
            curves.append({"label": f"{label}, mean", "clicks": clicks, "mean": True,
                           "miou": [_num(res["metrics"].get(f"miou_{n}")) for n in clicks]})
    if not curves:
        return None
    ns = sorted(int(m.group(1)) for k in table.columns if (m := re.fullmatch(r"miou_(\d+)", k)))
    refs = [{"label": r["method"], "clicks": [n for n in ns if f"miou_{n}" in r],
             "miou": [r[f"miou_{n}"] for n in ns if f"miou_{n}" in r]} for r in _refs(runs, "miou_1")]
    return plots.clicks_curves(curves, path, references=refs)


def _pr_curves(plot, table, built, runs, path):
    from sam_bench.reports import plots

    curves = [{"label": f"{model_label(e['results'])} on {name}", **m["pr_curve"], "ods": m.get("ods"),
               "ods_recall": m.get("ods_recall"), "ods_precision": m.get("ods_precision")}
              for e in runs for name, ds in e["results"].get("datasets", {}).items()
              if isinstance((m := ds.get("metrics", {})).get("pr_curve"), dict)]
    if not curves:
        return None
    refs = list({r["method"]: r for e in runs if not e.get("plot_only")
                 for p in e.get("presets") or [e.get("preset")] for r in paper_rows(p)}.values())
    return plots.pr_curves(curves, refs, path)


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


PLOTTERS = {"bars": _bars, "dataset_bars": _dataset_bars, "dataset_delta": _dataset_delta,
            "clicks_curves": _clicks_curves, "pr_curves": _pr_curves}
