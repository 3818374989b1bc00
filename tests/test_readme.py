"""The README's commands work as written: every ``sam-bench`` command in its code blocks parses, and
the cheap ones run (lists, the quick reproduce with its compare and report, the limited runs).

Commands run in a scratch folder whose ``results`` links to the repository's, with
``$SAM_BENCH_DATA`` at the real data root when it exists; commands that need data absent here are
only parsed.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from conftest import real_data_root
from sam_bench.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    """argv (without ``sam-bench``) of every sam-bench command in the README's bash blocks."""
    text = (REPO / "README.md").read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0].endswith("sam-bench"):
                    cmds.append(words[1:])
    return cmds


COMMANDS = readme_commands()
DATASETS_HERE = {"synthetic", "GrabCut", "Berkeley", "COCO_MVal", "BSDS500", "LVIS_v0.5_val100", "COCO_tiny"}


def needs_absent_data(argv: list[str]) -> bool:
    """True for runs whose data or files are not on this machine (RefCOCO, COCO, DAVIS, checkpoints)."""
    if "--checkpoint" in argv or argv[:2] == ["reproduce", "--model"]:
        return True
    if "--dataset" in argv:
        names = argv[argv.index("--dataset") + 1:]
        names = names[:next((i for i, w in enumerate(names) if w.startswith("-")), len(names))]
        return not set(names) <= DATASETS_HERE
    return argv[:2] == ["run", "interactive"]  # its preset includes DAVIS


def cheap(argv: list[str]) -> bool:
    if argv[0] in ("tasks", "models", "datasets") and argv[1:2] == ["list"]:
        return True
    if argv[0] == "run":  # automatic mask generation with a random ViT-B takes minutes on a CPU: parsed only
        amg = argv[1] in ("proposals", "edges") and "--untrained" in argv
        return "--limit" in argv and "--dataset" in argv and not amg and not needs_absent_data(argv)
    return False


def test_readme_has_the_commands_it_promises():
    verbs = {c[0] for c in COMMANDS}
    assert {"run", "reproduce", "compare", "report", "latency", "tasks", "models", "datasets"} <= verbs
    assert not any("shared/data" in " ".join(c) for c in COMMANDS)
    assert "shared/data" not in (REPO / "README.md").read_text()


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_every_readme_command_parses(argv):
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    assert not unknown, f"unknown arguments {unknown}"
    assert args.verb == argv[0]


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    (tmp_path / "results").symlink_to(REPO / "results")
    monkeypatch.chdir(tmp_path)
    root = real_data_root()
    if root is not None:
        monkeypatch.setenv("SAM_BENCH_DATA", str(root))
    return tmp_path


@pytest.mark.parametrize("argv", [c for c in COMMANDS if cheap(c)], ids=lambda c: " ".join(c)[:60])
def test_cheap_readme_commands_run(scratch, argv):
    if "--dataset" in argv and real_data_root() is None:
        pytest.skip("real data root absent")
    assert main(argv + (["--no-progress"] if argv[0] == "run" else [])) == 0


def test_readme_quick_reproduce_compare_report(scratch):
    """The CI regression run as the README shows it: reproduce --quick, compare with the baseline, report."""
    chain = [c for c in COMMANDS if c[:3] == ["reproduce", "--quick", "--out"] or c[0] in ("compare", "report")]
    assert [c[0] for c in chain] == ["reproduce", "compare", "report"]
    for argv in chain:
        assert main(argv + (["--no-progress"] if argv[0] == "reproduce" else [])) == 0, argv
    assert (scratch / "runs" / "quick" / "report.md").stat().st_size > 1000
    assert os.path.islink(scratch / "results")
