"""CI regression check: a quick reproduce must match the baselines committed under results/baseline/.

Runs ``scripts/ci_regression.sh`` (synthetic scenes, and the real data when the data root exists),
which compares every metric with ``sam-bench compare`` and the tolerances in
``results/baseline/tolerances.toml``. After an intended change of numbers, regenerate the baselines
with ``scripts/ci_regression.sh --update`` and commit them (docs/ci.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO, real_data_root


def test_quick_reproduce_matches_committed_baselines(tmp_path):
    data = real_data_root()
    env = {**os.environ, "SAM_BENCH": f"{sys.executable} -m sam_bench", "SAM_BENCH_CACHE": str(tmp_path / "cache"),
           "SAM_BENCH_DATA": str(data) if data else str(tmp_path / "no-data"), "MPLBACKEND": "Agg"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "ci_regression.sh"), str(tmp_path / "work")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    report = proc.stdout[-8000:] + proc.stderr[-4000:]
    assert proc.returncode != 2, "runs not comparable with the committed baselines:\n" + report
    assert proc.returncode == 0, "a metric moved beyond its tolerance (scripts/ci_regression.sh --update " \
                                 "after an intended change):\n" + report
