"""The "significance" column of a table across runs: which differences between models are real.

For a table with several of our runs on one dataset, the first run (in table order) is the
reference; every other run's row gets, per column, its difference from the reference with a
``*`` where the paired bootstrap over the items both scored (``sam_bench.reports.paired``) finds
it significant at ``ALPHA``. Runs without ``items.jsonl``, over different items, or of a task that
rescores against its dataset get no entry. Reads saved runs only.
"""

from __future__ import annotations

from pathlib import Path

from sam_bench.metrics import bootstrap
from sam_bench.metrics.tables import TableSpec
from sam_bench.reports.paired import AGGREGATE, paired_stats
from sam_bench.reports.runs import SavedRun, model_label

ALPHA = 0.05
NOTE = ("significance: each run's difference from the first run on the same data (its label after 'vs'); "
        f"* where a paired bootstrap over the items both scored gives p < {ALPHA:g}.")


def _run(entries: dict, out_dir: Path, where: str) -> SavedRun | None:
    e = entries.get(where)
    if e is None or "results" not in e:
        return None
    return SavedRun(where, out_dir / where / "results.json", e["results"])


def significance_column(built, table: TableSpec, entries: list[dict], out_dir: str | Path, cls,
                        settings: bootstrap.Settings | None = None) -> list[str] | None:
    """Per row of ``built.df`` its significance text ("" where none); None when no row has one."""
    if cls is None or not built.sources:
        return None
    settings = settings or bootstrap.Settings()
    by_dir = {e["dir"]: e for e in entries if "results" in e}
    out_dir = Path(out_dir)
    reference: dict = {}  # dataset (None: mean) -> first run dir
    cells = [""] * len(built.sources)
    cache: dict = {}
    for i, src in enumerate(built.sources):
        if src is None:
            continue
        where, dataset = src
        ref = reference.setdefault(dataset, where)
        if ref == where:
            continue
        if (ref, where) not in cache:
            base, cand = _run(by_dir, out_dir, ref), _run(by_dir, out_dir, where)
            stats = paired_stats(base, cand, cls, settings) if base and cand else None
            cache[(ref, where)] = None if stats is None or stats.problems else stats
        stats = cache[(ref, where)]
        if stats is None:
            continue
        parts = []
        for key, title in table.columns.items():
            d = stats.diffs.get((AGGREGATE if dataset is None else dataset, key))
            if d is not None:
                parts.append(f"{title} {d.delta:+.3g}{'*' if d.significant(ALPHA) else ''}")
        if parts:
            cells[i] = f"vs {model_label(by_dir[ref]['results'])}: " + ", ".join(parts)
    return cells if any(cells) else None
