"""Fault injection for `sam-bench compare`: every bad input must fail (exit 1) or be refused (exit 2).

Most cases corrupt a copy of a committed baseline (results/baseline/synthetic/edges-canny, an edges
run of the real task, whose metrics the task declares); the last ones run the compare step of
docs/example-workflow.yml under GitHub's default ``bash -e`` against two results folders.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from sam_bench.cli import main as cli

BASELINE = REPO / "results" / "baseline"
EDGES = json.loads((BASELINE / "synthetic" / "edges-canny" / "results.json").read_text())
DS = next(iter(EDGES["datasets"]))  # "synthetic"


def edges(**metrics) -> dict:
    """A deep copy of the committed edges-canny results with ``metrics`` set in its dataset and the aggregate."""
    res = copy.deepcopy(EDGES)
    for block in (res["datasets"][DS], res):
        block["metrics"].update(metrics)
    return res


def write(path, res) -> str:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(res))
    return str(path / "results.json")


def compare(tmp_path, base, cand, *extra) -> int:
    return cli(["compare", write(tmp_path / "base", base), write(tmp_path / "cand", cand), *extra])


ODS = EDGES["datasets"][DS]["metrics"]["ods"]


@pytest.mark.parametrize("extra", [[], ["--tolerance", "0.5"],
                                   ["--tolerance-file", str(BASELINE / "tolerances.toml")]])
def test_ods_drop_of_two_hundredths_fails(tmp_path, capsys, extra):
    assert compare(tmp_path, edges(), edges(ods=ODS - 0.02), *extra) == 1
    out = capsys.readouterr().out
    assert f"FAILED edges/canny / {DS} / ods: REGRESSION" in out and "FAILED edges/canny / (all) / ods" in out


def test_ods_drop_within_tolerance_and_diagnostics_pass(tmp_path):
    assert compare(tmp_path, edges(), edges(ods=ODS - 0.004)) == 0
    # thresholds and precisions at the best F are diagnostics: not scored, whatever they do
    assert compare(tmp_path, edges(), edges(ods_threshold=0.9, ods_precision=0.1, ois_recall=0.0)) == 0


@pytest.mark.parametrize("value, words", [
    (math.nan, "undefined (null/NaN) in the candidate"),
    (None, "undefined (null/NaN) in the candidate"),
    (math.inf, "undefined (null/NaN) in the candidate"),
    ("0.65", "absent in the candidate"),  # a string is not a number
])
def test_undefined_candidate_metric_fails_naming_it(tmp_path, capsys, value, words):
    assert compare(tmp_path, edges(), edges(ois=value)) == 1
    out = capsys.readouterr().out
    assert f"FAILED edges/canny / {DS} / ois: MISSING ({words})" in out


def test_candidate_without_the_metric_fails(tmp_path, capsys):
    cand = edges()
    del cand["datasets"][DS]["metrics"]["ap"]
    assert compare(tmp_path, edges(), cand) == 1
    assert f"{DS} / ap: MISSING (absent in the candidate)" in capsys.readouterr().out


def test_undefined_baseline_metric_fails(tmp_path, capsys):
    assert compare(tmp_path, edges(ods=None), edges()) == 1
    assert f"{DS} / ods: UNDEFINED (undefined (null/NaN) in the baseline)" in capsys.readouterr().out
    assert compare(tmp_path, edges(ods=math.nan), edges(ods=math.nan)) == 1
    assert "UNDEFINED (undefined (null/NaN) in both runs)" in capsys.readouterr().out


def test_r50_may_be_undefined_on_both_sides_only(tmp_path):
    assert compare(tmp_path, edges(r50=None), edges(r50=None)) == 0  # precision never reached 0.5
    assert compare(tmp_path, edges(), edges(r50=None)) == 1


def test_empty_runs_fail(tmp_path, capsys):
    empty = copy.deepcopy(EDGES)
    empty["datasets"], empty["metrics"] = {}, {}
    assert compare(tmp_path, empty, copy.deepcopy(empty)) == 1
    assert "FAILED edges/canny / (all) / ods: UNDEFINED (declared by the task, absent from both runs)" \
        in capsys.readouterr().out
    bare = edges()
    bare["datasets"][DS]["metrics"], bare["metrics"] = {}, {}
    assert compare(tmp_path, bare, copy.deepcopy(bare)) == 1


def test_different_models_are_refused_unless_allowed(tmp_path, capsys):
    other = edges(ods=ODS - 0.1)
    other["model"]["name"] = "sobel"
    assert compare(tmp_path, edges(), other) == 2
    out = capsys.readouterr().out
    assert "INCOMPATIBLE: edges/canny: model 'canny' vs 'sobel'" in out
    assert compare(tmp_path, edges(), other, "--allow-different-models") == 1  # compared: ods dropped
    other = edges()
    other["model"]["name"] = "sobel"
    assert compare(tmp_path, edges(), other, "--allow-different-models") == 0


def test_different_checkpoints_are_refused(tmp_path, capsys):
    base, cand = edges(), edges()
    base["model"]["checkpoint_sha256"], cand["model"]["checkpoint_sha256"] = "a" * 64, "b" * 64
    assert compare(tmp_path, base, cand) == 2
    assert "checkpoint sha256 aaaaaaaaaaaa vs bbbbbbbbbbbb" in capsys.readouterr().out


@pytest.mark.parametrize("items, skipped", [(1, 1), (3, 0), (2, 5)])
def test_different_item_counts_are_refused(tmp_path, capsys, items, skipped):
    cand = edges()
    cand["datasets"][DS].update(num_items=items, num_skipped=skipped)
    assert compare(tmp_path, edges(), cand, "--allow-different-models") == 2
    assert f"{DS}: 2 items scored (0 skipped) vs {items} ({skipped} skipped)" in capsys.readouterr().out


def test_unregistered_task_is_refused(tmp_path, capsys):
    base, cand = edges(), edges()
    base["task"] = cand["task"] = "no-such-task"
    assert compare(tmp_path, base, cand) == 2
    assert "task 'no-such-task' is not registered here" in capsys.readouterr().out


@pytest.mark.parametrize("where, value, words", [
    ("metrics", [0.5], f"datasets.{DS} has no 'metrics' mapping"),
    ("dataset", "oops", f"datasets.{DS} has no 'metrics' mapping"),
])
def test_malformed_results_name_the_file(tmp_path, capsys, where, value, words):
    cand = edges()
    if where == "metrics":
        cand["datasets"][DS]["metrics"] = value
    elif where == "dataset":
        cand["datasets"][DS] = value
    else:
        cand["datasets"] = value
    assert compare(tmp_path, edges(), cand) == 2
    err = capsys.readouterr().err
    assert "cand/results.json" in err and words in err


# -- the compare step of docs/example-workflow.yml -------------------------------------------------


def workflow_compare_step() -> str:
    """The ``run: |`` script of the step named 'Compare with the committed baseline'."""
    lines = (REPO / "docs" / "example-workflow.yml").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "- name: Compare with the committed baseline")
    run_at = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run_at]) - len(lines[run_at].lstrip())
    body = []
    for ln in lines[run_at + 1:]:
        if ln.strip() and len(ln) - len(ln.lstrip()) <= indent:
            break
        body.append(ln)
    return textwrap.dedent("\n".join(body))


def run_workflow_step(tmp_path, cand: dict) -> subprocess.CompletedProcess:
    """The step under ``bash -e`` (GitHub's default shell) in a checkout-like folder, sam-bench from this venv."""
    work = tmp_path / "checkout"
    write(work / "results" / "baseline" / "synthetic" / "edges-canny", edges())
    (work / "results" / "baseline" / "tolerances.toml").write_text((BASELINE / "tolerances.toml").read_text())
    write(work / "runs" / "synthetic" / "edges-canny", cand)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "MPLBACKEND": "Agg"}
    return subprocess.run(["bash", "-e", "-c", workflow_compare_step()], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)


def test_workflow_compare_step_fails_on_a_regression(tmp_path):
    assert "set -o pipefail" in workflow_compare_step()
    proc = run_workflow_step(tmp_path, edges(ods=ODS - 0.02))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION" in (tmp_path / "summary.md").read_text()  # tee still wrote the step summary


def test_workflow_compare_step_passes_without_one(tmp_path):
    proc = run_workflow_step(tmp_path, edges())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: no metric regressed" in (tmp_path / "summary.md").read_text()
