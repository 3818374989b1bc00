"""Paired bootstrap differences of two saved runs on the same items, for ``sam-bench compare``.

Each run's task is rebuilt from its saved config and its records are read back from the run's
``items*.jsonl``; the task's ``resampler`` gives each dataset's metrics as a function of weights
over its units (``sam_bench.metrics.bootstrap``), keyed by (item id, object id) or item id. The two
runs must have scored the same units of every dataset; one weight matrix per dataset, seeded by
the seed and the dataset's name, is applied to both, so the difference's interval and p-value come
from the same resamples of the same items. The headline difference is the task's ``aggregate`` of
each replicate's per-dataset differences. Nothing is run again and no dataset is opened: a task
whose resampler needs its dataset (``Task.resample_needs_data``) gets no statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sam_bench.data.base import Dataset
from sam_bench.metrics import bootstrap
from sam_bench.metrics.bootstrap import Difference
from sam_bench.reports.runs import SavedRun
from sam_bench.results import merge_items

AGGREGATE = "(all)"


@dataclass
class PairedStats:
    """{(dataset or "(all)", metric): Difference}, and why some or all are missing (``notes``) or the
    runs cannot be paired (``problems``: different units, a refusal)."""

    diffs: dict[tuple[str, str], Difference] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_records(run: SavedRun) -> dict[str, list[dict]] | None:
    """{dataset: records (as ``Task.evaluate`` takes them, sorted by item)} of a saved run; None
    when its folder holds no items file."""
    paths = sorted(Path(run.path).parent.glob("items*.jsonl"))
    if not paths:
        return None
    out: dict[str, list[dict]] = {}
    for ln in sorted(merge_items(paths), key=lambda ln: (ln["dataset"], ln["item"])):
        if ln["status"] == "ok":
            out.setdefault(ln["dataset"], []).append({"item": ln["item"], **ln["record"]})
    return out


def _resamplers(cls, run: SavedRun, records: dict[str, list[dict]]) -> tuple[object, dict]:
    task = cls(**dict(run.results.get("config") or {}))
    res = {}
    for name, ds in (run.results.get("datasets") or {}).items():
        recs = records.get(name, [])
        if len(recs) != ds.get("num_items"):
            raise ValueError(f"{run.path.parent}: {name} has {len(recs)} finished items in its items file, "
                             f"results.json scored {ds.get('num_items')}")
        _, r = task.score(Dataset(name, [], format=ds.get("format") or ""), recs) if recs else ({}, None)
        if r is not None and len(r):
            res[name] = r
    return task, res


def paired_stats(base: SavedRun, cand: SavedRun, cls, settings: bootstrap.Settings) -> PairedStats:
    """The paired differences (candidate minus baseline) of every resampled metric of two runs."""
    out = PairedStats()
    if cls is None or settings.replicates == 0:
        return out
    if getattr(cls, "resample_needs_data", False):
        out.notes.append(f"task {base.task!r} rescores against its datasets: tolerances only, no statistics")
        return out
    rb, rc = run_records(base), run_records(cand)
    if rb is None or rc is None:
        missing = base.path.parent if rb is None else cand.path.parent
        out.notes.append(f"{missing} holds no items.jsonl: tolerances only, no statistics")
        return out
    try:
        task, res_b = _resamplers(cls, base, rb)
        _, res_c = _resamplers(cls, cand, rc)
    except (ValueError, KeyError) as exc:
        out.notes.append(f"no statistics: {exc}")
        return out
    per_ds: dict[str, dict[str, Difference]] = {}
    for name in sorted(set(res_b) & set(res_c)):
        try:
            per_ds[name] = bootstrap.paired(res_b[name], res_c[name], settings.replicates,
                                            bootstrap.rng_for(settings.seed, name), settings.level)
        except ValueError as exc:
            out.problems.append(f"{name}: {exc}")
            continue
        out.diffs.update({(name, k): d for k, d in per_ds[name].items()})
    if per_ds and set(per_ds) == set(base.results.get("datasets") or {}):
        mb, mc = base.results.get("metrics") or {}, cand.results.get("metrics") or {}
        observed = {k: mc[k] - mb[k] for k in mb if isinstance(mb.get(k), (int, float)) and
                    isinstance(mc.get(k), (int, float))}
        agg = bootstrap.combine_differences(per_ds, task.aggregate, observed, settings.level)
        out.diffs.update({(AGGREGATE, k): d for k, d in agg.items()})
    return out


def add_arguments(p) -> None:
    """``compare``'s statistics options."""
    g = p.add_argument_group("statistics (paired bootstrap over the runs' items; needs their items.jsonl)")
    g.add_argument("--alpha", type=float, default=0.05, help="significance level: a drop beyond the tolerance "
                   "fails only when its p-value is below this (default 0.05)")
    g.add_argument("--no-stats", action="store_true", help="gate on the tolerances alone (no bootstrap)")
    g.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="paired resamples (default 1000)")
    g.add_argument("--ci", type=float, default=0.95, help="level of the difference's interval (default 0.95)")
    g.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the resamples (default 0)")


def settings_from(args) -> bootstrap.Settings | None:
    """The bootstrap settings of ``compare``'s arguments; None with --no-stats or --bootstrap 0."""
    if not 0 < args.alpha < 1:
        from sam_bench.errors import ConfigError

        raise ConfigError(f"--alpha {args.alpha}: a significance level in (0, 1), e.g. 0.05")
    if args.no_stats or args.bootstrap == 0:
        return None
    try:
        return bootstrap.Settings(args.bootstrap, args.ci, args.bootstrap_seed)
    except ValueError as exc:
        from sam_bench.errors import ConfigError

        raise ConfigError(str(exc)) from None
