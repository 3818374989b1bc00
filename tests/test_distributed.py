"""Sharded runs: `torchrun --nproc_per_node 2 -m sam_bench run ...` on the gloo backend (CPU).

Each rank takes a strided share of the items and appends to its own ``items.rank<R>.jsonl``;
rank 0 merges them and computes the metrics, which must equal a one-process run exactly. A rank
that died part-way resumes its own share only.

The real ``single-point`` task with the ``grabcut`` baseline on 4 synthetic scenes (one click)
keeps this to a few seconds of compute; the rest is starting the processes. A shared pass of two
tasks (``run edges,proposals`` with ``felzenszwalb``) shards and resumes per task.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sam_bench.cli import main as cli

RUN = ["run", "single-point", "--model", "grabcut", "--dataset", "synthetic", "--limit", "4", "--clicks", "1",
       "--max-clicks", "1", "--noc-thresholds", "85", "--no-progress"]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def torchrun(out: Path, cache: Path, run: list[str] = RUN) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAM_BENCH_BACKEND": "gloo", "SAM_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "sam_bench", *run, "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def comparable(res: dict) -> dict:
    """Everything but timing and provenance (which differ between any two runs)."""
    return {k: v for k, v in res.items() if k not in ("latency", "provenance")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAM_BENCH_CACHE", str(root / "cache"))  # synthetic scenes' COCO JSON goes there
        assert cli([*RUN, "--out", str(root / "single")]) == 0
        torchrun(root / "sharded", root / "cache")
    return root


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_sharded_metrics_equal_single_process(runs):
    root = runs
    single = json.loads((root / "single" / "results.json").read_text())
    sharded = json.loads((root / "sharded" / "results.json").read_text())
    assert sharded["latency"]["world_size"] == 2 and single["latency"]["world_size"] == 1
    assert comparable(sharded) == comparable(single)  # exact, not approximate
    assert single["datasets"]["synthetic"]["num_items"] == 4
    ranks = [[json.loads(s)["item"] for s in (root / "sharded" / f"items.rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    all_items = [json.loads(s)["item"] for s in (root / "single" / "items.jsonl").read_text().splitlines()]
    assert ranks == [all_items[0::2], all_items[1::2]]  # strided shares, no item twice
    per_item = lambda path: {json.loads(s)["item"]: json.loads(s) for s in path.read_text().splitlines()}
    merged = {**per_item(root / "sharded" / "items.rank0.jsonl"), **per_item(root / "sharded" / "items.rank1.jsonl")}
    assert merged == per_item(root / "single" / "items.jsonl")


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_resume_per_rank(runs):
    root = runs
    out = root / "resumed"
    shutil.copytree(root / "sharded", out)
    (out / "results.json").unlink()
    rank0 = (out / "items.rank0.jsonl").read_bytes()
    first, second = (out / "items.rank1.jsonl").read_text().splitlines(keepends=True)
    (out / "items.rank1.jsonl").write_text(first + second[: len(second) // 3])  # rank 1 died writing item 2
    proc = torchrun(out, root / "cache")
    log = proc.stdout + proc.stderr
    assert log.count("synthetic: resuming, 2 of 2 items already done") == 1  # rank 0: nothing left
    assert log.count("synthetic: resuming, 1 of 2 items already done") == 1  # rank 1: its torn item only
    assert (out / "items.rank0.jsonl").read_bytes() == rank0
    assert (out / "items.rank1.jsonl").read_text() == first + second
    single = json.loads((root / "single" / "results.json").read_text())
    assert comparable(json.loads((out / "results.json").read_text())) == comparable(single)


MULTI = ["run", "edges,proposals", "--model", "felzenszwalb", "--dataset", "synthetic", "--limit", "4", "--no-progress"]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_a_shared_pass_shards_and_resumes_per_task(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path / "cache"))
    assert cli([*MULTI, "--out", str(tmp_path / "single")]) == 0
    torchrun(tmp_path / "sharded", tmp_path / "cache", MULTI)
    for task in ("edges", "proposals"):
        single = json.loads((tmp_path / "single" / task / "results.json").read_text())
        sharded = json.loads((tmp_path / "sharded" / task / "results.json").read_text())
        assert sharded["latency"]["world_size"] == 2 and comparable(sharded) == comparable(single), task
        ranks = [len((tmp_path / "sharded" / task / f"items.rank{r}.jsonl").read_text().splitlines()) for r in (0, 1)]
        assert ranks == [2, 2], task
    # proposals lost rank 1's last item; edges kept all: only that item runs again, for proposals only
    out = tmp_path / "sharded"
    for task in ("edges", "proposals"):
        (out / task / "results.json").unlink()
    lines = (out / "proposals" / "items.rank1.jsonl").read_text().splitlines(keepends=True)
    (out / "proposals" / "items.rank1.jsonl").write_text(lines[0])
    edges_before = {r: (out / "edges" / f"items.rank{r}.jsonl").read_bytes() for r in (0, 1)}
    log = torchrun(out, tmp_path / "cache", MULTI)
    text = log.stdout + log.stderr
    assert text.count("proposals synthetic: resuming, 1 of 2 items already done") == 1
    assert text.count("edges synthetic: resuming, 2 of 2 items already done") == 2
    assert {r: (out / "edges" / f"items.rank{r}.jsonl").read_bytes() for r in (0, 1)} == edges_before
    for task in ("edges", "proposals"):
        single = json.loads((tmp_path / "single" / task / "results.json").read_text())
        assert comparable(json.loads((out / task / "results.json").read_text())) == comparable(single), task
