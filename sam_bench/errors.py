"""Exceptions with messages meant for users: each names the file, argument or item at fault."""


class SamBenchError(Exception):
    """Base class; the CLI prints these without a traceback and exits 2."""


class BadInput(SamBenchError):
    """An item cannot be used (corrupt image, missing or empty annotation).

    The runner records it as a skip with this message as the reason; it never stops a run.
    """


class ConfigError(SamBenchError):
    """A bad argument, preset, or an unknown name."""


class CheckpointError(SamBenchError):
    """A checkpoint is missing, has the wrong hash, or does not fit the architecture."""


class NotBuilt(SamBenchError):
    """A registered capability whose implementation is not available in this install."""
