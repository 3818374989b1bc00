"""Shared fixtures. The real data root is ``$SAM_BENCH_DATA`` or ``../shared/data`` beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_root() -> Path | None:
    env = os.environ.get("SAM_BENCH_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root; tests that need it are skipped where it is absent."""
    root = real_data_root()
    if root is None:
        pytest.skip("real data root not found (set SAM_BENCH_DATA or provide ../shared/data)")
    return root
