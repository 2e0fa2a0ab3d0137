"""Langevin sampling: ``ek.samplers.Langevin`` against the hand-written JEM loop.

Both run the same short-run SGLD updates, y ← y − η∇E(y) + σε (η = 10, σ = 0.005, 60
steps, the DESIGN example), on the same MLP energy over 64-D digits-like inputs, from the
same start and RNG seed, interleaved in one process. The reference is the loop of JEM's
``sample_q`` (Grathwohl et al., 2020): ``autograd.grad`` then ``x.data += ...``.
"""

from __future__ import annotations

from .harness import Result, interleaved_times


def _pair(sampler, dim: int, hidden: int, chains: int, steps: int, step_size: float,
          noise: float, device):
    """The bench's MLP energy, its start and the two timed callables: ``sampler.sample`` and
    the hand-written JEM loop (``autograd.grad`` then ``x.data += ...``), each seeded alike."""
    import torch
    from torch import nn

    from ebmkit.energy import Network

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                        nn.Linear(hidden, 1)).to(device)
    energy = Network(net)  # the same callable for both
    init = torch.rand(chains, dim, device=device)  # pixels in [0, 1], like digits

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def ours() -> torch.Tensor:
        torch.manual_seed(1)
        out = sampler.sample(energy, init)
        sync()
        return out

    def reference() -> torch.Tensor:
        torch.manual_seed(1)
        x_k = init.clone().requires_grad_(True)
        for _ in range(steps):
            f_prime = torch.autograd.grad(energy(x_k).sum(), [x_k])[0]
            x_k.data += -step_size * f_prime + noise * torch.randn_like(x_k)
        out = x_k.detach()
        sync()
        return out

    return net, ours, reference


def run(smoke: bool) -> list[Result]:
    import torch

    from ebmkit.samplers import Langevin

    dim, batch, steps, hidden = (8, 8, 5, 16) if smoke else (64, 128, 60, 256)
    repeats = 1 if smoke else 9
    step_size, noise = 10.0, 0.005
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    sampler = Langevin(steps=steps, step_size=step_size, noise=noise)
    net, ours, reference = _pair(sampler, dim, hidden, batch, steps, step_size, noise, device)

    a, b = ours(), reference()  # also the warm-up
    # Same arithmetic up to float rounding order (ours adds −ηg and σε one after the other).
    same = torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    diff = float((a - b).abs().max())
    no_grads = all(p.grad is None for p in net.parameters())
    # ABBA order within each repeat, so neither side always runs first (drift, caches).
    a1, r1, r2, a2 = interleaved_times([ours, reference, reference, ours], repeats)
    t_ours, t_ref = (a1 + a2) / 2, (r1 + r2) / 2
    notes = (f"MLP energy {dim}→{hidden}→{hidden}→1 (SiLU), batch {batch}, {steps} steps, "
             f"η={step_size:g}, σ={noise:g}; median of {repeats} interleaved ABBA repeats; samples "
             f"{'identical (allclose)' if same else 'DIFFER'} to the reference (max |Δ| "
             f"{diff:.1e}); parameter grads left untouched: {no_grads}")
    results = [Result("Langevin (SGLD) sampling", t_ours, t_ref, "hand-written JEM loop", 1.05,
                      device=device.type, notes=notes)]
    results += [_compiled_row(chains, smoke, device) for chains in (64, 4096)]
    return results


def _compiled_row(chains: int, smoke: bool, device) -> Result:
    """``Langevin(compile=True)`` against the hand-written loop at ``chains`` chains.

    64 chains is the overhead-bound case (Python and autograd per step, tiny kernels), where
    the compiled loop (``torch.func.grad`` traced, twenty steps per inference graph, CUDA
    graphs on a GPU) should pay off; 4096 chains is compute-bound, where it can only fuse
    elementwise work. The first call compiles and is not timed.
    """
    import torch

    from ebmkit.samplers import Langevin

    dim, steps, hidden = (8, 10, 16) if smoke else (64, 60, 256)
    chains = min(chains, 16) if smoke else chains
    repeats = 1 if smoke else (9 if chains <= 64 else 3)
    step_size, noise = 10.0, 0.005
    compiled = Langevin(steps=steps, step_size=step_size, noise=noise, compile=True)
    _, ours, reference = _pair(compiled, dim, hidden, chains, steps, step_size, noise, device)

    import statistics
    import time

    t0, c0 = time.perf_counter(), time.process_time()
    a = ours()  # compiles
    compile_s, compile_cpu = time.perf_counter() - t0, time.process_time() - c0
    b = reference()
    diff = float((a - b).abs().max())
    cpu: dict[str, list[float]] = {"ours": [], "reference": []}

    def cpu_timed(fn, name: str):  # CPU time of this process too: wall is inflated by load
        def timed() -> None:
            c = time.process_time()
            fn()
            cpu[name].append(time.process_time() - c)
        return timed

    o, r = cpu_timed(ours, "ours"), cpu_timed(reference, "reference")
    a1, r1, r2, a2 = interleaved_times([o, r, r, o], repeats)
    cpu_ratio = statistics.median(cpu["ours"]) / statistics.median(cpu["reference"])
    notes = (f"Langevin(compile=True) vs the hand-written JEM loop: MLP energy {dim}→{hidden}→"
             f"{hidden}→1 (SiLU), {chains} chains, {steps} steps, η={step_size:g}, "
             f"σ={noise:g}, {torch.get_num_threads()} intra-op threads; median of {repeats} "
             f"interleaved ABBA repeats after one compiling call ({compile_s:.1f} s wall, "
             f"{compile_cpu:.1f} s CPU); CPU-time ratio {cpu_ratio:.2f}; max |Δ| to the eager "
             f"loop {diff:.1e} (same noise draws, other rounding order)")
    target = 0.7 if chains == 64 else None
    return Result(f"Langevin compiled, {chains} chains", (a1 + a2) / 2, (r1 + r2) / 2,
                  "hand-written JEM loop", target, device=device.type, notes=notes,
                  extra={"compile_s": compile_s, "compile_cpu_s": compile_cpu,
                         "cpu_time_ratio": cpu_ratio})
