"""The built wheel works without the repository: presets and dataset cards travel inside it.

Builds the wheel, installs it into a fresh venv (its dependencies are borrowed from this venv's
site-packages through a ``.pth`` line, so nothing is downloaded), and runs the installed
``sam-bench`` from a folder outside the repository: ``datasets list``, ``tasks list``, a
``reproduce --quick`` of one preset, and one ``run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding only the wheel (plus this venv's dependencies on its path)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(REPO)], check=True, env=env, cwd=tmp)
    wheel = next((tmp / "dist").glob("sam_bench-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, env=env, cwd=tmp)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def sam_bench(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([str(bin_dir / "sam-bench"), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)


def test_installed_package_is_the_wheel(installed, tmp_path):
    out = subprocess.run([str(installed / "python"), "-c", "import sam_bench, sam_bench.config as c; "
                          "print(sam_bench.__file__); print(c.preset_dirs()[0])"],
                         capture_output=True, text=True, cwd=tmp_path, check=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).stdout.split()
    assert str(installed.parent) in out[0] and str(REPO) not in out[0]
    assert out[1].endswith("_presets") and (Path(out[1]) / "tasks" / "edges.toml").is_file()


def test_wheel_lists_datasets_and_tasks(installed, tmp_path):
    res = sam_bench(installed, "datasets", "list", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "GrabCut" in res.stdout and "BSDS500" in res.stdout and "LVIS_v0.5_val100" in res.stdout
    res = sam_bench(installed, "tasks", "list", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "single-point" in res.stdout and "instances_coco" in res.stdout


def test_wheel_reproduce_quick_and_run(installed, tmp_path):
    res = sam_bench(installed, "reproduce", "--quick", "--tasks", "edges", "--no-progress", "--out",
                    str(tmp_path / "rep"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 runs done" in res.stdout
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Table 3" in report and "canny" in report
    res = sam_bench(installed, "run", "edges", "--model", "sobel", "--dataset", "synthetic", "--limit", "1",
                    "--no-progress", "--out",
                    str(tmp_path / "run"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["datasets"]["synthetic"]["num_items"] == 1 and results["metrics"]["ods"] > 0
