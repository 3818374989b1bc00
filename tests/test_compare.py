"""`sam-bench compare`: exit 0 when nothing regressed, 1 on a regression, 2 on incompatible inputs.

Results are hand-written results.json files (schema of sam_bench.results) in tmp_path; a toy
task registered at run time declares its metrics (``Task.metrics``): a percent metric, a
lower-is-better one, a 0-1 one and a count.
"""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest

from sam_bench import registry
from sam_bench.cli import main as cli
from sam_bench.metrics.spec import MetricSpec
from sam_bench.reports.compare import Tolerances, compare
from sam_bench.tasks.base import Task


class ToyTask(Task):
    name = "toy-compare"
    metrics = (MetricSpec("miou", "percent"), MetricSpec("err", "percent", higher_is_better=False),
               MetricSpec("ods", "unit"), MetricSpec("num_objects", "count", higher_is_better=None))
    non_scoring = frozenset({"workers"})


registry.register("tasks", ToyTask.name, ToyTask)


def results(miou=50.0, err=2.0, ods=0.6, config=None, untrained=False, datasets=("A", "B"), schema=1, n=10):
    per = {name: {"metrics": {"miou": miou + i, "err": err, "ods": ods, "num_objects": 30},
                  "num_items": n, "num_skipped": 0, "skips": []} for i, name in enumerate(datasets)}
    agg = {"miou": miou + (len(datasets) - 1) / 2, "err": err, "ods": ods, "num_objects": 30 * len(datasets)}
    return {"schema_version": schema, "task": ToyTask.name,
            "model": {"name": "m", "checkpoint": None, "checkpoint_sha256": None, "untrained": untrained},
            "untrained": untrained, "config": config or {"grid": 16}, "limit": None, "datasets": per,
            "metrics": agg, "latency": {"wall_seconds": 1.0}, "provenance": {}}


def write(path, res):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(res))
    return path / "results.json"


def run(tmp_path, base, cand, *extra):
    return cli(["compare", str(write(tmp_path / "base", base)), str(write(tmp_path / "cand", cand)), *extra])


def rows_by(comp):
    return {(r["dataset"], r["metric"]): r for r in comp.rows}


def test_identical_runs_pass(tmp_path, capsys):
    assert run(tmp_path, results(), results()) == 0
    out = capsys.readouterr().out
    assert "OK: no metric regressed" in out
    assert "| A " in out and "miou" in out


def test_drop_beyond_tolerance_fails_within_passes(tmp_path, capsys):
    assert run(tmp_path, results(miou=50.0), results(miou=49.4)) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "-0.6" in out
    assert run(tmp_path, results(miou=50.0), results(miou=49.6)) == 0
    assert run(tmp_path, results(miou=50.0), results(miou=49.4), "--tolerance", "1") == 0


def test_improvement_and_delta_values(tmp_path):
    write(tmp_path / "b", results(miou=50.0))
    write(tmp_path / "c", results(miou=53.0))
    comp = compare(tmp_path / "b", tmp_path / "c")
    rows = rows_by(comp)
    assert rows[("B", "miou")]["baseline"] == 51.0 and rows[("B", "miou")]["candidate"] == 54.0
    assert rows[("B", "miou")]["delta"] == pytest.approx(3.0)
    assert rows[("B", "miou")]["status"] == "improved"
    assert rows[("(all)", "miou")]["status"] == "improved"
    assert comp.exit_code == 0


def test_lower_is_better_metric_direction(tmp_path):
    assert run(tmp_path, results(err=2.0), results(err=1.0)) == 0  # fewer errors: better
    assert run(tmp_path, results(err=2.0), results(err=2.6)) == 1


def test_tolerance_file_per_metric_and_pattern(tmp_path):
    tol = tmp_path / "tol.toml"
    tol.write_text('default = 0.5\n"toy-compare.ods" = 0.01\n"mi*" = 2.0\n')
    base, cand = results(ods=0.60, miou=50.0), results(ods=0.585, miou=48.6)
    # ods drops 0.015 > 0.01; miou drops 1.4 < 2.0 (pattern)
    assert run(tmp_path, base, cand, "--tolerance-file", str(tol)) == 1
    comp = compare(tmp_path / "base", tmp_path / "cand", Tolerances.load(tol, 0.5))
    bad = {(r["dataset"], r["metric"]) for r in comp.failures}
    assert bad == {("A", "ods"), ("B", "ods"), ("(all)", "ods")}
    tj = tmp_path / "tol.json"
    tj.write_text(json.dumps({"tolerances": {"ods": 0.02}}))
    assert run(tmp_path, base, results(ods=0.585), "--tolerance-file", str(tj)) == 0


