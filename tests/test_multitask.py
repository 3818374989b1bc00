"""Several tasks in one pass (``sam_bench.multitask``): the same results as each task alone, one
encoder call per image, resume per task, and the ``run A,B`` command line."""

from __future__ import annotations

import json
import math

import pytest

from sam_bench import registry
from sam_bench.cli import main
from sam_bench.multitask import run_tasks
from sam_bench.results import load_json, read_jsonl
from sam_bench.runner import run_task
from sam_bench.tasks.base import Task
from sam_fixtures import tiny_model

LVIS = "LVIS_v0.5_val100"
OPTIONS = {"proposals": {"grid": 2}, "instances": {"max_dets": 3}}
LIMIT = 2


def _model():
    model = tiny_model()
    model.prompt_batch = 8  # fixed, so decoding does not depend on what the batch tuner measured
    return model


def _same(a: dict, b: dict) -> bool:
    """Metrics equal, NaN equal to NaN."""
    same = lambda x, y: x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def _specs(out, tasks=("proposals", "instances")) -> list[dict]:
    return [{"task": t, "out": out / t, "options": OPTIONS[t], "datasets": [LVIS], "limit": LIMIT} for t in tasks]


def _records(path) -> dict:
    """{item: record} without the timing fields."""
    return {ln["item"]: {k: v for k, v in ln["record"].items() if "seconds" not in k} for ln in read_jsonl(path)}


@pytest.fixture(scope="module")
def alone(data_root, tmp_path_factory):
    """Each task run on its own: {task: (results, encoder calls, out dir)}."""
    out = tmp_path_factory.mktemp("alone")
    found = {}
    for task in ("proposals", "instances"):
        model = _model()
        res = run_task(task, model, datasets=[LVIS], data_root=str(data_root), out=out / task, limit=LIMIT,
                       progress=False, **OPTIONS[task])
        found[task] = (res, model.encoder_calls, out / task)
    return found


def test_two_tasks_in_one_pass_equal_each_alone_with_half_the_encoder_calls(alone, data_root, tmp_path):
    model = _model()
    both = run_tasks(_specs(tmp_path), model, data_root=str(data_root), progress=False)
    for res, task in zip(both, ("proposals", "instances")):
        ref, _, ref_dir = alone[task]
        assert _same(res["metrics"], ref["metrics"]), task
        for ds, block in res["datasets"].items():
            assert _same(block["metrics"], ref["datasets"][ds]["metrics"]) and block["num_items"] == LIMIT
        assert _records(tmp_path / task / "items.jsonl") == _records(ref_dir / "items.jsonl")
        assert load_json(tmp_path / task / "results.json")["task"] == task
    calls_alone = sum(calls for _, calls, _ in alone.values())
    assert calls_alone == 2 * LIMIT and model.encoder_calls == calls_alone // 2
    lat = [r["latency"] for r in both]
    assert [x["encoder_calls"] for x in lat] == [LIMIT, 0] and [x["encoder_shared"] for x in lat] == [0, LIMIT]
    assert lat[1]["encoder_seconds_saved"] == pytest.approx(model.encoder_seconds, rel=1e-3)
    assert lat[1]["stages"]["encoder"]["calls"] == 0 and lat[1]["decoder_calls"] > 0
    pass_wall = lat[0]["pass_wall_seconds"]
    assert lat[1]["pass_wall_seconds"] == pass_wall and lat[0]["pass_tasks"] == ["proposals", "instances"]
    # each task's wall is its share of the pass (the encoder runs are the first task's) plus its scoring
    share = [x["pass_share_seconds"] for x in lat]
    assert share[0] >= model.encoder_seconds and share[1] > 0 and sum(share) <= pass_wall
    assert all(x["wall_seconds"] > s for x, s in zip(lat, share))


def test_each_task_counts_its_own_cache_lookups(data_root, tmp_path):
    from sam_bench.models.embedding_cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "cache", max_bytes=1)  # every entry is evicted as soon as it is written
    both = run_tasks(_specs(tmp_path), _model(), data_root=str(data_root), progress=False, embedding_cache=cache)
    lat = [r["latency"] for r in both]
    assert [x["embedding_cache_misses"] for x in lat] == [LIMIT, 0]  # the second task takes the pass's image
    assert [x["embedding_cache_evicted"] for x in lat] == [LIMIT, 0] and cache.evicted == LIMIT
    assert [x["embedding_cache_write_errors"] for x in lat] == [0, 0]


