"""What one run of the recipe measured: the ``Result`` that ``pipeline.run`` fills and
``report.write_report`` turns into Markdown (its own module, so neither imports the other)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Result"]


@dataclass
class Result:
    """What ``pipeline.run`` measured; ``report.write_report`` turns it into Markdown, PNGs."""

    config: dict[str, Any]
    returns: dict[str, list[float]] = field(default_factory=dict)  # per controller
    dream_return: float = math.nan  # V+M controller's mean return in M's dream
    vision_losses: list[float] = field(default_factory=list)
    vision_test: dict[str, float] = field(default_factory=dict)  # held-out free energy, baseline
    memory_history: dict[str, list[float]] = field(default_factory=dict)
    memory_test: dict[str, float] = field(default_factory=dict)  # held-out NLL, baseline
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)  # real searches
    dream_searches: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames_collected: int = 0
    episodes_collected: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)

    def mean(self, who: str) -> float:
        return float(np.mean(self.returns[who])) if who in self.returns else math.nan
