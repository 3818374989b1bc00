"""The runner's guarantees: resume after a crash loses and duplicates nothing, a torn JSONL line is
redone, bad items become skips with their reason, a different run in the same folder is refused,
and results.json is written atomically.

A toy task (record = mean pixel value of a tiny generated image) and a toy edge model keep every
run to milliseconds; the expected metrics are computed here from the images directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam_bench import results as R
from sam_bench import runner
from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.models.base import EdgeModel, ModelInfo
from sam_bench.tasks.base import Task

HERE = Path(__file__).resolve().parent


def image(item_id: str) -> np.ndarray:
    rng = np.random.default_rng(int(item_id.split("-")[-1]))
    return rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def load(item: Item) -> Sample:
    if item.meta.get("corrupt"):
        raise BadInput(f"{item.id}.png: cannot decode image (corrupt or not an image)")
    return Sample(image(item.id))


def dataset(name: str = "toy", n: int = 8, corrupt: tuple[int, ...] = ()) -> Dataset:
    items = [Item(f"img-{i}", load, meta={"corrupt": i in corrupt}) for i in range(n)]
    return Dataset(name, items, format="toy")


class ToyModel(EdgeModel):
    def __init__(self, name: str = "toy-model"):
        super().__init__(ModelInfo(name))

    def _edges(self, img: np.ndarray) -> np.ndarray:
        return img.mean(axis=2) / 255.0


class ToyTask(Task):
    """Record: mean edge value; metrics: their mean (x100) and the item count."""

    name = "toy"
    model_kinds = ("edges",)

    def __init__(self, crash_at: str | None = None, crash_how: str = "interrupt", bad_item: str | None = None,
                 out: str | None = None, **config):
        super().__init__(**config)
        self.crash_at, self.crash_how, self.bad_item, self.out = crash_at, crash_how, bad_item, out
        self.calls: list[str] = []
        self.lines_seen: dict[str, int] = {}

    def process(self, model, item, sample):
        if self.out:  # how many items were already on disk when this one started
            path = Path(self.out) / "items.jsonl"
            self.lines_seen[item.id] = len(path.read_text().splitlines()) if path.exists() else 0
        if item.id == self.crash_at:
            if self.crash_how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt
        if item.id == self.bad_item:
            raise BadInput(f"{item.id}: no object to evaluate (empty mask)")
        self.calls.append(item.id)
        return {"value": float(model.edge_map().mean())}

    def evaluate(self, ds, records):
        return {"mean": 100 * float(np.mean([r["value"] for r in records])), "num_items": len(records)}


def expected_mean(ids) -> float:
    return 100 * float(np.mean([(image(i).mean(axis=2) / 255.0).mean() for i in ids]))


def lines(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines()] if path.exists() else []


def test_uninterrupted_run_and_results_schema(tmp_path):
    ds = dataset()
    res = runner.evaluate(ToyTask(grid=4), ToyModel(), [ds], tmp_path, progress=False)
    assert res["datasets"]["toy"]["metrics"]["mean"] == pytest.approx(expected_mean([it.id for it in ds.items]))
    assert res["datasets"]["toy"]["num_items"] == 8 and res["datasets"]["toy"]["num_skipped"] == 0
    assert res["schema_version"] == R.SCHEMA_VERSION and res["config"] == {"grid": 4}
    assert res["latency"]["world_size"] == 1 and res["latency"]["encoder_calls"] == 8
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(R.dumps(res))
    assert [ln["item"] for ln in lines(tmp_path / "items.jsonl")] == [f"img-{i}" for i in range(8)]


def test_items_appended_as_they_finish(tmp_path):
    task = ToyTask(out=str(tmp_path))
    runner.evaluate(task, ToyModel(), [dataset(n=5)], tmp_path, progress=False)
    assert task.lines_seen == {f"img-{i}": i for i in range(5)}


@pytest.mark.parametrize("crash_at", [0, 3, 7])
def test_resume_after_crash_loses_and_duplicates_nothing(tmp_path, crash_at):
    ds = dataset()
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(ToyTask(crash_at=f"img-{crash_at}"), ToyModel(), [ds], tmp_path, progress=False)
    assert not (tmp_path / "results.json").exists()
    assert len(lines(tmp_path / "items.jsonl")) == crash_at
    again = ToyTask()
    res = runner.evaluate(again, ToyModel(), [ds], tmp_path, progress=False)
    assert again.calls == [f"img-{i}" for i in range(crash_at, 8)]  # finished items are not rerun
    items = [ln["item"] for ln in lines(tmp_path / "items.jsonl")]
    assert sorted(items) == sorted(it.id for it in ds.items) and len(set(items)) == 8
    fresh = runner.evaluate(ToyTask(), ToyModel(), [ds], tmp_path / "fresh", progress=False)
    assert res["datasets"] == fresh["datasets"] and res["metrics"] == fresh["metrics"]


def _killed_child(out: str) -> None:
    """Run in a subprocess: SIGKILL (no cleanup at all) while processing img-5."""
    runner.evaluate(ToyTask(crash_at="img-5", crash_how="kill"), ToyModel(), [dataset()], out, progress=False)


def test_resume_after_sigkill(tmp_path):
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_runner; "
            f"test_runner._killed_child({str(tmp_path)!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [ln["item"] for ln in lines(tmp_path / "items.jsonl")] == [f"img-{i}" for i in range(5)]
    task = ToyTask()
    res = runner.evaluate(task, ToyModel(), [dataset()], tmp_path, progress=False)
    assert task.calls == ["img-5", "img-6", "img-7"]
    assert res["datasets"]["toy"]["metrics"]["mean"] == pytest.approx(expected_mean([f"img-{i}" for i in range(8)]))


def test_torn_last_line_is_redone(tmp_path):
    ds = dataset(n=4)
    runner.evaluate(ToyTask(), ToyModel(), [ds], tmp_path, progress=False)
    path = tmp_path / "items.jsonl"
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:2]) + text[2][: len(text[2]) // 2])  # killed while writing the 3rd line
    (tmp_path / "results.json").unlink()
    task = ToyTask()
    res = runner.evaluate(task, ToyModel(), [ds], tmp_path, progress=False)
    assert task.calls == ["img-2", "img-3"]
    assert [ln["item"] for ln in lines(path)] == ["img-0", "img-1", "img-2", "img-3"]  # every line parses
    assert res["datasets"]["toy"]["metrics"]["mean"] == pytest.approx(expected_mean([f"img-{i}" for i in range(4)]))


def test_bad_items_recorded_as_skips(tmp_path):
    ds = dataset(n=6, corrupt=(1,))
    ds.missing = [{"item": "img-9", "reason": "img-9.jpg: image listed in the annotations is missing"}]
    res = runner.evaluate(ToyTask(bad_item="img-4"), ToyModel(), [ds], tmp_path, progress=False)
    d = res["datasets"]["toy"]
    assert d["num_items"] == 6 - 2 and d["num_skipped"] == 3
    reasons = {s["item"]: s["reason"] for s in d["skips"]}
    assert reasons == {"img-1": "img-1.png: cannot decode image (corrupt or not an image)",
                       "img-4": "img-4: no object to evaluate (empty mask)",
                       "img-9": "img-9.jpg: image listed in the annotations is missing"}
    assert d["metrics"]["mean"] == pytest.approx(expected_mean(["img-0", "img-2", "img-3", "img-5"]))
    # a rerun retries the skips: img-4 is fixed now and counts, img-1 is still corrupt and stays a skip
    task = ToyTask()
    res = runner.evaluate(task, ToyModel(), [ds], tmp_path, progress=False)
    assert task.calls == ["img-4"]
    d = res["datasets"]["toy"]
    assert d["num_items"] == 5 and sorted(s["item"] for s in d["skips"]) == ["img-1", "img-9"]
    assert d["metrics"]["mean"] == pytest.approx(expected_mean(["img-0", "img-2", "img-3", "img-4", "img-5"]))


def test_refuses_to_resume_a_different_run(tmp_path):
    ds = dataset(n=2)
    runner.evaluate(ToyTask(grid=4), ToyModel(), [ds], tmp_path, progress=False)
    with pytest.raises(ConfigError, match="holds a different run"):
        runner.evaluate(ToyTask(grid=8), ToyModel(), [ds], tmp_path, progress=False)
    with pytest.raises(ConfigError, match="holds a different run"):
        runner.evaluate(ToyTask(grid=4), ToyModel("other-model"), [ds], tmp_path, progress=False)
    with pytest.raises(ConfigError, match="holds a different run"):
        runner.evaluate(ToyTask(grid=4), ToyModel(), [ds], tmp_path, limit=1, progress=False)
    with pytest.raises(ConfigError, match="holds a different run"):
        runner.evaluate(ToyTask(grid=4), ToyModel(), [ds, dataset("other", 2)], tmp_path, progress=False)
    runner.evaluate(ToyTask(grid=4), ToyModel(), [ds], tmp_path, progress=False)  # the same run resumes


def test_resume_across_non_scoring_options(tmp_path):
    class Workers(ToyTask):
        non_scoring = frozenset({"workers"})

    ds = dataset()
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(Workers(workers=1, crash_at="img-5"), ToyModel(), [ds], tmp_path, progress=False)
    again = Workers(workers=4)
    res = runner.evaluate(again, ToyModel(), [ds], tmp_path, progress=False)
    assert again.calls == [f"img-{i}" for i in range(5, 8)] and res["datasets"]["toy"]["num_items"] == 8
    with pytest.raises(ConfigError, match="different run"):
        runner.evaluate(Workers(workers=4, grid=2), ToyModel(), [ds], tmp_path, progress=False)


def test_limit_and_several_datasets(tmp_path):
    a, b = dataset("a", 5), dataset("b", 3)
    res = runner.evaluate(ToyTask(), ToyModel(), [a, b], tmp_path, limit=2, progress=False)
    assert {k: v["num_items"] for k, v in res["datasets"].items()} == {"a": 2, "b": 2}
    m_a, m_b = (res["datasets"][k]["metrics"]["mean"] for k in "ab")
    assert m_a == pytest.approx(expected_mean(["img-0", "img-1"]))
    assert res["metrics"]["mean"] == pytest.approx((m_a + m_b) / 2)


def test_results_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    R.atomic_write_json(path, {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(R.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        R.atomic_write_json(path, {"a": 2})
    monkeypatch.undo()
    with pytest.raises(TypeError):
        R.atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary left behind


def test_crash_at_the_end_keeps_previous_results_whole(tmp_path, monkeypatch):
    ds = dataset(n=3)
    first = runner.evaluate(ToyTask(), ToyModel(), [ds], tmp_path, progress=False)

    def fail(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "provenance", fail)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(ToyTask(), ToyModel(), [ds], tmp_path, progress=False)
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == first["metrics"]


class SleepyModel(ToyModel):
    def _edges(self, img):
        import time
        time.sleep(0.01)
        return super()._edges(img)


class SleepyTask(ToyTask):
    """10 ms of post-processing and 20 ms of per-item metric work (reported) per item."""

    def process(self, model, item, sample):
        import time
        rec = super().process(model, item, sample)
        time.sleep(0.01)
        t0 = time.perf_counter()
        time.sleep(0.02)
        return {**rec, "metric_seconds": time.perf_counter() - t0}


def test_stage_times_split_encoder_postprocess_metric(tmp_path):
    res = runner.evaluate(SleepyTask(), SleepyModel(), [dataset()], tmp_path, progress=False)
    st = res["latency"]["stages"]
    assert set(st) == {"load", "encoder", "decoder", "postprocess", "metric"}
    assert st["encoder"]["calls"] == 8 and st["encoder"]["seconds"] >= 0.08
    assert st["postprocess"]["calls"] == 8 and st["postprocess"]["seconds"] >= 0.08
    assert st["metric"]["calls"] == 9 and st["metric"]["seconds"] >= 0.16  # 8 items + the dataset's metrics
    assert st["postprocess"]["seconds"] < st["metric"]["seconds"]  # the metric sleep is not post-processing
    assert st["decoder"] == {"seconds": 0.0, "calls": 0}
