"""How many prompts a promptable model decodes per call: fixed per device, or measured (``BatchTuner``)."""

from __future__ import annotations

# Prompts per decoder call on devices where the largest batch is fastest per prompt. Elsewhere (CPU)
# the best batch depends on the cores and their load (one 2-core probe: 40 ms per prompt one at a
# time, 110 ms at 64; under load the opposite), so it is measured on the run's own work (BatchTuner).
PROMPT_BATCH = {"cuda": 64}
BATCH_CANDIDATES = (1, 4, 16, 64)
UNTUNED_BATCH = 4  # used until the tuner has measured every candidate


class BatchTuner:
    """Chooses the prompts per decoder call by timing the real work, wasting no decode.

    The first chunk warms up and is not timed; then each candidate batch decodes chunks of real
    prompts until it has covered ``probe`` prompts; the candidate with the least time per prompt
    is then used for every later call. A candidate larger than the prompts left in a call waits
    for a bigger call. State is explicit: ``seconds`` / ``prompts`` per candidate, ``best``.
    """

    def __init__(self, candidates: tuple[int, ...] = BATCH_CANDIDATES, probe: int = 16):
        self.candidates, self.probe = tuple(candidates), probe
        self.seconds = {b: 0.0 for b in self.candidates}
        self.prompts = {b: 0 for b in self.candidates}
        self.warm = False
        self.best: int | None = None

    def next_chunk(self, remaining: int) -> int:
        """Prompts for the next decoder call, with ``remaining`` prompts left in this call."""
        if self.best is not None:
            return self.best
        if not self.warm:
            return min(UNTUNED_BATCH, remaining)
        for b in self.candidates:
            if self.prompts[b] < max(self.probe, b) and b <= remaining:
                return b
        measured = [b for b in self.candidates if self.prompts[b] and b <= remaining]
        return min(measured, key=self.ms_per_prompt) if measured else min(UNTUNED_BATCH, remaining)

    def record(self, batch: int, seconds: float) -> None:
        """Time of one decoder call of ``batch`` prompts chosen by ``next_chunk``."""
        if self.best is not None:
            return
        if not self.warm:
            self.warm = True
            return
        if batch in self.prompts:
            self.seconds[batch] += seconds
            self.prompts[batch] += batch
        if all(self.prompts[b] >= max(self.probe, b) for b in self.candidates):
            self.best = min(self.candidates, key=self.ms_per_prompt)

    def ms_per_prompt(self, batch: int) -> float:
        return 1e3 * self.seconds[batch] / self.prompts[batch] if self.prompts[batch] else float("inf")

    def as_dict(self) -> dict:
        return {"chosen": self.best, "ms_per_prompt": {str(b): round(self.ms_per_prompt(b), 3)
                                                       for b in self.candidates if self.prompts[b]}}