def test_tolerance_lookup_order():
    pct, unit, clicks, count = (MetricSpec("m", u) for u in ("percent", "unit", "clicks", "count"))
    t = Tolerances(0.5, {"edges.ods": 0.01, "ods": 0.02, "edges.*": 0.03, "noc*": 0.2})
    assert t.get("edges", "ods", unit) == 0.01
    assert t.get("other", "ods", unit) == 0.02
    assert t.get("edges", "ap", unit) == 0.03
    assert t.get("single-point", "noc90", clicks) == 0.2
    assert t.get("single-point", "miou_1", pct) == 0.5
    assert t.get("other", "r50", unit) == pytest.approx(0.005)  # 0.5 points on a 0-1 scale
    assert t.get("single-point", "noc85_x", MetricSpec("x", "clicks", tolerance=0.3)) == 0.2  # pattern noc*
    assert t.get("single-point", "x", MetricSpec("x", "clicks", tolerance=0.3)) == 0.3  # no percent: its own
    assert t.get("single-point", "num_objects", count) == 0.0
    assert Tolerances().get("edges", "ods", unit) == 0.005 and Tolerances().get("t", "x", clicks) == 0.1


def test_bad_tolerance_file_is_an_error(tmp_path, capsys):
    tol = tmp_path / "tol.toml"
    tol.write_text('ods = -1\n')
    assert run(tmp_path, results(), results(), "--tolerance-file", str(tol)) == 2
    assert "'ods' = -1" in capsys.readouterr().err


@pytest.mark.parametrize("cand, words", [
    (results(config={"grid": 32}), "task settings differ: grid=16 vs 32"),
    (results(datasets=("A",)), "datasets"),
    (results(untrained=True), "trained weights vs random weights"),
    (results(schema=2), "schema version 1 vs 2"),
    (results(n=9), "A: 10 items scored (0 skipped) vs 9 (0 skipped)"),
])
def test_mismatched_settings_exit_2(tmp_path, capsys, cand, words):
    assert run(tmp_path, results(), cand) == 2
    out = capsys.readouterr().out
    assert "INCOMPATIBLE" in out and words in out


def test_non_scoring_options_may_differ(tmp_path, capsys):
    assert run(tmp_path, results(config={"grid": 16, "workers": 1}), results(config={"grid": 16, "workers": 4})) == 0
    assert run(tmp_path, results(config={"grid": 16, "workers": 1}), results(config={"grid": 8, "workers": 4})) == 2
    assert "grid=16 vs 8" in capsys.readouterr().out


def test_vanished_metric_and_changed_count_fail(tmp_path):
    cand = results()
    del cand["datasets"]["A"]["metrics"]["ods"]
    assert run(tmp_path, results(), cand) == 1
    comp = compare(tmp_path / "base", tmp_path / "cand")
    assert [(r["dataset"], r["metric"], r["status"]) for r in comp.failures] == [("A", "ods", "MISSING")]

    cand = results()
    cand["datasets"]["B"]["metrics"]["miou"] = math.nan
    write(tmp_path / "cand", cand)
    assert [(r["dataset"], r["metric"]) for r in compare(tmp_path / "base", tmp_path / "cand").failures] \
        == [("B", "miou")]

    cand = results()
    cand["datasets"]["A"]["metrics"]["num_objects"] = 29
    write(tmp_path / "cand", cand)
    failed = {(r["dataset"], r["metric"], r["status"]) for r in compare(tmp_path / "base", tmp_path / "cand").failures}
    assert failed == {("A", "num_objects", "CHANGED")}


