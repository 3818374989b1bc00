"""docs/extending.md as written: its task, registered at run time with its metric specs, its own
table and plot in one class, plus a preset with a paper row; its table comes from `sam-bench
report` and its tolerance and direction from `sam-bench compare`, with nothing else edited."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sam_bench import registry
from sam_bench.cli import main as cli
from sam_bench.data.synthetic import open_synthetic
from sam_bench.errors import ConfigError
from sam_bench.metrics.tables import PlotSpec, TableSpec
from sam_bench.reports.render import run_entry, write_tables
from sam_bench.runner import run_task
from sam_bench.tasks.base import Task

REPO = Path(__file__).resolve().parents[1]
NAME = "toy-brightness"
PAPER = 40.0  # the preset's paper row for GrabCut


def doc_block(lang: str) -> str:
    """The first ``lang`` block of docs/extending.md."""
    return re.findall(rf"```{lang}\n(.*?)```", (REPO / "docs" / "extending.md").read_text(), flags=re.S)[0]


def doc_task() -> type:
    """The task class of docs/extending.md, defined and registered by running its python block."""
    block = doc_block("python")
    scope: dict = {"__name__": "extending_doc"}
    exec(compile(block, "docs/extending.md", "exec"), scope)
    return scope["BrightnessTask"]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The task registered, a preset with one paper row, and one finished run of it on 2 synthetic scenes."""
    cls = doc_task()
    assert registry.get_task(NAME) is cls  # the doc's block registers it
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "toy_brightness.toml").write_text(doc_block("toml"))  # the doc's preset, its paper row
    monkeypatch.setenv("SAM_BENCH_PRESETS", str(presets))
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path / "cache"))
    res = run_task(NAME, "grabcut", datasets=["synthetic:2"], out=tmp_path / "run", progress=False)
    yield tmp_path / "run", res
    registry._extra["tasks"].pop(NAME, None)


def shifted(run, to, delta: float):
    """A copy of ``run`` whose brightness is ``delta`` higher (a candidate that moved)."""
    shutil.copytree(run, to)
    res = json.loads((to / "results.json").read_text())
    for metrics in [res["metrics"], *(d["metrics"] for d in res["datasets"].values())]:
        metrics["brightness"] += delta
    (to / "results.json").write_text(json.dumps(res))
    return to


def test_the_run_writes_the_declared_table_with_paper_and_difference_rows(toy):
    run, res = toy
    images = [it.load().image for it in open_synthetic(2, cache=run.parent / "cache").items]
    ours = float(np.mean([100.0 * img.mean() / 255.0 for img in images]))
    assert res["datasets"]["synthetic"]["metrics"]["brightness"] == pytest.approx(ours, rel=1e-12)
    md = (run / "toy_brightness.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in md.splitlines() if line.startswith("| ")}
    assert float(rows["GrabCut (paper)"]) == PAPER and float(rows["grabcut"]) == pytest.approx(ours, abs=0.05)
    assert float(rows["Δ grabcut vs paper GrabCut"]) == pytest.approx(ours - PAPER, abs=0.05)
    assert "Paper rows: a made-up paper, Table 1." in md and "\\textbf{" in (run / "toy_brightness.tex").read_text()
    long = (run / "toy_brightness.csv").read_text().splitlines()
    assert f"GrabCut,\"a made-up paper, Table 1\",synthetic,brightness,{PAPER},"in long
    assert (run / "toy_brightness.png").read_bytes()[:4] == b"\x89PNG"


def test_report_on_the_run_rebuilds_the_same_table_once(toy, capsys):
    run, _ = toy
    written = {p.name: p.read_bytes() for p in run.glob("toy_brightness.*") if p.suffix != ".png"}
    assert set(written) == {"toy_brightness.md", "toy_brightness.csv", "toy_brightness.tex"}
    for name in written:
        (run / name).unlink()
    assert cli(["report", str(run)]) == 0
    assert {p.name: p.read_bytes() for p in run.glob("toy_brightness.*") if p.suffix != ".png"} == written
    report = (run / "report.md").read_text()
    assert report.count("## Toy. Mean brightness (%)") == 1 and "![toy_brightness](toy_brightness.png)" in report


@pytest.mark.parametrize("delta, code", [(-0.8, 0), (-1.5, 1), (+1.5, 0), (0.0, 0)])
def test_compare_gates_by_the_declared_tolerance_and_direction(toy, tmp_path, capsys, delta, code):
    run, _ = toy
    cand = shifted(run, tmp_path / "cand", delta)
    assert cli(["compare", str(run), str(cand)]) == code  # 0.8 down passes only by the declared 1.0, not 0.5
    out = capsys.readouterr().out
    assert ("FAILED" in out) is (code == 1) and "not declared by its task" not in out


def test_a_plot_under_an_undeclared_table_is_refused_at_class_creation():
    with pytest.raises(ValueError, match="plot 'p' is drawn under table 'nope'"):
        type("Bad", (Task,), {"name": "bad", "plots": (PlotSpec("p", "bars", "nope"),)})
    with pytest.raises(ValueError, match="kind 'pie'"):
        PlotSpec("p", "pie", "t")
    with pytest.raises(ValueError, match="letters, digits"):
        TableSpec("a/b", "c", {"m": "M"})


def test_two_tasks_declaring_one_stem_are_refused_naming_both(toy, tmp_path):
    run, res = toy
    other = type("Other", (Task,), {"name": "toy-other", "tables": doc_task().tables})
    registry.register("tasks", "toy-other", other)
    try:
        entries = [run_entry(res, run, "a"), run_entry({**res, "task": "toy-other"}, run, "b")]
        with pytest.raises(ConfigError, match="'toy-brightness' and 'toy-other' both declare a table 'toy_brightness'"):
            write_tables(entries, tmp_path / "both")
    finally:
        registry._extra["tasks"].pop("toy-other", None)


def test_a_broken_preset_leaves_the_paper_rows_out_not_the_run(toy, tmp_path, monkeypatch, caplog):
    run, res = toy
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.toml").write_text("task = [unclosed\n")
    monkeypatch.setenv("SAM_BENCH_PRESETS", str(bad))
    entry = run_entry(res, run)
    assert entry["presets"] == [] and "broken.toml: bad preset TOML" in caplog.text
    paths, _ = write_tables([entry], tmp_path / "out")
    md = (tmp_path / "out" / "toy_brightness.md").read_text()
    assert "(paper)" not in md and "| grabcut " in md and len(paths) == 4
