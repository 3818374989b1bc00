"""A declared table (``TableSpec``, from ``Task.tables``) filled from loaded runs: the paper's rows
beside ours and the differences.

Each table holds three kinds of rows: the paper's (from a preset's ``[[paper]]`` rows, each naming
its ``source``), ours (one per dataset of a run, and the mean over several), and differences,
ours minus the paper's row for the same model only (``sam_bench.reports.methods``): a GrabCut run
gets none. Built here from loaded runs (``render`` writes them with ``tables.write_table``); reads
only the presets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from sam_bench.metrics.tables import TableSpec
from sam_bench.reports.latex import RowInfo
from sam_bench.reports.methods import matching_row
from sam_bench.reports.runs import model_label, numeric_items
from sam_bench.reports.tables import coverage, source_note

if TYPE_CHECKING:  # pandas loads on first use, not for --help
    import pandas as pd


@dataclass
class Built:
    """One paper table ready to write: the frame (Markdown row order) and, per row, its kind."""

    df: pd.DataFrame
    info: list[RowInfo]
    long: list[dict]  # tables.LONG_COLUMNS rows: paper and ours, one number each
    notes: list[str]
    better: dict[str, bool] = field(default_factory=dict)  # column title -> higher is better
    paper_plot: list[dict] = field(default_factory=list)
    ours_plot: list[dict] = field(default_factory=list)
    ci: list = field(default_factory=list)  # per row of ``df``: {column title: [lo, hi]} (ours) or None
    sources: list = field(default_factory=list)  # per row of ``df``: (run dir, dataset or None for the mean) or None


def paper_rows(preset: str | None) -> list[dict]:
    """A preset's ``[[paper]]`` rows with ``_data`` (what they were measured on) and ``_source``;
    none for no preset."""
    from sam_bench.presets import load_presets

    if not preset:
        return []
    pre = load_presets().get(preset)
    if not pre:
        return []
    data = ", ".join(pre.get("datasets", [])) or "paper"
    where = Path(pre.get("path", f"{preset}.toml")).name
    return [{**row, "_data": row.get("dataset") or row.get("scope") or data, "_preset": preset,
             "_source": row.get("source") or f"source not stated in {where}"} for row in pre.get("paper", [])]


def infer_presets(results: dict) -> list[str]:
    """The paper presets a run of ``sam-bench run`` belongs to: the one whose options and datasets it
    matches, else every paper preset of its task (their reference rows are all shown)."""
    from sam_bench.presets import load_presets

    same_task = {n: p for n, p in load_presets().items() if p["task"] == results.get("task")}
    config = results.get("config", {})
    for name, pre in same_task.items():
        if all(config.get(k, v) == v for k, v in pre.get("options", {}).items()) and \
                set(pre.get("datasets", [])) & set(results.get("datasets", {})):
            return [name]
    return [n for n, p in same_task.items() if p.get("paper")]


def directions(cls, columns: Mapping[str, str]) -> dict[str, bool]:
    """column title -> higher is better, from the declared metrics of task class ``cls`` (scoring
    ones with a direction, ``MetricSpec``); {} for None (a task not known here)."""
    out = {}
    for key, title in columns.items():
        spec = cls.metric_spec(key) if cls is not None else None
        if spec is not None and spec.scoring and spec.higher_is_better is not None:
            out[title] = spec.higher_is_better
    return out


def _setting(value) -> str:
    """A run option as a table shows it: a file by its name, a switch as on / off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value)
    return Path(text).name if "/" in text else text


def _our_rows(entry: dict, table: TableSpec) -> list[dict]:
    """One row per dataset of a run (plus the mean when there are several), with the metric values."""
    res, columns = entry["results"], table.columns
    config = res.get("config", {})
    label = model_label(res) + "".join(text.format(_setting(config[key])) for key, text in table.settings.items()
                                       if config.get(key) is not None)
    rows = []
    for name, ds in res.get("datasets", {}).items():
        m = dict(numeric_items(ds.get("metrics", {})))
        if not any(k in m for k in columns):
            continue
        standin = entry.get("standin_for", {}).get(name)
        data = f"{name}{f' (for {standin})' if standin else ''}, {ds.get('num_items', 0)} img"
        rows.append({"method": label, "data": data, "_dataset": standin or name, "_name": name, "_mean": False,
                     "_items": ds.get("num_items", 0), "_ci": _intervals(ds.get("metrics", {}), columns),
                     **{k: m.get(k) for k in columns}})
    if len(rows) > 1:
        m = dict(numeric_items(res.get("metrics", {})))
        rows.append({"method": label, "data": f"mean of {len(rows)} datasets", "_dataset": None, "_mean": True,
                     "_name": f"mean of {len(rows)} datasets", "_items": sum(r["_items"] for r in rows),
                     "_ci": _intervals(res.get("metrics", {}), columns), **{k: m.get(k) for k in columns}})
    return rows


