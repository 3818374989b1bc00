"""Progress of a long loop: a tqdm bar in a terminal, plain log lines elsewhere (CI logs, files).

Outside a terminal a line is logged every ``every`` items (a tenth of the total by default) or every
``seconds`` (30), whichever comes first, with the count, the rate and the estimated time left.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("sam_bench")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(desc: str, done: int, total: int, elapsed: float) -> str:
    """``desc: 40/200 items (20%), 1.25 items/s, 2:08 left``."""
    rate = done / elapsed if elapsed > 0 else float("nan")
    left = (total - done) / rate if rate and math.isfinite(rate) and rate > 0 else float("nan")
    eta = _clock(left) if math.isfinite(left) else "?"
    return f"{desc}: {done}/{total} items ({100 * done / max(total, 1):.0f}%), {rate:.3g} items/s, {eta} left"


def track(items: Iterable[T], total: int, desc: str, mode: bool | None = None, *, every: int | None = None,
          seconds: float = 30.0) -> Iterator[T]:
    """Yield ``items``, showing progress. ``mode``: True bar, False nothing, None: bar on a tty, else log lines."""
    if mode is False:
        yield from items
        return
    if mode is None and not sys.stderr.isatty():
        every = every or max(1, math.ceil(total / 10))
        t0 = last = time.perf_counter()
        done = 0
        for item in items:
            yield item
            done += 1
            now = time.perf_counter()
            if done == total or done % every == 0 or now - last >= seconds:
                log.info("%s", progress_line(desc, done, total, now - t0))
                last = now
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="img", leave=False)
