"""Attention family: ``hopfield.retrieve`` and ``HopfieldLayer`` against plain PyTorch.

1. One retrieval step of ``ek.get_model("hopfield")`` (``normalize=False``, the formula as
   written) against the same update written by hand, ``softmax(β·Q·Xᵀ)·X``: N = 1,797 stored
   digits, 4,096 queries, float32. Same work, so the outputs must agree to 1e-5; the ratio
   is the cost of the model's input checks and bookkeeping. Target ≤ 1.05×.
2. Completion of half-masked queries, the recipe's way (``normalize=True``, β = 64): 4,096
   digits with 32 of their 64 pixels hidden, ``hopfield.predict`` (one update of the
   Hopfield energy restricted to each query's visible entries: weights
   softmax(β(X_vis·y_vis − ½‖x_{i,vis}‖²)) mixing the raw patterns) against the same maths
   written by hand, ``softmax(β(Y·Xᵀ − ½M·(X²)ᵀ))·X`` with Y the query with NaN set to 0
   and M its visible mask (X² squared once, outside the timing, as the model caches its
   keys). Target ≤ 1.0×.
3. ``HopfieldLayer`` forward + backward (learned keys and values, one update) against
   ``torch.nn.MultiheadAttention`` of the same size attending to a learned memory of the same
   number of patterns: reported, no target.
4. ``Hopfield(x, x)`` self-attention forward + backward against ``MultiheadAttention(x, x,
   x)``: reported, no target.

CUDA rows are added when a GPU is present.
"""

from __future__ import annotations

import statistics
import time

from .harness import Result, interleaved_times


def _sync(device: object) -> None:
    import torch

    if getattr(device, "type", "") == "cuda":
        torch.cuda.synchronize()


def _time_pair(ours: object, hand: object, device: object,
               repeats: int) -> tuple[float, float, str, str]:
    """Median times of ``ours`` and ``hand`` (after one warm-up call each), interleaved over
    3·repeats rounds with the order flipping every round, the device's name and how it was
    timed. On the CPU: one intra-op thread and the process's CPU time (on a shared machine the
    wall clock counts the other tenants' turns; CPU time of one thread is this work alone). On
    CUDA: wall time, synchronised after each call (by ``ours``/``hand`` themselves)."""
    import torch

    cpu = getattr(device, "type", str(device)) == "cpu"
    clock = time.process_time if cpu else time.perf_counter
    threads = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)
    times: list[list[float]] = [[], []]
    try:
        with torch.no_grad():
            ours(), hand()  # warm-up: first-call allocations are not the update's cost
            for r in range(3 * repeats):  # interleaved, the order flipping every round
                for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                    start = clock()
                    (ours, hand)[i]()
                    times[i].append(clock() - start)
    finally:
        torch.set_num_threads(threads)
    kind = getattr(device, "type", str(device))
    name = torch.cuda.get_device_name(0) if kind == "cuda" else "cpu"
    how = "CPU time of 1 intra-op thread" if cpu else "wall time, synchronised"
    return statistics.median(times[0]), statistics.median(times[1]), name, how


def _retrieve_rows(device: object, smoke: bool, repeats: int) -> list[Result]:
    import torch

    import ebmkit as ek

    digits = ek.get_dataset("digits", split="all").y.to(device)  # [1797, 64]
    n_q = 256 if smoke else 4096
    gen = torch.Generator().manual_seed(0)
    q = digits[torch.randint(0, len(digits), (n_q,), generator=gen)].clone()
    q += 0.1 * torch.randn(q.shape, generator=gen).to(device)
    beta = 0.5
    net = ek.get_model("hopfield", dim=64, beta=beta).to(device).store(digits)
    X = digits

    def ours() -> object:
        out = net.retrieve(q)
        _sync(device)
        return out

    def hand() -> object:
        out = torch.softmax(beta * q @ X.t(), dim=1) @ X
        _sync(device)
        return out

    diff = float((ours() - hand()).abs().max())
    if diff > 1e-5:
        raise RuntimeError(f"hopfield.retrieve and the hand-written update differ by {diff}")
    t_ours, t_hand, name, how = _time_pair(ours, hand, device, repeats)
    return [Result(
        f"hopfield.retrieve, one step (N={len(X):,} stored, {n_q:,} queries, D=64)", t_ours, t_hand,
        "hand-written softmax(β·Q·Xᵀ)·X", 1.05, device=name,
        notes=f"float32, normalize=False, β={beta}; max |difference| {diff:.1e}; {how}; median "
              f"of {3 * repeats} interleaved repeats, the order flipping every round")]


