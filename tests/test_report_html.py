"""report.html: predictions kept small and bounded, the gallery's choice and drawing, and the page of a
``reproduce --quick`` run opened in headless Chromium (skipped where no chromium is installed; CI
installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sam_bench.reports import draw, gallery
from sam_bench.reports.views import Unit
from sam_bench.results import MAX_PREDICTION_BYTES, PREDICTION, keep_prediction, load_json, prediction_sizes
from sam_bench.runner import run_task


# -- predictions in the records ----------------------------------------------------------------------
def test_keep_prediction_keeps_drops_and_bounds():
    small = {"masks": [{"size": [2, 2], "counts": "04"}]}
    rec = {"objects": [], PREDICTION: small}
    keep_prediction(rec, True, "d/i")
    assert rec[PREDICTION] == small and "prediction_dropped" not in rec
    rec = {"objects": [], PREDICTION: small}
    keep_prediction(rec, False, "d/i")
    assert rec == {"objects": []}
    rec = {PREDICTION: {"edge_png": "x" * 100}}
    keep_prediction(rec, True, "d/i", limit=50)
    assert PREDICTION not in rec and rec["prediction_dropped"] == len('{"edge_png": "' + "x" * 100 + '"}')
    lines = [{"status": "ok", "record": {PREDICTION: small}}, {"status": "ok", "record": {"prediction_dropped": 9}},
             {"status": "skip", "reason": "x"}]
    sizes = prediction_sizes(lines)
    n = len(json.dumps(small))
    assert sizes == {"items": 1, "mean_bytes": n, "max_bytes": n, "dropped": 1, "limit_bytes": MAX_PREDICTION_BYTES}


def _run(tmp_path, task, model, save, **options):
    out = tmp_path / f"{task}-{'save' if save else 'nosave'}"
    res = run_task(task, model, datasets=["synthetic"], out=out, limit=1, progress=False, save_predictions=save,
                   **options)
    lines = [json.loads(ln) for ln in (out / "items.jsonl").read_text().splitlines()]
    return out, res, lines


@pytest.mark.parametrize("task, model, options, keys", [
    ("single-point", "grabcut", {"clicks": [1, 2], "max_clicks": 2}, {"masks"}),
    ("edges", "sobel", {}, {"levels_png"}),
    ("proposals", "slic-proposals", {}, {"masks"}),
    ("instances", "grabcut", {}, {"boxes"}),
])
def test_saving_predictions_changes_no_metric_and_no_run_identity(tmp_path, task, model, options, keys):
    out, res, lines = _run(tmp_path, task, model, True, **options)
    out2, res2, lines2 = _run(tmp_path, task, model, False, **options)
    same = [json.dumps(r["datasets"]["synthetic"]["metrics"], sort_keys=True) for r in (res, res2)]
    assert same[0] == same[1]  # NaN included
    assert load_json(out / "run.json")["config_hash"] == load_json(out2 / "run.json")["config_hash"]
    assert all(set(ln["record"][PREDICTION]) == keys for ln in lines)
    assert not any(PREDICTION in ln["record"] for ln in lines2)
    assert res["predictions"]["items"] == 1 and 0 < res["predictions"]["max_bytes"] <= MAX_PREDICTION_BYTES
    assert res2["predictions"]["items"] == 0
    if task == "single-point":  # mask after click 1 and after the last click, with the clicks
        from sam_bench.data.masks import decode

        obj, pm = lines[0]["record"]["objects"][0], lines[0]["record"][PREDICTION]["masks"][0]
        assert pm["id"] == obj["id"] and decode(pm["first"]).shape == (240, 320)
    if task == "proposals":
        assert len(lines[0]["record"][PREDICTION]["masks"]) == min(20, lines[0]["record"]["num_proposals"])
    if task == "edges":  # the drawn map at the ODS threshold: binary, one pixel wide, beside the run
        import cv2

        png = cv2.imread(str(out / "edges" / "ods" / f"{lines[0]['item']}.png"), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(png)) <= {0, 255} and 0 < (png > 0).mean() < 0.2
    page = (out / "report.html").read_text()
    units = len(lines[0]["record"]["objects"]) if task == "single-point" else 1
    assert page.count('<figure class="item">') == min(units, 12) + min(max(units - 12, 0), 12)
    assert "saved no predictions" in (out2 / "report.html").read_text()


def test_the_saved_edge_levels_give_the_benchmarks_map_at_any_of_its_thresholds():
    from skimage.morphology import thin

    from sam_bench.metrics.bsds import thresholds
    from sam_bench.tasks.edges import encode_levels, ods_map

    edge = np.random.default_rng(0).random((40, 50)).astype(np.float32) ** 3
    png = encode_levels(edge, 99)
    for t in thresholds(99)[[0, 20, 57, 98]]:
        assert np.array_equal(ods_map(png, t, 99), thin(edge >= t))
        assert np.array_equal(ods_map(png, t, 99, thinning=False), edge >= t)


# -- choosing and drawing --------------------------------------------------------------------------
def test_gallery_takes_the_worst_then_a_seeded_sample_of_the_rest():
    units = [Unit(f"im{i:02d}", None, float((7 * i) % 30), "") for i in range(30)]
    picked = gallery.choose(units)
    worst = [u.score for g, u in picked if g == "worst"]
    rand = [u for g, u in picked if g == "random"]
    assert worst == [float(s) for s in range(12)] and len(rand) == 12
    assert all(u.score >= 12 for u in rand) and len({u.item for u in rand}) == 12
    assert [u.item for _, u in gallery.choose(units)] == [u.item for _, u in picked]  # seeded
    assert [u.item for _, u in gallery.choose(units, seed=1)] != [u.item for _, u in picked]
    few = gallery.choose(units[:5])
    assert [g for g, _ in few] == ["worst"] * 5


def test_overlay_fills_the_prediction_outlines_the_truth_and_marks_clicks_and_boxes():
    image = np.full((100, 100, 3), 100, np.uint8)
    pred = np.zeros((100, 100), bool)
    pred[20:60, 20:60] = True
    gt = np.zeros((100, 100), bool)
    gt[50:90, 50:90] = True
    img = np.asarray(draw.overlay(image, gt=[gt], pred=[pred], clicks=[[30, 30, 1], [40, 45, 0]],
                                  boxes=[[5, 5, 95, 95]], max_side=100))
    blend = (0.5 * 100 + 0.5 * np.asarray(draw.PRED_FILL)).round()
    assert np.abs(img[25, 50].astype(int) - blend).max() <= 1  # filled
    assert tuple(img[70, 50]) == draw.GT_OUTLINE and tuple(img[70, 70]) == (100, 100, 100)  # outline only
    assert tuple(img[30, 30]) == draw.POSITIVE and tuple(img[45, 40]) == draw.NEGATIVE
    assert tuple(img[5, 50]) == draw.BOX and tuple(img[0, 0]) == (100, 100, 100)
    assert draw.palette(3)[0] != draw.palette(3)[1]


def test_a_missing_data_root_is_a_note_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_DATA", str(tmp_path / "nothing"))
    out = tmp_path / "run"
    out.mkdir()
    rec = {"objects": [{"id": 1, "area": 4, "ious": [0.5], "oracle_iou_1": 0.5, "clicks": [[1, 1, 1]]}],
           PREDICTION: {"masks": [{"id": 1, "first": {"size": [4, 4], "counts": "0"}, "last": {"size": [4, 4],
                                                                                            "counts": "0"}}]}}
    (out / "items.jsonl").write_text(json.dumps({"dataset": "GrabCut", "item": "a", "status": "ok",
                                                 "record": rec}) + "\n")
    (out / "run.json").write_text(json.dumps({"datasets": ["GrabCut"], "data_options": {}, "inputs": {
        "datasets": {"GrabCut": {"root": str(tmp_path / "gone" / "GrabCut")}}}}))
    sections = gallery.build(out, {"task": "single-point", "datasets": {"GrabCut": {"metrics": {}}}})
    assert sections[0]["items"] == [] and "images not available" in sections[0]["note"]
    assert "GrabCut" in sections[0]["note"] and sections[0]["units"] == 1


# -- the page in a browser -----------------------------------------------------------------------------
CHECK_JS = """<script>function sortTwice() {  // click the leaderboard's second header twice: its values each time
  var t = document.getElementById('leaderboard'), got = [];
  if (!t) return got;
  for (var k = 0; k < 2; k++) {
    t.tHead.rows[0].cells[1].click();
    got.push(Array.from(t.tBodies[0].rows).map(function (r) { return r.cells[1].dataset.v; }));
  }
  return got;
}
window.addEventListener('load', function () {
  var imgs = Array.from(document.images), out = document.createElement('pre');
  out.id = 'sam-bench-check';
  out.textContent = JSON.stringify({images: imgs.length, broken: imgs.filter(function (i) {
      return !i.complete || i.naturalWidth === 0; }).map(function (i) { return i.getAttribute('src'); }),
    tables: document.querySelectorAll('table').length, figures: document.querySelectorAll('figure.item').length,
    leaderboard_rows: document.querySelectorAll('#leaderboard tbody tr').length, sorted: sortTwice()});
  document.body.appendChild(out);
});</script>"""


def test_the_leaderboard_has_a_row_per_model_and_a_column_per_preset():
    from sam_bench.reports.html import leaderboard_html

    def entry(d, preset, task, model, metrics):
        return {"dir": d, "preset": preset, "results": {"task": task, "model": {"name": model}, "metrics": metrics}}

    board = leaderboard_html([entry("a", "edges", "edges", "sobel", {"ods": 0.5, "ods_ci": [0.4, 0.6]}),
                              entry("b", "edges", "edges", "canny", {"ods": 0.25}),
                              entry("c", "instances_coco", "instances", "grabcut", {"ap": 28.8})])
    rows = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", board)
    assert [m for m, _ in rows] == ["canny", "grabcut", "sobel"]
    assert re.findall(r"<th>(\w+)<br><small>(\w+)", board) == [("edges", "ods"), ("instances_coco", "ap")]
    assert 'href="a/report.html">0.5</a> <small>[0.4, 0.6]</small>' in rows[2][1] and "<td data-v=\"\">-</td>" in rows[2][1]
    assert leaderboard_html([entry("a", "edges", "edges", "sobel", {"ods": 0.5})]) == ""  # one run: no board


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return found


def browse(page: Path, screenshot: Path) -> dict:
    """Open ``page`` in headless Chromium: a screenshot, and what CHECK_JS found once it loaded."""
    exe = chromium()
    probe = page.with_name(".check." + page.name)  # beside the page, so its relative images resolve
    probe.write_text(page.read_text().replace("</body>", CHECK_JS + "</body>"))
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
             "--virtual-time-budget=10000"]
    subprocess.run([*flags, "--window-size=1400,3000", f"--screenshot={screenshot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    probe.unlink()
    found = re.search(r'<pre id="sam-bench-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not run in the page"
    import html

    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from sam_bench.cli import main as cli

    chromium()
    root = tmp_path_factory.mktemp("html")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAM_BENCH_CACHE", str(root / "cache"))
        assert cli(["reproduce", "--quick", "--no-progress", "--out", str(root / "run")]) == 0
    return root / "run"


def _expected_figures(run_dir: Path, manifest: dict) -> int:
    """What the gallery should hold: per run and dataset min(12, n) + min(12, n - 12) of its n units."""
    total, seen = 0, set()
    for e in manifest["runs"]:
        if e["status"] != "done" or e["dir"] in seen:
            continue
        seen.add(e["dir"])
        for s in load_json(run_dir / e["dir"] / "report_files" / "gallery.json")["sections"]:
            n = s["units"]
            assert n > 0, f"{e['dir']}: no unit to draw in {s['dataset']}"
            total += min(gallery.WORST, n) + min(gallery.RANDOM, max(0, n - gallery.WORST))
    return total


def test_the_report_of_a_quick_reproduce_renders_in_chromium(quick_run, tmp_path):
    manifest = load_json(quick_run / "reproduce.json")
    found = browse(quick_run / "report.html", tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert found["broken"] == [] and found["images"] > found["figures"] > 0
    done = [e for e in manifest["runs"] if e["status"] == "done"]
    assert found["tables"] >= len({e["task"] for e in done}) + 1  # each task's tables and the leaderboard
    assert found["figures"] == _expected_figures(quick_run, manifest)
    models = {e["model"] for e in done}
    assert found["leaderboard_rows"] == len(models)
    up, down = ([float(v) for v in vs if v] for vs in found["sorted"])  # the sorting script, clicked twice
    assert len(up) >= 2 and up == sorted(up) and down == sorted(up, reverse=True)
    for href in re.findall(r'href="([^"]+/report\.html)"', (quick_run / "report.html").read_text()):
        assert (quick_run / href).is_file(), href
    one = next(e for e in done if e["task"] == "edges")
    page = browse(quick_run / one["dir"] / "report.html", tmp_path / "edges.png")
    assert page["broken"] == [] and page["figures"] == 2 and page["tables"] >= 1
