"""single-point: the object batch follows a memory budget and the image size, and never changes results."""

from __future__ import annotations

import json

import pytest

from sam_bench.errors import ConfigError
from sam_bench.runner import run_task
from sam_bench.tasks.single_point import (GIB, OBJECT_BYTES_PER_PIXEL, SinglePointTask, bytes_per_object,
                                          object_batch_for)


def test_object_batch_is_bounded_by_bytes():
    assert bytes_per_object(480, 640) == OBJECT_BYTES_PER_PIXEL * 480 * 640
    assert object_batch_for(16, 480, 640, GIB) == 16  # COCO-sized images keep the configured batch
    # the reported case: 8 objects of an 8000x8000 image went over 8 GB at the configured 16
    big = bytes_per_object(8000, 8000)
    assert 8 * big > 8e9
    b = object_batch_for(16, 8000, 8000, 8 * GIB)
    assert 1 <= b < 8 and b * big <= 8 * GIB < (b + 1) * big
    assert object_batch_for(16, 8000, 8000, GIB) == 1  # one object is the floor, even over the budget
    assert object_batch_for(4, 10, 10, GIB) == 4


def test_default_budget_and_bad_budget():
    task = SinglePointTask()
    assert task.config["object_memory"] == 1.0 and "object_memory" in task.non_scoring
    with pytest.raises(ConfigError, match="object-memory"):
        SinglePointTask(object_memory=0)


def test_object_memory_changes_no_result(tmp_path):
    """Synthetic images with GrabCut: a budget forcing one object per round gives the same records."""
    runs = []
    for name, budget in (("batched", 1.0), ("one_by_one", 1e-9)):
        res = run_task("single-point", "grabcut", datasets=["synthetic:2"], out=tmp_path / name, clicks=[1, 2],
                       max_clicks=3, object_memory=budget, progress=False)
        lines = [json.loads(x) for x in (tmp_path / name / "items.jsonl").read_text().splitlines()]
        runs.append((res, {ln["item"]: ln["record"] for ln in lines}))
    (a, rec_a), (b, rec_b) = runs
    assert a["datasets"]["synthetic"]["metrics"]["num_objects"] >= 4
    assert b["latency"]["decoder_calls"] > a["latency"]["decoder_calls"]  # the batches did differ
    assert rec_a == rec_b and a["metrics"] == b["metrics"]
