"""The task contract (detectron2's process/evaluate, lm-eval's registered tasks).

A task turns one loaded item into a small JSON-ready record (``process``), then turns the records
of one dataset into metrics (``evaluate``), then the per-dataset metrics into the headline
(``aggregate``). It never loops over items, loads files or writes results itself: the runner
does that, once, for every task (``sam_bench.runner``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, ClassVar

from sam_bench import options as opts
from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import ConfigError
from sam_bench.metrics.bootstrap import Resampler
from sam_bench.metrics.spec import MetricSpec, directions, find_spec
from sam_bench.metrics.tables import PlotSpec, TableSpec, check_declarations


class Task:
    """Subclass, set the class attributes, implement ``process`` and ``evaluate``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    model_kinds: ClassVar[tuple[str, ...]] = ("promptable",)  # model.kind values this task accepts
    default_datasets: ClassVar[tuple[str, ...]] = ("synthetic",)
    # the metrics ``evaluate`` returns: scale, direction, scored or diagnostic, tolerance (what
    # ``sam-bench compare`` gates, read from the class; see sam_bench.metrics.spec)
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    higher_is_better: ClassVar[dict[str, bool]] = {}  # name or pattern -> direction, derived from ``metrics``
    # options that change how a run is shown or how fast it goes, never its numbers: left out of
    # the run's identity, so a run resumes and compares across them
    non_scoring: ClassVar[frozenset[str]] = frozenset()
    # data options this task runs with unless the run sets them (e.g. edges: BSDS500 ``split``
    # test); they go to the data layer (``sam_bench.data.catalog.open_for_run``), never to the task
    data_defaults: ClassVar[dict[str, Any]] = {}
    # the tables and plots of this task's metrics, written by sam_bench.reports.render for one run
    # and across runs (see sam_bench.metrics.tables)
    tables: ClassVar[tuple[TableSpec, ...]] = ()
    plots: ClassVar[tuple[PlotSpec, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if "metrics" in cls.__dict__ and "higher_is_better" not in cls.__dict__:
            cls.higher_is_better = directions(cls.metrics)
        check_declarations(cls.name or cls.__name__, cls.tables, cls.plots)

    # the task's options: a frozen dataclass (``sam_bench.options``) from which its flags, its
    # ``reproduce`` defaults and ``--quick`` values come; None: ``config`` is taken as given
    Options: ClassVar[type[opts.Options] | None] = None
    # config keys that ``setup`` records (facts of loaded files); dropped when a saved config is rebuilt
    recorded: ClassVar[tuple[str, ...]] = ()
    # the classical models ``sam-bench reproduce`` runs on this task when no --model is given
    baselines: ClassVar[tuple[str, ...]] = ()
    # True: ``resampler`` reads the dataset (its ground truth), so ``compare`` cannot rebuild it from
    # the saved records alone and gates that task on tolerances only
    resample_needs_data: ClassVar[bool] = False

    def __init__(self, **config: Any):
        cls = self.options_class()
        if cls is None:
            self.config = config
            return
        self.options = cls.build(config, f"task {self.name!r}", ignore=self.recorded)
        self.config = self.options.as_config()  # what results.json records

    @classmethod
    def options_class(cls) -> type[opts.Options] | None:
        """The options dataclass (a task may compose it, e.g. from its plugins' options)."""
        return cls.Options

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """{option: default}, as ``sam-bench run`` would pass them (``reproduce`` starts from these)."""
        if cls.options_class() is not None:
            return opts.defaults(cls.options_class())
        parser = argparse.ArgumentParser(add_help=False)
        cls.add_arguments(parser)
        return {a.dest: a.default for a in parser._actions if a.dest != argparse.SUPPRESS}

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        """The lighter settings of ``reproduce --quick`` (each option's declared ``quick`` value)."""
        return opts.quick(cls.options_class()) if cls.options_class() is not None else {}

    @classmethod
    def reproduce_options(cls, args: argparse.Namespace) -> dict[str, Any]:
        """Options ``reproduce`` sets from its own arguments (after the preset and --quick, before --set)."""
        return {}

    def setup(self) -> None:
        """Load what the options name (files, grounders) once, before any item runs; the runner calls it.
        Construction only checks values, reading no file, so a saved config rebuilds anywhere. Idempotent."""

    @classmethod
    def metric_spec(cls, metric: str) -> MetricSpec | None:
        """The declared spec of ``metric`` (exact name first, then patterns); None: undeclared, a diagnostic."""
        return find_spec(cls.metrics, metric)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Task-specific command-line options (from ``Options``); their values arrive in ``self.config``."""
        if cls.options_class() is not None:
            opts.add_arguments(parser, cls.options_class())

    @classmethod
    def scoring_config(cls, config: dict) -> dict:
        """``config`` without the non-scoring options."""
        return {k: v for k, v in config.items() if k not in cls.non_scoring}

    def check_model(self, model: Any) -> None:
        if not set(model.kinds) & set(self.model_kinds):
            raise ConfigError(f"task {self.name!r} takes {' or '.join(self.model_kinds)} models; "
                              f"{model.info.name!r} is a {model.kind} model")

    def prepare(self, dataset: Dataset) -> None:
        """Check task inputs against an opened dataset before its items run (e.g. detections against
        its images and categories), recording refused entries in ``dataset.missing``. Idempotent."""

    def process(self, model: Any, item: Item, sample: Sample) -> dict:
        """The record for one item; the model's image is already set to ``sample.image``.

        A record may say how long its per-item metric work took (``metric_seconds``), so the
        runner's stage times count it as metric, not post-processing. It may carry what the report
        draws under ``prediction`` (small: RLE masks, boxes; ``sam_bench.results.PREDICTION``),
        which ``evaluate`` never reads and the runner drops under ``--no-save-predictions``."""
        raise NotImplementedError

    def evaluate(self, dataset: Dataset, records: list[dict]) -> dict[str, float]:
        """Metrics of one dataset from its records (in any order; ranks merged)."""
        raise NotImplementedError

    def resampler(self, dataset: Dataset, records: list[dict]) -> Resampler | None:
        """``evaluate``'s metrics as a function of weights over the dataset's evaluation units (objects,
        images), from which the runner draws bootstrap intervals and ``compare`` paired differences
        (``sam_bench.metrics.bootstrap``); None (the default): the task has no intervals."""
        return None

    def score(self, dataset: Dataset, records: list[dict], *, resample: bool = True
              ) -> tuple[dict[str, float], Resampler | None]:
        """(``evaluate``, ``resampler`` or None when not ``resample``): what the runner calls. A task whose
        resampler reuses the work of ``evaluate`` (a COCOeval's per-image matches) overrides this."""
        return self.evaluate(dataset, records), self.resampler(dataset, records) if resample else None

    def aggregate(self, per_dataset: dict[str, dict[str, float]]) -> dict[str, float]:
        """Headline metrics: by default the mean over datasets of each metric (NaNs left out)."""
        keys = sorted({k for m in per_dataset.values() for k, v in m.items() if isinstance(v, (int, float))})
        out = {}
        for k in keys:
            vals = [m[k] for m in per_dataset.values() if isinstance(m.get(k), (int, float)) and not math.isnan(m[k])]
            out[k] = sum(vals) / len(vals) if vals else float("nan")
        return out

    def gate(self, results: dict) -> list[str]:
        """Why a finished run fails on the task's own terms (parity beyond its tolerance), beside the
        runner's ``failures``; one sentence each, none by default."""
        return []

    @classmethod
    def outputs(cls, results: dict, out_dir: Path) -> list[Path]:
        """Files other than tables and plots that the task writes after a run and on ``sam-bench
        report`` (a COCO results file, saved maps), from ``results`` and the run folder alone."""
        return []
