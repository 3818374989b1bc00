"""Fidelity: our ODS / OIS / AP within 0.003 of pyEdgeEval's on the same saved maps (test-only dep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_matches_pyedgeeval_on_real_maps(data_root):
    pytest.importorskip("pyEdgeEval")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "crosscheck_pyedgeeval.py"), "--data-root",
                          str(data_root), "--images", "2", "--thresholds", "9", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["images"] == 2
    for k in ("ods", "ois", "ap"):
        assert abs(report["diff"][k]) <= 0.003, report
    assert 0.3 < report["ours"]["ods"] < 0.9