def _intervals(metrics: dict, columns: Mapping[str, str]) -> dict[str, list[float]]:
    """{metric: [lo, hi]} of the columns whose bootstrap interval (``METRIC_ci``) the run recorded."""
    return {k: metrics[f"{k}_ci"] for k in columns if isinstance(metrics.get(f"{k}_ci"), list)
            and len(metrics[f"{k}_ci"]) == 2}


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def delta_row(ours: dict, entry: dict, table: TableSpec, presets: list[str]) -> dict | None:
    """ours − the paper's row for the same model (same dataset where the paper row names one); None
    when no paper row reports our model, or our weights were random."""
    res = entry["results"]
    if res.get("untrained"):
        return None
    cands = [r for p in presets for r in paper_rows(p) if any(k in r for k in table.columns)]
    if any("dataset" in r for r in cands):
        cands = [r for r in cands if r.get("dataset") == ours["_dataset"]]
    elif any("scope" in r for r in cands) and not ours["_mean"] and len(res["datasets"]) > 1:
        return None  # a mean over datasets is compared with our mean only
    model = res.get("model", {})
    ref = matching_row(model.get("name", entry.get("model", "")), cands, model.get("variant"))
    if ref is None:
        return None
    vals = {k: (ours[k] - ref[k]) if _is_num(ours.get(k)) and _is_num(ref.get(k)) else None for k in table.columns}
    if all(v is None for v in vals.values()):
        return None
    return {"method": f"Δ {ours['method']} vs paper {ref['method']}", "data": ours["data"], **vals}


def _long(paper: list[dict], ours: list[dict], columns: Mapping[str, str]) -> list[dict]:
    rows = [{"method": r["method"], "source": r["_source"], "dataset": r["_data"], "metric": k, "value": r[k],
             "items": None} for r in paper for k in columns if k in r]
    rows += [{"method": o["method"], "source": "ours", "dataset": o["_name"], "metric": k, "value": o.get(k),
              "items": o["_items"]} for o in ours for k in columns]
    return rows


def _notes(paper: list[dict], runs: list[dict], without_delta: list[str]) -> list[str]:
    """Where the paper rows come from, what our rows cover, and which of ours have no difference row."""
    notes = [source_note([{"method": r["method"], "source": r["_source"]} for r in paper])] if paper else []
    covered: dict[str, list[str]] = {}
    for e in runs:
        text = coverage(e["results"], e.get("totals"), e.get("standin_for"))
        covered.setdefault(text, []).append(model_label(e["results"]))
    if covered:
        notes.append("Ours: " + "; ".join(f"{', '.join(dict.fromkeys(m))} on {t}" for t, m in covered.items()) + ".")
    if paper and without_delta:
        notes.append(f"No difference row for {', '.join(dict.fromkeys(without_delta))}: no paper row reports that "
                     f"model (differences are against the same model family and size only).")
    return notes


def build_table(task: str, table: TableSpec, entries: list[dict], cls=None) -> Built | None:
    """Table ``table`` of task ``task`` (class ``cls``, whose metric specs give each column's
    direction) from the finished runs of ``entries``; None when no run feeds it."""
    import pandas as pd

    runs = [e for e in entries if "results" in e and e["results"].get("task") == task]
    presets_of: dict[str, list[str]] = {}  # presets that share one run folder (identical settings)
    unique = []
    for e in runs:
        if e["dir"] not in presets_of:
            unique.append(e)
        presets_of.setdefault(e["dir"], []).extend(e.get("presets") or [e.get("preset")])
    ours_all = [(e, r) for e in unique for r in _our_rows(e, table)]
    if not ours_all:
        return None
    paper, seen = [], set()
    for e in runs:
        for r in (r for p in presets_of[e["dir"]] for r in paper_rows(p)):
            key = (r["method"], r["_data"])
            if any(k in r for k in table.columns) and key not in seen:
                seen.add(key)
                paper.append(r)
    cols = ["method", "data", *table.columns]
    rows = [{"method": f"{r['method']} (paper)", "data": r["_data"], **{k: r.get(k) for k in table.columns}}
            for r in paper]
    info = [RowInfo("paper") for _ in paper]
    cis: list = [None for _ in paper]
    sources: list = [None for _ in paper]
    with_delta = set()
    for e, ours in ours_all:
        rows.append({k: ours[k] for k in cols})
        info.append(RowInfo("ours"))
        cis.append({table.columns[k]: v for k, v in ours["_ci"].items()} or None)
        sources.append((e["dir"], None if ours["_mean"] else ours["_name"]))
        delta = delta_row(ours, e, table, presets_of[e["dir"]])
        if delta:
            rows.append(delta)
            info.append(RowInfo("delta"))
            cis.append(None)
            sources.append(None)
            with_delta.add(e["dir"])
    df = pd.DataFrame(rows, columns=cols).rename(columns=table.columns)
    df = df.astype(object).where(df.notna(), None)
    without = [model_label(e["results"]) for e in unique if e["dir"] not in with_delta]
    paper_plot = [{"label": r["method"] + ("" if len({p["_data"] for p in paper}) == 1 else f", {r['_data']}"),
                   **{k: r.get(k) for k in table.columns}} for r in paper]
    headline = [rows[-1] for rows in (_our_rows(e, table) for e in unique) if rows]  # mean or only row
    ours_plot = [{"label": f"{o['method']}, {o['data']}", "_ci": o["_ci"], **{k: o.get(k) for k in table.columns}}
                 for o in headline]
    return Built(df, info, _long(paper, [o for _, o in ours_all], table.columns), _notes(paper, unique, without),
                 directions(cls, table.columns), paper_plot, ours_plot, cis, sources)