def test_resume_reruns_an_item_only_for_the_task_that_lacks_it(alone, data_root, tmp_path):
    run_tasks(_specs(tmp_path), _model(), data_root=str(data_root), progress=False)
    items = tmp_path / "instances" / "items.jsonl"
    lines = items.read_text().splitlines(keepends=True)
    items.write_text("".join(lines[:-1]))  # instances lost its last item; proposals has both
    model = _model()
    again = run_tasks(_specs(tmp_path), model, data_root=str(data_root), progress=False)
    assert model.encoder_calls == 1
    assert [r["latency"]["encoder_calls"] for r in again] == [0, 1]
    assert len(list(read_jsonl(tmp_path / "proposals" / "items.jsonl"))) == LIMIT
    assert _same(again[1]["metrics"], alone["instances"][0]["metrics"])


def test_a_task_refuses_to_share_a_folder(data_root, tmp_path):
    from sam_bench.errors import ConfigError

    specs = _specs(tmp_path)
    specs[1]["out"] = specs[0]["out"]
    with pytest.raises(ConfigError, match="same folder"):
        run_tasks(specs, _model(), data_root=str(data_root), progress=False)


class _Count(Task):
    """A task that records the image's shape: enough to see which items ran."""

    name = "count-test"
    model_kinds = ("promptable",)

    def process(self, model, item, sample):
        return {"shape": list(sample.image.shape)}

    def evaluate(self, dataset, records):
        return {"n": float(len(records))}


def test_command_line_runs_several_tasks_each_in_its_own_folder(tmp_path, capsys):
    registry.register("tasks", "count-test", _Count)
    registry.register("models", "tiny-sam-test", lambda **kw: _model())
    try:
        argv = ["run", "proposals,count-test", "--model", "tiny-sam-test", "--dataset", "synthetic", "--limit", "1",
                "--grid", "2", "--out", str(tmp_path), "--no-progress"]
        assert main(argv) == 0
        prop = json.loads((tmp_path / "proposals" / "results.json").read_text())
        count = json.loads((tmp_path / "count-test" / "results.json").read_text())
        assert prop["config"]["grid"] == 2 and count["metrics"]["n"] == 1.0
        assert prop["latency"]["encoder_calls"] == 1 and count["latency"]["encoder_shared"] == 1
        assert main(argv[:-1] + ["--bogus-flag", "3", "--no-progress"]) == 2
        assert "no listed task takes --bogus-flag" in capsys.readouterr().err
    finally:
        registry._extra["tasks"].pop("count-test")
        registry._extra["models"].pop("tiny-sam-test")


def test_reproduce_runs_presets_on_the_same_images_in_one_pass(tmp_path):
    registry.register("models", "tiny-sam-test", lambda **kw: _model())
    try:
        base = ["reproduce", "--model", "tiny-sam-test", "--quick", "--limit", "1", "--tasks", "proposals",
                "instances_lvis", "--set", "proposals.grid=2", "--set", "instances.max_dets=2", "--no-progress"]
        assert main([*base, "--out", str(tmp_path / "shared")]) == 0
        assert main([*base, "--out", str(tmp_path / "alone"), "--no-share"]) == 0
    finally:
        registry._extra["models"].pop("tiny-sam-test")
    calls, metrics = {}, {}
    for way in ("shared", "alone"):
        runs = load_json(tmp_path / way / "reproduce.json")["runs"]
        # --tasks proposals names the task: both its presets run
        assert [r["preset"] for r in runs] == ["instances_lvis", "proposals", "proposals_single_output"]
        assert [r["status"] for r in runs] == ["done"] * 3
        found = [load_json(tmp_path / way / r["dir"] / "results.json") for r in runs]
        calls[way] = [f["latency"]["encoder_calls"] for f in found]
        metrics[way] = [f["metrics"] for f in found]
        assert all(("shared_pass" in r) == (way == "shared") for r in runs)
        assert all(r["seconds"] > 0 for r in runs)
        if way == "shared":  # each preset's time in the manifest is its own share of the pass, not 0
            assert [r["seconds"] for r in runs] == [round(f["latency"]["wall_seconds"], 2) for f in found]
    assert calls == {"shared": [1, 0, 0], "alone": [1, 1, 1]}
    assert all(_same(a, b) for a, b in zip(metrics["shared"], metrics["alone"]))
