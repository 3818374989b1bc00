"""Task options declared once (``sam_bench.options``): the flags, ``reproduce``'s defaults and
``--quick`` values all come from each task's frozen dataclass; creating a task reads no file
(``setup`` does); saved configs rebuild to themselves; ``reproduce`` plans a task registered at
run time from its declarations alone."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pytest

from sam_bench import options as opts
from sam_bench import registry, runner
from sam_bench.cli import build_parser
from sam_bench.config import PROJECT_ROOT
from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import ConfigError
from sam_bench.options import Options, option
from sam_bench.reproduce_plan import model_fits, plan
from sam_bench.tasks.base import Task
from sam_bench.tasks.edges import EdgesTask
from sam_bench.tasks.instances import InstancesTask
from sam_bench.tasks.proposals import ProposalsTask
from sam_bench.tasks.single_point import SinglePointOptions, SinglePointTask
from sam_bench.tasks.text_to_mask import TextToMaskTask
from test_runner import ToyModel

TASKS = [SinglePointTask, EdgesTask, ProposalsTask, InstancesTask, TextToMaskTask]
DATA_KEYS = ("split", "split_by", "subsample", "subsample_seed")  # older results kept these in config


@pytest.mark.parametrize("cls", TASKS, ids=lambda c: c.name)
def test_flags_defaults_and_config_come_from_one_declaration(cls):
    p = argparse.ArgumentParser()
    cls.add_arguments(p)
    parsed = vars(p.parse_args([]))
    assert parsed == cls.option_defaults()
    names = [f.name for f in dataclasses.fields(cls.options_class())]
    assert list(cls(**parsed if cls is not TextToMaskTask else {**parsed, "grounder": "oracle"}).config) == names
    args = build_parser(["run", cls.name]).parse_args(["run", cls.name, "--model", "m"])
    assert set(args.task_options) == set(names)  # `sam-bench run` passes exactly these


def test_quick_values_and_baselines_are_declared_by_each_task():
    quick = {cls.name: cls.quick_options() for cls in TASKS}
    assert quick == {"single-point": {"max_clicks": 9}, "edges": {"grid": 8}, "proposals": {"grid": 16},
                     "instances": {}, "text-to-mask": {"candidates": "grid=8,top_k=16,ranking=score"}}
    assert {cls.name: cls.baselines for cls in TASKS} == {
        "single-point": ("grabcut",), "edges": ("sobel", "canny", "felzenszwalb"),
        "proposals": ("felzenszwalb", "slic-proposals"), "instances": ("grabcut",), "text-to-mask": ("grabcut",)}


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "results" / "baseline").glob("*/*/results.json")),
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_committed_baseline_configs_rebuild_to_themselves(path):
    res = json.loads(path.read_text())
    cls = registry.get_task(res["task"])
    saved = {k: v for k, v in res["config"].items() if k not in DATA_KEYS}
    rebuilt = cls(**saved).config
    assert rebuilt == {k: v for k, v in saved.items() if k not in cls.recorded}


def test_options_are_frozen_and_creating_a_task_reads_no_file(tmp_path):
    with pytest.raises(dataclasses.FrozenInstanceError):
        SinglePointOptions().max_clicks = 3
    missing = tmp_path / "gone.json"
    task = InstancesTask(boxes=str(missing))
    assert task.config["boxes"] == str(missing.resolve())
    with pytest.raises(ConfigError, match=f"{missing}.*no such file"):
        task.setup()
    sp = SinglePointTask(compare_to=str(missing))
    with pytest.raises(ConfigError, match=f"--compare-to {missing}: no such results file"):
        sp.setup()
    t2m = TextToMaskTask(grounder="boxes-from", boxes_file=str(missing))
    assert t2m.config["boxes_file"] == str(missing.resolve()) and "grounder_info" not in t2m.config
    with pytest.raises(ConfigError, match=f"--boxes-file {missing}: no such file"):
        t2m.setup()


@pytest.mark.parametrize("cls, config, message", [
    (EdgesTask, {"gird": 8}, r"task 'edges': unknown option\(s\) \['gird'\]; known: .*'grid'"),
    (EdgesTask, {"max_dist": 2.0}, "--max-dist is a fraction of the image diagonal"),
    (ProposalsTask, {"ranking": "best"}, "--ranking 'best': choose one of"),
    (InstancesTask, {"max_dets": 0}, "--max-dets must be positive, got 0"),
    (SinglePointTask, {"split": "val"}, r"unknown option\(s\) \['split'\]"),  # a data option, never the task's
    (TextToMaskTask, {"grounder": "clip"}, "--grounder clip needs --clip-checkpoint PATH"),
    (TextToMaskTask, {"grounder": "clip", "clip_checkpoint": "w.pt", "crop_expand": 0.5}, "--crop-expand must be >= 1"),
    (TextToMaskTask, {"grounder": "orcale"}, "unknown grounder 'orcale'"),
])
def test_bad_options_are_refused_by_name(cls, config, message):
    with pytest.raises(ConfigError, match=message):
        cls(**config)


def test_generic_flags_from_a_declaration():
    @dataclass(frozen=True)
    class Toy(Options):
        level: int = option(2, "a level", quick=1)
        loud: bool = option(False, "be loud")
        smooth: bool = option(True, "do not smooth", flags=("--no-smooth",))
        mode: bool | None = option(None, "force on", action="store_true",
                                   also=((("--off",), {"action": "store_false", "default": None, "help": "off"}),))
        ratio: float = option(0.5, lambda: "computed help")
        hidden: str = option("x", "preset only", cli=False)

    p = argparse.ArgumentParser()
    opts.add_arguments(p, Toy)
    assert vars(p.parse_args([])) == {"level": 2, "loud": False, "smooth": True, "mode": None, "ratio": 0.5}
    assert vars(p.parse_args(["--level", "7", "--loud", "--no-smooth", "--off", "--ratio", "0.25"])) == \
        {"level": 7, "loud": True, "smooth": False, "mode": False, "ratio": 0.25}
    with pytest.raises(SystemExit):
        p.parse_args(["--level", "seven"])
    assert "computed help" in p.format_help() and "--hidden" not in p.format_help()
    assert opts.quick(Toy) == {"level": 1} and opts.defaults(Toy)["hidden"] == "x"
    assert Toy.build({"level": None, "loud": True}, "toy").as_config() == \
        {"level": 2, "loud": True, "smooth": True, "mode": None, "ratio": 0.5, "hidden": "x"}


@dataclass(frozen=True)
class ToyOptions(Options):
    level: int = option(3, "toy level", quick=1)
    flag: bool = option(False, "toy flag")


class ToyPlanTask(Task):
    name = "toy-opts"
    Options = ToyOptions
    baselines = ("grabcut",)


def test_reproduce_plans_a_run_time_task_from_its_declarations(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._extra["tasks"], "toy-opts", ToyPlanTask)
    (tmp_path / "toy_opts.toml").write_text('task = "toy-opts"\ndatasets = ["synthetic"]\n[options]\nflag = true\n'
                                            '[reproduce]\nrun = true\n')
    monkeypatch.setenv("SAM_BENCH_PRESETS", str(tmp_path))

    def entries(*argv):
        return plan(build_parser(["reproduce"]).parse_args(["reproduce", "--tasks", "toy-opts", *argv]))

    [e] = entries()
    assert (e["model"], e["dir"], e["options"], e["datasets"]) == ("grabcut", "toy_opts-grabcut",
                                                                   {"level": 3, "flag": True}, ["synthetic"])
    assert entries("--quick")[0]["options"] == {"level": 1, "flag": True}
    assert entries("--quick", "--set", "toy-opts.level=5")[0]["options"] == {"level": 5, "flag": True}
    with pytest.raises(ConfigError, match="--set toy-opts.nope: not an option of task 'toy-opts'"):
        entries("--set", "toy-opts.nope=1")


def test_a_preset_limits_the_models_reproduce_runs_it_for():
    proposal_model = type("M", (), {"kinds": ("proposals",)})()
    promptable = type("M", (), {"kinds": ("promptable",)})()
    entry = {"model": "felzenszwalb", "task": "proposals"}
    preset = {"reproduce": {"model_kinds": ["promptable"], "why": "an ablation of SAM's multimask output"}}
    assert model_fits(entry, preset, proposal_model, ProposalsTask) == "an ablation of SAM's multimask output"
    assert model_fits(entry, preset, promptable, ProposalsTask) is None
    assert model_fits(entry, {}, proposal_model, ProposalsTask) is None
    assert "runs promptable models only" in model_fits(entry, {"reproduce": {"model_kinds": ["promptable"]}},
                                                       proposal_model, ProposalsTask)
    assert "takes promptable" in model_fits(entry, {}, proposal_model, InstancesTask)


class SetupTask(Task):
    """Counts ``setup`` calls; every record says whether setup ran before it."""

    name = "toy-setup"
    model_kinds = ("edges",)
    Options = ToyOptions

    def __init__(self, **config):
        super().__init__(**config)
        self.setups = 0

    def setup(self):
        self.setups += 1

    def process(self, model, item, sample):
        return {"after_setup": self.setups == 1}

    def evaluate(self, dataset, records):
        return {"after_setup": float(all(r["after_setup"] for r in records))}


def test_runner_calls_setup_once_before_any_item(tmp_path):
    items = [Item(f"img-{i}", lambda it: Sample(np.full((4, 5, 3), 9, np.uint8))) for i in range(3)]
    task = SetupTask(level=4)
    res = runner.evaluate(task, ToyModel(), [Dataset("toy", items, format="toy")], tmp_path, progress=False)
    assert task.setups == 1 and res["metrics"]["after_setup"] == 1.0
    assert res["config"] == {"level": 4, "flag": False}
