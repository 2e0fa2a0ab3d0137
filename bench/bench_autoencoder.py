"""The ``autoencoder`` family: one training epoch through ``ek.Trainer`` against a hand loop.

The ebmkit side is ``ek.get_model("autoencoder")`` as registered (64 → 128 → 16 → 128 → 64,
ReLU hidden layers, sigmoid output with the binary cross-entropy summed over features), trained
with its default (architectural) strategy. The reference is a hand-written PyTorch loop over
the *same* ``nn.Linear`` layers — the model's ``encoder`` and ``decoder`` modules called
directly — with the loss written out as ``binary_cross_entropy_with_logits(...).sum(1)`` minus
the entropy floor H(y) (the model's energy is BCE − H(y), zero at a perfect reconstruction),
averaged over the batch: what one would write without ebmkit. Both use Adam (lr 1e-3), batch size 64, the digits
train split in the same order (a ``torch.randperm`` from a generator seeded alike), and start
every repeat from the same weights; they run interleaved in one process on one intra-op
thread, and their final mean epoch losses must agree.

Two rows: against the hand loop with ``torch.optim.Adam``'s defaults (what one writes), and
against the same loop with ``Adam(fused=True)`` — the implementation the Trainer picks —
which isolates the Trainer's own overhead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .harness import Result, hand_adam_epoch, trainer_vs_hand

BATCH, LR, SEED = 64, 1e-3, 0


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    digits = ek.get_dataset("digits", split="train")
    data = ek.data.TensorData({"y": digits.y.to(device)}, name="digits", split="train")
    y = data.y
    torch.manual_seed(SEED)
    model = ek.get_model("autoencoder").to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, lr=LR, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        def bce(batch: torch.Tensor) -> torch.Tensor:  # the loss written out by hand
            logits = model.decoder(model.encoder(batch))
            bce = nnf.binary_cross_entropy_with_logits(logits, batch, reduction="none").sum(1)
            # minus the floor H(y), as the model's energy: BCE − H(y) = Σ KL(Bern(y)‖Bern(ŷ))
            entropy = -(torch.xlogy(batch, batch) + torch.xlogy(1 - batch, 1 - batch)).sum(1)
            return (bce - entropy).mean()

        return hand_adam_epoch(params, y, bce, fused, LR, BATCH, SEED)

    steps = -(-len(y) // BATCH)
    return trainer_vs_hand(
        "autoencoder epoch (digits)", trainer_epoch, hand_epoch,
        lambda: model.load_state_dict(init), device, 1 if smoke else 81, 1e-4,
        f"one epoch of digits train ({len(y)} rows, {steps} steps of {BATCH}), `autoencoder` "
        f"64→128→16→128→64 with BCE, Adam")
