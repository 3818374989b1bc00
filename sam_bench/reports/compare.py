"""Compare two runs metric by metric, for CI: a table of baseline, candidate and delta, and a verdict.

BASELINE and CANDIDATE may each be a results.json, a run directory, or a reproduce directory
(many runs). Runs are paired by their folder inside a reproduce directory (``PRESET-MODEL``), or
by task and model; rows are matched by dataset and metric. Every number of every dataset and the
aggregate is shown (nested dicts give dotted names); latency is not, as it depends on the machine.

What gates comes from the task's own declarations (``Task.metrics``, ``sam_bench.metrics.spec``),
read from the registered class, never by building a task:

- a scoring metric regresses when it moves the wrong way by more than its tolerance; a count that
  must stay equal (objects, annotations) fails when it changes;
- a scoring metric that is undefined (NaN / null) or absent fails: in the candidate where the
  baseline has a number, and anywhere for a required metric (optional ones, such as an empty size
  or frequency group, may be undefined on both sides);
- diagnostics (declared ``scoring=False``) and metrics the task does not declare are shown, never gated.

Tolerances, most specific first: ``--tolerance METRIC=VALUE`` and the entries of ``--tolerance-file``
(keys ``task.metric``, ``metric`` or shell patterns of either; absolute, on the metric's own scale);
then ``--tolerance X`` (or the file's ``default``) in percent points: X on percent metrics, X/100 on
0-1 metrics (edge ODS...), clicks and counts keep their own; then the spec's default (0.5 points,
0.005 on 0-1 metrics, 0.1 clicks, 0 for counts).

Statistics (``sam_bench.reports.paired``): where both run folders keep their ``items.jsonl``, each
resampled metric gets the paired-bootstrap interval of its difference (``ci_low``, ``ci_high``) and
a two-sided p-value, and a ``significance``: improved, regressed or within noise at ``--alpha``. A
drop beyond the tolerance then fails only when it is also significant (``--no-stats``: on the
tolerance alone, as without items). Runs scored on different items or objects are refused (exit 2).

Exit status: 0 when nothing failed, 1 on a regression or an undefined, vanished or changed metric or
run, 2 when the inputs cannot be compared (different schema version, task, task settings, item
limit, dataset list, items scored or skipped per dataset, model or checkpoint, random vs trained
weights, a task not registered here, or nothing to gate). ``--allow-different-models`` compares
runs of different models (or weights) anyway.

examples:
  sam-bench compare results/baseline/synthetic runs/new
  sam-bench compare old/results.json new/results.json --tolerance 0.2 --out compare/
  sam-bench compare old/results.json new/results.json --tolerance ods=0.01 --tolerance noc90=0.2
  sam-bench compare sam_vit_b/results.json sam_vit_h/results.json --allow-different-models
  sam-bench compare runs/grabcut runs/grabcut-iters_1 --allow-different-models --alpha 0.01 --out cmp/
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sam_bench.errors import ConfigError, SamBenchError
from sam_bench.metrics import bootstrap
from sam_bench.metrics.spec import MetricSpec, find_spec
from sam_bench.reports.paired import PairedStats, paired_stats, settings_from
from sam_bench.reports.paired import add_arguments as paired_arguments
from sam_bench.reports.runs import SavedRun, load_runs, numeric_items
from sam_bench.reports.tolerances import Tolerances, tolerance_arg
from sam_bench.results import run_settings, weights_label

if TYPE_CHECKING:  # pandas loads on first use, not for --help
    import pandas as pd

log = logging.getLogger("sam_bench")

AGGREGATE = "(all)"  # the dataset column of aggregate metrics
EPS = 1e-9  # float noise allowed on top of every tolerance
OK, IMPROVED, REGRESSION, MISSING, NEW, CHANGED = "ok", "improved", "REGRESSION", "MISSING", "new", "CHANGED"
UNDEFINED, NA, DIAGNOSTIC, UNDECLARED = "UNDEFINED", "n/a", "diagnostic", "undeclared"
FAILING = (REGRESSION, MISSING, CHANGED, UNDEFINED)
NOT_GATED = (DIAGNOSTIC, UNDECLARED)
WITHIN_NOISE, SIG_IMPROVED, SIG_REGRESSED = "within noise", "improved", "regressed"
COLUMNS = ["run", "dataset", "metric", "baseline", "candidate", "delta", "ci_low", "ci_high", "p", "tolerance",
           "better", "status", "significance", "note"]


def task_class(name: str):
    """The registered task class of ``name`` (never instantiated), or None when it is not loadable here."""
    from sam_bench import registry

    try:
        return registry.get_task(name)
    except SamBenchError as exc:
        log.warning("task %r not loadable (%s): its metric declarations are unknown", name, exc)
        return None


def _model(results: dict) -> tuple[str, str | None]:
    """(model name, checkpoint sha256 or None)."""
    model = results.get("model") or {}
    return model.get("name", "?"), model.get("checkpoint_sha256")


def incompatibilities(base: dict, cand: dict, allow_different_models: bool = False) -> list[str]:
    """Why two results cannot be compared number for number (empty: they can)."""
    why = []
    if base.get("schema_version") != cand.get("schema_version"):
        why.append(f"schema version {base.get('schema_version')} vs {cand.get('schema_version')}")
    if base.get("task") != cand.get("task"):
        why.append(f"task {base.get('task')!r} vs {cand.get('task')!r}")
    bc, cc = run_settings(base), run_settings(cand)
    cls = task_class(base.get("task", ""))
    if cls is not None:  # options that never change the numbers may differ
        bc, cc = cls.scoring_config(bc), cls.scoring_config(cc)
    diff = sorted(k for k in set(bc) | set(cc) if bc.get(k) != cc.get(k))
    if diff:
        why.append("task settings differ: " + ", ".join(f"{k}={bc.get(k)!r} vs {cc.get(k)!r}" for k in diff))
    if base.get("limit") != cand.get("limit"):
        why.append(f"item limit {base.get('limit')} vs {cand.get('limit')}")
    bd, cd = base.get("datasets") or {}, cand.get("datasets") or {}
    if sorted(bd) != sorted(cd):
        why.append(f"datasets {sorted(bd)} vs {sorted(cd)}")
    for name in sorted(set(bd) & set(cd)):
        nb = (bd[name].get("num_items", 0), bd[name].get("num_skipped", 0))
        nc = (cd[name].get("num_items", 0), cd[name].get("num_skipped", 0))
        if nb != nc:
            why.append(f"{name}: {nb[0]} items scored ({nb[1]} skipped) vs {nc[0]} ({nc[1]} skipped)")
    if not allow_different_models:
        (bm, bsha), (cm, csha) = _model(base), _model(cand)
        hint = " (--allow-different-models compares them anyway)"
        if bm != cm:
            why.append(f"model {bm!r} vs {cm!r}{hint}")
        elif bsha and csha and bsha != csha:
            why.append(f"model {bm!r}: checkpoint sha256 {bsha[:12]} vs {csha[:12]}{hint}")
        if bool(base.get("untrained")) != bool(cand.get("untrained")):
            why.append(f"{weights_label(base.get('untrained'))} vs {weights_label(cand.get('untrained'))}{hint}")
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


def _metric_values(run: SavedRun) -> dict[tuple[str, str], float]:
    """(dataset or AGGREGATE, metric) -> value; null is NaN. ``ConfigError`` naming the file if malformed."""
    values = {}
    datasets = run.results.get("datasets")
    if not isinstance(datasets, dict):
        raise ConfigError(f"{run.path}: 'datasets' is not a mapping of dataset name -> results")
    parts = [(name, ds, f"datasets.{name}") for name, ds in datasets.items()]
    for name, block, where in parts + [(AGGREGATE, run.results, "top level")]:
        metrics = block.get("metrics") if isinstance(block, dict) else None
        if not isinstance(metrics, dict):
            raise ConfigError(f"{run.path}: {where} has no 'metrics' mapping")
        values.update({(name, k): v for k, v in numeric_items(metrics) if not k.endswith("_ci")})
    return values


def _gate(bv: float | None, cv: float | None, tol: float, spec: MetricSpec) -> tuple[str, str]:
    """(status, note) of one scoring metric; None: absent from that side, NaN: undefined there."""
    def state(v):
        return "absent" if v is None else "undefined (null/NaN)" if not math.isfinite(v) else ""

    bs, cs = state(bv), state(cv)
    if bs and cs:
        return (UNDEFINED, f"{cs} in both runs") if spec.required else (NA, f"{cs} in both runs (allowed)")
    if cs:
        return MISSING, f"{cs} in the candidate"
    if bs:
        return (UNDEFINED, f"{bs} in the baseline") if spec.required else (NEW, f"{bs} in the baseline")
    delta = cv - bv
    if spec.higher_is_better is None:
        return (CHANGED, "a count: must not change") if abs(delta) > tol + EPS else (OK, "")
    worse = -delta if spec.higher_is_better else delta
    if worse > tol + EPS:
        return REGRESSION, ""
    return (IMPROVED if -worse > EPS else OK), ""


def _row(run: str, ds: str, metric: str, bv, cv, tol: float, better: str, status: str, note: str) -> dict:
    b = math.nan if bv is None else bv
    c = math.nan if cv is None else cv
    return {"run": run, "dataset": ds, "metric": metric, "baseline": b, "candidate": c, "delta": c - b,
            "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "tolerance": tol, "better": better,
            "status": status, "significance": "", "note": note}


def apply_stats(rows: list[dict], stats: PairedStats, specs: tuple[MetricSpec, ...], alpha: float) -> None:
    """Fill the interval, p-value and significance of the rows the paired bootstrap covers; a
    regression beyond the tolerance that is within noise (p >= ``alpha``) passes, noted."""
    for r in rows:
        d = stats.diffs.get((r["dataset"], r["metric"]))
        spec = find_spec(specs, r["metric"])
        if d is None or spec is None or not spec.scoring or spec.higher_is_better is None:
            continue
        if d.ci is not None:
            r["ci_low"], r["ci_high"] = d.ci
        r["p"] = d.p
        better = (d.delta > 0) == spec.higher_is_better
        r["significance"] = WITHIN_NOISE if not d.significant(alpha) or d.delta == 0 else \
            SIG_IMPROVED if better else SIG_REGRESSED
        if r["status"] == REGRESSION and r["significance"] == WITHIN_NOISE:
            r["status"] = OK
            r["note"] = f"drop beyond the tolerance, within noise (p={d.p:.3g} >= --alpha {alpha:g})"


def _label(base: SavedRun, cand: SavedRun) -> str:
    """The run column: the folder both sit in, else the baseline's task/model."""
    return base.label if base.label == cand.label != "." else f"{base.task}/{base.model}"


