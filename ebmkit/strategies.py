"""Training strategies: the four ways to shape an energy surface.

A strategy turns a batch into a loss: ``strategy(model, batch) -> StepOutput(loss, logs)``,
where ``logs`` holds detached scalars (``e_pos``, ``e_neg``, per-term energies, …). It is a
plain object, not a hook: pluggy stays out of the inner loop.
"""

from __future__ import annotations

import contextlib

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from . import losses
from .errors import ConfigError
from .negatives import buffer_init, uniform_like

if TYPE_CHECKING:
    from .model import EnergyModel
    from .samplers import ReplayBuffer

__all__ = [
    "Architectural",
    "Contrastive",
    "ContrastiveDivergence",
    "DenoisingScoreMatching",
    "Regularized",
    "StepOutput",
    "Strategy",
]


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
    implement ``state_dict()`` / ``load_state_dict()``; under ``torchrun`` that state is
    per process and saved per process.

    Attributes:
        ddp: Whether the step may run under PyTorch's ``DistributedDataParallel`` (the
            trainer's default path when distributed): True when the step computes one loss
            and leaves ``backward`` and the optimizer to the trainer, changing no parameter
            in place. False (this base class's default) selects the explicit all-reduce
            after ``backward``, which is exact for any step. See ``docs/scaling-out.md``.
        explicit_only: True for a step that DDP and FSDP cannot synchronise (it steps its
            own optimizers, or changes parameters in place): ``distributed="ddp"`` or
            ``"fsdp"`` is then refused with an error naming ``"explicit"``.
        find_unused_parameters: True for a step that may leave some trainable parameter
            out of the loss's graph; DDP then looks for them (a search per step, off by
            default as in PyTorch).
    """

    ddp: ClassVar[bool] = False
    explicit_only: ClassVar[bool] = False
    find_unused_parameters: ClassVar[bool] = False

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# The four ways to shape an energy surface (plus denoising score matching).
# ---------------------------------------------------------------------------------------------


def _unpack(batch: Any, model: Any, who: str) -> tuple[Tensor, Tensor | None]:
    """``(y, x)`` from a batch dict, checked against the model's device."""
    if not isinstance(batch, Mapping) or "y" not in batch:
        got = (f"a mapping with keys {sorted(batch)}" if isinstance(batch, Mapping)
               else type(batch).__name__)
        raise ConfigError(f"{who}: expected a batch dict with 'y' (and optional 'x'), got {got}")
    y, x = batch["y"], batch.get("x")
    for name, t in (("y", y), ("x", x)):
        if t is not None and not isinstance(t, Tensor):
            raise ConfigError(f"{who}: batch[{name!r}] must be a torch.Tensor, got "
                              f"{type(t).__name__}")
    param = _first_parameter(model) if isinstance(model, nn.Module) else None
    if param is not None and y.device != param.device:
        raise ConfigError(f"{who}: batch['y'] is on {y.device} but the model is on {param.device}; "
                          f"move the batch (or the model) to one device")
    return y, x


def _first_parameter(module: nn.Module) -> nn.Parameter | None:
    """``next(module.parameters(), None)`` without its generator machinery (~20 µs a step,
    most of a small model's strategy overhead): depth first, stopping at the first one."""
    stack = [module]
    while stack:
        m = stack.pop()
        for p in m._parameters.values():
            if p is not None:
                return p
        stack.extend(reversed(m._modules.values()))
    return None


def _mean(t: Tensor) -> Tensor:
    return t.detach().mean()


def _term_logs(model: Any, y: Tensor, x: Tensor | None, z: Tensor | None) -> dict[str, Tensor]:
    """Mean per-term energies when the model exposes ``terms(y, x, z)`` (no graph kept)."""
    terms = getattr(model, "terms", None)
    if not callable(terms):
        return {}
    with torch.no_grad():
        return {f"energy/{k}": v.mean() for k, v in terms(y, x=x, z=z).items()}


def _check_sampler(sampler: Any, who: str) -> Any:
    if sampler is None:
        raise ConfigError(f"{who} needs a sampler for its negatives, got None; e.g. {who}("
                          f"sampler=ek.samplers.Langevin(steps=60, step_size=10.0, noise=0.005))")
    if not callable(getattr(sampler, "sample", None)):
        raise ConfigError(f"{who}: sampler must have sample(energy, init, x=None), got "
                          f"{type(sampler).__name__}")
    return sampler


