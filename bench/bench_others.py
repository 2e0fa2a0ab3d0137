"""ebmkit beside the other PyTorch EBM libraries: TorchEBM and ``ebm`` (PyPI ``ebmkit``).

Two pieces of work every EBM library does, timed side by side in one process, on the same
energy network, batch and number of gradient evaluations:

- **Langevin sampling**: ``steps`` unadjusted Langevin updates y ← y − η∇E(y) + σε from the
  same start (ebmkit ``Langevin``, ebm ``LangevinDynamics``, TorchEBM ``LangevinDynamics``
  with its noise scale set so that σ is the same).
- **Persistent CD training step**: chain starts from a replay buffer, ``steps`` Langevin
  updates, the CD loss E(data) − E(negatives), backward and an Adam step (ebmkit's
  ``ContrastiveDivergence`` strategy with a ``ReplayBuffer``; ebm's ``ContrastiveDivergence``
  with its ``ReplayBuffer``; TorchEBM's ``ContrastiveDivergence(persistent=True)``), with no
  energy-magnitude penalty on any side. Each library's own optional extras (TorchEBM's
  non-finite-loss substitution, ebmkit's finite-data check) stay as they ship.

A library that is not installed is left out; with neither installed the bench reports
nothing (``pip install 'torch-ebmkit[others]'`` installs both; neither changes torch).
Importing TorchEBM's trainer sets ``torch.set_float32_matmul_precision("high")``; the bench
imports only its sampler and loss, and checks the setting afterwards.
"""

from __future__ import annotations

import importlib.util

from .harness import Result, interleaved_times


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run(smoke: bool) -> list[Result]:
    have_ebm, have_tebm = _have("ebm"), _have("torchebm")
    if not (have_ebm or have_tebm):
        print("  skipped: neither torchebm nor ebm (PyPI 'ebmkit') is installed")
        return []
    import torch

    precision, threads = torch.get_float32_matmul_precision(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(smoke, have_ebm, have_tebm, precision)
    finally:
        torch.set_num_threads(threads)


def _run(smoke: bool, have_ebm: bool, have_tebm: bool, precision: str) -> list[Result]:
    import math

    import torch
    from torch import nn

    import ebmkit as ek

    dim, batch, steps, hidden = (4, 8, 3, 16) if smoke else (2, 256, 20, 128)
    repeats = 1 if smoke else 15
    eta, sigma = 0.01, 0.005
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                        nn.Linear(hidden, 1))

    def energy(y: torch.Tensor) -> torch.Tensor:  # [B, dim] -> [B]: a plain callable
        return net(y).squeeze(-1)

    init = torch.randn(batch, dim)
    data = torch.randn(4096, dim) * 0.5 + 1.0
    results: list[Result] = []

    # -- Langevin --------------------------------------------------------------------------
    ours_sampler = ek.samplers.Langevin(steps=steps, step_size=eta, noise=sigma)
    samplers = {"ebmkit": lambda: ours_sampler.sample(energy, init)}
    if have_ebm:
        import ebm

        theirs = ebm.LangevinDynamics(step_size=eta, steps=steps, noise_scale=sigma)
        samplers["ebm"] = lambda: theirs.sample(energy, init)
    if have_tebm:
        from torchebm.core import BaseModel
        from torchebm.samplers import LangevinDynamics

        class TorchEBMEnergy(BaseModel):  # TorchEBM's samplers need its BaseModel (gradient())
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, y: torch.Tensor) -> torch.Tensor:
                return self.net(y).squeeze(-1)

        tmodel = TorchEBMEnergy()
        # TorchEBM steps x - η∇E + sqrt(2η)·noise_scale·ε: this noise_scale gives the same σ.
        tsampler = LangevinDynamics(tmodel, step_size=eta, noise_scale=sigma / math.sqrt(2 * eta))
        samplers["torchebm"] = lambda: tsampler.sample(x=init, n_steps=steps)
    names = list(samplers)
    for fn in samplers.values():
        fn()  # warm-up
    times = dict(zip(names, interleaved_times(list(samplers.values()), repeats)))
    for name in names[1:]:
        results.append(Result(f"Langevin, {steps} steps (vs {name})", times["ebmkit"], times[name],
                              f"{name} LangevinDynamics", None,
                              notes=f"MLP {dim}→{hidden}→{hidden}→1 (SiLU), batch {batch}, "
                                    f"η={eta:g}, σ={sigma:g}; median of {repeats} interleaved "
                                    f"repeats; 1 intra-op thread"))

    # -- persistent CD training step -------------------------------------------------------
    class Ours(ek.EnergyModel):
        name = "bench.mlp"

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def energy(self, y, x=None, z=None):  # noqa: ANN001, ANN201
            return self.net(y).squeeze(-1)

        def config(self):  # noqa: ANN201
            return {}

    ours_model = Ours()
    strategy = ek.strategies.ContrastiveDivergence(
        ek.samplers.Langevin(steps=steps, step_size=eta, noise=sigma),
        buffer=ek.samplers.ReplayBuffer(capacity=4096, reinit=0.05), alpha=0.0,
        init=lambda y: torch.randn_like(y))
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def batch_of() -> torch.Tensor:
        return data[torch.randint(len(data), (batch,), generator=gen)]

    def step_ours() -> float:
        out = strategy(ours_model, {"y": batch_of()})
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        return out.loss

    steps_fns = {"ebmkit": step_ours}
    if have_ebm:
        cd = ebm.ContrastiveDivergence(ebm.LangevinDynamics(step_size=eta, steps=steps,
                                                            noise_scale=sigma),
                                       buffer=ebm.ReplayBuffer(4096, (dim,), reinit_prob=0.05))

        def step_ebm() -> float:
            out = cd(energy, batch_of())
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            return out.loss

        steps_fns["ebm"] = step_ebm
    if have_tebm:
        from torchebm.losses import ContrastiveDivergence as TCD

        tcd = TCD(model=tmodel, sampler=tsampler, k_steps=steps, persistent=True,
                  buffer_size=4096, new_sample_ratio=0.05, energy_reg_weight=0.0)

        def step_tebm() -> float:
            loss, _ = tcd(batch_of())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        steps_fns["torchebm"] = step_tebm
    names = list(steps_fns)
    for fn in steps_fns.values():
        fn()
        fn()  # warm-up (buffers allocated)
    times = dict(zip(names, interleaved_times(list(steps_fns.values()), repeats)))
    for name in names[1:]:
        results.append(Result(f"persistent CD step, {steps} Langevin steps (vs {name})",
                              times["ebmkit"], times[name], f"{name} ContrastiveDivergence + "
                              "replay buffer", None,
                              notes=f"batch {batch} of a 2-D Gaussian, buffer 4096, 5% fresh "
                                    f"starts, Adam; median of {repeats} interleaved repeats"))
    if torch.get_float32_matmul_precision() != precision:
        raise RuntimeError("a library changed torch's float32 matmul precision during the bench")
    return results
