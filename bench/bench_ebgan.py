"""EBGAN training steps: ``ek.Trainer`` + the ``Adversarial`` strategy against a hand loop.

Both train ``gan.ebgan`` as registered (8×8 digits, latent 32, widths 64, code 32; an
autoencoder discriminator, normalised per sample, whose reconstruction error is the
energy) from the same initial weights on the digits train split with batch 64, for one
epoch: per batch one discriminator update on EBGAN's margin loss E(y) + [m − E(G(z))]₊
(m the model's margin in the energy's units, ``model.loss_margin``: per pixel times the
pixels) plus the default R1 penalty γ/2·‖∇_y E(y)‖² on the data, and one generator update on
E(G(z)) + w·PT (the pulling-away term of the discriminator's codes), Adam with the model's
learning rates and β₁ = 0.5, the rows in the same order and the same z. The hand loop is
Zhao, Mathieu & LeCun's step written out in PyTorch over the same two modules, the losses
and the pulling-away term spelt out in full. The two run interleaved in one process (order
flipped every round) on one intra-op thread; the final mean discriminator losses must agree.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from .harness import Result, interleaved_epochs

BATCH, SEED = 64, 0


def _pulling_away(code: torch.Tensor) -> torch.Tensor:
    """1/(N(N−1)) Σ_{i≠j} cos²(s_i, s_j), written out."""
    s = code / code.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos2 = (s @ s.T).square()
    n = s.shape[0]
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


def _hand_epoch(y: torch.Tensor, g: nn.Module, d: nn.Module, cfg, margin: float) -> float:
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    torch.manual_seed(SEED)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED)).to(y.device)
    total = torch.zeros((), device=y.device)
    c, s, _ = cfg.image_shape
    for start in range(0, len(y), BATCH):
        real = y.index_select(0, perm[start:start + BATCH]).view(-1, c, s, s)
        b = real.shape[0]
        fake = g(torch.randn(b, cfg.latent_dim, device=y.device))
        real_in = real.detach().requires_grad_(True)
        e_pos = d(real_in)
        loss_d = e_pos.mean() + torch.relu(margin - d(fake.detach())).mean()
        if cfg.r1:  # R1: γ/2 · mean ‖∇_y E(y)‖² on the data
            (grad,) = torch.autograd.grad(e_pos.sum(), real_in, create_graph=True)
            loss_d = loss_d + 0.5 * cfg.r1 * grad.square().flatten(1).sum(1).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        e_g, code = d(fake, return_code=True)
        loss_g = e_g.mean() + cfg.pt_weight * _pulling_away(code)
        opt_g.zero_grad()
        d.zero_grad()  # the generator's loss also reached D's weights: discard that
        loss_g.backward()
        opt_g.step()
        total += loss_d.detach() * b
    return float(total) / len(y)


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    repeats = 1 if smoke else 15
    digits = ek.get_dataset("digits", split="train")
    data = ek.data.TensorData({"y": digits.y.to(device)}, name="digits", split="train")
    torch.manual_seed(SEED)
    model = ek.get_model("gan.ebgan").to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    g, d = model.generator, model.discriminator
    # the margin in the energy's units (the summed squared error): m per pixel times the pixels
    margin = float(getattr(model, "loss_margin", model.cfg.margin))

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss_d"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1 if device.type == "cpu" else threads)
    try:
        times, losses = interleaved_epochs(
            {"ebmkit": trainer_epoch, "hand": lambda: _hand_epoch(data.y, g, d, model.cfg, margin)},
            lambda: model.load_state_dict(init), device, repeats)
    finally:
        torch.set_num_threads(threads)
    t_e, t_h = statistics.median(times["ebmkit"]), statistics.median(times["hand"])
    if abs(losses["ebmkit"] - losses["hand"]) > 1e-3 * max(1.0, abs(losses["hand"])):
        raise RuntimeError(f"ebmkit and the hand EBGAN loop disagree: mean D loss "
                           f"{losses['ebmkit']} vs {losses['hand']}")
    steps = -(-len(data) // BATCH)
    note = (f"one epoch = {steps} EBGAN steps (D then G, margin {margin:g}, "
            f"R1 {model.cfg.r1:g}, pulling-away weight {model.cfg.pt_weight:g}) of batch {BATCH} "
            f"on digits 8×8; "
            f"median of {repeats} interleaved repeats; mean D loss {losses['ebmkit']:.5f} vs "
            f"{losses['hand']:.5f}")
    return [Result("EBGAN step, both players", t_e / steps, t_h / steps,
                   "hand-written PyTorch EBGAN step", 1.05, device=device.type, notes=note)]
