"""Time a block of work on a device: CUDA events on a GPU, ``perf_counter`` elsewhere.

    with Stopwatch(device) as sw:
        model.set_image(image)
    sw.seconds

On CUDA the two events are recorded on the current stream and the end one is waited for, so the
time covers the kernels the block queued (not just their launch). ``StageTimes`` sums such blocks
per named stage (encoder, decoder, post-processing, metric) for ``results.json``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class Stopwatch:
    def __init__(self, device: torch.device | str | None = None):
        import torch

        self.cuda = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        if self.cuda:
            import torch

            self._start, self._end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self._end.record()
            self._end.synchronize()
            self.seconds = self._start.elapsed_time(self._end) / 1e3
        else:
            self.seconds = time.perf_counter() - self._t0


class StageTimes:
    """Seconds and calls per stage; state kept explicit so ranks and resumed runs can add up."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, stage: str, seconds: float, calls: int = 1) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.calls[stage] = self.calls.get(stage, 0) + calls

    def as_dict(self) -> dict:
        return {s: {"seconds": round(t, 4), "calls": self.calls[s]} for s, t in self.seconds.items()}
