"""Bootstrap intervals: coverage on data with a known mean, determinism under a seed, paired
intervals narrower than unpaired ones, and every task's resampler equal to its own metrics at
weight one (and to physically duplicated items at integer weights)."""

from __future__ import annotations

import numpy as np
import pytest

from sam_bench.metrics import bootstrap as bs
from sam_bench.metrics import bsds


def mean_resampler(values: np.ndarray, ids=None) -> bs.Resampler:
    ids = tuple(range(len(values))) if ids is None else tuple(ids)
    return bs.Resampler(ids, lambda w: {"mean": bs.weighted_mean(values, w)}, unit="object")


def test_percentile_intervals_cover_the_true_mean_about_95_percent():
    rng = np.random.default_rng(123)
    truth, covered, draws = 3.0, 0, 200
    for i in range(draws):
        sample = rng.exponential(truth, 80)  # skewed, so the test is not about symmetric noise
        reps = bs.replicates(mean_resampler(sample), 1000, bs.rng_for(i, "synthetic"))
        lo, hi = bs.interval(reps["mean"], 0.95)
        covered += lo <= truth <= hi
    assert 0.90 <= covered / draws <= 0.99, covered / draws


def test_wider_level_gives_wider_interval():
    sample = np.random.default_rng(0).normal(0, 1, 60)
    reps = bs.replicates(mean_resampler(sample), 2000, bs.rng_for(0, "x"))["mean"]
    lo90, hi90 = bs.interval(reps, 0.90)
    lo99, hi99 = bs.interval(reps, 0.99)
    assert lo99 < lo90 < sample.mean() < hi90 < hi99


def test_bootstrap_is_deterministic_under_a_seed():
    sample = np.random.default_rng(1).normal(0, 1, 40)
    res = mean_resampler(sample)
    a = bs.replicates(res, 500, bs.rng_for(7, "GrabCut"))["mean"]
    b = bs.replicates(res, 500, bs.rng_for(7, "GrabCut"))["mean"]
    c = bs.replicates(res, 500, bs.rng_for(8, "GrabCut"))["mean"]
    d = bs.replicates(res, 500, bs.rng_for(7, "Berkeley"))["mean"]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_weights_are_multinomial_counts():
    w = bs.draw_weights(30, 200, bs.rng_for(0, "w"))
    assert w.shape == (200, 30) and np.all(w.sum(1) == 30) and np.all(w == np.round(w)) and w.min() >= 0


def test_paired_interval_is_narrower_than_unpaired_on_correlated_runs():
    rng = np.random.default_rng(5)
    difficulty = rng.uniform(20, 90, 150)  # per-object difficulty shared by both runs
    base = difficulty + rng.normal(0, 2, 150)
    cand = difficulty + 1.0 + rng.normal(0, 2, 150)
    ra, rb = mean_resampler(base), mean_resampler(cand)
    paired = bs.paired(ra, rb, 1000, bs.rng_for(0, "d"))["mean"]
    unpaired = bs.unpaired(ra, rb, 1000, bs.rng_for(0, "d"))["mean"]
    assert paired.delta == pytest.approx(unpaired.delta) == pytest.approx(cand.mean() - base.mean())
    width = lambda d: d.ci[1] - d.ci[0]
    assert width(paired) < 0.5 * width(unpaired)
    assert paired.ci[0] > 0 and paired.p < 0.01  # the 1-point gain is real once paired
    assert unpaired.p > paired.p


def test_a_run_against_itself_differs_by_exactly_zero_with_p_one():
    values = np.random.default_rng(2).normal(50, 10, 70)
    diff = bs.paired(mean_resampler(values), mean_resampler(values), 500, bs.rng_for(0, "self"))["mean"]
    assert diff.delta == 0.0 and diff.ci == [0.0, 0.0] and diff.p == 1.0 and not diff.significant(0.05)


def test_paired_aligns_units_by_id_and_refuses_different_units():
    values = np.arange(10, dtype=float)
    ids = [f"o{i}" for i in range(10)]
    shuffled = np.random.default_rng(0).permutation(10)
    a = mean_resampler(values, ids)
    b = mean_resampler(values[shuffled], [ids[i] for i in shuffled])  # same objects, another order
    assert bs.paired(a, b, 300, bs.rng_for(0, "x"))["mean"].ci == [0.0, 0.0]
    other = mean_resampler(values, ids[:-1] + ["o99"])
    with pytest.raises(ValueError, match="different objects"):
        bs.paired(a, other, 10, bs.rng_for(0, "x"))


def test_p_value_small_for_a_clear_shift_and_uniformish_under_the_null():
    rng = np.random.default_rng(9)
    ps = []
    for i in range(60):
        x = rng.normal(0, 1, 50)
        y = x + rng.normal(0, 1, 50)  # no true difference
        ps.append(bs.paired(mean_resampler(x), mean_resampler(y), 400, bs.rng_for(i, "n"))["mean"].p)
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.15
    x = rng.normal(0, 1, 50)
    assert bs.paired(mean_resampler(x), mean_resampler(x + 0.8 + rng.normal(0, .3, 50)), 400,
                     bs.rng_for(0, "s"))["mean"].p < 0.01


