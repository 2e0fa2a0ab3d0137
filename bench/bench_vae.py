"""The ``autoencoder.variational`` family: one training epoch through ``ek.Trainer`` against a
hand loop.

The ebmkit side is ``ek.get_model("autoencoder.variational", likelihood="gaussian")`` (64 →
256 → 2·8 → 256 → 64, a Gaussian decoder with one learned σ per pixel), trained with its
default strategy on F(y) = −ELBO(y), one reparameterised draw of z per sample. The reference
is the VAE written out by hand over the *same* encoder and decoder modules, as in the PyTorch
VAE example: split the encoder's output into (μ, log σ²), z = μ + σ ⊙ ε, the Gaussian
log-likelihood summed over pixels, and KL(N(μ, σ²) ‖ N(0, I)) in closed form. Both use Adam
(lr 1e-3), batch 64, the digits train split in the same order and the same ε (the global
RNG seeded alike); they start every repeat from the same weights, run interleaved on one
intra-op thread, and their final mean epoch losses must agree.
"""

from __future__ import annotations

import math

import torch

from .harness import Result, hand_adam_epoch, trainer_vs_hand

BATCH, LR, SEED = 64, 1e-3, 0
LOG_2PI = math.log(2 * math.pi)


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    digits = ek.get_dataset("digits", split="train")
    data = ek.data.TensorData({"y": digits.y.to(device)}, name="digits", split="train")
    y = data.y
    torch.manual_seed(SEED)
    model = ek.get_model("autoencoder.variational", likelihood="gaussian").to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, lr=LR, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        def negative_elbo(batch: torch.Tensor) -> torch.Tensor:  # the VAE written out by hand
            mu, logvar = model.encoder(batch).chunk(2, dim=1)
            logvar = logvar.clamp(-12.0, 8.0)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            mean, log_std = model.decoder(z), model.log_std
            nll = (0.5 * ((batch - mean) / log_std.exp()).square() + log_std
                   + 0.5 * LOG_2PI).sum(1)
            kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)
            return (nll + kl).mean()

        torch.manual_seed(SEED)  # the Trainer seeds the global RNG alike: the same ε
        return hand_adam_epoch(params, y, negative_elbo, fused, LR, BATCH, SEED)

    steps = -(-len(y) // BATCH)
    return trainer_vs_hand(
        "VAE epoch (digits)", trainer_epoch, hand_epoch,
        lambda: model.load_state_dict(init), device, 1 if smoke else 41, 1e-4,
        f"one epoch of digits train ({len(y)} rows, {steps} steps of {BATCH}), "
        f"`autoencoder.variational` 64→256→2·8→256→64, Gaussian decoder with learned σ, one "
        f"draw of z, Adam")
