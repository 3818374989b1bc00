"""Compare two runs metric by metric: a table of baseline, candidate and delta, for CI.

BASELINE and CANDIDATE may each be a results.json, a run directory, or a reproduce directory
(many runs). Runs are paired by their folder inside a reproduce directory (``PRESET-MODEL``), or
by task and model; rows are matched by dataset and metric. Every number of every dataset and the
aggregate is compared (nested dicts give dotted names); latency is not, as it depends on the machine.

A metric regresses when it moves the wrong way by more than its tolerance (absolute, in the
metric's own units: mIoU / AR / AP in percent, edge ODS/OIS/AP/R50 in 0-1). The direction comes
from the task (``Task.higher_is_better``; higher is better unless the task says otherwise). Counts
(``num_*``, skipped items) must not change at all unless a tolerance is set for them. A metric
the baseline has and the candidate lacks (or is NaN) is a regression too.

Tolerances: ``--tolerance`` (default 0.5) for every metric, overridden per metric by
``--tolerance-file`` F (TOML or JSON), a flat mapping (or one under a ``[tolerances]`` table)
whose keys are ``task.metric``, ``metric`` or shell patterns of either (``edges.*``), tried in
that order, plus an optional ``default``::

    default = 0.5
    "edges.*" = 0.005            # edge metrics are in 0-1
    "single-point.noc90" = 0.05

Exit status: 0 when nothing regressed, 1 on a regression or a vanished metric or run, 2 when the
inputs cannot be compared (different schema version, task settings, item limit, dataset list or
item counts, or one run has random weights and the other not).

examples:
  sam-bench compare results/baseline/synthetic runs/new
  sam-bench compare old/results.json new/results.json --tolerance 0.2 --out compare/
  sam-bench compare results/baseline/real runs/ci --tolerance-file results/baseline/tolerances.toml
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sam_bench.errors import ConfigError
from sam_bench.reports.runs import SavedRun, load_runs, numeric_items

log = logging.getLogger("sam_bench")

AGGREGATE = "(all)"  # the dataset column of aggregate metrics
EPS = 1e-9  # float noise allowed on top of every tolerance
OK, IMPROVED, REGRESSION, MISSING, NEW, CHANGED = "ok", "improved", "REGRESSION", "MISSING", "new", "CHANGED"
FAILING = (REGRESSION, MISSING, CHANGED)


@dataclass
class Tolerances:
    """Per-metric absolute tolerances: exact ``task.metric``, exact ``metric``, patterns, then ``default``."""

    default: float = 0.5
    table: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None, default: float) -> "Tolerances":
        if path is None:
            return cls(default)
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--tolerance-file {path}: cannot read ({exc.strerror})") from None
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--tolerance-file {path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'} "
                              f"({exc})") from None
        data = data.get("tolerances", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ConfigError(f"--tolerance-file {path}: expected a mapping of metric -> tolerance")
        table = {}
        for key, val in data.items():
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0 or math.isnan(val):
                raise ConfigError(f"--tolerance-file {path}: {key!r} = {val!r} is not a non-negative number")
            table[key] = float(val)
        return cls(table.pop("default", default), table)

    def get(self, task: str, metric: str, count: bool = False) -> float:
        for name in (f"{task}.{metric}", metric):
            if name in self.table:
                return self.table[name]
        for pattern, val in self.table.items():
            if any(c in pattern for c in "*?[") and (fnmatch.fnmatchcase(f"{task}.{metric}", pattern)
                                                     or fnmatch.fnmatchcase(metric, pattern)):
                return val
        return 0.0 if count else self.default


def is_count(metric: str) -> bool:
    """Counts must stay equal (coverage), whatever their direction."""
    return metric.rsplit(".", 1)[-1].startswith("num_")


def _task_class(results: dict):
    """The run's task class, or None (with a warning) when it cannot be loaded."""
    from sam_bench import registry
    from sam_bench.errors import SamBenchError

    try:
        return registry.get_task(results.get("task", ""))
    except SamBenchError as exc:
        log.warning("task %s not loadable (%s): its metric directions and options are unknown", results.get("task"), exc)
        return None


def directions(results: dict) -> dict[str, bool]:
    """metric -> higher is better, as the run's task declares it (built with the run's own config)."""
    from sam_bench.errors import SamBenchError

    cls = _task_class(results)
    if cls is None:
        return {}
    try:
        return dict(cls(**results.get("config", {})).higher_is_better)
    except (SamBenchError, TypeError, ValueError):
        return dict(cls.higher_is_better)


