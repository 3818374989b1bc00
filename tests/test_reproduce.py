"""`sam-bench reproduce` end to end on one synthetic scene, then `report` and `compare` on its output.

Kept cheap: the instances presets (grabcut on ground-truth boxes) and single point with one click;
every table, plot and link of report.md is checked, and the paper-vs-ours differences are
recomputed here from the preset TOML and results.json.
"""

from __future__ import annotations

import json
import re
import tomllib

import matplotlib.image as mpimg
import pytest

from sam_bench.cli import main as cli
from sam_bench.config import PROJECT_ROOT

ARGS = ["reproduce", "--limit", "1", "--tasks", "instances", "single-point", "--no-progress",
        "--set", "single-point.clicks=[1]", "--set", "single-point.max_clicks=1", "--set",
        "single-point.noc_thresholds=[85]"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAM_BENCH_CACHE", str(root / "cache"))
        assert cli([*ARGS, "--out", str(root / "run")]) == 0
    return root / "run"


def md_tables(text: str) -> list[list[str]]:
    """Markdown tables of a document as lists of lines."""
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    return tables + ([cur] if cur else [])


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_manifest_and_runs(run_dir):
    man = json.loads((run_dir / "reproduce.json").read_text())
    status = {(e["preset"], e["model"]): e["status"] for e in man["runs"]}
    assert status == {("instances_coco", "grabcut"): "done", ("instances_lvis", "grabcut"): "done",
                      ("single_point", "grabcut"): "done", ("interactive", "grabcut"): "done"}
    shared = {e["preset"]: e["dir"] for e in man["runs"]}
    assert shared["single_point"] == shared["interactive"]  # identical settings run once
    res = json.loads((run_dir / shared["single_point"] / "results.json").read_text())
    assert res["config"]["clicks"] == [1] and res["config"]["max_clicks"] == 1 and res["limit"] == 1
    assert "--set single-point.max_clicks=1" in man["command"]


def test_every_table_written_and_readable(run_dir):
    for stem in ("table5_instances", "fig9_single_point", "interactive_noc", "latency"):
        for ext in ("md", "csv", "tex"):
            assert (run_dir / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
        lines = md_tables((run_dir / f"{stem}.md").read_text())[0]
        widths = {len(cells(line)) for line in lines}
        assert len(widths) == 1 and len(lines) >= 3, stem  # one clean table
        assert "nan" not in (run_dir / f"{stem}.md").read_text().lower()
        tex = (run_dir / f"{stem}.tex").read_text()
        assert "\\begin{tabular}" in tex and "Δ" not in tex and "−" not in tex  # plain pdflatex compiles it
        assert not re.search(r"(?<!\\)%", tex), "an unescaped % comments out the rest of a LaTeX line"


def test_plots_are_images(run_dir):
    for name in ("table5_instances.png", "fig9_single_point_bars.png", "fig9_single_point_clicks.png"):
        img = mpimg.imread(run_dir / name)
        assert img.shape[0] > 300 and img.shape[1] > 500 and img.std() > 0.05, name


def test_paper_rows_and_differences(run_dir):
    paper = tomllib.loads((PROJECT_ROOT / "tasks" / "instances_coco.toml").read_text())["paper"]
    sam = next(r for r in paper if r["method"] == "SAM")
    res = json.loads((run_dir / "instances_coco-grabcut" / "results.json").read_text())
    ours = res["datasets"]["synthetic"]["metrics"]
    lines = md_tables((run_dir / "table5_instances.md").read_text())[0]
    rows = [cells(line) for line in lines[2:]]
    assert ["SAM (paper)", "COCO", "46.5", "30.8", "51.0", "61.7"] in rows
    i = rows.index(next(r for r in rows if r[1].startswith("synthetic (for COCO)")))
    value, _, half = rows[i][2].partition(" ± ")  # the bootstrap interval's half-width beside ours
    lo, hi = ours["ap_ci"]
    assert rows[i][0] == "grabcut" and float(value) == pytest.approx(ours["ap"], abs=0.05)
    assert float(half) == pytest.approx((hi - lo) / 2, abs=0.05)
    assert sam["ap"] == 46.5 and not any(r[0].startswith("Δ") for r in rows)  # GrabCut is not SAM: no difference
    fig9_text = (run_dir / "fig9_single_point.md").read_text()
    fig9 = [cells(line) for line in md_tables(fig9_text)[0][2:]]
    assert not any(r[0].startswith("Δ") for r in fig9) and "No difference row for grabcut" in fig9_text
    assert "Paper rows: SAM 2 paper Table 15" in fig9_text  # the Fig. 9 means are the SAM 2 paper's


def test_report_links_resolve(run_dir):
    text = (run_dir / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert {"table5_instances.md", "table5_instances.csv", "table5_instances.tex", "table5_instances.png",
            "fig9_single_point_bars.png", "latency.csv", "instances_coco-grabcut/"} <= set(links)
    for link in links:
        assert (run_dir / link).exists(), link
    assert "Synthetic data" in text and "Subset" in text
    for table in md_tables(text):
        assert len({len(cells(line)) for line in table}) == 1


def test_report_rebuilds_the_same_tables(run_dir, capsys):
    before = {p.name: p.read_text() for p in run_dir.glob("*.md")}
    for p in list(run_dir.glob("*.md")) + list(run_dir.glob("*.png")):
        p.unlink()
    (run_dir / "interactive-grabcut" / "fig9_single_point.md").unlink()
    assert cli(["report", str(run_dir)]) == 0
    assert {p.name: p.read_text() for p in run_dir.glob("*.md")} == before
    assert (run_dir / "interactive-grabcut" / "fig9_single_point.md").exists()  # each run's own tables too
    assert (run_dir / "fig9_single_point_clicks.png").exists()


def test_rerun_resumes_and_compares_equal(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(run_dir.parent / "cache"))
    items = {p: p.read_text() for p in run_dir.glob("*/items.jsonl")}
    assert cli([*ARGS, "--out", str(run_dir)]) == 0
    assert {p: p.read_text() for p in run_dir.glob("*/items.jsonl")} == items  # nothing recomputed
    assert cli(["compare", str(run_dir), str(run_dir)]) == 0
    assert cli(["reproduce", "--limit", "2", "--tasks", "instances", "--out", str(run_dir)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_missing_data_listed_with_prepare_command(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert cli(["reproduce", "--data-root", str(tmp_path / "data"), "--tasks", "instances_coco", "interactive",
                "--out", str(tmp_path / "run")]) == 1  # nothing ran: the report is written, the exit says so
    assert "reproduce ran nothing" in capsys.readouterr().err
    text = (tmp_path / "run" / "report.md").read_text()
    assert "## Not run" in text and "sam-bench datasets prepare COCO" in text
    assert "sam-bench datasets prepare GrabCut" in text and "sam-bench datasets prepare DAVIS" in text
    man = json.loads((tmp_path / "run" / "reproduce.json").read_text())
    assert [e["status"] for e in man["runs"]] and all(e["status"] == "not run" for e in man["runs"])


def test_bad_arguments(tmp_path, capsys):
    assert cli(["reproduce", "--tasks", "nonsense", "--out", str(tmp_path / "r")]) == 2
    assert "not a paper preset or task" in capsys.readouterr().err
    assert cli(["reproduce", "--set", "instances.nope=1", "--tasks", "instances", "--out", str(tmp_path / "r")]) == 2
    assert "not an option of task 'instances'" in capsys.readouterr().err
    assert cli(["reproduce", "--untrained", "--out", str(tmp_path / "r")]) == 2
