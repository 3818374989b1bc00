"""Intervals in results.json and the paired ``sam-bench compare``: a run against itself is within
noise with difference 0, a real drop regresses, a drop beyond the tolerance that is within noise
passes (and fails with --no-stats), runs over different objects are refused, and results without
the interval keys still compare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sam_bench.cli import main
from sam_bench.metrics.bootstrap import Settings
from sam_bench.reports.compare import compare
from sam_bench.runner import evaluate
from sam_bench.tasks.single_point import SinglePointTask
from test_single_point import FakeModel, H, W, dataset, item, square


class Spill(FakeModel):
    """The truth plus ``spill[image]`` pixels on every answer for that image (other images: exact)."""

    def __init__(self, truth, spill: dict):
        super().__init__(truth, "truth")
        self.spill = spill

    def set_image(self, image, image_id=None):
        self.extra = self.spill.get(image_id)
        super().set_image(image, image_id)


def images(n: int, seed: int = 0, prefix: str = "i") -> list[tuple[str, list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y, x = int(rng.integers(0, H - 16)), int(rng.integers(0, W - 16))
        h, w = int(rng.integers(6, 16)), int(rng.integers(6, 16))
        out.append((f"{prefix}{i:02d}", [square(y, y + h, x, x + w)]))
    return out


def run(path, imgs, spill=None, ds_name="toy", **kw):
    truth = {n: ms for n, ms in imgs}
    ds = dataset(ds_name, [item(n, ms) for n, ms in imgs])
    task = SinglePointTask(clicks=[1, 2], max_clicks=3)
    return evaluate(task, Spill(truth, spill or {}), [ds], path, progress=False, **kw)


def band(rows: slice) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[rows] = True
    return m


def test_results_carry_intervals_beside_each_resampled_metric(tmp_path):
    imgs = images(12)
    spill = {n: band(slice(0, 3 + k % 5)) for k, (n, _) in enumerate(imgs)}
    res = run(tmp_path / "a", imgs, spill)
    m = res["datasets"]["toy"]["metrics"]
    for key in ("miou_1", "miou_2", "miou_oracle_1", "noc85", "noc90"):
        lo, hi = m[f"{key}_ci"]
        assert lo <= m[key] <= hi and (lo < hi or key.startswith("noc")), key
        assert res["metrics"][f"{key}_ci"] == pytest.approx(m[f"{key}_ci"])  # one dataset: the mean is itself
    assert "num_objects_ci" not in m  # a count that must not change has no interval; failures have one
    assert m["noc85_failures_ci"][0] <= m["noc85_failures"] <= m["noc85_failures_ci"][1]
    assert res["bootstrap"] == {"replicates": 1000, "ci": 0.95, "seed": 0, "method": "percentile",
                                "units": {"toy": "object"}}
    assert "miou_1_ci" not in res["undefined"]
    again = run(tmp_path / "b", imgs, spill)
    assert again["datasets"]["toy"]["metrics"]["miou_1_ci"] == m["miou_1_ci"]  # seeded
    off = run(tmp_path / "c", imgs, spill, intervals=Settings(replicates=0))
    assert not [k for k in off["datasets"]["toy"]["metrics"] if k.endswith("_ci")]


def test_a_run_against_itself_is_within_noise_with_difference_zero(tmp_path):
    imgs = images(10)
    run(tmp_path / "a", imgs, {n: band(slice(0, 4)) for n, _ in imgs})
    comp = compare(tmp_path / "a", tmp_path / "a")
    rows = [r for r in comp.rows if r["significance"]]
    assert {r["metric"] for r in rows} >= {"miou_1", "miou_2", "noc85", "noc90", "miou_oracle_1"}
    assert {r["dataset"] for r in rows} == {"toy", "(all)"}
    assert all(r["delta"] == 0 and r["significance"] == "within noise" and r["p"] == 1.0
               and r["ci_low"] == r["ci_high"] == 0 for r in rows)
    assert comp.exit_code == 0


def test_a_real_drop_is_a_significant_regression(tmp_path):
    imgs = images(30)
    run(tmp_path / "good", imgs)
    run(tmp_path / "bad", imgs, {n: band(slice(0, 6)) for n, _ in imgs})
    comp = compare(tmp_path / "good", tmp_path / "bad")
    row = next(r for r in comp.rows if r["dataset"] == "toy" and r["metric"] == "miou_1")
    assert row["delta"] < -0.5 and row["ci_high"] < 0 and row["p"] < 0.01
    assert row["significance"] == "regressed" and row["status"] == "REGRESSION"
    assert comp.exit_code == 1
    back = next(r for r in compare(tmp_path / "bad", tmp_path / "good").rows
                if r["dataset"] == "(all)" and r["metric"] == "miou_1")
    assert back["significance"] == "improved" and back["ci_low"] > 0


def test_a_drop_beyond_tolerance_within_noise_passes_unless_no_stats(tmp_path, capsys):
    imgs = images(5)
    run(tmp_path / "base", imgs)
    run(tmp_path / "cand", imgs, {imgs[0][0]: band(slice(0, 4))})  # one object of five gets worse
    comp = compare(tmp_path / "base", tmp_path / "cand")
    row = next(r for r in comp.rows if r["dataset"] == "toy" and r["metric"] == "miou_1")
    assert row["delta"] < -0.5 and row["p"] >= 0.05 and row["ci_low"] < row["delta"] < row["ci_high"]
    assert row["status"] == "ok" and row["significance"] == "within noise" and "within noise" in row["note"]
    assert comp.exit_code == 0
    assert compare(tmp_path / "base", tmp_path / "cand", stats=None).exit_code == 1
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--no-stats"]) == 1
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--alpha", "0.9"]) == 1
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "compare_forest.png").stat().st_size > 1000
    header = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()[0]
    assert "ci_low" in header and "significance" in header


def test_runs_over_different_objects_are_refused(tmp_path):
    run(tmp_path / "a", images(6, seed=1, prefix="x"))
    run(tmp_path / "b", images(6, seed=1, prefix="y"))  # same counts, other items
    comp = compare(tmp_path / "a", tmp_path / "b")
    assert comp.exit_code == 2
    assert any("different objects" in p for p in comp.problems)


def test_results_without_interval_keys_still_compare(tmp_path):
    imgs = images(6)
    run(tmp_path / "new", imgs)
    old = json.loads((tmp_path / "new" / "results.json").read_text())
    for block in [old] + list(old["datasets"].values()):
        block["metrics"] = {k: v for k, v in block["metrics"].items() if not k.endswith("_ci")}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(old))
    comp = compare(tmp_path / "old", tmp_path / "new")
    assert comp.exit_code == 0
    assert not [r for r in comp.rows if r["metric"].endswith("_ci")]
    assert all(math.isnan(r["p"]) for r in comp.rows)  # no items file on the baseline side: tolerances only


def test_tables_show_intervals_and_a_significance_column_across_runs(tmp_path):
    from sam_bench.reports.render import run_entry, write_tables

    imgs = images(30)
    good = run(tmp_path / "rep" / "good", imgs)
    bad = run(tmp_path / "rep" / "bad", imgs, {n: band(slice(0, 6)) for n, _ in imgs})
    own = (tmp_path / "rep" / "bad" / "fig9_single_point.md").read_text()
    lo, hi = bad["datasets"]["toy"]["metrics"]["miou_1_ci"]
    assert f"{bad['datasets']['toy']['metrics']['miou_1']:.1f} ± {(hi - lo) / 2:.1f}" in own
    assert "bootstrap confidence interval" in own
    entries = [run_entry(good, tmp_path / "rep" / "good", "good"), run_entry(bad, tmp_path / "rep" / "bad", "bad")]
    write_tables(entries, tmp_path / "rep")
    md = (tmp_path / "rep" / "fig9_single_point.md").read_text()
    header, _, *rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert header.rstrip(" |").endswith("significance")
    bad_row = next(r for r in rows if "vs " in r)
    delta = bad["datasets"]["toy"]["metrics"]["miou_1"] - good["datasets"]["toy"]["metrics"]["miou_1"]
    assert f"1 pt {delta:+.3g}*" in bad_row  # a significant drop, starred
    assert "paired bootstrap" in md