def incompatibilities(base: dict, cand: dict) -> list[str]:
    """Why two results of the same task cannot be compared number for number (empty: they can)."""
    why = []
    if base.get("schema_version") != cand.get("schema_version"):
        why.append(f"schema version {base.get('schema_version')} vs {cand.get('schema_version')}")
    if base.get("task") != cand.get("task"):
        why.append(f"task {base.get('task')!r} vs {cand.get('task')!r}")
    bc, cc = base.get("config", {}), cand.get("config", {})
    cls = _task_class(base)
    if cls is not None:  # options that never change the numbers may differ
        bc, cc = cls.scoring_config(bc), cls.scoring_config(cc)
    diff = sorted(k for k in set(bc) | set(cc) if bc.get(k) != cc.get(k))
    if diff:
        why.append("task settings differ: " + ", ".join(f"{k}={bc.get(k)!r} vs {cc.get(k)!r}" for k in diff))
    if base.get("limit") != cand.get("limit"):
        why.append(f"item limit {base.get('limit')} vs {cand.get('limit')}")
    bd, cd = base.get("datasets", {}), cand.get("datasets", {})
    if sorted(bd) != sorted(cd):
        why.append(f"datasets {sorted(bd)} vs {sorted(cd)}")
    for name in sorted(set(bd) & set(cd)):
        nb = bd[name].get("num_items", 0) + bd[name].get("num_skipped", 0)
        nc = cd[name].get("num_items", 0) + cd[name].get("num_skipped", 0)
        if nb != nc:
            why.append(f"{name}: {nb} items vs {nc} (different data)")
    if bool(base.get("untrained")) != bool(cand.get("untrained")):
        flag = lambda r: "random weights" if r.get("untrained") else "trained weights"
        why.append(f"{flag(base)} vs {flag(cand)}")
    return why


def pair_runs(base: list[SavedRun], cand: list[SavedRun]) -> tuple[list[tuple[SavedRun, SavedRun]],
                                                                    list[SavedRun], list[SavedRun]]:
    """(pairs, baseline runs without a partner, candidate runs without one).

    One run on each side pairs directly. Otherwise runs pair by folder label when both sides are
    directories of runs, else by (task, model); an ambiguous (task, model) is an error.
    """
    if len(base) == 1 and len(cand) == 1:
        return [(base[0], cand[0])], [], []
    both_dirs = len(base) > 1 and len(cand) > 1
    key = (lambda r: r.label) if both_dirs else (lambda r: (r.task, r.model))
    for side, runs in (("baseline", base), ("candidate", cand)):
        keys = [key(r) for r in runs]
        dup = sorted({str(k) for k in keys if keys.count(k) > 1})
        if dup:
            raise ConfigError(f"{side}: several runs match {', '.join(dup)}; compare their results.json one by one")
    cand_by = {key(r): r for r in cand}
    pairs = [(b, cand_by[key(b)]) for b in base if key(b) in cand_by]
    paired = {key(b) for b, _ in pairs}
    return pairs, [b for b in base if key(b) not in paired], [c for c in cand if key(c) not in paired]


def _status(b: float, c: float, tol: float, higher: bool | None) -> str:
    if math.isnan(b):
        return OK if math.isnan(c) else NEW
    if math.isnan(c):
        return MISSING
    delta = c - b
    if higher is None:
        return CHANGED if abs(delta) > tol + EPS else OK
    worse = -delta if higher else delta
    if worse > tol + EPS:
        return REGRESSION
    return IMPROVED if -worse > EPS else OK


def _metric_rows(results: dict) -> dict[tuple[str, str], float]:
    rows = {}
    for name, ds in results.get("datasets", {}).items():
        rows[(name, "num_skipped")] = float(ds.get("num_skipped", 0))
        rows.update({(name, k): v for k, v in numeric_items(ds.get("metrics", {}))})
    rows.update({(AGGREGATE, k): v for k, v in numeric_items(results.get("metrics", {}))})
    return rows


def compare_pair(base: SavedRun, cand: SavedRun, tolerances: Tolerances) -> list[dict]:
    """One row per (dataset, metric) present on either side."""
    b, c = _metric_rows(base.results), _metric_rows(cand.results)
    higher = directions(base.results)
    run = base.label if base.label == cand.label != "." else f"{base.task}/{base.model}"
    rows = []
    for ds, metric in list(b) + [k for k in c if k not in b]:
        bv, cv = b.get((ds, metric), math.nan), c.get((ds, metric), math.nan)
        count = is_count(metric)
        tol = tolerances.get(base.task, metric, count=count)
        direction = None if count else higher.get(metric, True)
        if (ds, metric) not in c and (ds, metric) in b:
            status = MISSING if not math.isnan(bv) else OK
        elif (ds, metric) not in b:
            status = NEW
        else:
            status = _status(bv, cv, tol, direction)
        rows.append({"run": run, "dataset": ds, "metric": metric, "baseline": bv, "candidate": cv,
                     "delta": cv - bv, "tolerance": tol,
                     "better": "=" if direction is None else ("higher" if direction else "lower"), "status": status})
    return rows


