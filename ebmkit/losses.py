r"""Losses over energies: the catalogue of LeCun et al. (2006), *A Tutorial on Energy-Based
Learning*.

Every loss takes the energies of the correct answers, ``e_pos`` ($E_+$, shape ``[B]``), and
of the negatives, ``e_neg`` ($E_-$, shape ``[B]`` or ``[B, K]`` for K negatives per sample),
and returns a scalar: the mean over the batch (``reduction="sum"`` sums, ``"none"`` returns
the ``[B]`` per-sample losses). A good loss pushes $E_+$ down and $E_-$ up:
$\partial L / \partial E_+ \ge 0$ and $\partial L / \partial E_- \le 0$.

With ``[B, K]`` negatives, a loss is the mean of its per-negative losses over K, or with
``most_offending=True`` the loss against the lowest-energy negative $\min_k E_{-k}$ only
(``perceptron`` always uses the minimum; ``nll`` always uses every negative).

::

    ek.losses.hinge(e_pos, e_neg, margin=1.0)
    ek.losses.get_loss("nll")(e_pos, e_neg, temperature=0.1)     # InfoNCE
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as nnf
from torch import Tensor

from . import services
from .errors import ConfigError, UnknownNameError

__all__ = ["LOSSES", "energy", "get_loss", "hinge", "log", "nll", "perceptron", "square_exp",
           "square_square"]

_REDUCTIONS = ("mean", "sum", "none")


def _check(name: str, e_pos: Tensor, e_neg: Tensor | None, reduction: str,
           need_neg: bool = True) -> None:
    """Validate shapes, dtypes and devices; messages say what was expected and what came."""
    if not isinstance(e_pos, Tensor):
        raise ConfigError(f"{name}: e_pos must be a tensor of shape [B], got "
                          f"{type(e_pos).__name__}")
    if e_pos.dim() != 1:
        raise ConfigError(f"{name}: e_pos: expected shape [B] (one energy per sample), got "
                          f"{list(e_pos.shape)}")
    if not e_pos.is_floating_point():
        raise ConfigError(f"{name}: e_pos: expected a floating-point tensor, got {e_pos.dtype}")
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"{name}: reduction: expected one of {', '.join(_REDUCTIONS)}, got "
                          f"{reduction!r}")
    if e_neg is None:
        if need_neg:
            raise ConfigError(f"{name}: needs e_neg, the energies of negatives ([B] or [B, K]), "
                              f"got None")
        return
    b = e_pos.shape[0]
    if not isinstance(e_neg, Tensor):
        raise ConfigError(f"{name}: e_neg must be a tensor of shape [B] or [B, K], got "
                          f"{type(e_neg).__name__}")
    if e_neg.dim() not in (1, 2) or e_neg.shape[0] != b or 0 in e_neg.shape[1:]:
        raise ConfigError(f"{name}: e_neg: expected shape [B] or [B, K] with B={b}, got "
                          f"{list(e_neg.shape)}")
    if not e_neg.is_floating_point():
        raise ConfigError(f"{name}: e_neg: expected a floating-point tensor, got {e_neg.dtype}")
    if e_neg.device != e_pos.device:
        raise ConfigError(f"{name}: e_pos is on {e_pos.device} but e_neg is on {e_neg.device}; "
                          f"both must be on one device")


def _f32(t: Tensor | None) -> Tensor | None:
    """Half-precision energies (computed under autocast) in float32, so that squares,
    exponentials and log-sum-exps are formed in float32; others as they are (no copy)."""
    return t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _over_negatives(per_neg: Callable[[Tensor, Tensor], Tensor], e_pos: Tensor, e_neg: Tensor,
                    most_offending: bool) -> Tensor:
    """Per-sample loss ``[B]``: ``per_neg`` against each negative, averaged over K (or the min)."""
    e_pos, e_neg = _f32(e_pos), _f32(e_neg)
    if e_neg.dim() == 1:
        return per_neg(e_pos, e_neg)
    if most_offending:
        return per_neg(e_pos, e_neg.min(dim=1).values)
    return per_neg(e_pos.unsqueeze(1), e_neg).mean(dim=1)


def _positive(name: str, option: str, value: float, allow_zero: bool = False) -> float:
    if not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}: {option} must be {bound}, got {value!r}")
    return float(value)


def energy(e_pos: Tensor, e_neg: Tensor | None = None, *, reduction: str = "mean") -> Tensor:
    r"""Energy loss: $L = E_+$.

    Pushes the correct answer's energy down and nothing up: only safe when the architecture
    itself limits the volume of low energy (``Architectural``). ``e_neg`` is ignored.
    """
    _check("energy", e_pos, e_neg, reduction, need_neg=False)
    return _reduce(_f32(e_pos), reduction)


def perceptron(e_pos: Tensor, e_neg: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Generalised perceptron loss: $L = E_+ - \min_y E(y)$ over all answers.

    The minimum runs over the correct answer and the negatives, as in LeCun et al. (2006),
    so $L = E_+ - \min(E_+, \min_k E_{-k}) \ge 0$: zero when the correct answer has the
    lowest energy. No margin, so it may collapse.
    """
    _check("perceptron", e_pos, e_neg, reduction)
    e_pos, e_neg = _f32(e_pos), _f32(e_neg)
    lowest = e_neg if e_neg.dim() == 1 else e_neg.min(dim=1).values
    return _reduce(e_pos - torch.minimum(e_pos, lowest.to(e_pos.dtype)), reduction)


