r"""``Adversarial``: GAN training as a strategy that ``ek.Trainer`` runs.

A GAN step is two alternating updates: the discriminator (the energy) takes ``d_steps``
steps on its contrastive loss — data down, generated samples up — then the generator takes
``g_steps`` steps to lower the energy of what it produces. Each player has its own
optimizer (Adam with DCGAN's β₁ = 0.5 by default), owned by the strategy.

How it fits the trainer: the strategy performs both players' updates inside
``strategy(model, batch)`` and returns a ``StepOutput`` whose ``loss`` is the
discriminator's loss *value* attached to a fresh zero leaf, so the trainer's own
backward/step touch no model parameter (its optimizer stays idle). Everything else the
trainer does applies unchanged:

- **checkpoint / resume**: ``state_dict()`` holds both optimizers' states and the step
  count, so ``trainer.pt`` restores both players exactly (the weights are the model's);
- **divergence guard**: every loss and energy is logged, so a non-finite value trips the
  guard; when it restores the epoch's snapshot the strategy sees its state rewound and
  lowers both players' learning rates by ``lr_backoff`` per retry, as the trainer does
  for its own optimizer;
- **AMP**: bf16 autocast works; fp16 needs a grad scaler per player and is refused;
- **distributed**: each player's gradients are averaged across processes before its step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ebmkit.config import at_least, number
from ebmkit.errors import ConfigError
from ebmkit.strategies import StepOutput, Strategy

from .losses import get_gan_loss, pulling_away

__all__ = ["Adversarial"]


def _count(name: str, value: Any) -> int:
    return at_least(name, value, who="Adversarial")


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    return number(name, value, low=0.0, low_open=not allow_zero, who="Adversarial")


def _average_gradients(params: list[nn.Parameter]) -> None:
    """Mean of each gradient over the processes of a distributed run (no-op alone)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g)
        offset += g.numel()


