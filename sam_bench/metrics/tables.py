"""What a task's tables and plots show, declared as data beside its metrics (``Task.tables``, ``Task.plots``).

A task lists the tables it fills (a file stem, a caption, ``{metric: column title}``) and the plots
drawn from them; ``sam_bench.reports.render`` writes them all, for one run (in its folder, after
the run and on ``sam-bench report``) and across runs (a reproduce folder), with the paper's rows
from the runs' presets, ours, and the difference rows. Units and directions are not repeated here:
the renderer reads each column's ``MetricSpec`` from the task (``Task.metrics``). Declarations only:
nothing here reads files or draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# how a plot is drawn (see sam_bench.reports.render.PLOTTERS)
PLOT_KINDS = ("bars", "dataset_bars", "dataset_delta", "clicks_curves", "pr_curves")


@dataclass(frozen=True)
class TableSpec:
    """One table: ``stem`` names its files (``STEM.md/.csv/.tex``) and its LaTeX label.

    ``columns``: metric key -> column title, in order; a run feeds the table when one of its
    datasets has one of these metrics. ``floatfmt``: how the numbers print. ``settings``: run option
    -> text added to our row's method (``" + {} grounder"``), where the run has that option set.
    The paper's rows are the ``[[paper]]`` rows of the runs' presets that report one of the columns,
    each naming its ``source``.
    """

    stem: str
    caption: str
    columns: Mapping[str, str] = field(hash=False)
    floatfmt: str = ".1f"
    settings: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not self.stem or not self.stem.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"table stem {self.stem!r}: letters, digits, '_' and '-' only (it names files)")
        if not self.columns:
            raise ValueError(f"table {self.stem!r}: no columns")
        for key, text in self.settings.items():
            if "{}" not in text:
                raise ValueError(f"table {self.stem!r}: setting {key!r} text {text!r} has no '{{}}' for its value")


@dataclass(frozen=True)
class PlotSpec:
    """One PNG, ``STEM.png``, drawn under table ``table`` (a stem of the same task).

    ``kind``: ``bars`` (the table's columns, paper rows grey beside ours), ``dataset_bars`` (``metric``
    per dataset and model, the paper's values as lines), ``dataset_delta`` (``metric`` per dataset of
    every other run minus the run of model ``baseline``, all runs ours: a run and its ``--compare-to``
    run, or the runs of one report folder), ``clicks_curves`` (``miou_N`` against N,
    N from the run's ``clicks`` option), ``pr_curves`` (each dataset's precision/recall curve,
    metric ``pr_curve``, with the paper rows' ODS and R50). ``ylabel``: the value axis of ``bars``.
    """

    stem: str
    kind: str
    table: str
    ylabel: str = ""
    metric: str = ""
    baseline: str = ""

    def __post_init__(self):
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"plot {self.stem!r}: kind {self.kind!r} is not one of {', '.join(PLOT_KINDS)}")
        if self.kind == "dataset_bars" and not self.metric:
            raise ValueError(f"plot {self.stem!r}: a dataset_bars plot names its metric")
        if self.kind == "dataset_delta" and not (self.metric and self.baseline):
            raise ValueError(f"plot {self.stem!r}: a dataset_delta plot names its metric and baseline model")


def check_declarations(task: str, tables: tuple[TableSpec, ...], plots: tuple[PlotSpec, ...]) -> None:
    """ValueError naming the task when two tables share a stem or a plot names no table of the task."""
    stems = [t.stem for t in tables]
    if len(set(stems)) != len(stems):
        raise ValueError(f"task {task!r}: two tables named {sorted(s for s in stems if stems.count(s) > 1)[0]!r}")
    for p in plots:
        if p.table not in stems:
            raise ValueError(f"task {task!r}: plot {p.stem!r} is drawn under table {p.table!r}, which the task "
                             f"does not declare (it declares {', '.join(stems) or 'none'})")