def compare_pair(base: SavedRun, cand: SavedRun, tolerances: Tolerances, specs: tuple[MetricSpec, ...]) -> list[dict]:
    """One row per (dataset, metric) on either side, plus one per required metric absent from both."""
    b, c = _metric_values(base), _metric_values(cand)
    run = _label(base, cand)
    rows = []
    for ds, metric in list(b) + [k for k in c if k not in b]:
        bv, cv = b.get((ds, metric)), c.get((ds, metric))
        spec = find_spec(specs, metric)
        if spec is None:
            rows.append(_row(run, ds, metric, bv, cv, math.nan, "", UNDECLARED, "not declared by the task"))
        elif not spec.scoring:
            rows.append(_row(run, ds, metric, bv, cv, math.nan, spec.better, DIAGNOSTIC, ""))
        else:
            tol = tolerances.get(base.task, metric, spec)
            rows.append(_row(run, ds, metric, bv, cv, tol, spec.better, *_gate(bv, cv, tol, spec)))
    seen = {(ds, find_spec(specs, m)) for ds, m in list(b) + list(c)}
    datasets = list(base.results.get("datasets") or {}) + [d for d in cand.results.get("datasets") or {}
                                                          if d not in (base.results.get("datasets") or {})]
    for ds in datasets + [AGGREGATE]:
        for spec in specs:
            if spec.scoring and spec.required and (ds, spec) not in seen:
                rows.append(_row(run, ds, spec.name, None, None, math.nan, spec.better, UNDEFINED,
                                 "declared by the task, absent from both runs"))
    return rows


