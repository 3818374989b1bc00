"""Finding saved runs: a results.json, a run directory, or a reproduce directory of many runs.

Shared by ``sam-bench report`` and ``sam-bench compare``; reads only, never runs a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sam_bench.errors import ConfigError
from sam_bench.results import load_results, model_label  # noqa: F401 (model_label: re-exported for reports)

MAX_DEPTH = 3  # a reproduce dir holds RUN/results.json; leave room for one more level


@dataclass
class SavedRun:
    """One results.json. ``label``: its folder relative to the root given (``.`` for the root itself)."""

    label: str
    path: Path
    results: dict

    @property
    def task(self) -> str:
        return self.results.get("task", "?")

    @property
    def model(self) -> str:
        return self.results.get("model", {}).get("name", "?")

    @property
    def preset(self) -> str | None:
        return self.results.get("preset")


def find_results(root: str | Path) -> list[Path]:
    """``root`` itself if it is a file, else every ``results.json`` at most ``MAX_DEPTH`` folders down, sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigError(f"{root}: no such file or directory")
    found = [p for depth in range(MAX_DEPTH + 1) for p in root.glob("/".join(["*"] * depth + ["results.json"]))]
    return sorted(found)


def load_runs(root: str | Path) -> list[SavedRun]:
    """Every saved run under ``root``; ``ConfigError`` naming the path if there is none or one is unreadable."""
    root = Path(root)
    paths = find_results(root)
    if not paths:
        raise ConfigError(f"{root}: holds no results.json (give a results.json, a run dir or a reproduce dir)")
    runs = []
    for path in paths:
        res = load_results(path)
        if not isinstance(res, dict) or "task" not in res or "datasets" not in res:
            raise ConfigError(f"{path}: not a sam-bench results.json (no 'task' / 'datasets')")
        label = "." if root.is_file() else str(path.parent.relative_to(root)) or "."
        runs.append(SavedRun(label, path, res))
    return runs


def numeric_items(metrics: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(key, value) of every number in ``metrics``; nested dicts give dotted keys, lists are skipped."""
    for key, val in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(val, bool):
            continue
        if isinstance(val, (int, float)):
            yield name, float(val)
        elif val is None:
            yield name, math.nan
        elif isinstance(val, dict):
            yield from numeric_items(val, name + ".")