def test_combine_takes_each_replicate_across_datasets():
    reps = {"A": {"m": np.array([1.0, 2.0, 3.0])}, "B": {"m": np.array([3.0, np.nan, 5.0])}}
    agg = lambda per: {"m": float(np.nanmean([d["m"] for d in per.values()]))}
    assert bs.combine(reps, agg)["m"].tolist() == [2.0, 2.0, 4.0]


def test_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="--ci"):
        bs.Settings(level=1.5)
    with pytest.raises(ValueError, match="--bootstrap"):
        bs.Settings(replicates=-1)


def test_bsds_weighted_summary_equals_summarize_and_duplicated_images():
    rng = np.random.default_rng(4)
    n, t = 12, 15
    sum_r = rng.integers(50, 200, (n, 1))
    cnt_r = np.sort(rng.integers(0, 50, (n, t)), axis=1)[:, ::-1]
    sum_p = np.sort(rng.integers(10, 300, (n, t)), axis=1)[:, ::-1]
    cnt_p = (sum_p * np.linspace(0.95, 0.2, t)).astype(int)  # precision falls with the threshold, through 0.5
    counts = np.stack([cnt_r, np.repeat(sum_r, t, 1), cnt_p, sum_p], axis=2)
    ref = bsds.summarize(list(counts))
    got = bsds.summarize_weighted(counts, np.ones((1, n)))
    assert np.isfinite(ref["r50"])
    for k in ("ods", "ois", "ap", "r50"):
        assert got[k][0] == pytest.approx(ref[k], abs=1e-12), k
    w = bs.draw_weights(n, 3, bs.rng_for(0, "b"))
    got = bsds.summarize_weighted(counts, w)
    for i in range(3):
        dup = bsds.summarize(list(np.repeat(counts, w[i].astype(int), axis=0)))
        for k in ("ods", "ois", "ap", "r50"):
            assert got[k][i] == pytest.approx(dup[k], abs=1e-12), k


def test_task_resamplers_give_their_own_metrics_at_weight_one():
    from sam_bench.data.base import Dataset
    from sam_bench.tasks.edges import EdgesTask
    from sam_bench.tasks.single_point import SinglePointTask

    ds = Dataset("d", [], format="test")
    task = SinglePointTask(clicks=[1, 3], max_clicks=5)
    recs = [{"item": "a", "objects": [{"id": 1, "ious": [0.5, 0.86, 0.95], "oracle_iou_1": 0.7},
                                      {"id": 2, "ious": [0.2, 0.4, 0.6, 0.8, 0.84], "oracle_iou_1": 0.3}]},
            {"item": "b", "objects": [{"id": 1, "ious": [0.9, 0.9, 0.9], "oracle_iou_1": 0.9}]}]
    res = task.resampler(ds, recs)
    assert res.units == (("a", 1), ("a", 2), ("b", 1)) and res.unit == "object"
    want = task.evaluate(ds, recs)
    point = res.point()
    assert set(point) == {"miou_1", "miou_3", "miou_oracle_1", "noc85", "noc90", "noc85_failures", "noc90_failures"}
    assert point == pytest.approx({k: want[k] for k in point})
    twice_a2 = res.compute(np.array([[1.0, 2.0, 0.0]]))  # object a/2 drawn twice, b/1 not at all
    assert twice_a2["miou_1"][0] == pytest.approx(100 * (0.5 + 0.2 + 0.2) / 3)
    assert twice_a2["noc85_failures"][0] == 2

    edges = EdgesTask(thresholds=5)
    rng = np.random.default_rng(0)
    counts = [np.stack([np.sort(rng.integers(0, 40, 5))[::-1], np.full(5, 60), np.sort(rng.integers(0, 30, 5))[::-1],
                        np.sort(rng.integers(30, 90, 5))[::-1]], 1) for _ in range(4)]
    erecs = [{"item": f"e{i}", "counts": c.tolist(), "annotators": 5} for i, c in enumerate(counts)]
    eres = edges.resampler(ds, erecs)
    ewant = edges.evaluate(ds, erecs)
    assert eres.units == ("e0", "e1", "e2", "e3")
    assert eres.point() == pytest.approx({k: ewant[k] for k in ("ods", "ois", "ap", "r50")}, nan_ok=True)


def test_text_to_mask_resampler_gives_its_metrics_at_weight_one():
    from sam_bench.data.base import Dataset
    from sam_bench.tasks.text_to_mask import TextToMaskTask

    task = TextToMaskTask(grounder="oracle")
    ds = Dataset("r", [], format="test")
    exprs = [{"phrase": f"p{i}", "prompt": "box" if i % 3 else "none", "intersection": i * 7 % 50,
              "union": 50 + i} for i in range(9)]
    recs = [{"item": "a", "expressions": exprs[:4]}, {"item": "b", "expressions": exprs[4:]}]
    want = task.evaluate(ds, recs)
    res = task.resampler(ds, recs)
    point = res.point()
    assert res.units == tuple(f"p{i}" for i in range(9))
    assert set(point) == {"miou", "ciou", "pr50", "pr70", "pr90", "found"}
    assert point == pytest.approx({k: want[k] for k in point})
