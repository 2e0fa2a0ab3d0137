"""Training strategies: the four ways to shape an energy surface.

A strategy turns a batch into a loss: ``strategy(model, batch) -> StepOutput(loss, logs)``,
where ``logs`` holds detached scalars (``e_pos``, ``e_neg``, per-term energies, …). It is a
plain object, not a hook: pluggy stays out of the inner loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from .model import EnergyModel

__all__ = ["StepOutput", "Strategy"]


@dataclass
class StepOutput:
    """What one training step produced.

    Attributes:
        loss: The scalar to minimise (with its graph).
        logs: Detached scalar tensors to report, e.g. ``{"e_pos": ..., "e_neg": ...}``. Kept
            as tensors so logging needs no device sync inside the loop.
    """

    loss: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


class Strategy:
    """Base class: ``__call__(model, batch) -> StepOutput``.

    ``batch`` is a dict with at least ``"y"`` (and ``"x"`` for conditional models).
    Strategies with state that must survive a checkpoint (a replay buffer, a step counter)
    implement ``state_dict()`` / ``load_state_dict()``.
    """

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
