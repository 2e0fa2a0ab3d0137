"""Per-epoch bookkeeping without per-step host syncs: sums, means and the non-finite check.

The training loop appends each step's detached loss, batch size and logs to the
[`EpochMonitor`][ebmkit.train.monitor.EpochMonitor]'s window (plain list appends: no
device work). Every ``check_every`` steps and at the end of the epoch,
[`check`][ebmkit.train.monitor.EpochMonitor.check] folds the window into running sums on
the device and reads them back — one host sync. NaN and infinity survive summation, so the
sums are finite exactly when every value so far was; only when they are not is the window
searched for the first bad step. The sums are float64 (float32 on MPS, which lacks float64),
so a finite loss cannot overflow them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .distributed import Dist

__all__ = ["EpochMonitor"]


class EpochMonitor:
    """Sample-weighted sums of the loss and of every log over one epoch attempt.

    Args:
        device: Where the sums live (the training device).
        dist: The run's processes: the sums read back at a check are global.
        start: The global step before the epoch's first step.
        who: The strategy's name, for error messages.

    Attributes:
        losses, sizes, logs: The window: per-step detached losses, batch sizes and log dicts.
        bad_step: The global step (1-based) of the first non-finite value, once found.
        totals, counts: Global sums and sample counts of ``[loss, *logs]`` at the last check.
        keys: The log names, in the order of ``totals[1:]``.
    """

    def __init__(self, device: torch.device, dist: Dist, start: int, who: str) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.device, self.dist, self.start, self.who = device, dist, start, who
        self.losses: list[Tensor] = []
        self.sizes: list[int] = []
        self.logs: list[Mapping[str, Any]] = []
        self.loss_sum = torch.zeros((), device=device, dtype=self.dtype)
        self.n = 0
        self.log_sums: dict[str, Tensor] = {}
        self.log_n: dict[str, int] = {}
        self.bad_step: int | None = None
        self.totals: list[float] = []
        self.counts: list[float] = []
        self.keys: list[str] = []

    def check(self, step: int, extra: Tensor | None = None) -> bool:
        """Fold the window into the sums and read them back (every rank must call it).

        Args:
            step: The global step now, where the next window starts.
            extra: A scalar read back with the sums that fails the check when non-finite,
                charged to the window's last step (the trainer's parameter check).

        Returns:
            True when every value so far is finite; otherwise ``bad_step`` is set.
        """
        k = len(self.losses)
        losses: Tensor | None = None
        per_key: dict[str, tuple[list[int], Tensor]] = {}
        if k:
            losses = torch.stack(self.losses).to(self.dtype)
            w = torch.tensor(self.sizes, dtype=self.dtype).to(self.device, non_blocking=True)
            self.loss_sum = self.loss_sum + losses @ w
            self.n += sum(self.sizes)
            per_key = self._fold_logs(w)
        keys = sorted(self.log_sums)
        parts = [self.loss_sum, *(self.log_sums[key] for key in keys)]
        m = len(parts)
        if extra is not None:
            parts.append(extra.to(self.dtype))
        sums = torch.stack(parts)
        counts = [float(self.n), *(float(self.log_n[key]) for key in keys)]
        if self.dist.enabled:  # global sums: every rank sees the same flag and means
            packed = torch.cat([sums, torch.tensor(counts, dtype=self.dtype, device=self.device)])
            values = self.dist.all_reduce(packed).tolist()
            everything, counts = values[: len(sums)], values[len(sums):]
        else:
            everything = sums.tolist()
        self.totals, self.counts, self.keys = everything[:m], counts, keys
        ok = all(math.isfinite(v) for v in everything)
        if not ok:
            self.bad_step = self.start + self._first_bad(k, losses, per_key) + 1
        self.losses.clear()
        self.sizes.clear()
        self.logs.clear()
        self.start = step
        return ok

    def running_loss(self) -> float:
        """The mean loss at the last check (NaN before any)."""
        return self.totals[0] / self.counts[0] if self.counts and self.counts[0] else math.nan

    def means(self) -> dict[str, float]:
        """The mean of every log at the last check, by name."""
        return {key: total / n if n else math.nan
                for key, total, n in zip(self.keys, self.totals[1:], self.counts[1:])}

    def _fold_logs(self, w: Tensor) -> dict[str, tuple[list[int], Tensor]]:
        per_key: dict[str, list[tuple[int, Any]]] = {}
        for i, logs in enumerate(self.logs):
            for key, value in logs.items():
                per_key.setdefault(key, []).append((i, value))
        out: dict[str, tuple[list[int], Tensor]] = {}
        for key, items in per_key.items():
            try:
                vals = self._stack_scalars([v for _, v in items])
            except (RuntimeError, TypeError, ValueError) as exc:
                raise ConfigError(f"strategy {self.who} logged {key!r} as something other than "
                                  f"a scalar tensor: {exc}") from exc
            idx = [i for i, _ in items]
            if len(items) == len(self.logs):  # the usual case: logged at every step
                wk, count = w, sum(self.sizes)
            else:
                wk, count = w[idx], sum(self.sizes[i] for i in idx)
            total = vals @ wk
            self.log_sums[key] = self.log_sums[key] + total if key in self.log_sums else total
            self.log_n[key] = self.log_n.get(key, 0) + count
            out[key] = (idx, vals)
        return out

    def _stack_scalars(self, values: list[Any]) -> Tensor:
        """``[n]`` in the sums' dtype from scalar tensors (or numbers) of one log key."""
        if all(isinstance(v, Tensor) and v.dim() == 0 and v.device == self.device
               for v in values):
            return torch.stack(values).to(self.dtype)  # the usual case: one call
        return torch.stack([torch.as_tensor(v, device=self.device).reshape(())
                            for v in values]).to(self.dtype)

    def _first_bad(self, k: int, losses: Tensor | None,
                   per_key: Mapping[str, tuple[list[int], Tensor]]) -> int:
        """Index in the window of the first non-finite loss or log (the minimum over ranks)."""
        first = k
        if losses is not None:
            bad = ~torch.isfinite(losses)
            for idx, vals in per_key.values():
                bad[idx] |= ~torch.isfinite(vals)
            hits = bad.nonzero()
            if len(hits):
                first = int(hits[0, 0])
        if self.dist.enabled:
            status = torch.tensor([-float(first)], device=self.device)
            first = int(-self.dist.all_reduce(status, op="max").item())
        return min(first, max(k - 1, 0))  # sums that overflowed without a bad value: the last
