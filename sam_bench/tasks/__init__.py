"""Task plugins: each wires dataset -> prompts -> runner -> records -> metric for one experiment."""

from sam_bench.tasks.base import Task

__all__ = ["Task"]
