"""Write one table as Markdown, CSV and LaTeX side by side, say what a run covers, print its summary."""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from sam_bench.errors import ConfigError
from sam_bench.reports.latex import RowInfo, render
from sam_bench.results import atomic_write_text, load_json, untrained_banner

if TYPE_CHECKING:  # pandas loads on first use, not for --help
    import pandas as pd

log = logging.getLogger("sam_bench")

LONG_COLUMNS = ("method", "source", "dataset", "metric", "value", "items")


def write_table(df: pd.DataFrame, out_dir: str | Path, stem: str, *, caption: str | None = None,
                floatfmt: str = ".1f", info: Sequence[RowInfo] | None = None,
                better: Mapping[str, bool] | None = None, notes: Sequence[str] = (),
                long: Sequence[Mapping[str, Any]] | None = None, results: dict | None = None,
                sources: Sequence[Mapping[str, Any]] = (), ci: Sequence[Mapping | None] = ()) -> list[Path]:
    """``out_dir/stem.{md,csv,tex}``; missing values show as '-' in Markdown, '--' in LaTeX.

    ``info``: per row of ``df``, paper / ours / delta (its LaTeX block).
    ``better``: column title -> higher is better (LaTeX bolds the best per column). ``notes``:
    sentences after the table in Markdown and in the LaTeX caption. ``long``: rows of
    ``LONG_COLUMNS`` written as the CSV instead of ``df``. ``results``: the run the table shows;
    a note then says how many of each dataset's items it covers (totals from ``out_dir/run.json``).
    ``sources``: the preset ``[[paper]]`` rows shown; a note names where their numbers come from.
    ``ci``: per row, {column title: [lo, hi]} bootstrap intervals (or None); Markdown shows them as
    ``value ± half-width``, with a note.
    """
    out_dir = Path(out_dir)
    notes = list(notes) + ([source_note(sources)] if sources else [])
    if results is not None:
        notes.append(f"This run: {coverage(results, dataset_totals(out_dir))}.")
    shown = with_intervals(df, ci, floatfmt)
    pm = ["± is half the width of the run's bootstrap confidence interval (results.json METRIC_ci)."] \
        if shown is not df else []
    md = shown.astype(object).where(shown.notna(), None).to_markdown(index=False, floatfmt=floatfmt,
                                                                      missingval="-")
    if caption:
        md = f"**{caption}**\n\n{md}"
    md = "\n\n".join([md, *notes, *pm])
    values = df.astype(object).where(df.notna(), None).values.tolist()
    tex = render([str(c) for c in df.columns], values, caption=caption, stem=stem, floatfmt=floatfmt, info=info,
                 better=better, notes=notes)
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.csv", out_dir / f"{stem}.tex"]
    for path, text in zip(paths, (md + "\n", long_csv(long) if long is not None else df.to_csv(index=False), tex)):
        atomic_write_text(path, text)
    return paths


def with_intervals(df: pd.DataFrame, ci: Sequence[Mapping | None], floatfmt: str) -> pd.DataFrame:
    """``df`` with each number that has an interval written ``value ± half-width`` (``df`` itself if none)."""
    if not any(ci):
        return df
    out = df.astype(object).copy()
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    cols = {c for row_ci in ci for c in (row_ci or {})}
    for col in cols:  # the whole column as text, so every number keeps ``floatfmt``
        j = out.columns.get_loc(col)
        for i in range(len(out)):
            v, iv = out.iat[i, j], (ci[i] or {}).get(col) if i < len(ci) else None
            if num(v):
                out.iat[i, j] = format(v, floatfmt) + (f" ± {format((iv[1] - iv[0]) / 2, floatfmt)}" if iv else "")
    return out


def long_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text of ``LONG_COLUMNS`` rows: one number per line, full precision, missing left empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LONG_COLUMNS, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                         for k, v in ((k, row.get(k)) for k in LONG_COLUMNS)})
    return buf.getvalue()


def source_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """``Paper rows: SOURCE.``, or per source the methods it gives when they come from several;
    ``rows``: preset ``[[paper]]`` rows (``method``, ``source``)."""
    by_source: dict[str, list[str]] = {}
    for r in rows:
        by_source.setdefault(str(r.get("source") or "source not stated"), []).append(str(r.get("method", "?")))
    if len(by_source) == 1:
        return f"Paper rows: {next(iter(by_source))}."
    return "Paper rows: " + "; ".join(f"{', '.join(dict.fromkeys(m))} from {s}" for s, m in by_source.items()) + "."


# -- what a run covers ----------------------------------------------------------------------
def dataset_totals(run_folder: str | Path) -> dict[str, int]:
    """dataset id -> items the dataset holds, from the input fingerprints in ``run_folder/run.json``
    (the run's header, written before any item); {} when there is none or it is unreadable."""
    path = Path(run_folder) / "run.json"
    if not path.is_file():
        return {}
    try:
        header = load_json(path)
    except ConfigError as exc:
        log.warning("dataset sizes unknown: %s", exc)
        return {}
    found = header.get("inputs", {}).get("datasets", {}) if isinstance(header, dict) else {}
    return {name: fp["items"] for name, fp in found.items()
            if isinstance(fp, dict) and isinstance(fp.get("items"), int) and not isinstance(fp["items"], bool)}


def _images(n: int) -> str:
    return f"{n} image{'' if n == 1 else 's'}"


def coverage(results: dict, totals: Mapping[str, int] | None = None,
             standin: Mapping[str, str] | None = None) -> str:
    """What a run's numbers cover, e.g. ``10 of 50 images of GrabCut (--limit 10)``.

    A dataset's size is its ``num_available`` in results.json, else ``totals[name]``; unknown, the
    text says the run took the first ``limit`` items. ``standin``: dataset -> the paper dataset it
    stands in for (``--substitute``).
    """
    totals, standin = totals or {}, standin or {}
    parts, unknown = [], False
    for name, ds in results.get("datasets", {}).items():
        n, skipped = int(ds.get("num_items", 0)), int(ds.get("num_skipped", 0))
        total = ds.get("num_available", totals.get(name))
        shown = f"{name} (for {standin[name]})" if name in standin else name
        if total is None:
            unknown = True
            part = f"{_images(n)} of {shown}"
        else:
            part = f"all {_images(n)} of {shown}" if total == n else f"{n} of {_images(total)} of {shown}"
        parts.append(part + (f" ({skipped} skipped)" if skipped else ""))
    text = ", ".join(parts) or "no dataset"
    limit = results.get("limit")
    if limit:
        text += f" (--limit {limit}{f': the first {limit} of each dataset' if unknown else ''})"
    return text


def print_summary(results: dict) -> None:
    """A short per-dataset table of a run on stdout."""
    import pandas as pd

    flag = untrained_banner(results)
    print(f"{results['task']} / {results['model']['name']}{'  ' + flag if flag else ''}")
    rows = []
    for name, ds in results["datasets"].items():
        rows.append({"dataset": name, "items": ds["num_items"], "skipped": ds["num_skipped"], **ds["metrics"]})
    if results.get("metrics") and len(rows) > 1:
        rows.append({"dataset": "mean", **results["metrics"]})
    if rows:
        df = pd.DataFrame(rows)
        keep = [c for c in df.columns if c in ("dataset", "items", "skipped") or pd.api.types.is_numeric_dtype(df[c])]
        print(df[keep].to_markdown(index=False, floatfmt=".3g", missingval="-"))
    for nr in results.get("not_run", []):
        print(f"not run: {nr['dataset']}: {nr['reason']}")
