"""``sam-bench tasks list``: the registered tasks and the paper presets, with what each runs on."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="tasks (entry points) and paper presets (tasks/*.toml)")


def rows() -> list[dict]:
    """One row per task and per preset: name, kind, task, default datasets, description."""
    from sam_bench import registry
    from sam_bench.errors import SamBenchError
    from sam_bench.presets import load_presets

    out = []
    for name in registry.names("tasks"):
        try:
            cls = registry.get_task(name)
            out.append({"name": name, "kind": "task", "task": name,
                        "datasets": ", ".join(cls.default_datasets), "description": cls.description})
        except SamBenchError as exc:
            out.append({"name": name, "kind": "task", "task": name, "datasets": "", "description": f"not built: {exc}"})
    for name, pre in load_presets().items():
        out.append({"name": name, "kind": "preset", "task": pre["task"], "datasets": ", ".join(pre.get("datasets", [])),
                    "description": pre.get("description", "")})
    return out


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    print(tabulate(rows(), headers="keys", tablefmt="github", maxcolwidths=[None, None, None, 30, 60]))
    return 0
