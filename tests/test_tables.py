"""Tables a paper author pastes: LaTeX (booktabs, label, alignment, bold best, blocks, escaping),
long-form CSV with sources, differences only against the same model, and item counts in captions."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from sam_bench.presets import load_presets
from sam_bench.reports.latex import RowInfo, escape, render
from sam_bench.reports.methods import identify, matching_row, same_model
from sam_bench.reports.paper_tables import build_table
from sam_bench.reports.render import declared_tables, task_class
from sam_bench.reports.tables import LONG_COLUMNS, coverage, dataset_totals, source_note, write_table

TABLE = declared_tables(("edges", "proposals", "instances", "single-point", "text-to-mask"))  # stem -> (task, spec)


def build(stem: str, entries: list[dict]):
    task, spec = TABLE[stem]
    return build_table(task, spec, entries, task_class(task))
AP = {"ap": 40.0, "ap_small": 20.0, "ap_medium": 45.0, "ap_large": 60.0}


def entry(model: str, task: str = "instances", preset: str = "instances_coco", metrics: dict | None = None, *,
          dataset: str = "COCO", items: int = 10, limit: int | None = 10, untrained: bool = False,
          totals: dict | None = None, variant: str | None = None) -> dict:
    info = {"name": model, **({"variant": variant} if variant else {})}
    res = {"task": task, "model": info, "untrained": untrained, "config": {}, "limit": limit,
           "datasets": {dataset: {"metrics": dict(metrics or AP), "num_items": items, "num_skipped": 0}},
           "metrics": dict(metrics or AP)}
    return {"dir": f"{preset}-{model}-{variant}-{untrained}", "preset": preset, "presets": [preset], "task": task,
            "model": model, "standin_for": {}, "status": "done", "results": res, "totals": totals or {}}


def check_latex(tex: str) -> None:
    """What would break a plain pdflatex run: unbalanced braces, math or environments, raw specials,
    non-ASCII, or a row whose cell count differs from the column spec."""
    assert tex.isascii(), "non-ASCII needs fonts or inputenc the reader may not have"
    body = re.sub(r"\\[\\{}&%$#_]", "", tex)  # escaped characters
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "a } closes nothing"
    assert depth == 0, "unbalanced braces"
    for line in body.splitlines():
        assert "%" not in line and "#" not in line, f"raw special in {line!r}"
        assert line.count("$") % 2 == 0, f"unbalanced math in {line!r}"
        assert "_" not in re.sub(r"\\label\{[^}]*\}", "", line), f"raw _ in {line!r}"
        assert not re.search(r"[<>|]", re.sub(r"\$[^$]*\$", "", line)), f"OT1 prints <>| wrongly: {line!r}"
    envs = re.findall(r"\\(begin|end)\{(\w+)\}", tex)
    stack = []
    for kind, name in envs:
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} does not close the open environment"
    assert not stack
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    rows = tex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    for row in (r for r in rows.splitlines() if r.strip() and r.strip() != "\\midrule"):
        assert row.endswith("\\\\") and len(re.split(r"(?<!\\)&", row)) == len(spec), row


# -- LaTeX -------------------------------------------------------------------------------------
def test_latex_booktabs_label_alignment_bold_and_blocks(tmp_path):
    df = pd.DataFrame([["sam_vit_h", "COCO, 10 img", 40.0, 2.5, 7], ["SAM (paper)", "COCO", 46.5, 3.0, None],
                       ["Δ sam_vit_h vs paper SAM", "COCO, 10 img", -6.5, -0.5, None],
                       ["ViTDet-H (paper)", "COCO", 51.0, 2.5, None]],
                      columns=["method", "data", "AP", "NoC@85", "objects"])
    info = [RowInfo("ours"), RowInfo("paper"), RowInfo("delta"), RowInfo("paper")]
    md, _, tex_path = write_table(df, tmp_path, "table5_instances", caption="Table 5. Mask AP (%)", info=info,
                                  better={"AP": True, "NoC@85": False})
    tex = tex_path.read_text()
    check_latex(tex)
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\label{tab:table5-instances}" in tex
    assert "\\begin{tabular}{llrrr}" in tex  # text left, numbers right
    lines = [ln for ln in tex.splitlines() if ln.endswith("\\\\")][1:]
    assert [ln.split(" & ")[0] for ln in lines] == ["SAM (paper)", "ViTDet-H (paper)", "sam\\_vit\\_h",
                                                    "$\\Delta$ sam\\_vit\\_h vs paper SAM"]  # paper, ours, delta
    block = tex.split("\\midrule")
    assert len(block) == 4 and "ViTDet-H" in block[1] and "sam\\_vit\\_h &" in block[2] and "Delta" in block[3]
    assert "\\textbf{51.0}" in tex and tex.count("\\textbf") == 3  # AP best; NoC tie 2.5 twice; none in objects
    assert "\\textbf{2.5}" in lines[1] and "\\textbf{2.5}" in lines[2] and "textbf" not in lines[3]
    assert "$-$6.5" in lines[3] and "$-$0.5" in lines[3]  # a minus sign, never bold
    assert "| SAM (paper)" in md.read_text() and md.read_text().index("sam_vit_h") < md.read_text().index("Δ")


def test_latex_escapes_headers_for_plain_fonts():
    tex = render([">=20@85", "AR_1000", "50% & up", "Δ mIoU", "a|b", "x<y"], [[1, 2, 3, 4, 5, 6]],
                 caption="Fig. 9 — NoC ≥ 20 with --limit 10 (100%) #1 ~x^2 {é}", stem="fig9_single_point")
    check_latex(tex)
    assert "$\\geq$20@85 & AR\\_1000 & 50\\% \\& up & $\\Delta$ mIoU & a$|$b & x$<$y" in tex
    assert "-{}-limit" in tex and "100\\%" in tex and "\\#1" in tex and "\\'e" in tex and "---" in tex
    assert escape("sam_vit_h") == "sam\\_vit\\_h" and escape("−0.5") == "$-$0.5"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles_with_pdflatex(tmp_path):
    df = pd.DataFrame([["HED (paper)", "BSDS500", 0.788], ["sobel", "BSDS500, 2 img", 0.566],
                       ["Δ sobel vs paper Sobel filter", "BSDS500, 2 img", 0.027]],
                      columns=["method", "data", ">=20@85"])
    write_table(df, tmp_path, "t", caption="50% of it_", info=[RowInfo("paper"), RowInfo(), RowInfo("delta")],
                better={">=20@85": True})
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}"
                                      "\\input{t.tex}\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "Missing character" not in (tmp_path / "doc.log").read_text()


def test_row_descriptions_must_fit():
    with pytest.raises(ValueError, match="row kind 'reported'"):
        RowInfo("reported")
    with pytest.raises(ValueError, match="1 row descriptions for 2 rows"):
        render(["a"], [[1], [2]], caption=None, stem="x", info=[RowInfo()])


# -- differences only against the same model ----------------------------------------------------
@pytest.mark.parametrize("model,variant,method,same", [
    ("sam_vit_h", None, "SAM ViT-H", True), ("sam_vit_h", None, "SAM", True), ("sam_vit_b", None, "SAM", False),
    ("sam_vit_b", None, "SAM ViT-B", True), ("sam_vit_l", None, "SAM ViT-H", False),
    ("grabcut", None, "SAM ViT-H", False), ("grabcut", None, "RITM HRNet32 IT-M", False),
    ("hq-sam", "vit_h", "HQ-SAM ViT-H", True), ("hq-sam", "vit_h", "SAM ViT-H", False),
    ("hf-sam", "vit_h", "SAM", True), ("hf-sam", None, "SAM", False),  # size unknown: no claim
    ("sam2", "b+", "SAM 2 B+", True), ("sam2", "l", "SAM 2.1-L", True), ("sam2", "l", "SAM", False),
    ("sobel", None, "Sobel filter", True), ("canny", None, "Felzenszwalb-Huttenlocher", False),
    ("felzenszwalb", None, "Felzenszwalb-Huttenlocher", True), ("slic-proposals", None, "ViTDet-H", False),
    ("edges-from:/x/hed", None, "HED", False)])
def test_matcher_same_family_and_size(model, variant, method, same):
    assert same_model(identify(model, variant), identify(method)) is same


def test_matcher_prefers_the_plain_row():
    rows = [{"method": "ViTDet-H"}, {"method": "SAM single output"}, {"method": "SAM"}]
    assert matching_row("sam_vit_h", rows)["method"] == "SAM"
    assert matching_row("sam_vit_h", rows[:2])["method"] == "SAM single output"
    assert matching_row("grabcut", rows) is None and matching_row("sam_vit_b", rows) is None


def test_delta_only_for_the_model_the_paper_reports():
    entries = [entry("sam_vit_h"), entry("grabcut"), entry("sam_vit_b"), entry("sam_vit_h", untrained=True)]
    built = build("table5_instances", entries)
    rows = built.df.to_dict("records")
    deltas = [r for r in rows if r["method"].startswith("Δ")]
    assert [r["method"] for r in deltas] == ["Δ sam_vit_h vs paper SAM"]
    assert deltas[0]["AP"] == pytest.approx(40.0 - 46.5) and deltas[0]["APl"] == pytest.approx(60.0 - 61.7)
    assert rows[rows.index(deltas[0]) - 1]["method"] == "sam_vit_h"  # Markdown keeps it under its row
    assert [i.kind for i in built.info].count("delta") == 1
    assert any("No difference row for grabcut, sam_vit_b, sam_vit_h (untrained)" in n for n in built.notes)
    assert built.better == {"AP": True, "APs": True, "APm": True, "APl": True}


def test_delta_per_dataset_against_the_paper_row_of_that_dataset():
    noc = {"noc85": 1.2, "noc90": 1.5}
    built = build("interactive_noc", [entry("ritm hrnet32 it-m", "single-point", "interactive", noc,
                                                        dataset="GrabCut")])
    delta = next(r for r in built.df.to_dict("records") if r["method"].startswith("Δ"))
    assert delta["NoC@85"] == pytest.approx(1.2 - 1.46) and delta["data"] == "GrabCut, 10 img"
    assert built.better == {"NoC@85": False, "NoC@90": False}  # NoC: fewer clicks is better


# -- CSV, sources, counts --------------------------------------------------------------------------
def test_csv_long_form_with_sources(tmp_path):
    built = build("table5_instances", [entry("sam_vit_h"), entry("grabcut", items=7)])
    _, csv_path, tex_path = write_table(built.df, tmp_path, "table5_instances", caption="T5", info=built.info,
                                        better=built.better, notes=built.notes, long=built.long)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert tuple(rows[0]) == LONG_COLUMNS
    paper = [r for r in rows if r["method"] == "SAM"]
    assert {r["source"] for r in paper} == {"SAM paper Table 5, COCO (arXiv 2304.02643)"}
    assert {(r["metric"], float(r["value"])) for r in paper} == {("ap", 46.5), ("ap_small", 30.8),
                                                                  ("ap_medium", 51.0), ("ap_large", 61.7)}
    assert all(r["items"] == "" and r["dataset"] == "COCO" for r in paper)
    ours = [r for r in rows if r["source"] == "ours"]
    assert {(r["method"], r["metric"], float(r["value"]), int(r["items"])) for r in ours if r["metric"] == "ap"} \
        == {("sam_vit_h", "ap", 40.0, 10), ("grabcut", "ap", 40.0, 7)}
    assert not any("Δ" in r["method"] for r in rows) and len(rows) == 8 + 8  # ViTDet-H, SAM; 2 runs x 4
    assert "Paper rows: SAM paper Table 5, COCO (arXiv 2304.02643)." in tex_path.read_text()


def test_every_shipped_paper_row_names_its_source():
    presets = load_presets()
    rows = [(name, r) for name, p in presets.items() for r in p.get("paper", [])]
    assert len(rows) >= 20 and all(isinstance(r.get("source"), str) and r["source"] for _, r in rows)
    assert {r["source"] for n, r in rows if n == "single_point"} == {"SAM 2 paper Table 15 (arXiv 2408.00714)"}


def test_source_note_groups_methods_by_source(tmp_path):
    rows = [{"method": "SAM ViT-H", "source": "A"}, {"method": "RITM", "source": "B"},
            {"method": "SAM ViT-B", "source": "A"}, {"method": "X"}]
    assert source_note(rows) == "Paper rows: SAM ViT-H, SAM ViT-B from A; RITM from B; X from source not stated."
    md, _, tex = write_table(pd.DataFrame({"m": [1.0]}), tmp_path, "t", caption="T", sources=rows[:1])
    assert md.read_text().endswith("Paper rows: A.\n") and "\\caption{T. Paper rows: A.}" in tex.read_text()


def test_paper_row_without_source_says_so(monkeypatch):
    from sam_bench.reports import paper_tables

    fake = {"mine": {"task": "instances", "datasets": ["COCO"], "path": "/x/mine.toml",
                     "paper": [{"method": "SAM", "ap": 1.0}]}}
    monkeypatch.setattr("sam_bench.presets.load_presets", lambda: fake)
    assert paper_tables.paper_rows("mine")[0]["_source"] == "source not stated in mine.toml"


def test_caption_counts_with_limit(tmp_path):
    e = entry("grabcut", "single-point", "interactive", {"miou_1": 50.0}, dataset="GrabCut", totals={"GrabCut": 50})
    assert coverage(e["results"], e["totals"]) == "10 of 50 images of GrabCut (--limit 10)"
    assert coverage(e["results"]) == "10 images of GrabCut (--limit 10: the first 10 of each dataset)"
    assert coverage({**e["results"], "limit": None}, {"GrabCut": 10}) == "all 10 images of GrabCut"
    (tmp_path / "run.json").write_text(json.dumps({"inputs": {"datasets": {"GrabCut": {"items": 50}}}}))
    assert dataset_totals(tmp_path) == {"GrabCut": 50}
    md, _, tex = write_table(pd.DataFrame({"m": [1.0]}), tmp_path, "single_point", caption="S", results=e["results"])
    assert "This run: 10 of 50 images of GrabCut (--limit 10)." in md.read_text()
    assert "\\caption{S. This run: 10 of 50 images of GrabCut (-{}-limit 10).}" in tex.read_text()
    built = build("fig9_single_point", [e])
    assert "Ours: grabcut on 10 of 50 images of GrabCut (--limit 10)." in built.notes


def test_unreadable_run_header_leaves_totals_unknown(tmp_path, caplog):
    (tmp_path / "run.json").write_text("{not json")
    assert dataset_totals(tmp_path) == {} and "dataset sizes unknown" in caplog.text
    (tmp_path / "run.json").write_text(json.dumps({"inputs": {"datasets": {"A": {"items": True}, "B": "x"}}}))
    assert dataset_totals(tmp_path) == {}
