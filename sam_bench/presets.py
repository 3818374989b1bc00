"""Paper presets: one declarative TOML file per experiment under the top-level ``tasks/`` folder.

A preset names its task and fixes options to the paper's settings::

    task = "proposals"
    description = "LVIS v1 val object proposals, mask AR@1000 (paper Table 4)"
    datasets = ["LVIS"]
    [options]
    grid = 64

``sam-bench run PRESET`` runs the task with those defaults (any option can still be overridden
on the command line); ``sam-bench reproduce`` runs the presets that carry ``[[paper]]`` rows or
a ``[reproduce]`` table with ``run = true``; ``[reproduce] model_kinds = [...]`` (and ``why``)
limits the models it runs the preset for (``sam_bench.reproduce_plan``).
Extra preset folders can be added with ``$SAM_BENCH_PRESETS`` (os.pathsep-separated).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from sam_bench.config import preset_dirs
from sam_bench.errors import ConfigError


def preset_folders() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SAM_BENCH_PRESETS", "").split(os.pathsep) if p]
    return extra + [d / "tasks" for d in preset_dirs()]


def load_presets() -> dict[str, dict]:
    """{name: preset dict}; the file stem is the name; earlier folders win."""
    found: dict[str, dict] = {}
    for folder in preset_folders():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            if path.stem in found:
                continue
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: bad preset TOML ({exc})") from None
            if "task" not in data:
                raise ConfigError(f"{path}: preset has no 'task' key")
            data.setdefault("options", {})
            data["path"] = str(path)
            found[path.stem] = data
    return found


def paper_rows(preset: str) -> list[dict]:
    """The paper's reference rows of a preset (its ``[[paper]]`` tables: ``method`` + metric keys)."""
    presets = load_presets()
    if preset not in presets:
        raise ConfigError(f"no preset {preset!r}; known: {', '.join(sorted(presets))}")
    return [dict(row) for row in presets[preset].get("paper", [])]
