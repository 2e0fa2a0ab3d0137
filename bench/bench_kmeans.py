"""Lloyd K-means: ``ek.get_model("kmeans").fit`` vs scikit-learn's ``KMeans(algorithm="lloyd")``.

200,000 × 64 float32 points (a mixture of 30 Gaussians), K = 100, exactly 20 Lloyd
iterations (``tol=0``) from the same initial centroids on both sides, interleaved in one
process: the same algorithm, so the inertias must agree to 1e-4 relative. Target: ebmkit ≤
1.0× scikit-learn's time on the CPU (≥ 20× faster on CUDA when there is one).

Peak memory: in each side's fresh interpreter, after the imports and a warm-up fit on 5,000
rows (which pages in the library code and starts the thread pools: a constant that does not
grow with the data), the resident size is read, the data is built, the peak-RSS mark is
reset (``/proc/self/clear_refs``, Linux) and the data is fitted once: the figure is
(VmHWM − VmRSS before the data) / data size, so the data itself counts as 1.0× and the
temporaries of building it do not count. Target ≤ 1.5×.
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

_SIDE = _DATA + """
import json, statistics, sys, time
side, n, d, k, iters, repeats = sys.argv[1], *map(int, sys.argv[2:7])
import ebmkit as ek
from sklearn.cluster import KMeans
def status(key):  # kB, from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
def fitter(y, init):
    if side == "ebmkit":
        model = ek.get_model("kmeans", k=len(init), dim=y.shape[1], init=init, max_iter=iters,
                             tol=0.0)
        return lambda: model.fit(y).inertia_
    y_np, init_np = y.numpy(), init.numpy()
    return lambda: KMeans(len(init), init=init_np, n_init=1, max_iter=iters, tol=0.0,
                          algorithm="lloyd").fit(y_np).inertia_
# Warm-up on a small problem: the library code and thread pools a fit touches count in RSS
# once they are paged in; that is a constant, not memory that grows with the data.
small = make(5000, d, seed=2)
fitter(small, small[:k].clone())()
del small
base = status("VmRSS")  # before the data
y = make(n, d)
init = y[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:k]].clone()
fit = fitter(y, init)
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) of the fit alone from here
inertia = fit()
peak = status("VmHWM")
times = []
for _ in range(repeats):
    time.sleep(0.3)  # let the other OpenMP runtime's threads stop spinning
    start = time.perf_counter(); fit(); times.append(time.perf_counter() - start)
print(json.dumps({"memory": (peak - base) * 1024 / (y.numel() * 4), "inertia": float(inertia),
                  "time": statistics.median(times)}))
"""


def _side(side: str, n: int, d: int, k: int, iters: int, repeats: int) -> dict:
    """One side in a fresh interpreter: one OpenMP runtime busy, an honest peak RSS."""
    out = subprocess.run([sys.executable, "-c", _SIDE, side, str(n), str(d), str(k), str(iters),
                          str(repeats)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    state = {"ours": model.fit(y).inertia_,
             "ref": KMeans(k, init=init_np, n_init=1, max_iter=iters, tol=0.0,
                           algorithm="lloyd").fit(y_np).inertia_}
    agree = abs(state["ours"] - state["ref"]) / state["ref"]
    if agree > 1e-4:
        raise RuntimeError(f"kmeans inertia {state['ours']} vs scikit-learn {state['ref']}: "
                           f"relative difference {agree:.2e} > 1e-4")
    # Timed in fresh interpreters, alternating sides: torch (Intel OpenMP) and scikit-learn
    # (GNU OpenMP) in one process spin against each other on a small machine.
    runs: dict[str, list[dict]] = {"ebmkit": [], "sklearn": []}
    for _ in range(1 if smoke else 3):
        for side in runs:
            runs[side].append(_side(side, n, d, k, iters, repeats))
    t_ours = min(r["time"] for r in runs["ebmkit"])
    t_ref = min(r["time"] for r in runs["sklearn"])
    mem_ours = max(r["memory"] for r in runs["ebmkit"])
    mem_ref = max(r["memory"] for r in runs["sklearn"])
    results = [Result(
        f"Lloyd K-means ({n:,}×{d} float32, K={k}, {iters} iterations)", t_ours, t_ref,
        "sklearn KMeans lloyd", 1.0, device="cpu",
        notes=f"same initial centroids, tol=0, each side in its own process (best of 3 processes × median of {repeats} fits); inertia {state['ours']:.6g} vs {state['ref']:.6g} "
              f"(relative difference {agree:.1e}); model.n_iter_={model.n_iter_}; peak memory "
              f"over the data (VmHWM of the fit in a fresh process after a small warm-up fit, "
              f"data counted as 1.0×): ebmkit "
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