def _completion_rows(device: object, smoke: bool, repeats: int) -> list[Result]:
    import torch

    import ebmkit as ek

    digits = ek.get_dataset("digits", split="all").y.to(device)  # [1797, 64]
    n_q = 256 if smoke else 4096
    gen = torch.Generator().manual_seed(0)
    beta = 64.0
    net = ek.get_model("hopfield", dim=64, beta=beta, normalize=True).to(device).store(digits)
    x = net.mask(digits[torch.randint(0, len(digits), (n_q,), generator=gen)], 0.5,
                 generator=gen)
    X = digits
    X2 = X.square()  # once, as the model caches its keys

    def ours() -> object:
        out = net.predict(x)
        _sync(device)
        return out

    def hand() -> object:
        m = (~torch.isnan(x)).to(X.dtype)  # visible entries
        y = torch.nan_to_num(x, nan=0.0)
        out = torch.softmax(beta * (y @ X.t() - 0.5 * m @ X2.t()), dim=1) @ X
        _sync(device)
        return out

    diff = float((ours() - hand()).abs().max())
    if diff > 1e-4:
        raise RuntimeError(f"hopfield.predict and the hand-written completion differ by {diff}")
    t_ours, t_hand, name, how = _time_pair(ours, hand, device, repeats)
    return [Result(
        f"hopfield.predict, half-masked queries (N={len(X):,} stored, {n_q:,} queries, one "
        f"step, normalize=True)", t_ours, t_hand,
        "hand-written softmax(β(Y·Xᵀ − ½M·(X²)ᵀ))·X (visible-entry distances)",
        1.0, device=name,
        notes=f"float32, β={beta}, 32 of 64 pixels hidden; max |difference| {diff:.1e}; "
              f"input checks included on ebmkit's side; {how}; median of {3 * repeats} "
              f"interleaved repeats")]


def _layer_rows(device: object, smoke: bool, repeats: int) -> list[Result]:
    import torch
    from torch import nn

    from ebmkit_attention import Hopfield, HopfieldLayer

    b, t, d, heads, patterns = (4, 16, 32, 4, 16) if smoke else (32, 64, 128, 8, 64)
    torch.manual_seed(0)
    x = torch.randn(b, t, d, device=device, requires_grad=True)
    table = HopfieldLayer(d, patterns=patterns, heads=heads).to(device)
    mha = nn.MultiheadAttention(d, heads, bias=False, batch_first=True).to(device)
    memory = nn.Parameter(torch.randn(patterns, d, device=device) / d ** 0.5)
    self_attn = Hopfield(d, heads=heads).to(device)

    def step(fn):
        def run() -> None:
            out = fn()
            out.square().mean().backward()
            _sync(device)
        return run

    table_fb = step(lambda: table(x))
    mha_table_fb = step(lambda: mha(x, memory.expand(b, -1, -1), memory.expand(b, -1, -1),
                                    need_weights=False)[0])
    self_fb = step(lambda: self_attn(x, x))
    mha_self_fb = step(lambda: mha(x, x, x, need_weights=False)[0])
    for fn in (table_fb, mha_table_fb, self_fb, mha_self_fb):
        fn()  # warm-up
    t1 = interleaved_times([table_fb, mha_table_fb], repeats)
    t2 = interleaved_times([self_fb, mha_self_fb], repeats)
    kind = getattr(device, "type", str(device))
    name = torch.cuda.get_device_name(0) if kind == "cuda" else "cpu"
    size = f"batch {b}, {t} tokens, width {d}, {heads} heads"
    return [
        Result(f"HopfieldLayer forward+backward ({size}, {patterns} learned patterns)", t1[0], t1[1],
               "nn.MultiheadAttention on a learned memory", None, device=name,
               notes="one update (plain attention); both sides use PyTorch's scaled-dot-product "
                     "kernels; reported, no target"),
        Result(f"Hopfield self-attention forward+backward ({size})", t2[0], t2[1],
               "nn.MultiheadAttention(x, x, x)", None, device=name, notes="reported, no target"),
    ]


def run(smoke: bool) -> list[Result]:
    import torch

    repeats = 3 if smoke else 30
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results: list[Result] = []
    for device in devices:
        results += _retrieve_rows(device, smoke, repeats)
        results += _completion_rows(device, smoke, repeats)
        results += _layer_rows(device, smoke, repeats)
    return results
