"""DCGAN training steps: ``ek.Trainer`` + the ``Adversarial`` strategy against a hand loop.

Both train ``gan.dcgan`` (8×8 digits, latent 32, widths 64: the same generator and
discriminator modules) from the same initial weights on the digits train split with batch
64, for one epoch (23 steps, each one discriminator and one generator update with Adam
2e-4, β₁ = 0.5), visiting the rows in the same order and drawing the same z. The hand loop
is the PyTorch DCGAN example's step: ``BCEWithLogitsLoss`` on D's logits (= −E), real and
fake backward separately, then the generator's step through the updated discriminator —
plus what ``gan.dcgan`` adds by default, written out by hand: the R1 penalty γ/2·‖∇_y E(y)‖²
on the data (γ = 1) and the generator's moving average (decay 0.995) after each step.
The two run interleaved in one process (order flipped every round); the final losses must
agree, so both did the same work. On CUDA the pair is also timed with ``torch.compile``
applied to both networks.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from .harness import Result, interleaved_epochs

BATCH, LR, SEED = 64, 2e-4, 0


def _hand_epoch(model, y: torch.Tensor, g: nn.Module, d: nn.Module) -> float:
    """One epoch of the PyTorch DCGAN example's step on ``g`` and ``d``, with the family's
    default R1 penalty and generator moving average written out."""
    r1, ema, g_ema = model.cfg.r1, model.cfg.ema, model.generator_ema
    criterion = nn.BCEWithLogitsLoss()
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=(0.5, 0.999))
    torch.manual_seed(SEED)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED)).to(y.device)
    total = torch.zeros((), device=y.device)
    for start in range(0, len(y), BATCH):
        real = y.index_select(0, perm[start:start + BATCH]).view(-1, 1, 8, 8)
        b = real.shape[0]
        ones = torch.ones(b, device=y.device)
        zeros = torch.zeros(b, device=y.device)
        d.zero_grad()
        real.requires_grad_(r1 > 0)
        e_real = d(real)
        err_real = criterion(-e_real, ones)  # D's logit is −E
        if r1 > 0:  # R1 (the family's default): γ/2 · mean ‖∇_y E(y)‖² on the data
            (grad,) = torch.autograd.grad(e_real.sum(), real, create_graph=True)
            (err_real + 0.5 * r1 * grad.square().flatten(1).sum(1).mean()).backward()
        else:
            err_real.backward()
        fake = g(torch.randn(b, 32, device=y.device).view(b, 32))
        err_fake = criterion(-d(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        g.zero_grad()
        err_g = criterion(-d(fake), ones)
        err_g.backward()
        opt_g.step()
        if g_ema is not None:  # the generator's moving average (the family's default)
            with torch.no_grad():
                for p_ema, p in zip(g_ema.parameters(), g.parameters()):
                    p_ema.lerp_(p, 1.0 - ema)
        total += (err_real + err_fake).detach() * b
    return float(total) / len(y)


def _pair(device: torch.device, repeats: int, compile: bool) -> Result:
    import ebmkit as ek

    digits = ek.get_dataset("digits", split="train")
    data = ek.data.TensorData({"y": digits.y.to(device)}, name="digits", split="train")
    torch.manual_seed(SEED)
    model = ek.get_model("gan.dcgan", lr_d=LR, lr_g=LR).to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    g, d = model.generator, model.discriminator
    if compile:
        g.compile()  # in place: the model keeps its networks (a built model's are fixed)
        d.compile()

    def reset() -> None:
        for mod in (model.generator, model.discriminator):
            target = getattr(mod, "_orig_mod", mod)
            prefix = "generator." if target is getattr(g, "_orig_mod", g) else "discriminator."
            target.load_state_dict({k[len(prefix):]: v for k, v in init.items()
                                    if k.startswith(prefix)})

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss_d"]

    def hand_epoch() -> float:
        return _hand_epoch(model, data.y, g, d)

    threads = torch.get_num_threads()
    torch.set_num_threads(1 if device.type == "cpu" else threads)
    try:
        times, losses = interleaved_epochs({"ebmkit": trainer_epoch, "hand": hand_epoch},
                                           reset, device, repeats)
    finally:
        torch.set_num_threads(threads)
    t_e, t_h = statistics.median(times["ebmkit"]), statistics.median(times["hand"])
    diff = abs(losses["ebmkit"] - losses["hand"])
    assert diff <= 1e-3 * max(1.0, abs(losses["hand"])), (
        f"ebmkit and the hand loop disagree: mean D loss {losses['ebmkit']} vs {losses['hand']}")
    steps = -(-len(data) // BATCH)
    note = (f"one epoch = {steps} DCGAN steps (D then G) of batch {BATCH} on digits 8×8, widths "
            f"64, latent 32{', torch.compile' if compile else ''}; median of {repeats} "
            f"interleaved repeats; mean D loss {losses['ebmkit']:.5f} vs {losses['hand']:.5f}")
    return Result(f"DCGAN step, both players{' (compiled)' if compile else ''}", t_e / steps,
                  t_h / steps, "hand-written PyTorch DCGAN step", 1.05, device=device.type,
                  notes=note)


def run(smoke: bool) -> list[Result]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    repeats = 1 if smoke else 15
    results = [_pair(device, repeats, compile=False)]
    if device.type == "cuda":
        results.append(_pair(device, repeats, compile=True))
    return results
