"""sam-bench: zero-shot evaluation of Segment Anything and its family."""

__version__ = "0.1.0"
