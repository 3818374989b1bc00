"""Rebuild a run's tables, plots and report.md from its saved results.json files; no model runs.

RUN_DIR is a ``sam-bench reproduce`` folder (its ``reproduce.json`` says which preset each run
belongs to), a single run folder of ``sam-bench run``, or any folder of them (presets are then
inferred from each run's task and settings). Every table and plot the runs' tasks declare
(``Task.tables``, ``Task.plots``: Table 3 edges, Table 4 proposals, Table 5 instances, Fig. 9
single point, NoC, text-to-mask) is rendered once by ``sam_bench.reports.render``: in each run
folder for that run, and in RUN_DIR across the runs, with the paper's numbers beside ours and the
difference, as .md/.csv/.tex and PNG; then ``latency.*`` and ``report.md`` linking them. Given a
single run folder, its tables are written once, there.

examples:
  sam-bench report results/20250101-120000-classical
  sam-bench report runs/edges-sobel --no-task-outputs
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sam_bench.errors import ConfigError
from sam_bench.reports.paper_tables import infer_presets
from sam_bench.reports.render import task_files, write_run_outputs, write_tables
from sam_bench.reports.runs import load_runs, model_label
from sam_bench.reports.tables import dataset_totals, write_table
from sam_bench.results import atomic_write_text, load_json, load_results

if TYPE_CHECKING:  # pandas and matplotlib (plots) load on first use, not for --help
    import pandas as pd

log = logging.getLogger("sam_bench")

MANIFEST = "reproduce.json"


# -- runs and presets -----------------------------------------------------------------------
def load_entries(run_dir: Path) -> tuple[dict, list[dict]]:
    """(manifest, run entries with ``results`` loaded where the run finished)."""
    if (run_dir / MANIFEST).exists():
        manifest = load_json(run_dir / MANIFEST)
        entries = [dict(e) for e in manifest.get("runs", [])]
        for e in entries:
            path = run_dir / e.get("dir", "") / "results.json"
            if e.get("status") == "done":
                if path.exists():
                    e["results"] = load_results(path)
                    e["totals"] = dataset_totals(path.parent)
                else:
                    e.update(status="failed", reason=f"{path} is missing")
        return manifest, entries
    entries = []
    for run in load_runs(run_dir):
        res = run.results
        presets = infer_presets(res)
        entries.append({"preset": presets[0] if len(presets) == 1 else None, "presets": presets, "task": run.task,
                        "model": run.model, "dir": run.label,
                        "datasets": list(res.get("datasets", {})), "standin_for": {}, "status": "done",
                        "not_run_datasets": res.get("not_run", []), "results": res,
                        "totals": dataset_totals(run.path.parent)})
    return {"run_id": run_dir.resolve().name, "command": None, "settings": {}}, entries


def run_outputs(run_dir: Path, entries: list[dict]) -> list[Path]:
    """Each run folder's own tables, plots and task files, rebuilt from its results.json (RUN_DIR
    itself, when it is the run folder, gets its tables once, from ``write_report``)."""
    paths, seen = [], set()
    for e in entries:
        folder = (run_dir / e["dir"]).resolve()
        if "results" in e and folder not in seen:
            seen.add(folder)
            write = task_files if folder == run_dir.resolve() else write_run_outputs
            paths += write(e["results"], folder)
    return paths


def latency_table(entries: list[dict]) -> pd.DataFrame:
    import pandas as pd

    rows, seen = [], set()
    for e in entries:
        if "results" not in e or e["dir"] in seen:
            continue
        seen.add(e["dir"])
        res = e["results"]
        lat, prov = res.get("latency", {}), res.get("provenance", {})
        stages = lat.get("stages", {})
        items = sum(d.get("num_items", 0) for d in res.get("datasets", {}).values())
        wall = lat.get("wall_seconds")
        device = prov.get("device_name") or prov.get("device")
        rows.append({"run": e["dir"], "model": model_label(res), "device": device,
                     "items": items, "wall s": wall, "s / item": wall / items if wall is not None and items else None,
                     "encoder calls": lat.get("encoder_calls"),
                     "encoder reused": (lat.get("embedding_cache_hits") or 0) + (lat.get("encoder_shared") or 0),
                     "encoder s saved": lat.get("encoder_seconds_saved"),
                     "encoder ms / image": lat.get("encoder_ms_per_image"),
                     "decoder ms / prompt": lat.get("decoder_ms_per_prompt"),
                     "post-proc. s": stages.get("postprocess", {}).get("seconds"),
                     "metric s": stages.get("metric", {}).get("seconds"),
                     "ranks": lat.get("world_size", 1)})
    df = pd.DataFrame(rows, columns=["run", "model", "device", "items", "wall s", "s / item", "encoder calls",
                                     "encoder reused", "encoder s saved", "encoder ms / image",
                                     "decoder ms / prompt", "post-proc. s", "metric s", "ranks"])
    return df.astype(object).where(df.notna(), None)


# -- report.md ---------------------------------------------------------------------------------
def _md_table(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    return df.to_markdown(index=False, floatfmt=floatfmt, missingval="-")


def _runs_table(entries: list[dict]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for e in entries:
        res = e.get("results", {})
        items = _items_cell(res, e.get("totals") or {}) if res else None
        skipped = sum(d.get("num_skipped", 0) for d in res.get("datasets", {}).values()) if res else None
        folder = f"[{e['dir']}/]({e['dir']}/)" if res else "-"
        note = e.get("reason", "")
        rows.append({"preset": e.get("preset") or "-", "task": e["task"],
                     "model": model_label(res) if res else e["model"], "datasets": ", ".join(e.get("datasets", [])),
                     "items": items, "skipped": skipped, "status": e["status"],
                     "time s": e.get("seconds"), "folder": folder, "note": note})
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)


def _items_cell(res: dict, totals: dict[str, int]) -> int | str:
    """Items a run scored, ``N of TOTAL`` when it scored fewer than its datasets hold (``--limit``)."""
    datasets = res.get("datasets", {}).values()
    items = sum(d.get("num_items", 0) for d in datasets)
    known = [d.get("num_available", totals.get(name)) for name, d in res.get("datasets", {}).items()]
    if known and all(isinstance(t, int) for t in known) and sum(known) != items:
        return f"{items} of {sum(known)}"
    return items


PREPARE = re.compile(r"`(sam-bench datasets prepare [^`]+)`")


def _not_run(entries: list[dict]) -> tuple[list[str], pd.DataFrame]:
    """(lines for runs that did not run or failed, a table of missing datasets with their prepare command)."""
    import pandas as pd

    lines, rows, seen = [], [], set()
    for e in entries:
        if e["status"] in ("not run", "failed") and not e.get("reason", "").startswith("no dataset"):
            key = (e.get("preset"), e["model"], e.get("reason"))
            if key not in seen:
                seen.add(key)
                lines.append(f"- **{e.get('preset') or e['task']}** with `{e['model']}`: {e['status']}: "
                             f"{e.get('reason', '')}")
        for nr in e.get("not_run_datasets", []):
            key = (e.get("preset"), nr["dataset"])
            if key not in seen:
                seen.add(key)
                cmd = PREPARE.search(nr["reason"])
                why = re.split(r";? (?:see|run) `", nr["reason"])[0]
                rows.append({"preset": e.get("preset") or e["task"], "dataset": nr["dataset"], "why": why,
                             "prepare with": f"`{cmd.group(1)}`" if cmd else "-"})
    return lines, pd.DataFrame(rows, columns=["preset", "dataset", "why", "prepare with"])


def write_report(run_dir: str | Path, *, task_tables: bool = False) -> list[Path]:
    """Every summary table and plot of ``run_dir`` plus ``report.md``; returns the paths written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    manifest, entries = load_entries(run_dir)
    paths = run_outputs(run_dir, entries) if task_tables else []
    done = [e for e in entries if "results" in e]
    untrained = any(e["results"].get("untrained") for e in done)
    synthetic = done and all(set(e["results"].get("datasets", {})) <= {"synthetic"} for e in done)
    md = [f"# sam-bench report: {manifest.get('run_id', run_dir.name)}", ""]
    if manifest.get("command"):
        md.append(f"Command: `{manifest['command']}`  ")
    prov = next((e["results"].get("provenance", {}) for e in done), {})
    md += [f"Finished: {manifest.get('finished', prov.get('date', '-'))}; total {manifest.get('seconds', '-')} s; "
           f"sam-bench {prov.get('sam_bench', '-')} (git {str(prov.get('git_sha') or '-')[:10]}), torch "
           f"{prov.get('torch', '-')}, {prov.get('device_name') or prov.get('device') or '-'}.", ""]
    if untrained:
        md += ["> **Random weights.** Some models ran untrained (`--untrained`): their numbers test code paths and "
               "speed only and say nothing about the model.", ""]
    if synthetic:
        md += ["> **Synthetic data.** Every run used the generated `synthetic` scenes (no real dataset given): the "
               "numbers check the whole pipeline end to end but are not comparable with the paper's. Run "
               "`sam-bench reproduce --data-root DIR` for real data.", ""]
    if manifest.get("settings", {}).get("quick") or any(e["results"].get("limit") for e in done):
        md += ["> **Subset.** Runs were limited to the first items of each dataset (`--quick` / `--limit`): "
               "numbers are noisy.", ""]
    md += ["Each table puts the paper's rows (marked *paper*, their source named under the table) beside ours; "
           "`Δ M vs paper X` rows give our model M minus the paper's row X for the same model (same family and "
           "size, on whatever data we ran); a model the paper does not report gets no difference row.", ""]
    written, sections = write_tables(entries, run_dir)
    paths += written
    md += sections
    lat = latency_table(entries)
    if len(lat):
        paths += write_table(lat, run_dir, "latency", caption="Latency (wall time includes data loading and "
                             "scoring)", floatfmt=".3g")
        md += ["## Latency", "", _md_table(lat), "",
               "Paper anchors: SAM ViT-H image encoder about 0.15 s on an A100; prompt encoder + decoder about "
               "50 ms in a browser on CPU. Files: [latency.md](latency.md), [latency.csv](latency.csv), "
               "[latency.tex](latency.tex)", ""]
    md += ["## Runs", "", _md_table(_runs_table(entries)), ""]
    missing, absent = _not_run(entries)
    if missing or len(absent):
        md += ["## Not run", "", *missing, ""]
        if len(absent):
            md += ["Datasets not present under the data root (their presets ran on the others, if any):", "",
                   _md_table(absent), ""]
    md += ["Each run folder holds `results.json` (every metric, settings, skips with reasons, provenance), "
           "`items.jsonl` (per-item records) and the task's own tables and plots. Rebuild this report with "
           f"`sam-bench report {run_dir}`; compare two runs with `sam-bench compare BASELINE CANDIDATE`. The `.tex` "
           "tables need `\\usepackage{booktabs}`; each has a `\\label{tab:STEM}`; the paper tables' `.csv` files "
           "are long form (method, source, dataset, metric, value, items).", ""]
    atomic_write_text(run_dir / "report.md", "\n".join(md))
    from sam_bench.reports.html import write_folder_page

    return paths + [run_dir / "report.md", write_folder_page(run_dir, "\n".join(md), entries)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a reproduce folder, a run folder, or a folder of runs")
    p.add_argument("--no-task-outputs", action="store_true",
                   help="only RUN_DIR's tables, plots and report.md, not those in each run folder below it")


def main(args: argparse.Namespace) -> int:
    paths = write_report(args.run_dir, task_tables=not args.no_task_outputs)
    print(f"report: {Path(args.run_dir) / 'report.md'}, {Path(args.run_dir) / 'report.html'} ({len(paths)} files "
          f"written)")
    return 0
