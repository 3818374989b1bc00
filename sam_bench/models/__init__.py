"""Model adapters: every model, learned or classical, behind the interfaces in ``base``.

The names below are loaded from ``base`` on first access (PEP 562), so importing a submodule such
as ``sam_bench.models.checkpoints`` (``sam-bench models``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EdgeModel", "ModelInfo", "Prediction", "PromptableModel", "ProposalModel", "build_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("sam_bench.models.base"), name)
    raise AttributeError(f"module 'sam_bench.models' has no attribute {name!r}")
