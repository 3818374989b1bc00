"""Write one table as Markdown, CSV and LaTeX side by side, and print a run's summary."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from sam_bench.results import atomic_write_text


def write_table(df: pd.DataFrame, out_dir: str | Path, stem: str, *, caption: str | None = None,
                floatfmt: str = ".1f") -> list[Path]:
    """``out_dir/stem.{md,csv,tex}``; NaN shows as '-' in Markdown and LaTeX."""
    out_dir = Path(out_dir)
    md = df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="-")
    if caption:
        md = f"**{caption}**\n\n{md}"
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    fmt = lambda v: "-" if isinstance(v, float) and math.isnan(v) else format(v, floatfmt)
    tex_caption = caption.replace("%", r"\%").replace("&", r"\&").replace("_", r"\_") if caption else None
    tex = df.to_latex(index=False, na_rep="-", float_format=fmt, caption=tex_caption, escape=True)
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.csv", out_dir / f"{stem}.tex"]
    for path, text in zip(paths, (md + "\n", buf.getvalue(), tex)):
        atomic_write_text(path, text)
    return paths


def print_summary(results: dict) -> None:
    """A short per-dataset table of a run on stdout."""
    flag = "  [UNTRAINED: random weights]" if results.get("untrained") else ""
    print(f"{results['task']} / {results['model']['name']}{flag}")
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
