"""Exponential moving averages of a network's weights: target networks (MoCo's key encoder,
BYOL's target), averaged generators (GANs) and averaged encoders for evaluation."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ema_"]


@torch.no_grad()
def ema_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    r"""In place, $\bar\theta \leftarrow m\,\bar\theta + (1 - m)\,\theta$ for every parameter
    of ``target`` and the matching one of ``online`` (one fused ``lerp`` per tensor list);
    buffers (batch-norm statistics) are copied, not averaged.

    Args:
        target: The averaged copy (usually ``copy.deepcopy(online)`` with
            ``requires_grad_(False)``).
        online: The network being trained; the same architecture as ``target``.
        momentum: $m \in [0, 1]$: 0 copies ``online``, 1 leaves ``target`` as it is.
    """
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if len(t_params) != len(o_params):
        from ..errors import ConfigError

        raise ConfigError(f"ema_: target has {len(t_params)} parameters and online "
                          f"{len(o_params)}; expected two copies of one architecture")
    if t_params:
        torch._foreach_lerp_(t_params, [p.detach() for p in o_params], 1.0 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
