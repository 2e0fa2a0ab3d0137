"""Learning-rate schedules: the factor the trainer multiplies its base learning rates by at
each optimizer step.

A schedule is a pure function of the step, so it needs no state of its own: a resumed run,
or an epoch the divergence guard replays, lands on the same rates because the trainer
checkpoints its step and its base rates (which the guard lowers on a retry).
"""

from __future__ import annotations

import math

from ..errors import ConfigError

__all__ = ["SCHEDULES", "Schedule"]

SCHEDULES = ("constant", "cosine", "linear")
"""The schedules by name: ``constant`` (the base rate throughout), ``cosine`` (half a cosine
from the base rate down to 0 over the run), ``linear`` (a straight line down to 0)."""


class Schedule:
    r"""The factor $f(s)$ of the base learning rate at optimizer step $s$ (0-based) of
    ``total`` steps, after a linear warm-up of ``warmup`` steps:

    $$ f(s) = \frac{s + 1}{W} \ (s < W), \qquad
       f(s) = d\Big(\frac{s - W}{S - W}\Big) \ (s \ge W), $$

    with $d(p) = 1$ (constant), $\tfrac12(1 + \cos \pi p)$ (cosine) or $1 - p$ (linear).

    Args:
        name: One of [`SCHEDULES`][ebmkit.train.schedule.SCHEDULES].
        warmup: Warm-up steps ``W`` (0 for none).
        total: Steps of the whole run ``S``; needed by the decaying schedules. A warm-up
            as long as the run or longer leaves the whole run on the ramp.

    Raises:
        ConfigError: an unknown name, a negative warm-up, or a decaying schedule without a
            total.
    """

    def __init__(self, name: str = "constant", warmup: int = 0, total: int | None = None) -> None:
        self.check(name, warmup)
        if name != "constant" and total is None:
            raise ConfigError(
                f"schedule {name!r} decays over the run, so it needs the run's number of "
                f"steps; got None (data without a len() cannot be scheduled: use "
                f"schedule='constant', with or without warm-up)")
        self.name, self.warmup, self.total = name, warmup, total

    @staticmethod
    def check(name: str, warmup: int) -> None:
        """Raise a ``ConfigError`` for an unknown name or a bad warm-up (no total needed)."""
        if name not in SCHEDULES:
            raise ConfigError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {name!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(f"warmup: expected a number of steps >= 0, got {warmup!r}")

    @property
    def active(self) -> bool:
        """False for the constant schedule without warm-up: the rates are never touched."""
        return self.name != "constant" or self.warmup > 0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.name == "constant":
            return 1.0
        assert self.total is not None
        # (a warm-up as long as the run never gets here: the run is all ramp)
        p = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * p)) if self.name == "cosine" else 1.0 - p

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, warmup={self.warmup}, total={self.total})"
