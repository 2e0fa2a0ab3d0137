"""The ``ssl`` family: SimCLR training steps through ``ek.Trainer`` against a hand loop.

The ebmkit side is ``ek.get_model("ssl.simclr")`` with its registered recipe's options
(conv32-conv64-fc128-fc32 encoder on 8×8 digits), batch 256, two views per image, trained
by its default strategy: ``model.step`` draws the views with the model's batched, seeded
augmentations and scores them with NT-Xent through ``ek.losses.nll``. The reference is a
hand-written PyTorch loop over the *same* modules (``model.encoder``, ``model.projector``)
and the same transform object with a generator seeded alike (so both see identical views),
with NT-Xent written as one ``cross_entropy`` over the masked similarity matrix, and the
recipe's moving average of the encoder's weights (``eval_ema``) updated before each step:
what one writes without ebmkit. Both use Adam (the recipe's lr), the first 1,280 digits (5 full steps
of 256) in the same order, and start every repeat from the same weights; they run
interleaved on one intra-op thread, and their final mean losses must agree.

Two more rows run the same comparison with the networks registry's ``resnet`` (ResNet-18,
width 16, small-image stem) in SimCLR's ``encoder`` slot (issue 20: ≤ 1.05× the hand loop).

A last row reports the augmentation's share of a step: the time to draw the two views of a
batch of 256 (shift, affine, erase, noise on the whole batch) over the time of one step.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as nnf

from .harness import Result, hand_adam_epoch, trainer_vs_hand

BATCH, SEED, STEPS, RESNET_STEPS = 256, 0, 5, 3


def _simclr_vs_hand(ek: object, device: torch.device, lr: float, y: torch.Tensor,
                    options: dict, label: str, what: str,
                    repeats: int) -> tuple[list[Result], object]:
    """Trainer epoch vs the hand loop for one SimCLR configuration; returns the rows and
    the model (left at its initial weights)."""
    data = ek.data.TensorData({"y": y}, name="digits", split="train")
    torch.manual_seed(SEED)
    model = ek.get_model("ssl.simclr", **options).to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    tau = model.cfg.temperature
    shape = tuple(model.view_shape)

    def reset() -> None:
        model.load_state_dict(init)
        model._generators.clear()  # the views restart from the seed on both sides

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, lr=lr, epochs=1, batch_size=BATCH, device=device,
                             seed=SEED, progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        g = torch.Generator(device=device).manual_seed(model.cfg.seed)
        averaged = [(model.ema_encoder, model.encoder), (model.ema_projector, model.projector)]

        def ntxent(batch: torch.Tensor) -> torch.Tensor:  # SimCLR written out by hand
            n = batch.shape[0]
            if model.ema_encoder is not None:  # the recipe's weight average (eval_ema)
                with torch.no_grad():
                    for avg, net in averaged:
                        for p_avg, p in zip(avg.parameters(), net.parameters()):
                            p_avg.lerp_(p, 1.0 - model.cfg.eval_ema)
                        for b_avg, b in zip(avg.buffers(), net.buffers()):
                            b_avg.copy_(b)
            with torch.no_grad():
                views = model.transform(torch.cat([batch, batch]).reshape(2 * n, *shape), g)
            z = nnf.normalize(model.projector(model.encoder(views)), dim=1)
            logits = (z @ z.T / tau).fill_diagonal_(-math.inf)
            target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(device)
            return nnf.cross_entropy(logits, target)

        return hand_adam_epoch(params, y, ntxent, fused, lr, BATCH, SEED)

    rows = trainer_vs_hand(label, trainer_epoch, hand_epoch, reset, device, repeats, 1e-4,
                           what)
    return rows, model


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek
    from ebmkit.runs import recipe

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    plan = recipe(ek.plugins.get_entry("models", "ssl.simclr"))
    lr = float(plan["lr"])
    digits = ek.get_dataset("digits", split="train")
    y = digits.y[:BATCH * STEPS].to(device)
    options = {"dim": 64, "image_shape": [1, 8, 8], **plan.get("options", {})}
    tau = ek.get_model("ssl.simclr", **options).cfg.temperature
    rows, model = _simclr_vs_hand(
        ek, device, lr, y, options, "SimCLR steps (digits, batch 256, two views)",
        f"{STEPS} steps of {BATCH} digits × 2 views, `ssl.simclr` recipe "
        f"(conv32-conv64-fc128-fc32, τ = {tau:g}), NT-Xent, Adam", 1 if smoke else 31)
    # The same step with the registry's `resnet` in the encoder slot (issue 20): the slot
    # must cost nothing over putting the network in a hand loop.
    spec = {"name": "resnet", "depth": 18, "width": 16}
    resnet_rows, _ = _simclr_vs_hand(
        ek, device, lr, y[:BATCH * RESNET_STEPS], {**options, "encoder": spec},
        "SimCLR steps, `resnet` encoder (digits, batch 256)",
        f"{RESNET_STEPS} steps of {BATCH} digits × 2 views, `ssl.simclr` recipe with "
        f"`--set encoder='{{\"name\": \"resnet\", \"depth\": 18, \"width\": 16}}'` "
        f"(ResNet-18, small-image stem, batch norm over both views), NT-Xent, Adam",
        1 if smoke else 7)
    rows += resnet_rows
    params = list(model.parameters())

    # The augmentation's share of one step.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch = y[:BATCH]
        aug, step = [], []
        opt = torch.optim.Adam(params, lr=lr)
        for i in range(3 if smoke else 23):
            t0 = time.perf_counter()
            model.augment(torch.cat([batch, batch]))
            if device.type == "cuda":
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            loss, _ = model.step(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            if i >= 3 or smoke:
                aug.append(t1 - t0)
                step.append(t2 - t1)
    finally:
        torch.set_num_threads(threads)
    a, s = statistics.median(aug), statistics.median(step)
    rows.append(Result("SimCLR: augmentation's share of a step", a, s,
                       "one full SimCLR step (views, forward, backward, Adam)", None,
                       device=device.type,
                       notes=f"two views of 256 digits (shift, affine, erase, noise, batched): "
                             f"{a * 1e3:.1f} ms of a {s * 1e3:.1f} ms step = {a / s:.0%}; "
                             f"1 intra-op thread"))
    return rows
