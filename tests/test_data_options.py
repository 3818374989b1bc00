"""Data options (split, split_by, subsampling, a reader's own) go from the run straight to the data
layer: recorded in the run's identity, never in the task's options, filtered per dataset by what
its reader accepts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_bench import registry
from sam_bench.data import catalog
from sam_bench.errors import ConfigError
from sam_bench.results import run_settings
from sam_bench.runner import run_task
from sam_bench.tasks.base import Task
from test_masks_palette import davis  # noqa: F401 (fixture)
from test_runner import ToyModel


class MeanTask(Task):
    """Mean edge value per dataset; runs on BSDS-like data with split "val" unless told otherwise."""

    name = "mean-edge"
    model_kinds = ("edges",)
    data_defaults = {"split": "val"}

    def process(self, model, item, sample):
        return {"mean": float(model.edge_map().mean())}

    def evaluate(self, dataset, records):
        return {"mean": 100 * float(np.mean([r["mean"] for r in records])), "n": len(records)}


@pytest.fixture
def mean_task(monkeypatch):
    monkeypatch.setitem(registry._extra["tasks"], "mean-edge", MeanTask)


def test_data_options_are_recorded_apart_from_the_task_options(tmp_path, mean_task):
    out = tmp_path / "run"
    res = run_task("mean-edge", ToyModel("grey-edges"), datasets=["synthetic:2"], out=out, progress=False, subsample_seed=4)
    assert res["config"] == {} and res["data_options"] == {"split": "val", "subsample_seed": 4}
    assert run_settings(res) == {"split": "val", "subsample_seed": 4}
    header = json.loads((out / "run.json").read_text())
    assert header["data_options"] == {"split": "val", "subsample_seed": 4} and header["config"] == {}
    assert res["datasets"]["synthetic"]["num_items"] == 2


def test_another_split_is_another_run(tmp_path, mean_task):
    out = tmp_path / "run"
    first = run_task("mean-edge", ToyModel("grey-edges"), datasets=["synthetic:2"], out=out, progress=False)
    again = run_task("mean-edge", ToyModel("grey-edges"), datasets=["synthetic:2"], out=out, progress=False, split="val")
    assert again["metrics"] == first["metrics"]  # the task default spelled out: the same run, resumed
    with pytest.raises(ConfigError, match=r"holds a different run .*--restart"):
        run_task("mean-edge", ToyModel("grey-edges"), datasets=["synthetic:2"], out=out, progress=False, split="test")


def test_a_task_refuses_data_options_as_its_own(tmp_path):
    from sam_bench.tasks.single_point import SinglePointTask

    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['split'\]"):
        SinglePointTask(split="val")


def test_a_reader_option_reaches_the_reader_that_takes_it(davis, tmp_path):  # noqa: F811
    img, gt, frames = davis
    ds, syn = catalog.open_for_run([f"folder:{img}:{gt}", "synthetic:1"], None, {"threshold": 1, "split": "val"})
    assert ds.meta["threshold"] == 1 and syn.name == "synthetic"
    assert np.array_equal(ds.items[4].load().instances[0].mask(), (frames[4] > 1) & (frames[4] != 255))
    with pytest.raises(ConfigError, match=r"threshold=0 in the spec but 1 from the run's data options"):
        catalog.open_for_run([f"folder:{img}:{gt}:threshold=0"], None, {"threshold": 1})


def test_cli_split_goes_to_the_data_layer(tmp_path, mean_task, monkeypatch):
    from sam_bench.cli import main

    monkeypatch.setitem(registry._extra["models"], "grey-edges", lambda **_: ToyModel("grey-edges"))
    out = tmp_path / "cli"
    rc = main(["run", "mean-edge", "--model", "grey-edges", "--dataset", "synthetic:2", "--split", "test",
               "--split-by", "umd", "--out", str(out), "--no-progress"])
    res = json.loads((out / "results.json").read_text())
    assert rc == 0 and res["data_options"] == {"split": "test", "split_by": "umd"} and res["config"] == {}