class Architectural(Strategy):
    r"""Push the energy of the data down and nothing up: $L = \frac{1}{B}\sum_b F(x_b, y_b)$.

    Safe only when the architecture limits the volume of low energy — an autoencoder's
    bottleneck, K-means' K codes, PCA's rank — so pulling the data down cannot flatten the
    whole surface. Logs ``e_pos``.
    """

    ddp = True

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        y, x = _unpack(batch, model, "Architectural")
        loss = model(y, x).mean()
        return StepOutput(loss, {"e_pos": loss.detach()})

    def __repr__(self) -> str:
        return "Architectural()"


class Regularized(Strategy):
    r"""Energy of the data plus a regulariser that limits the volume of low energy.

    With $\check z = $ ``model.infer(y, x)``,

    $$ L = \frac{1}{B}\sum_b E(x_b, y_b, \check z_b)
         + w \cdot \frac{1}{B}\sum_b R(y_b, x_b, \check z_b), $$

    where $R$ is ``regularizer(y, x=x, z=z)`` (an ``ek.energies`` term such as ``L1()``) or,
    when None, ``model.regularizer(y, x, z)``. Logs ``e_pos``, ``regularizer`` and, when the
    model has ``terms(y, x, z)``, each term as ``energy/<name>``.

    Args:
        weight: $w$.
        regularizer: $R$, a callable ``(y, x=None, z=None) -> [B]``.
    """

    ddp = True

    def __init__(self, weight: float = 0.1, regularizer: Any = None) -> None:
        if not weight >= 0:
            raise ConfigError(f"Regularized: weight must be >= 0, got {weight!r}")
        if regularizer is not None and not callable(regularizer):
            raise ConfigError(f"Regularized: regularizer must be callable as R(y, x=None, z=None), "
                              f"e.g. ek.energies.L1(); got {type(regularizer).__name__}")
        self.weight, self.regularizer = float(weight), regularizer

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        y, x = _unpack(batch, model, "Regularized")
        reg = self.regularizer
        if reg is None:
            reg = getattr(model, "regularizer", None)
            if not callable(reg):
                raise ConfigError(f"Regularized: no regularizer given and {type(model).__name__} "
                                  f"has no regularizer(y, x, z) method; pass one, e.g. "
                                  f"Regularized(weight=0.1, regularizer=ek.energies.L1())")
        z = model.infer(y, x)
        e = model.energy(y, x, z)
        r = reg(y, x=x, z=z)
        if not isinstance(r, Tensor) or r.shape != e.shape:
            got = list(r.shape) if isinstance(r, Tensor) else type(r).__name__
            raise ConfigError(f"Regularized: the regularizer must return one value per sample, "
                              f"shape {list(e.shape)}, got {got}")
        loss = e.mean() + self.weight * r.mean()
        logs = {"e_pos": _mean(e), "regularizer": _mean(r), **_term_logs(model, y, x, z)}
        return StepOutput(loss, logs)

    def __repr__(self) -> str:
        return f"Regularized(weight={self.weight:g}, regularizer={self.regularizer!r})"


class Contrastive(Strategy):
    r"""Push the data's energy down and the negatives' up through a contrastive loss.

    $E_+ = F(x, y)$ and $E_- = F(x, \tilde y)$ with $\tilde y$ = ``negatives(y, model, x)``
    (``[B, ...]`` or ``[B, K, ...]``; K negatives are evaluated as one ``[B·K, ...]`` batch
    with x repeated), then $L$ = ``loss(e_pos, e_neg, **loss_options)``. Logs ``e_pos`` and
    ``e_neg``.

    Args:
        negatives: A [`NegativeGenerator`][ebmkit.negatives.NegativeGenerator].
        loss: A name in ``ek.losses.LOSSES`` (``"hinge"``, ``"log"``, ``"nll"``, …) or a
            callable ``loss(e_pos, e_neg, **options) -> scalar``.
        **loss_options: Passed to the loss, e.g. ``margin=1.0``.
    """

    ddp = True

    def __init__(self, negatives: Any = None, loss: str | Callable[..., Tensor] = "hinge",
                 **loss_options: Any) -> None:
        if negatives is None:
            raise ConfigError("Contrastive needs negatives, got None; e.g. Contrastive("
                              "negatives=ek.negatives.GaussianNoise(0.3), loss='hinge')")
        if not callable(negatives):
            raise ConfigError(f"Contrastive: negatives must be callable as negatives(y, model, x), "
                              f"got {type(negatives).__name__}")
        fn = loss if callable(loss) else losses.get_loss(loss)
        _check_options(fn, loss_options, f"Contrastive(loss={getattr(fn, '__name__', fn)!r})")
        self.negatives, self.loss, self.loss_options = negatives, fn, loss_options

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        y, x = _unpack(batch, model, "Contrastive")
        e_pos = model(y, x)
        y_neg = self.negatives(y, model, x)
        e_neg = _negative_energies(model, y, x, y_neg, "Contrastive")
        loss = self.loss(e_pos, e_neg, **self.loss_options)
        return StepOutput(loss, {"e_pos": _mean(e_pos), "e_neg": _mean(e_neg)})

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.loss_options.items())
        name = getattr(self.loss, "__name__", self.loss)
        return f"Contrastive({self.negatives!r}, loss={name!r}{opts})"


