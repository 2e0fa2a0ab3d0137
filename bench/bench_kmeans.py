"""Lloyd K-means: ``ek.get_model("kmeans").fit`` vs scikit-learn's ``KMeans(algorithm="lloyd")``.

200,000 × 64 float32 points (a mixture of 30 Gaussians), K = 100, exactly 20 Lloyd
iterations (``tol=0``) from the same initial centroids on both sides, interleaved in one
process: the same algorithm, so the inertias must agree to 1e-4 relative. Target: ebmkit ≤
1.0× scikit-learn's time on the CPU (≥ 20× faster on CUDA when there is one).

Peak memory: each side runs once more in a fresh interpreter that builds the data in place
and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss``; the figure is (peak RSS − RSS
after imports, before the data) / data size, so the data itself counts as 1.0×. Target ≤ 1.5×.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

from .harness import ROOT, Result, interleaved_times

_DATA = """
import torch
def make(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(30, d, generator=g) * 3
    y = torch.randn(n, d, generator=g)
    which = torch.randint(0, 30, (n,), generator=g)
    for s in range(0, n, 8192):                 # in place: no N×D temporary
        y[s:s + 8192] += means[which[s:s + 8192]]
    return y
"""

_MEMORY = _DATA + """
import json, resource, sys
side, n, d, k, iters = sys.argv[1], *map(int, sys.argv[2:6])
import ebmkit as ek
from sklearn.cluster import KMeans
torch.set_num_threads(2)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
y = make(n, d)
init = y[:k].clone()
if side == "ebmkit":
    ek.get_model("kmeans", k=k, dim=d, init=init, max_iter=iters, tol=0.0).fit(y)
else:
    KMeans(k, init=init.numpy(), n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(y.numpy())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ratio": (peak - base) * 1024 / (y.numel() * 4)}))
"""


def _memory(side: str, n: int, d: int, k: int, iters: int) -> float:
    out = subprocess.run([sys.executable, "-c", _MEMORY, side, str(n), str(d), str(k), str(iters)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ratio"]


def run(smoke: bool) -> list[Result]:
    warnings.simplefilter("ignore")
    import torch
    from sklearn.cluster import KMeans

    import ebmkit as ek

    namespace: dict = {}
    exec(_DATA, namespace)  # noqa: S102 - the shared data recipe
    n, d, k, iters = (5_000, 16, 10, 5) if smoke else (200_000, 64, 100, 20)
    repeats = 1 if smoke else 3
    y = namespace["make"](n, d)
    init = y[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:k]].clone()
    y_np, init_np = y.numpy(), init.numpy()
    model = ek.get_model("kmeans", k=k, dim=d, init=init, max_iter=iters, tol=0.0)
    state: dict = {}

    def ours():
        state["ours"] = model.fit(y).inertia_

    def reference():
        state["ref"] = KMeans(k, init=init_np, n_init=1, max_iter=iters, tol=0.0,
                              algorithm="lloyd").fit(y_np).inertia_

    ours(), reference()  # warm-up, and the agreement check
    agree = abs(state["ours"] - state["ref"]) / state["ref"]
    if agree > 1e-4:
        raise RuntimeError(f"kmeans inertia {state['ours']} vs scikit-learn {state['ref']}: "
                           f"relative difference {agree:.2e} > 1e-4")
    t_ours, t_ref = interleaved_times([ours, reference], repeats)
    mem_ours = _memory("ebmkit", n, d, k, iters)
    mem_ref = _memory("sklearn", n, d, k, iters)
    results = [Result(
        f"Lloyd K-means ({n:,}×{d} float32, K={k}, {iters} iterations)", t_ours, t_ref,
        "sklearn KMeans lloyd", 1.0, device="cpu",
        notes=f"same initial centroids, tol=0; inertia {state['ours']:.6g} vs {state['ref']:.6g} "
              f"(relative difference {agree:.1e}); model.n_iter_={model.n_iter_}; peak memory "
              f"over the data (maxrss in a fresh process, data counted as 1.0×): ebmkit "
              f"{mem_ours:.2f}×, scikit-learn {mem_ref:.2f}× (target ≤ 1.5×); torch threads "
              f"{torch.get_num_threads()}",
        extra={"peak_memory_over_data": mem_ours, "sklearn_peak_memory_over_data": mem_ref})]
    if torch.cuda.is_available():
        y_gpu = y.cuda()
        gpu_model = ek.get_model("kmeans", k=k, dim=d, init=init, max_iter=iters, tol=0.0).cuda()

        def ours_gpu():
            gpu_model.fit(y_gpu)
            torch.cuda.synchronize()

        ours_gpu()
        (t_gpu,) = interleaved_times([ours_gpu], repeats)
        results.append(Result(
            f"Lloyd K-means on CUDA ({n:,}×{d}, K={k}, {iters} iterations)", t_gpu, t_ref,
            "sklearn KMeans lloyd (CPU)", 0.05, device=torch.cuda.get_device_name(0),
            notes=f"inertia {gpu_model.inertia_:.6g} vs CPU scikit-learn {state['ref']:.6g}"))
    return results
