"""Trainer overhead: one epoch of ``ek.Trainer`` against a hand-written PyTorch loop.

Both train the same model (a 64→32→64 MLP autoencoder whose energy is the squared
reconstruction error summed over features), from the same initial weights, with Adam
(lr 1e-3), batch size 64, on the digits train split, visiting the rows in the same order (a
``torch.randperm`` drawn from a generator seeded alike). Checkpointing is off. The two run
interleaved in one process; each repeat starts from the same weights. The final mean
epoch losses must agree, so both did the same work.

Two rows: against the hand loop with ``torch.optim.Adam``'s defaults (what one writes), and
against the same loop with ``Adam(fused=True)`` — the implementation the Trainer picks —
which isolates the Trainer's own overhead.
"""

from __future__ import annotations

import torch
from torch import nn

from .harness import Result, hand_adam_epoch, trainer_vs_hand

BATCH, LR, SEED = 64, 1e-3, 0


def _model_class() -> type:
    import ebmkit as ek

    class MLPAutoencoder(ek.EnergyModel):
        """E(y) = ||y - dec(enc(y))||², summed over the 64 features."""

        name = "bench.mlp-autoencoder"

        def __init__(self, dim: int = 64, hidden: int = 32) -> None:
            super().__init__()
            self.dim, self.hidden = dim, hidden
            self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
            self.dec = nn.Linear(hidden, dim)

        def energy(self, y, x=None, z=None):
            return (y - self.dec(self.enc(y))).square().sum(dim=1)

        def config(self):
            return {"dim": self.dim, "hidden": self.hidden}

    return MLPAutoencoder


class _MeanEnergy:
    """The strategy both loops share: minimise the mean energy of the batch."""

    def __call__(self, model, batch):
        from ebmkit.strategies import StepOutput

        return StepOutput(model.energy(batch["y"]).mean())


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    digits = ek.get_dataset("digits", split="train")
    # Only y: the hand loop has no use for the labels, so the trainer gets none to slice.
    data = ek.data.TensorData({"y": digits.y.to(device)}, name="digits", split="train")
    y = data.y
    model = _model_class()().to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    strategy = _MeanEnergy()

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, strategy, lr=LR, epochs=1, batch_size=BATCH, device=device,
                             seed=SEED, progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        return hand_adam_epoch(model.parameters(), y, lambda b: model.energy(b).mean(), fused,
                               LR, BATCH, SEED)

    steps = -(-len(y) // BATCH)
    return trainer_vs_hand(
        "Trainer epoch (digits, MLP AE)", trainer_epoch, hand_epoch,
        lambda: model.load_state_dict(init), device, 1 if smoke else 81, 1e-5,
        f"one epoch of digits train ({len(y)} rows, {steps} steps of {BATCH}), 64→32→64 MLP "
        f"autoencoder, Adam")