def _check_options(fn: Callable[..., Any], options: dict[str, Any], who: str) -> None:
    """Unknown loss options fail at construction, not at the first step."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    known = [n for n, p in list(params.items())[2:] if p.kind in named]
    bad = sorted(set(options) - set(known))
    if bad:
        raise ConfigError(f"{who}: unknown loss option(s) {', '.join(bad)}; this loss accepts "
                          f"{', '.join(known) or 'no options'}")


def _negative_energies(model: Any, y: Tensor, x: Tensor | None, y_neg: Tensor, who: str) -> Tensor:
    """F(x, ỹ) as ``[B]`` for ``[B, ...]`` negatives, or ``[B, K]`` for ``[B, K, ...]``."""
    if not isinstance(y_neg, Tensor):
        raise ConfigError(f"{who}: negatives must return a tensor, got {type(y_neg).__name__}")
    if y_neg.shape == y.shape:
        return model(y_neg, x)
    b = y.shape[0]
    if y_neg.dim() != y.dim() + 1 or y_neg.shape[0] != b or y_neg.shape[2:] != y.shape[1:]:
        tail = ", ".join(str(s) for s in y.shape[1:])
        raise ConfigError(f"{who}: negatives must be shaped like y, [{b}, {tail}], or "
                          f"[{b}, K, {tail}]; got {list(y_neg.shape)}")
    k = y_neg.shape[1]
    x_rep = None if x is None else x.repeat_interleave(k, dim=0)
    return model(y_neg.reshape(b * k, *y.shape[1:]), x_rep).reshape(b, k)


class ContrastiveDivergence(Strategy):
    r"""Maximum likelihood with MCMC negatives: contrastive divergence (CD-k) and persistent CD.

    Negatives $\tilde y$ are drawn with ``sampler`` on the model's free energy, starting
    from the data (CD-k), from ``init(y)``, or — with a replay ``buffer`` — from stored
    chains (persistent CD; fresh starts are ``init(y)``, default uniform noise in the batch's
    range). They are detached, so the loss

    $$ L = \overline{E_+} - \overline{E_-} + \alpha\,\overline{E_+^2 + E_-^2} $$

    is the usual stochastic estimate of the NLL gradient plus an energy-magnitude penalty
    (weight $\alpha$) that keeps energies from drifting (Du & Mordatch, 2019). Logs ``e_pos``
    and ``e_neg``. ``state_dict()`` holds the buffer, so persistent chains survive a resume.

    Args:
        sampler: An object with ``sample(energy, init, x=None)``, e.g. ``ek.samplers.Langevin``.
        buffer: An ``ek.samplers.ReplayBuffer`` for persistent chains, or None.
        alpha: $\alpha \ge 0$.
        init: ``init(y) -> Tensor`` shaped like y: chain starts. Default: the data itself
            without a buffer (CD-k), uniform noise in the data's range with one.
    """

    ddp = True

    def __init__(self, sampler: Any = None, buffer: ReplayBuffer | None = None, alpha: float = 0.1,
                 init: Callable[[Tensor], Tensor] | None = None) -> None:
        self.sampler = _check_sampler(sampler, "ContrastiveDivergence")
        if not alpha >= 0:
            raise ConfigError(f"ContrastiveDivergence: alpha must be >= 0, got {alpha!r}")
        if init is not None and not callable(init):
            raise ConfigError(f"ContrastiveDivergence: init must be callable as init(y), got "
                              f"{type(init).__name__}")
        self.buffer, self.alpha, self.init = buffer, float(alpha), init

    def negatives(self, model: EnergyModel, y: Tensor, x: Tensor | None = None) -> Tensor:
        """Run the chains for the batch ``y`` and return the (detached) negatives."""
        if self.buffer is None:
            start = y.detach() if self.init is None else self.init(y.detach())
            return self.sampler.sample(model, start, x=x).detach()
        fresh = buffer_init(y.detach(), self.init or uniform_like)
        start, idx = self.buffer.sample(y.shape[0], fresh)
        y_neg = self.sampler.sample(model, start, x=x).detach()
        self.buffer.push(y_neg, idx)
        return y_neg

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        y, x = _unpack(batch, model, "ContrastiveDivergence")
        y_neg = self.negatives(model, y, x)
        e_pos, e_neg = model(y, x), model(y_neg, x)
        loss = e_pos.mean() - e_neg.mean() + self.alpha * (e_pos.square() + e_neg.square()).mean()
        return StepOutput(loss, {"e_pos": _mean(e_pos), "e_neg": _mean(e_neg)})

    def state_dict(self) -> dict[str, Any]:
        return {} if self.buffer is None else {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.buffer is not None and "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])

    def __repr__(self) -> str:
        return (f"ContrastiveDivergence({self.sampler!r}, buffer={self.buffer!r}, "
                f"alpha={self.alpha:g})")


class DenoisingScoreMatching(Strategy):
    r"""Denoising score matching (Vincent, 2011), with the model's score $s = -\nabla_y E$.

    With $\tilde y = y + \sigma\varepsilon$, $\varepsilon \sim \mathcal N(0, I)$, the score of
    the noise kernel is $\nabla_{\tilde y}\log q(\tilde y \mid y) = -(\tilde y - y)/\sigma^2$,
    and the $\sigma^2$-weighted loss is

    $$ L = \frac{1}{B}\sum_b \tfrac{1}{2}\,\sigma^2\,
           \Big\lVert \nabla_{\tilde y} E(\tilde y_b)
                 - \frac{\tilde y_b - y_b}{\sigma^2} \Big\rVert^2
         = \frac{1}{B}\sum_b \tfrac{1}{2}\,
           \lVert \sigma\nabla_{\tilde y} E(\tilde y_b) - \varepsilon_b \rVert^2 , $$

    summed over features. Its minimiser is the score of the data density smoothed by the
    noise, $p_\sigma = p * \mathcal N(0, \sigma^2 I)$. The gradient is taken with
    ``create_graph=True`` so that the parameters receive gradients. Logs ``e_pos``, the mean
    energy of the noised data $\tilde y$.

    Args:
        sigma: $\sigma > 0$, the noise scale.
    """

    ddp = True

    def __init__(self, sigma: float = 0.1) -> None:
        if not sigma > 0:
            raise ConfigError(f"DenoisingScoreMatching: sigma must be > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def __call__(self, model: EnergyModel, batch: dict[str, Tensor]) -> StepOutput:
        y, x = _unpack(batch, model, "DenoisingScoreMatching")
        if not y.is_floating_point():
            raise ConfigError(f"DenoisingScoreMatching: y must be floating-point, got {y.dtype}")
        # ∇_ỹ E is needed even when evaluated under no_grad() or inference_mode().
        # Under fp16 autocast the inner gradient (E's input gradient, squared in the loss)
        # would overflow or lose most digits: it runs in float32 (bf16 keeps autocast).
        kind = y.device.type
        fp16 = (torch.is_autocast_enabled(kind)
                and torch.get_autocast_dtype(kind) == torch.float16)
        with torch.inference_mode(False), torch.enable_grad(), \
                (torch.autocast(kind, enabled=False) if fp16 else contextlib.nullcontext()):
            eps = torch.randn_like(y)
            y_noisy = (y.detach() + self.sigma * eps).requires_grad_(True)
            e = model(y_noisy, x)
            (g,) = torch.autograd.grad(e.float().sum(), y_noisy, create_graph=True)
            per = 0.5 * (self.sigma * g.float() - eps).reshape(y.shape[0], -1).square().sum(dim=1)
            loss = per.mean()
        return StepOutput(loss, {"e_pos": _mean(e), "score_error": _mean(per)})

    def __repr__(self) -> str:
        return f"DenoisingScoreMatching(sigma={self.sigma:g})"