class Adversarial(Strategy):
    r"""Alternating two-player training of a GAN model (``gan.dcgan``, ``gan.ebgan``).

    Per batch of data $y$: ``d_steps`` discriminator updates on
    ``loss.d(E(y), E(G(z)))`` with fresh $z \sim \mathcal N(0, I)$ each, then ``g_steps``
    generator updates on ``loss.g(E(G(z)))`` (plus $w_{PT}$ times the pulling-away term of
    the discriminator's codes for EBGAN). The first generator update reuses the last
    discriminator update's samples, as the reference DCGAN loop does. After each generator
    update the model's ``update_ema()`` (if it has one) moves the generator's average.

    Logs (per step, detached): ``loss_d``, ``loss_g``, ``e_pos`` (energy of data),
    ``e_neg`` (energy of samples), ``grad_g`` (the generator's gradient norm: near zero
    means vanishing gradients), ``diversity`` (per-pixel spread of the samples over that of
    the data: near zero means mode collapse) and ``pt`` for EBGAN.

    Args:
        loss: ``"non_saturating"`` (default), ``"minimax"``, ``"hinge"`` or ``"margin"``.
        d_steps: Discriminator updates per batch (the D side of the D:G ratio).
        g_steps: Generator updates per batch (the G side).
        lr_d: The discriminator's learning rate.
        lr_g: The generator's learning rate.
        betas: Adam's (β₁, β₂) for both players.
        margin: m of the hinge and margin losses.
        pt_weight: Weight of EBGAN's pulling-away term (0 turns it off).
        grad_clip: Clip each player's gradient norm to this (None: no clipping).
        lr_backoff: Factor on both learning rates each time the trainer's divergence
            guard restarts an epoch.
        r1: γ of the R1 penalty γ/2 · E_data ‖∇_y E(y)‖² added to the discriminator's
            loss (Mescheder, Geiger & Nowozin 2018): it damps the discriminator's gradient
            on the data, the oscillation that makes GAN training cycle (0: off).

    The model must provide ``generator``, ``discriminator``, ``latent(n)``,
    ``generate(z)``, ``as_images(y)`` and ``discriminate(images, return_code=False)``.

    Distributed: the step runs its own optimizers, so only the trainer's explicit
    all-reduce is exact (``explicit_only``; ``distributed="ddp"``/``"fsdp"`` are refused).
    """

    explicit_only = True

    def __init__(self, loss: str = "non_saturating", d_steps: int = 1, g_steps: int = 1,
                 lr_d: float = 2e-4, lr_g: float = 2e-4,
                 betas: tuple[float, float] | list[float] = (0.5, 0.999), margin: float = 1.0,
                 pt_weight: float = 0.0, grad_clip: float | None = None,
                 lr_backoff: float = 0.5, r1: float = 0.0) -> None:
        self.loss = get_gan_loss(loss)
        self.d_steps, self.g_steps = _count("d_steps", d_steps), _count("g_steps", g_steps)
        self.lr_d, self.lr_g = _positive("lr_d", lr_d), _positive("lr_g", lr_g)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(f"Adversarial: betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.margin = _positive("margin", margin)
        self.pt_weight = _positive("pt_weight", pt_weight, allow_zero=True)
        self.r1 = _positive("r1", r1, allow_zero=True)
        self.grad_clip = None if grad_clip is None else _positive("grad_clip", grad_clip)
        self.lr_backoff = _positive("lr_backoff", lr_backoff)
        if self.lr_backoff > 1:
            raise ConfigError(f"Adversarial: lr_backoff must be in (0, 1], got {lr_backoff!r}")
        self.opt_d: torch.optim.Optimizer | None = None
        self.opt_g: torch.optim.Optimizer | None = None
        self._model: Any = None
        self._pending: dict[str, Any] | None = None  # optimizer states loaded before set-up
        self._lr_scale = 1.0
        self._rewinds: dict[int, int] = {}
        self.step = 0  # iterations done (one per batch)
        self._live = False  # has stepped since construction or the last load

    # ---------------------------------------------------------------- set-up
    def _setup(self, model: Any) -> None:
        for attr in ("generator", "discriminator", "latent", "generate", "as_images",
                     "discriminate"):
            if not hasattr(model, attr):
                raise ConfigError(f"Adversarial trains GAN models (gan.dcgan, gan.ebgan); "
                                  f"{type(model).__name__} has no {attr!r}")
        self._model = model
        self.d_params = [p for p in model.discriminator.parameters() if p.requires_grad]
        self.g_params = [p for p in model.generator.parameters() if p.requires_grad]
        s = self._lr_scale
        self.opt_d = torch.optim.Adam(self.d_params, lr=self.lr_d * s, betas=self.betas)
        self.opt_g = torch.optim.Adam(self.g_params, lr=self.lr_g * s, betas=self.betas)
        if self._pending is not None:
            self._load_optimizers(self._pending)
            self._pending = None

    def _load_optimizers(self, state: Mapping[str, Any]) -> None:
        assert self.opt_d is not None and self.opt_g is not None
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_g.load_state_dict(state["opt_g"])

    # ---------------------------------------------------------------- the step
    def _update(self, opt: torch.optim.Optimizer, params: list[nn.Parameter],
                loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        _average_gradients(params)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()

    def __call__(self, model: Any, batch: Mapping[str, Tensor]) -> StepOutput:
        if not isinstance(batch, Mapping) or "y" not in batch:
            raise ConfigError("Adversarial: expected a batch dict with 'y'")
        if model is not self._model:
            self._setup(model)
        device_type = batch["y"].device.type
        if (torch.is_autocast_enabled(device_type)
                and torch.get_autocast_dtype(device_type) == torch.float16):
            raise ConfigError("Adversarial steps two optimizers itself and has no fp16 grad "
                              "scaler: train with amp='bf16' or amp=False")
        real = model.as_images(batch["y"])  # [B, C, S, S]
        b = real.shape[0]
        loss, margin, d, g = self.loss, self.margin, model.discriminate, model.generate
        d_kw = {"margin": margin} if loss.takes_margin else {}
        fake = None
        for i in range(self.d_steps):
            last = i == self.d_steps - 1
            z = model.latent(b, device=real.device, dtype=real.dtype)
            if last:
                fake = g(z)  # kept with its graph: the first G update reuses it
                fake_in = fake.detach()
            else:
                with torch.no_grad():
                    fake_in = g(z)
            real_in = real.detach().requires_grad_(True) if self.r1 else real
            e_pos, e_neg = d(real_in), d(fake_in)
            loss_d = loss.d(e_pos, e_neg, **d_kw)
            if self.r1:  # R1 (Mescheder et al. 2018): γ/2 · mean ‖∇_y E(y)‖² on data
                (grad,) = torch.autograd.grad(e_pos.sum(), real_in, create_graph=True)
                r1_penalty = grad.square().flatten(1).sum(1).mean()
                loss_d = loss_d + 0.5 * self.r1 * r1_penalty
            self._update(self.opt_d, self.d_params, loss_d)
        pt = None
        d_params = self.d_params
        for p in d_params:  # the generator's loss builds no graph into D's weights
            p.requires_grad_(False)
        try:
            for j in range(self.g_steps):
                if j > 0:
                    fake = g(model.latent(b, device=real.device, dtype=real.dtype))
                if self.pt_weight > 0:
                    e_g, code = d(fake, return_code=True)
                    pt = pulling_away(code)
                    loss_g = loss.g(e_g) + self.pt_weight * pt
                else:
                    loss_g = loss.g(d(fake))
                self._update(self.opt_g, self.g_params, loss_g)
                if hasattr(model, "update_ema"):  # the generator's moving average, if any
                    model.update_ema()
        finally:
            for p in d_params:
                p.requires_grad_(True)
        grads = [p.grad for p in self.g_params if p.grad is not None]
        norms = [torch.linalg.vector_norm(g) for g in grads]  # one per parameter: logged only
        grad_g = torch.linalg.vector_norm(torch.stack(norms)) if norms else loss_g.new_zeros(())
        with torch.no_grad():
            spread = fake.detach().flatten(1).std(0).mean() / real.flatten(1).std(0).mean().clamp_min(1e-8)
        logs = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "e_pos": e_pos.detach().mean(), "e_neg": e_neg.detach().mean(),
                "grad_g": grad_g.detach(), "diversity": spread}
        if pt is not None:
            logs["pt"] = pt.detach()
        if self.r1:
            logs["r1"] = r1_penalty.detach()
        self.step += 1
        self._live = True
        # The players are already updated: the trainer steps on a loss tied to no parameter.
        anchor = torch.zeros((), device=real.device, requires_grad=True)
        return StepOutput(loss_d.detach() + anchor, logs)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step, "lr_scale": self._lr_scale}
        if self.opt_d is not None and self.opt_g is not None:
            state["opt_d"], state["opt_g"] = self.opt_d.state_dict(), self.opt_g.state_dict()
        elif self._pending is not None:
            state["opt_d"], state["opt_g"] = self._pending["opt_d"], self._pending["opt_g"]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or "step" not in state:
            raise ConfigError(f"Adversarial.load_state_dict: expected the dict of "
                              f"Adversarial.state_dict(), got {type(state).__name__}")
        step = int(state["step"])
        # The divergence guard rewinds a live strategy to the start of the epoch.
        rewind = self._live and step < self.step
        factor = 1.0
        if rewind:
            self._rewinds[step] = self._rewinds.get(step, 0) + 1
            factor = self.lr_backoff ** self._rewinds[step]
        self.step = step
        self._lr_scale = float(state.get("lr_scale", 1.0)) * factor
        self._live = False
        if "opt_d" in state:
            if self.opt_d is not None:
                self._load_optimizers(state)
                groups = [*self.opt_d.param_groups, *self.opt_g.param_groups]
            else:
                self._pending = {"opt_d": state["opt_d"], "opt_g": state["opt_g"]}
                groups = [*state["opt_d"]["param_groups"], *state["opt_g"]["param_groups"]]
            for group in groups:  # the snapshot's learning rates, backed off on a retry
                group["lr"] *= factor
        elif self._model is not None:
            self._setup(self._model)  # fresh optimizers (a state from before the first step)

    @property
    def lrs(self) -> tuple[float, float]:
        """The current ``(lr_d, lr_g)``."""
        if self.opt_d is None or self.opt_g is None:
            return self.lr_d * self._lr_scale, self.lr_g * self._lr_scale
        return self.opt_d.param_groups[0]["lr"], self.opt_g.param_groups[0]["lr"]

    def __repr__(self) -> str:
        extra = f", margin={self.margin:g}" if self.loss.takes_margin else ""
        extra += f", pt_weight={self.pt_weight:g}" if self.pt_weight else ""
        extra += f", r1={self.r1:g}" if self.r1 else ""
        return (f"Adversarial(loss={self.loss.name!r}, d_steps={self.d_steps}, "
                f"g_steps={self.g_steps}, lr_d={self.lr_d:g}, lr_g={self.lr_g:g}, "
                f"betas={self.betas}{extra})")
