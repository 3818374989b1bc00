"""An exclusive lock on a run directory, so two runs never write into one ``--out`` at once.

``OUT/.sam-bench.lock`` is held with ``fcntl.flock`` for the life of the run; the kernel releases
it when the process dies, so a crashed run never leaves a stale lock. The file records the pid and
host of the holder, for the message the second run prints.
"""

from __future__ import annotations

import fcntl
import os
import platform
from pathlib import Path

from sam_bench.errors import ConfigError

LOCK_NAME = ".sam-bench.lock"


class RunLock:
    """Context manager: ``with RunLock(out): ...``; ``ConfigError`` if another process holds it."""

    def __init__(self, out: str | os.PathLike, enabled: bool = True):
        self.path = Path(out) / LOCK_NAME
        self.enabled = enabled
        self._fh = None

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"{self.path.parent} is in use by another sam-bench run ({holder}); wait for it to "
                              f"finish or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
