"""The Python API document runs as written: its python blocks are executed in order, in a fresh folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_python_api_doc_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(REPO / "docs" / "python-api.md")
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "python_api_doc"}
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), scope)
    res = scope["results"]
    assert res["datasets"]["synthetic"]["num_items"] == 4 and 0 < res["metrics"]["miou_1"] < 100
    saved = json.loads((tmp_path / "runs" / "disk" / "results.json").read_text())
    assert saved["model"]["name"] == "disk" and saved["model"]["radius"] == 12
    cli = json.loads((tmp_path / "runs" / "disk-cli" / "results.json").read_text())
    assert cli["model"]["name"] == "disk" and cli["datasets"]["synthetic"]["num_items"] == 2
    # a model without scores or low-res logits still yields every single-point metric
    assert {"miou_1", "miou_2", "noc85"} <= set(cli["datasets"]["synthetic"]["metrics"])


def test_plugin_module_registers_a_model_for_the_shell(tmp_path):
    """``sam-bench --plugin MODULE``: a model registered by a user's module is usable by name."""
    import os
    import subprocess
    import sys

    model_code = python_blocks(REPO / "docs" / "python-api.md")[0]
    (tmp_path / "my_models.py").write_text(model_code + "\nfrom sam_bench import registry\n"
                                           "registry.register('models', 'disk', lambda **kw: DiskModel())\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-m", "sam_bench", "--plugin", "my_models", "run", "single-point",
                          "--model", "disk", "--dataset", "synthetic", "--limit", "1", "--max-clicks", "1",
                          "--clicks", "1", "--out", str(tmp_path / "out"), "--no-progress"],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-1500:]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["model"]["name"] == "disk"
    bad = subprocess.run([sys.executable, "-m", "sam_bench", "--plugin", "no_such_module", "--help"],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "--plugin no_such_module: cannot import it" in bad.stderr


def test_model_without_optional_outputs_on_box_tasks(tmp_path):
    """No iou_scores and no low_res_logits: instances runs unrefined and says so; AMG refuses by name."""
    from sam_bench.errors import ConfigError
    from sam_bench.runner import run_task

    scope: dict = {}
    exec(compile(python_blocks(REPO / "docs" / "python-api.md")[0], "python-api.md", "exec"), scope)
    res = run_task("instances", scope["DiskModel"](radius=10), datasets=["synthetic"], out=tmp_path / "inst",
                   limit=2, boxes="gt", progress=False)
    assert res["failures"] == [] and res["datasets"]["synthetic"]["num_items"] == 2
    lines = [json.loads(s) for s in (tmp_path / "inst" / "items.jsonl").read_text().splitlines()]
    assert all(ln["record"].get("refine_skipped") for ln in lines)
    with pytest.raises(ConfigError, match="returns no iou_scores"):
        run_task("proposals", scope["DiskModel"](), datasets=["synthetic"], out=tmp_path / "prop", limit=1,
                 progress=False)
