"""Help and listing commands import no heavy library (issue #13).

Each command runs in a fresh interpreter through ``sam_bench.cli.main``; afterwards the test reads
``sys.modules``. torch, matplotlib, transformers and cv2 take seconds to import and are never needed
to print help or a listing; pandas, scipy, scikit-image and pycocotools are slow too and are kept
out as well. No timing is asserted (benchmarks/bench_cli.py measures it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from sam_bench import __version__
from sam_bench.cli import VERBS
from sam_bench.registry import GROUPS
from sam_bench.presets import load_presets

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "matplotlib", "transformers", "cv2")
SLOW = ("pandas", "scipy", "skimage", "pycocotools")
ACTIONS = {"models": ("list", "download", "verify"), "datasets": ("list", "verify", "prepare"), "tasks": ("list",)}

PROBE = """
import contextlib, io, json, sys
from sam_bench.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
names = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"code": code, "modules": names, "stdout": out.getvalue()}))
"""


def installed(kind: str) -> list[str]:
    """Names of the installed entry points of ``kind`` (not what other tests register at run time)."""
    return sorted(ep.name for ep in entry_points(group=GROUPS[kind]))


def run_names() -> list[str]:
    """Every task and preset ``sam-bench run`` accepts."""
    return sorted(set(installed("tasks")) | set(load_presets()))


def commands() -> list[tuple[str, ...]]:
    cmds = [("--help",), ("--version",), ("models", "list"), ("datasets", "list"), ("tasks", "list")]
    cmds += [(verb, "--help") for verb in VERBS]
    cmds += [(verb, action, "--help") for verb, actions in ACTIONS.items() for action in actions]
    cmds += [("run", name, "--help") for name in run_names()]
    return cmds


def probe(args: tuple[str, ...]) -> dict:
    """{"code", "modules" (top-level names imported), "stdout"} of ``sam-bench ARGS`` in a fresh interpreter."""
    p = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, f"sam-bench {' '.join(args)}: probe failed\n{p.stderr[-2000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", commands(), ids=" ".join)
def test_command_imports_nothing_heavy(args):
    res = probe(args)
    assert res["code"] == 0, f"sam-bench {' '.join(args)} exited {res['code']}"
    heavy = [m for m in HEAVY if m in res["modules"]]
    assert not heavy, f"sam-bench {' '.join(args)} imported {heavy}"
    slow = [m for m in SLOW if m in res["modules"]]
    assert not slow, f"sam-bench {' '.join(args)} imported {slow} (slow to import; import them where used)"
    assert "sam_bench" in res["modules"]


def test_outputs_are_the_real_ones():
    """The light paths still print what they did: help, version, every model, dataset and task."""
    assert probe(("--version",))["stdout"].strip() == f"sam-bench {__version__}"
    assert probe(("run", "edges", "--help"))["stdout"].startswith("usage: sam-bench run edges")
    assert "--grounder" in probe(("run", "text-to-mask", "--help"))["stdout"]
    models = probe(("models", "list"))["stdout"]
    for name in installed("models"):
        assert f"| {name} " in models, name
    grabcut = next(line for line in models.splitlines() if line.startswith("| grabcut "))
    assert [c.strip() for c in grabcut.split("|")[2:7]] == ["promptable", "classical", "-", "opencv",
                                                           "max_side, iters, sure_radius, probable_radii, seed"]
    sam2 = next(line for line in models.splitlines() if line.startswith("| sam2 "))
    assert "t 39.0M, s 46.1M, b+ 80.9M, l 224.4M" in sam2  # the card's parameter counts
    tasks = probe(("tasks", "list"))["stdout"]
    for name in run_names():
        assert name in tasks, name
    assert "BSDS500" in probe(("datasets", "list"))["stdout"]


def test_text_table_lays_out_as_pandas():
    """``datasets list`` prints what ``DataFrame(rows).to_string(index=False)`` printed."""
    import pandas as pd

    from sam_bench.data.commands import text_table

    rows = [{"name": "BSDS500", "sa23": "", "tasks": "edges", "where": "/data/BSDS500"},
            {"name": "LVIS_v0.5_val100", "sa23": "yes", "tasks": "instances,proposals", "where": ""},
            {"name": "x", "sa23": "", "tasks": "", "where": "needs prepare"}]
    assert text_table(rows) == pd.DataFrame(rows).to_string(index=False)


def test_lazy_names_still_work():
    """``sam_bench.models`` names load on access; the class default dtype still reads torch.float32."""
    import torch

    import sam_bench.models as models
    from sam_bench.models.base import ModelInfo, PromptableModel

    assert models.build_model is models.base.build_model
    assert PromptableModel.dtype is torch.float32
    model = PromptableModel(ModelInfo("m"))
    assert model.dtype is torch.float32
    model.dtype = torch.bfloat16  # what an adapter built with --dtype bf16 does
    assert model.dtype is torch.bfloat16 and PromptableModel.dtype is torch.float32
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        models.nope  # noqa: B018