@dataclass
class Comparison:
    """Every compared row (``COLUMNS``) and the reasons the inputs cannot be compared (exit 2)."""

    rows: list[dict]
    problems: list[str]

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.rows if r["status"] in FAILING]

    @property
    def exit_code(self) -> int:
        return 2 if self.problems else 1 if self.failures else 0

    def frame(self, show: str = "all") -> pd.DataFrame:
        """The rows as a table: ``all``, ``changed`` (anything not ok, or a shown-only value that moved) or
        ``failures``."""
        def moved(r):
            same = r["baseline"] == r["candidate"] or (math.isnan(r["baseline"]) and math.isnan(r["candidate"]))
            return r["status"] not in (OK, NA) and not (r["status"] in NOT_GATED and same)

        import pandas as pd

        rows = {"all": self.rows, "changed": [r for r in self.rows if moved(r)], "failures": self.failures}[show]
        return pd.DataFrame(rows, columns=COLUMNS)


def compare(baseline: str | Path, candidate: str | Path, tolerances: Tolerances | None = None, *,
            allow_different_models: bool = False, stats: bootstrap.Settings | None = bootstrap.Settings(),
            alpha: float = 0.05) -> Comparison:
    """Compare every metric of every paired run (see the module docstring). ``stats``: the paired
    bootstrap (None: tolerances alone); ``alpha``: its significance level."""
    tolerances = tolerances or Tolerances()
    base, cand = load_runs(baseline), load_runs(candidate)
    pairs, lost, extra = pair_runs(base, cand)
    problems: list[str] = []
    if not pairs:
        problems.append(f"no run of {candidate} matches one of {baseline} (by folder, or by task and model)")
    rows: list[dict] = []
    for b, c in pairs:
        label, cls = _label(b, c), task_class(b.task)
        pair_rows = compare_pair(b, c, tolerances, tuple(getattr(cls, "metrics", ())))  # checks the shape first
        why_not = incompatibilities(b.results, c.results, allow_different_models)
        problems += [f"{label}: {why}" for why in why_not]
        if stats is not None and not why_not:
            paired = paired_stats(b, c, cls, stats)
            apply_stats(pair_rows, paired, tuple(getattr(cls, "metrics", ())), alpha)
            problems += [f"{label}: {why}" for why in paired.problems]
            for note in paired.notes:
                log.info("%s: %s", label, note)
        if cls is None:
            problems.append(f"{label}: task {b.task!r} is not registered here, so which of its metrics score is "
                            "unknown; install the package that provides it")
        if cls is not None and all(r["status"] in NOT_GATED for r in pair_rows):
            problems.append(f"{label}: task {b.task!r} declares none of these metrics as scoring (Task.metrics): "
                            "nothing to gate")
        rows += pair_rows
    for run, status in [(r, MISSING) for r in lost] + [(r, NEW) for r in extra]:
        rows.append(_row(run.label, AGGREGATE, f"(run {run.task}/{run.model})", None, None, math.nan, "", status,
                         "baseline run without a candidate" if status == MISSING else "candidate run only"))
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
    for col in ("baseline", "candidate", "tolerance", "ci_low", "ci_high", "p"):
        shown[col] = shown[col].map(_fmt)
    shown["delta"] = shown["delta"].map(lambda v: _fmt(v, sign=True))
    return shown.to_markdown(index=False, disable_numparse=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", metavar="BASELINE", help="results.json, run dir or reproduce dir taken as reference")
    p.add_argument("candidate", metavar="CANDIDATE", help="results.json, run dir or reproduce dir to check")
    p.add_argument("--tolerance", type=tolerance_arg, action="append", default=[], metavar="X|METRIC=VALUE",
                   help="X: allowed drop in percent points (X on percent metrics, X/100 on 0-1 metrics such as "
                        "edge ODS; clicks and counts keep their own). METRIC=VALUE (repeatable; task.metric or "
                        "patterns too): absolute, on that metric's scale. Default: each metric's declared "
                        "tolerance (0.5 points, 0.005 on 0-1 metrics, 0.1 clicks, 0 for counts)")
    p.add_argument("--tolerance-file", metavar="F", help="TOML or JSON mapping task.metric / metric / pattern -> "
                   "absolute tolerance, plus an optional default in percent points (--tolerance X replaces that default, "
                   "--tolerance METRIC=VALUE an entry)")
    p.add_argument("--allow-different-models", action="store_true",
                   help="compare runs of different models, checkpoints or random vs trained weights (refused, "
                        "exit 2, otherwise)")
    p.add_argument("--show", choices=["all", "changed", "failures"], default="all",
                   help="rows printed: every metric, those not 'ok' (shown-only values only when they moved), or "
                        "only failures (default: all)")
    p.add_argument("--out", metavar="DIR", help="also write DIR/compare.{md,csv,tex} (and compare_forest.png)")
    paired_arguments(p)


def _summary(result: Comparison) -> list[str]:
    """One line per failing row (up to 20) and the metrics shown but not gated because undeclared."""
    lines = [f"FAILED {r['run']} / {r['dataset']} / {r['metric']}: {r['status']}"
             + (f" ({r['note']})" if r["note"] else "") for r in result.failures[:20]]
    if len(result.failures) > 20:
        lines.append(f"... and {len(result.failures) - 20} more failing rows")
    undeclared = sorted({(r["run"], r["metric"]) for r in result.rows if r["status"] == UNDECLARED})
    for run in sorted({run for run, _ in undeclared}):
        names = ", ".join(m for r, m in undeclared if r == run)
        lines.append(f"NOT GATED ({run}: not declared by its task): {names}")
    return lines


def main(args: argparse.Namespace) -> int:
    from sam_bench.reports.tables import write_table

    points = [v for k, v in args.tolerance if not k]
    if len(points) > 1:
        raise ConfigError(f"--tolerance given {len(points)} global values {points}; give one (or METRIC=VALUE)")
    tolerances = Tolerances.load(args.tolerance_file, points[0] if points else None,
                                 {k: v for k, v in args.tolerance if k})
    result = compare(args.baseline, args.candidate, tolerances, allow_different_models=args.allow_different_models,
                     stats=settings_from(args), alpha=args.alpha)
    df = result.frame(args.show)
    if len(df):
        print(to_markdown(df))
    if args.out:
        paths = write_table(result.frame("all"), args.out, "compare", floatfmt=".4g",
                            caption=f"{args.candidate} against {args.baseline}")
        from sam_bench.reports.forest import forest_plot

        paths += forest_plot(result.rows, Path(args.out) / "compare_forest.png")
        print(f"written: {', '.join(str(p) for p in paths)}")
    for line in _summary(result):
        print(line)
    for why in result.problems:
        print(f"INCOMPATIBLE: {why}")
    n_fail = len(result.failures)
    verdict = {0: "OK: no metric regressed", 1: f"FAIL: {n_fail} metric(s) regressed, undefined or vanished",
               2: "FAIL: the inputs cannot be compared"}[result.exit_code]
    gated = sum(r["status"] not in NOT_GATED for r in result.rows)
    print(f"{verdict} ({gated} gated, {len(result.rows) - gated} shown only; baseline {args.baseline}, "
          f"candidate {args.candidate})")
    return result.exit_code