def test_reproduce_dirs_pair_by_folder_and_missing_run_fails(tmp_path, capsys):
    for side in ("b", "c"):
        write(tmp_path / side / "edges-sobel", results())
        r = results(miou=70.0)
        r["model"]["name"] = "canny"
        write(tmp_path / side / "edges-canny", r)
    assert cli(["compare", str(tmp_path / "b"), str(tmp_path / "c")]) == 0
    r = results(miou=68.0)
    r["model"]["name"] = "canny"
    write(tmp_path / "c" / "edges-canny", r)
    comp = compare(tmp_path / "b", tmp_path / "c")
    assert {row["run"] for row in comp.failures} == {"edges-canny"}
    (tmp_path / "c" / "edges-canny" / "results.json").unlink()
    (tmp_path / "c" / "edges-canny").rmdir()
    capsys.readouterr()
    assert cli(["compare", str(tmp_path / "b"), str(tmp_path / "c")]) == 1
    assert "(run toy-compare/canny)" in capsys.readouterr().out
    # a single results.json against a directory of runs pairs by task and model
    assert cli(["compare", str(tmp_path / "b" / "edges-sobel" / "results.json"), str(tmp_path / "c")]) == 0


def test_nothing_in_common_is_incompatible(tmp_path):
    write(tmp_path / "b" / "x-one", results())
    write(tmp_path / "b" / "x-two", results())
    write(tmp_path / "c" / "y-one", results())
    write(tmp_path / "c" / "y-two", results())
    assert compare(tmp_path / "b", tmp_path / "c").exit_code == 2


def test_out_writes_tables(tmp_path):
    assert run(tmp_path, results(), results(miou=45.0), "--out", str(tmp_path / "cmp")) == 1
    with open(tmp_path / "cmp" / "compare.csv") as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if r["dataset"] == "A" and r["metric"] == "miou")
    assert float(row["baseline"]) == 50.0 and float(row["candidate"]) == 45.0 and row["status"] == "REGRESSION"
    assert (tmp_path / "cmp" / "compare.md").read_text().count("REGRESSION") == 3
    assert (tmp_path / "cmp" / "compare.tex").exists()


