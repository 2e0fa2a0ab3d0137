"""LISTA and DrSAE: one training epoch through ``ek.Trainer`` against hand loops.

- **LISTA** (``sparse.lista`` as registered: 64 → 128 atoms, 5 tied layers, λ = 0.5) trained
  with its default strategy, regressing the FISTA teacher's optimal codes carried by the
  data (``model.with_targets``, computed once). The reference is Gregor & LeCun's encoder
  written out over the same parameters (W_e, S, θ): z₁ = h_θ(W_e y),
  z_{t+1} = h_θ(W_e y + S z_t) with h the soft threshold, and the loss ‖z_T − z*‖² summed
  over atoms, averaged over the batch.
- **DrSAE** (``sparse.drsae`` as registered: 256 atoms, 5 recurrent steps, λ = 0.1) trained
  with its default strategy. The reference is Rolfe & LeCun's encoder written out over the
  same parameters: z₀ = ReLU(E y − b), z_{t+1} = ReLU(E y − b + S z_t), then
  ½‖y − D z_T‖² + λ|z_T|₁ with unit-norm columns D = V/‖V‖ plus the classification weight
  times the cross-entropy of the linear classifier on z_T.

Both sides use Adam (lr 1e-3), batch 64, the digits train split in the same order and the
same initial weights every repeat; they run interleaved on one intra-op thread, and their
final mean epoch losses must agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .harness import Result, hand_adam_epoch, trainer_vs_hand

BATCH, LR, SEED = 64, 1e-3, 0


def _soft(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return v.sign() * (v.abs() - theta).clamp_min(0)


def _lista(smoke: bool, device: torch.device, digits) -> list[Result]:
    import ebmkit as ek

    torch.manual_seed(SEED)
    model = ek.get_model("sparse.lista").to(device)
    data = model.with_targets(ek.data.TensorData({"y": digits.y.to(device)}, name="digits",
                                                 split="train"))
    data = ek.data.TensorData({"y": data.y.to(device), "z_star": data.tensors["z_star"].to(device)},
                              name="digits", split="train")
    init = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    enc, layers, tied = model.encoder, model.cfg.layers, model.cfg.tied
    both = torch.cat([data.y, data.tensors["z_star"]], dim=1)  # one tensor: rows stay paired
    d = data.y.shape[1]

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, lr=LR, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        def code_error(batch: torch.Tensor) -> torch.Tensor:
            y, z_star = batch[:, :d], batch[:, d:]
            b = y @ enc.w_e.t()
            z = _soft(b, enc.theta[0])
            for t in range(1, layers):
                s = enc.s[0 if tied else t - 1]
                z = _soft(b + z @ s.t(), enc.theta[0 if tied else t])
            return (z - z_star).square().sum(1).mean()

        return hand_adam_epoch(params, both, code_error, fused, LR, BATCH, SEED)

    steps = -(-len(both) // BATCH)
    return trainer_vs_hand(
        "LISTA epoch (digits)", trainer_epoch, hand_epoch, lambda: model.load_state_dict(init),
        device, 1 if smoke else 41, 1e-4,
        f"one epoch of digits train ({len(both)} rows, {steps} steps of {BATCH}), `sparse.lista` "
        f"{model.cfg.atoms} atoms, {layers} {'tied' if tied else 'untied'} layers, regressing "
        f"precomputed FISTA codes, Adam")


def _drsae(smoke: bool, device: torch.device, digits) -> list[Result]:
    import ebmkit as ek

    torch.manual_seed(SEED)
    model = ek.get_model("sparse.drsae", classification=1.0).to(device)
    data = ek.data.TensorData({"y": digits.y.to(device), "label": digits.labels.to(device)},
                              name="digits", split="train")
    init = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    cfg, d = model.cfg, data.y.shape[1]
    both = torch.cat([data.y, data.labels.to(data.y.dtype)[:, None]], dim=1)
    v = model.decoder.parametrizations.weight.original  # D = V / ‖V‖ column-wise

    def trainer_epoch() -> float:
        trainer = ek.Trainer(model, lr=LR, epochs=1, batch_size=BATCH, device=device, seed=SEED,
                             progress=False)
        return trainer.fit(data)[-1]["loss"]

    def hand_epoch(fused: bool | None) -> float:
        def loss(batch: torch.Tensor) -> torch.Tensor:
            y, label = batch[:, :d], batch[:, d].long()
            b = y @ model.encoder.weight.t() + model.encoder.bias
            z = b.clamp_min(0)
            for _ in range(cfg.layers):
                z = (b + z @ model.s.t()).clamp_min(0)
            dictionary = v / v.norm(dim=0, keepdim=True).clamp_min(1e-8)
            energy = 0.5 * (y - z @ dictionary.t()).square().sum(1) + cfg.lam * z.abs().sum(1)
            logits = z @ model.classifier.weight.t() + model.classifier.bias
            return energy.mean() + cfg.classification * nnf.cross_entropy(logits, label)

        return hand_adam_epoch(params, both, loss, fused, LR, BATCH, SEED)

    steps = -(-len(both) // BATCH)
    return trainer_vs_hand(
        "DrSAE epoch (digits)", trainer_epoch, hand_epoch, lambda: model.load_state_dict(init),
        device, 1 if smoke else 41, 1e-4,
        f"one epoch of digits train ({len(both)} rows, {steps} steps of {BATCH}), `sparse.drsae` "
        f"{cfg.atoms} atoms, {cfg.layers} recurrent steps, reconstruction + L1 + cross-entropy, "
        f"Adam")


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    digits = ek.get_dataset("digits", split="train")
    return [*_lista(smoke, device, digits), *_drsae(smoke, device, digits)]
