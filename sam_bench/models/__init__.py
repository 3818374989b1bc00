"""Model adapters: every model, learned or classical, behind the interfaces in ``base``."""

from sam_bench.models.base import EdgeModel, ModelInfo, Prediction, PromptableModel, ProposalModel, build_model

__all__ = ["EdgeModel", "ModelInfo", "Prediction", "PromptableModel", "ProposalModel", "build_model"]