def test_missing_input_is_an_error(tmp_path, capsys):
    assert cli(["compare", str(tmp_path / "nope"), str(tmp_path / "nope2")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    write(tmp_path / "c", results())
    assert cli(["compare", str(tmp_path / "empty"), str(tmp_path / "c")]) == 2


def test_inputs_not_modified(tmp_path):
    base = results()
    path = write(tmp_path / "b", copy.deepcopy(base))
    write(tmp_path / "c", results())
    compare(tmp_path / "b", tmp_path / "c")
    assert json.loads(path.read_text()) == base


# -- metric declarations (Task.metrics) and what they gate -------------------------------------------


def test_tolerance_in_points_scales_to_unit_metrics(tmp_path):
    # --tolerance X is in percent points: X on miou (0-100), X/100 on ods (0-1)
    base = results(ods=0.600, miou=50.0)
    assert run(tmp_path, base, results(ods=0.594, miou=50.0), "--tolerance", "0.5") == 1  # 0.006 > 0.005
    assert run(tmp_path, base, results(ods=0.594, miou=50.0), "--tolerance", "1") == 0  # 0.006 < 0.01
    assert run(tmp_path, base, results(ods=0.600, miou=49.2), "--tolerance", "1") == 0  # 0.8 < 1 point
    assert run(tmp_path, base, results(ods=0.594)) == 1  # the spec's default: 0.005
    assert run(tmp_path, base, results(ods=0.596)) == 0


def test_tolerance_metric_value_overrides(tmp_path):
    base, cand = results(ods=0.60, miou=50.0), results(ods=0.58, miou=48.0)
    assert run(tmp_path, base, cand) == 1
    assert run(tmp_path, base, cand, "--tolerance", "ods=0.03") == 1  # miou still fails
    assert run(tmp_path, base, cand, "--tolerance", "ods=0.03", "--tolerance", "toy-compare.mi*=2.5") == 0
    comp = compare(tmp_path / "base", tmp_path / "cand", Tolerances.load(overrides={"ods": 0.03}))
    assert {(r["dataset"], r["metric"]) for r in comp.failures} == {("A", "miou"), ("B", "miou"), ("(all)", "miou")}
    assert rows_by(comp)[("A", "ods")]["tolerance"] == 0.03 and rows_by(comp)[("A", "miou")]["tolerance"] == 0.5


@pytest.mark.parametrize("bad", ["-1", "abc", "ods=-0.1", "ods=", "nan"])
def test_bad_tolerance_argument_exits_2(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, results(), results(), "--tolerance", bad)
    assert exc.value.code == 2 and "--tolerance" in capsys.readouterr().err


def test_two_global_tolerances_are_an_error(tmp_path, capsys):
    assert run(tmp_path, results(), results(), "--tolerance", "0.5", "--tolerance", "1") == 2
    assert "give one" in capsys.readouterr().err


class DiagTask(Task):
    """Declares a diagnostic and an optional metric; its constructor always fails (compare never builds it)."""

    name = "toy-diag"
    metrics = (MetricSpec("score", "percent"), MetricSpec("threshold", "unit", scoring=False),
               MetricSpec("score_rare", "percent", required=False))

    def __init__(self, **config):
        raise RuntimeError("compare must not construct a task")


registry.register("tasks", DiagTask.name, DiagTask)


def diag_results(score=50.0, threshold=0.3, rare=math.nan, extra=1.0):
    m = {"score": score, "threshold": threshold, "score_rare": rare, "extra": extra}
    res = results()
    res.update(task=DiagTask.name, metrics=dict(m), datasets={"A": {"metrics": dict(m), "num_items": 4,
                                                                    "num_skipped": 0, "skips": []}})
    return res


def test_diagnostics_and_undeclared_metrics_are_shown_never_gated(tmp_path, capsys):
    assert run(tmp_path, diag_results(), diag_results(threshold=0.9, extra=-100.0)) == 0
    out = capsys.readouterr().out
    assert "NOT GATED (toy-diag/m: not declared by its task): extra" in out
    comp = compare(tmp_path / "base", tmp_path / "cand")
    rows = rows_by(comp)
    assert rows[("A", "threshold")]["status"] == "diagnostic" and rows[("A", "threshold")]["delta"] == pytest.approx(0.6)
    assert rows[("A", "extra")]["status"] == "undeclared"
    assert rows[("A", "score_rare")]["status"] == "n/a"  # optional, undefined on both sides
    assert len(comp.frame("changed")) == 4  # threshold and extra moved, in A and (all); unchanged rows hidden
    assert run(tmp_path, diag_results(), diag_results(score=49.0)) == 1


def test_optional_metric_that_loses_its_number_fails(tmp_path):
    assert run(tmp_path, diag_results(rare=40.0), diag_results(rare=math.nan)) == 1
    comp = compare(tmp_path / "base", tmp_path / "cand")
    assert {(r["dataset"], r["metric"], r["status"]) for r in comp.failures} == \
        {("A", "score_rare", "MISSING"), ("(all)", "score_rare", "MISSING")}
    assert run(tmp_path, diag_results(rare=math.nan), diag_results(rare=40.0)) == 0  # newly defined: fine


def test_higher_is_better_is_derived_from_the_specs():
    assert ToyTask.higher_is_better == {"miou": True, "err": False, "ods": True}
    sp = registry.get_task("single-point")
    assert sp.higher_is_better["noc*"] is False and sp.higher_is_better["miou_*"] is True
    assert registry.get_task("text-to-mask").higher_is_better["found"] is True


def test_builtin_tasks_declare_every_committed_baseline_metric():
    from conftest import REPO
    from sam_bench.reports.runs import load_runs, numeric_items

    for kind in ("synthetic", "real"):
        for r in load_runs(REPO / "results" / "baseline" / kind):
            cls = registry.get_task(r.task)
            blocks = [r.results["metrics"]] + [d["metrics"] for d in r.results["datasets"].values()]
            undeclared = {k for b in blocks for k, _ in numeric_items(b) if cls.metric_spec(k) is None}
            assert not undeclared, f"{r.path}: {sorted(undeclared)} not declared by {cls.__name__}.metrics"
    spec = lambda task, m: registry.get_task(task).metric_spec(m)
    assert (spec("edges", "ods").unit, spec("edges", "ods").scoring) == ("unit", True)
    assert not spec("edges", "ods_threshold").scoring and not spec("edges", "ods_precision").scoring
    assert (spec("single-point", "noc90").unit, spec("single-point", "noc90").higher_is_better) == ("clicks", False)
    assert (spec("single-point", "noc90_failures").unit, spec("single-point", "noc90_failures").default_tolerance) \
        == ("count", 0.0)
    assert spec("single-point", "miou_oracle_1").unit == "percent"
    assert spec("proposals", "ar1000").required and not spec("proposals", "ar1000_rare").required
    assert spec("instances", "ap").required and not spec("instances", "ap_rare").required
