"""The storing strategies of the Hopfield memories: ``Store`` (``hopfield``) and their shared
base ``_StoreStrategy`` (also ``HebbianStore`` in ``classical``). Re-exported by ``hopfield``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

import ebmkit as ek

if TYPE_CHECKING:
    from .hopfield import ModernHopfield

__all__ = ["Store"]


class _StoreStrategy(ek.strategies.Strategy):
    """What the storing strategies share (``Store`` here, ``HebbianStore`` in
    ``classical``): whether a fit has started storing, the only state they checkpoint (the
    first batch of a fit replaces the memory, later ones are appended)."""

    def __init__(self) -> None:
        self.started = False

    def state_dict(self) -> dict[str, Any]:
        return {"started": self.started}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.started = bool(state.get("started", False))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Store(_StoreStrategy):
    """Training by storing: the memory is the data (an Architectural strategy: capacity is
    what is stored, nothing is learned by gradient).

    The first batch of a fit replaces the memory (``store``), later batches are appended,
    skipping rows already stored (exact identity, within a batch too: ``distinct_rows``), so
    one epoch stores each distinct training row once and further epochs change nothing.
    Logs ``e_pos``, the batch's mean energy after storing (each stored pattern sits near a
    minimum). Costs one host copy of each batch (to hash its rows):
    what is new is a data-dependent size, so storing cannot avoid the host.
    """

    def __call__(self, model: ModernHopfield, batch: dict[str, Tensor]) -> ek.StepOutput:
        # distributed: every rank stores the union of the ranks' batches (one memory)
        y = ek.train.distributed.all_gather_cat(batch["y"].detach(), ragged=True)
        if not self.started:
            model.store(y[:1])  # then the rest of the batch, each distinct row once
            self.started = True
            if len(y) > 1:
                model.append(y[1:], distinct=True)
        else:
            model.append(y, distinct=True)
        with torch.no_grad():
            e = model.energy(y.to(model.memory.dtype)).mean()
        return ek.StepOutput(e, {"e_pos": e, "stored": torch.tensor(float(model.size))})
