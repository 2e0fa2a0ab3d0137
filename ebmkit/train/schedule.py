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
        total: Steps of the whole run ``S``; needed by every schedule but a constant one
            without warm-up.

    Raises:
        ConfigError: an unknown name, a negative warm-up, or a total the schedule cannot use.
    """

    def __init__(self, name: str = "constant", warmup: int = 0, total: int | None = None) -> None:
        self.check(name, warmup)
        if self.needs_total(name, warmup) and (total is None or total <= warmup):
            raise ConfigError(
                f"schedule {name!r} with {warmup} warm-up steps needs the run's number of "
                f"steps, more than the warm-up; got {total!r} (data without a len() cannot "
                f"be scheduled: use schedule='constant')")
        self.name, self.warmup, self.total = name, warmup, total

    @staticmethod
    def check(name: str, warmup: int) -> None:
        """Raise a ``ConfigError`` for an unknown name or a bad warm-up (no total needed)."""
        if name not in SCHEDULES:
            raise ConfigError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {name!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(f"warmup: expected a number of steps >= 0, got {warmup!r}")

    @staticmethod
    def needs_total(name: str, warmup: int) -> bool:
        """Whether the schedule depends on the step at all (and so on the run's length)."""
        return name != "constant" or warmup > 0

    @property
    def active(self) -> bool:
        """False for the constant schedule without warm-up: the rates are never touched."""
        return self.needs_total(self.name, self.warmup)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.name == "constant":
            return 1.0
        assert self.total is not None
        p = min(1.0, (step - self.warmup) / (self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * p)) if self.name == "cosine" else 1.0 - p

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, warmup={self.warmup}, total={self.total})"