@dataclass
class Comparison:
    """Every compared row ({run, dataset, metric, baseline, candidate, delta, tolerance, better, status})."""

    rows: list[dict]
    problems: list[str]  # incompatibilities (exit 2)

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.rows if r["status"] in FAILING]

    @property
    def exit_code(self) -> int:
        return 2 if self.problems else 1 if self.failures else 0

    def frame(self, show: str = "all") -> pd.DataFrame:
        """The rows as a table: ``all``, ``changed`` (status not ok) or ``failures``."""
        rows = {"all": self.rows, "changed": [r for r in self.rows if r["status"] != OK],
                "failures": self.failures}[show]
        return pd.DataFrame(rows, columns=["run", "dataset", "metric", "baseline", "candidate", "delta", "tolerance",
                                           "better", "status"])


def compare(baseline: str | Path, candidate: str | Path, tolerances: Tolerances | None = None) -> Comparison:
    """Compare every metric of every paired run (see the module docstring)."""
    tolerances = tolerances or Tolerances()
    base, cand = load_runs(baseline), load_runs(candidate)
    pairs, lost, extra = pair_runs(base, cand)
    problems: list[str] = []
    if not pairs:
        problems.append(f"no run of {candidate} matches one of {baseline} (by folder, or by task and model)")
    rows: list[dict] = []
    for b, c in pairs:
        problems += [f"{b.label if b.label == c.label else b.task}: {why}" for why in incompatibilities(b.results,
                                                                                                         c.results)]
        rows += compare_pair(b, c, tolerances)
    for run, status in [(r, MISSING) for r in lost] + [(r, NEW) for r in extra]:
        rows.append({"run": run.label, "dataset": AGGREGATE, "metric": f"(run {run.task}/{run.model})",
                     "baseline": math.nan, "candidate": math.nan, "delta": math.nan, "tolerance": math.nan,
                     "better": "", "status": status})
    return Comparison(rows, problems)


def _fmt(v: float, sign: bool = False) -> str:
    if isinstance(v, str):
        return v
    if v is None or math.isnan(v):
        return "-"
    if v == 0:
        return "0"
    return format(v, "+.4g" if sign else ".4g")


def to_markdown(df: pd.DataFrame) -> str:
    shown = df.copy()
    for col in ("baseline", "candidate", "tolerance"):
        shown[col] = shown[col].map(_fmt)
    shown["delta"] = shown["delta"].map(lambda v: _fmt(v, sign=True))
    return shown.to_markdown(index=False, disable_numparse=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", metavar="BASELINE", help="results.json, run dir or reproduce dir taken as reference")
    p.add_argument("candidate", metavar="CANDIDATE", help="results.json, run dir or reproduce dir to check")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="allowed drop of every metric, absolute in its own units (default: 0.5, i.e. half a "
                        "point of mIoU/AR/AP; edge metrics are 0-1, set theirs with --tolerance-file)")
    p.add_argument("--tolerance-file", metavar="F", help="TOML or JSON mapping task.metric / metric / pattern -> "
                   "tolerance, plus an optional default (overrides --tolerance)")
    p.add_argument("--show", choices=["all", "changed", "failures"], default="all",
                   help="rows printed: every metric, those not 'ok', or only failures (default: all)")
    p.add_argument("--out", metavar="DIR", help="also write DIR/compare.{md,csv,tex}")


def main(args: argparse.Namespace) -> int:
    from sam_bench.reports.tables import write_table

    if args.tolerance < 0:
        raise ConfigError(f"--tolerance {args.tolerance}: must be >= 0")
    result = compare(args.baseline, args.candidate, Tolerances.load(args.tolerance_file, args.tolerance))
    df = result.frame(args.show)
    if len(df):
        print(to_markdown(df))
    if args.out:
        paths = write_table(result.frame("all"), args.out, "compare", floatfmt=".4g",
                            caption=f"{args.candidate} against {args.baseline}")
        print(f"written: {', '.join(str(p) for p in paths)}")
    for why in result.problems:
        print(f"INCOMPATIBLE: {why}")
    n_fail = len(result.failures)
    verdict = {0: "OK: no metric regressed", 1: f"FAIL: {n_fail} metric(s) regressed or vanished",
               2: "FAIL: the inputs cannot be compared"}[result.exit_code]
    print(f"{verdict} ({len(result.rows)} compared, baseline {args.baseline}, candidate {args.candidate})")
    return result.exit_code
