"""BatchNorm over the global batch: ``Trainer(sync_batchnorm=True)``.

PyTorch's ``nn.SyncBatchNorm`` runs only on accelerators; this module's
[`GlobalBatchNorm`][ebmkit.train.syncbn.GlobalBatchNorm] runs on any device and backend
(gloo included). In training, under an initialised process group, each rank sums its
``x`` and ``x²`` per channel and the counts; one differentiable all-reduce
(``torch.distributed.nn.functional.all_reduce``, whose backward all-reduces the gradients)
gives every rank the global batch's mean and biased variance, which normalise ``x``
exactly as one process would on the union of the ranks' batches. The running statistics
take the unbiased variance, as ``nn.BatchNorm`` does. Alone, or in eval mode, it is plain
BatchNorm. The variance is E[x²] − E[x]², computed in float32 (or the input's wider dtype);
it differs from BatchNorm's two-pass variance by rounding only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GlobalBatchNorm", "convert"]


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of every rank's batch together."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x: Tensor) -> Tensor:
        dist = torch.distributed
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        count = torch.full((1,), x.numel() / x.shape[1], dtype=work.dtype, device=x.device)
        sums = all_reduce(torch.cat([work.sum(dims), work.square().sum(dims), count]))
        c = x.shape[1]
        n = sums[2 * c]
        mean, var = sums[:c] / n, (sums[c : 2 * c] / n - (sums[:c] / n).square()).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (work - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert(model: nn.Module) -> int:
    """Replace every ``BatchNorm1d/2d/3d`` under ``model`` by a
    [`GlobalBatchNorm`][ebmkit.train.syncbn.GlobalBatchNorm] holding the same weights and
    running statistics (in place). Returns how many were replaced."""
    replaced = 0
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats, device=_device(child))
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(model, name, new)
            replaced += 1
        else:
            replaced += convert(child)
    return replaced


def _device(m: nn.Module) -> torch.device | None:
    for t in (*m.parameters(), *m.buffers()):
        return t.device
    return None