def hinge(e_pos: Tensor, e_neg: Tensor, *, margin: float = 1.0, most_offending: bool = False,
          reduction: str = "mean") -> Tensor:
    r"""Hinge loss: $L = [\,m + E_+ - E_-\,]_+$.

    Zero once every negative is at least $m$ above the correct answer.

    Args:
        margin: $m \ge 0$.
        most_offending: With ``[B, K]`` negatives, use only $\min_k E_{-k}$.
    """
    _check("hinge", e_pos, e_neg, reduction)
    m = _positive("hinge", "margin", margin, allow_zero=True)
    per = _over_negatives(lambda p, n: nnf.relu(m + p - n), e_pos, e_neg, most_offending)
    return _reduce(per, reduction)


def log(e_pos: Tensor, e_neg: Tensor, *, most_offending: bool = False,
        reduction: str = "mean") -> Tensor:
    r"""Log loss (soft hinge): $L = \log(1 + \exp(E_+ - E_-))$, computed as a stable softplus."""
    _check("log", e_pos, e_neg, reduction)
    per = _over_negatives(lambda p, n: nnf.softplus(p - n), e_pos, e_neg, most_offending)
    return _reduce(per, reduction)


def square_square(e_pos: Tensor, e_neg: Tensor, *, margin: float = 1.0,
                  most_offending: bool = False, reduction: str = "mean") -> Tensor:
    r"""Square-square loss: $L = E_+^2 + [\,m - E_-\,]_+^2$.

    For non-negative energies: pulls $E_+$ to 0 and $E_-$ above $m$.

    Args:
        margin: $m \ge 0$.
        most_offending: With ``[B, K]`` negatives, use only $\min_k E_{-k}$.
    """
    _check("square_square", e_pos, e_neg, reduction)
    m = _positive("square_square", "margin", margin, allow_zero=True)
    per = _over_negatives(lambda p, n: p.square() + nnf.relu(m - n).square(), e_pos, e_neg,
                          most_offending)
    return _reduce(per, reduction)


def square_exp(e_pos: Tensor, e_neg: Tensor, *, gamma: float = 1.0, most_offending: bool = False,
               reduction: str = "mean") -> Tensor:
    r"""Square-exponential loss: $L = E_+^2 + \gamma\, e^{-E_-}$.

    Args:
        gamma: $\gamma > 0$.
        most_offending: With ``[B, K]`` negatives, use only $\min_k E_{-k}$.
    """
    _check("square_exp", e_pos, e_neg, reduction)
    g = _positive("square_exp", "gamma", gamma)
    per = _over_negatives(lambda p, n: p.square() + g * torch.exp(-n), e_pos, e_neg,
                          most_offending)
    return _reduce(per, reduction)


def nll(e_pos: Tensor, e_neg: Tensor, *, temperature: float = 1.0,
        reduction: str = "mean") -> Tensor:
    r"""Negative log-likelihood over $\{y_+\} \cup \{y_{-k}\}$ (InfoNCE):

    $$ L = E_+ + T \log\Big(e^{-E_+/T} + \sum_k e^{-E_{-k}/T}\Big), $$

    This is $T$ times the cross-entropy of the logits $-E/T$ with the correct answer as
    class 0, i.e. $-T \log p_T(y_+)$ under the Gibbs distribution restricted to the
    candidates, and it is computed that way: PyTorch's fused, stable log-softmax is one pass
    over the $[B, 1 + K]$ logits where a separate logsumexp takes several (it made SimCLR's
    whole training step ~2 % faster). Always uses every negative; a negative at $+\infty$
    counts for nothing.

    Args:
        temperature: $T > 0$.
    """
    _check("nll", e_pos, e_neg, reduction)
    t = _positive("nll", "temperature", temperature)
    e_pos, e_neg = _f32(e_pos), _f32(e_neg)
    neg = e_neg if e_neg.dim() == 2 else e_neg.unsqueeze(1)
    logits = torch.cat([e_pos.unsqueeze(1), neg.to(e_pos.dtype)], dim=1).mul(-1.0 / t)  # [B, 1+K]
    target = torch.zeros(e_pos.shape[0], dtype=torch.long, device=e_pos.device)  # class 0: y+
    return t * nnf.cross_entropy(logits, target, reduction=reduction)


#: Every loss by name: ``energy``, ``perceptron``, ``hinge``, ``log``, ``square_square``,
#: ``square_exp``, ``nll``.
LOSSES: dict[str, Callable[..., Tensor]] = {
    "energy": energy,
    "perceptron": perceptron,
    "hinge": hinge,
    "log": log,
    "square_square": square_square,
    "square_exp": square_exp,
    "nll": nll,
}


def get_loss(name: str) -> Callable[..., Tensor]:
    """The loss called ``name``: one of ``LOSSES``, or one a plugin registered
    (``register_losses``). Raises [`UnknownNameError`][ebmkit.errors.UnknownNameError]
    (or [`DuplicateNameError`][ebmkit.errors.DuplicateNameError] for a name two plugins claim).
    """
    if not isinstance(name, str):
        raise UnknownNameError("loss", str(name), LOSSES)
    if name in LOSSES:
        return LOSSES[name]
    # The plugin registry is a layer above: asked through ebmkit.services, not imported.
    return services.get("find_entry")("losses", name).factory
