"""Text grounders for the text-to-mask task: referring expression -> box, points or mask (see ``base``)."""

from sam_bench.grounders.base import Grounder, Grounding, Query, build_grounder, phrase_id

__all__ = ["Grounder", "Grounding", "Query", "build_grounder", "phrase_id"]
