"""Learning-rate schedules, by iteration (never by epoch).

``step`` is He et al. §4.2: lr 0.1, divided by 10 at 32k and 48k iterations.  For 110
layers and deeper §4.2 adds a warm-up: "we use 0.01 to warm up the training until the
training error is below 80% (about 400 iterations), and then go back to 0.1".  The
warm-up ends on the training error, not on a fixed iteration, and afterwards the rate
really returns to 0.1 (a popular reimplementation stays at 0.01 instead).
"""

from __future__ import annotations

import math
from collections import deque

from reslab.training.config import TrainConfig


class LRSchedule:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.warming = cfg.warmup_lr is not None
        self.warmup_ended_at: int | None = None
        self._recent: deque[float] = deque(maxlen=cfg.warmup_window)

    def lr(self, it: int) -> float:
        """The learning rate for iteration ``it`` (0-based)."""
        c = self.cfg
        if self.warming:
            return c.warmup_lr
        if c.schedule == "step":
            return c.lr * 0.1 ** sum(1 for m in c.milestones if it >= m)
        if c.schedule == "constant":
            return c.lr
        t = min(it, c.iterations) / c.iterations
        if c.schedule == "cosine":
            return 0.5 * c.lr * (1 + math.cos(math.pi * t))
        # onecycle: linear rise from lr/25 to lr over onecycle_pct, then linear decay to ~0.
        rise = c.onecycle_pct
        if t < rise:
            return c.lr * (0.04 + 0.96 * t / rise)
        return c.lr * max(1e-3, (1 - t) / (1 - rise))

    @property
    def needs_train_error(self) -> bool:
        return self.warming

    def observe(self, it: int, train_error: float) -> None:
        """Feed iteration ``it``'s training error; ends the warm-up once the mean over the
        last ``warmup_window`` iterations is below ``warmup_until_error``."""
        if not self.warming:
            return
        self._recent.append(float(train_error))
        if len(self._recent) == self._recent.maxlen and sum(self._recent) / len(self._recent) < self.cfg.warmup_until_error:
            self.warming = False
            self.warmup_ended_at = it

    def state_dict(self) -> dict:
        return {"warming": self.warming, "warmup_ended_at": self.warmup_ended_at, "recent": list(self._recent)}

    def load_state_dict(self, state: dict) -> None:
        self.warming = bool(state["warming"])
        self.warmup_ended_at = state["warmup_ended_at"]
        self._recent = deque((float(v) for v in state["recent"]), maxlen=self.cfg.warmup_window)
