"""Group sparse coding: one dictionary-learning epoch through ``ek.Trainer`` against a hand loop.

The ebmkit side is ``sparse.group`` as registered (64 → 128 atoms in groups of 4, λ = 0.5,
100 FISTA steps per batch) trained with its default strategy: ž = argmin_z ½‖y − Wz‖² +
λ Σ_g ‖z_g‖₂ by FISTA, then an Adam step on the unit-norm dictionary W = V/‖V‖ through
E(y, ž). The reference writes the same algorithm out in PyTorch over the same parameter V:
FISTA with step 1/L, L = ‖W‖₂² (the exact Lipschitz constant), block soft-thresholding
z_g ← z_g · max(1 − λ/(L‖z_g‖), 0), and O'Donoghue & Candès's adaptive restart per sample;
then the reconstruction loss and Adam. Both use lr 1e-2, batch 128, the digits train split
in the same order and the same initial atoms every repeat; they run interleaved on one
intra-op thread, and their final mean epoch free energies must agree.
"""

from __future__ import annotations

import torch

from .harness import Result, hand_adam_epoch, trainer_vs_hand

BATCH, LR, SEED = 128, 1e-2, 0


def _group_fista(y: torch.Tensor, w: torch.Tensor, lam: float, group: int,
                 steps: int) -> torch.Tensor:
    """argmin_z ½‖y − Wz‖² + λ Σ_g ‖z_g‖₂, ``[B, M]``, written out."""
    gram, lin = w.t() @ w, y @ w  # ∇ = z Wᵀ W − y W
    lip = torch.linalg.matrix_norm(w, ord=2).square()
    b, m = y.shape[0], w.shape[1]

    def prox(v: torch.Tensor) -> torch.Tensor:
        g = v.reshape(b, m // group, group)
        norm = g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (g * (1 - lam / (lip * norm)).clamp_min(0)).reshape(b, m)

    z = u = torch.zeros(b, m, dtype=y.dtype, device=y.device)
    t = torch.ones(b, 1, dtype=y.dtype, device=y.device)
    for _ in range(steps):
        z_next = prox(u - (u @ gram - lin) / lip)
        uphill = ((u - z_next) * (z_next - z)).sum(1, keepdim=True) > 0  # restart the momentum
        t = torch.where(uphill, torch.ones_like(t), t)
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        u = z_next + (t - 1) / t_next * (z_next - z)
        z, t = z_next, t_next
    return z


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    digits = ek.get_dataset("digits", split="train")
    data = ek.data.TensorData({"y": digits.y.to(device)}, name="digits", split="train")
    torch.manual_seed(SEED)
    model = ek.get_model("sparse.group").to(device)
    cfg = model.cfg
    init = {k: v.clone() for k, v in model.state_dict().items()}
    v = model.decoder.parametrizations.weight.original  # [D, M]

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, lr=LR, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        def free_energy(y: torch.Tensor) -> torch.Tensor:
            w = v / v.norm(dim=0, keepdim=True).clamp_min(1e-8)
            with torch.no_grad():
                z = _group_fista(y, w, cfg.lam, cfg.group_size, cfg.steps)
            groups = z.reshape(len(z), -1, cfg.group_size).norm(dim=-1).sum(1)
            return (0.5 * (y - z @ w.t()).square().sum(1) + cfg.lam * groups).mean()

        return hand_adam_epoch([v], data.y, free_energy, fused, LR, BATCH, SEED)

    steps = -(-len(data) // BATCH)
    return trainer_vs_hand(
        "group sparse coding epoch (digits)", trainer_epoch, hand_epoch,
        lambda: model.load_state_dict(init), device, 1 if smoke else 21, 1e-3,
        f"one epoch of digits train ({len(data)} rows, {steps} steps of {BATCH}), `sparse.group` "
        f"{cfg.atoms} atoms in groups of {cfg.group_size}, {cfg.steps} FISTA steps per batch, "
        f"Adam on the unit-norm dictionary")
