"""Latent solvers and free energies, checked against ground truth."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ebmkit as ek
from ebmkit.errors import ConfigError

E, L = ek.energies, ek.latent
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend


def _lasso_problem(dtype=torch.float64, d=24, lam=0.5, n=16):
    """Digits as y, a fixed random dictionary with unit-norm atoms: E = ‖y − Wz‖² + λ|z|₁."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, d, generator=g, dtype=dtype)
    w = w / w.norm(dim=0)
    dec = torch.nn.Linear(d, 64, bias=False).to(dtype)
    with torch.no_grad():
        dec.weight.copy_(w)
    y = ek.get_dataset("digits", split="test").y[:n].to(dtype)
    return dec, y, E.Reconstruction(dec) + lam * E.L1(), lam


def test_fista_reaches_the_lasso_objective_of_scikit_learn():
    from sklearn.linear_model import Lasso

    dec, y, energy, lam = _lasso_problem()
    z = L.FISTA(dim=24, steps=3000)(energy, y)
    # scikit-learn minimises 1/(2n)‖y − Wz‖² + α|z|₁ with n = 64 rows: α = λ / (2·64)
    ref = torch.stack([
        torch.from_numpy(Lasso(alpha=lam / 128, fit_intercept=False, tol=1e-12, max_iter=200_000)
                         .fit(dec.weight.detach().numpy(), row.numpy()).coef_)
        for row in y
    ])
    ours, theirs = energy(y, z=z), energy(y, z=ref)
    rel = (ours - theirs) / theirs
    assert rel.max().item() <= 1e-4, rel
    assert (z == 0).any()  # the L1 prox gives exact zeros


def test_fista_iterating_in_float32_reaches_the_float64_optimum(device):
    dec, y, energy, _ = _lasso_problem(n=64)
    dec, y = dec.to(device), y.to(device)
    best = energy(y, z=L.FISTA(dim=24, steps=3000)(energy, y)).mean()
    z32 = L.FISTA(dim=24, steps=300, dtype=torch.float32)(energy, y)
    assert z32.dtype == torch.float64 and z32.device == y.device  # returned in the input's
    gap = ((energy(y, z=z32).mean() - best) / best).item()
    assert 0 <= gap < 1e-6, gap
    # the autograd path runs in the energy's own dtype: a clear error, not a dtype clash
    wrapped = E.Reconstruction(torch.nn.Sequential(dec)) + 0.5 * E.L1()
    with pytest.raises(ConfigError, match="only on the exact quadratic path"):
        L.FISTA(dim=24, dtype=torch.float32)(wrapped, y)
    with pytest.raises(ConfigError, match="floating torch.dtype"):
        L.FISTA(dtype=torch.int32)


def test_fista_beats_ista_at_equal_steps_and_generic_path_agrees():
    dec, y, energy, _ = _lasso_problem()
    fast = energy(y, z=L.FISTA(dim=24, steps=50)(energy, y)).mean()
    slow = energy(y, z=L.ISTA(dim=24, steps=50)(energy, y)).mean()
    assert fast < slow
    # a decoder that is not an nn.Linear takes the autograd + power-iteration path
    wrapped = E.Reconstruction(torch.nn.Sequential(dec)) + 0.5 * E.L1()
    generic = wrapped(y, z=L.FISTA(dim=24, steps=1500)(wrapped, y)).mean()
    exact = energy(y, z=L.FISTA(dim=24, steps=1500)(energy, y)).mean()
    assert generic.item() == pytest.approx(exact.item(), rel=1e-4)


def test_a_latent_prediction_term_stays_on_the_exact_quadratic_path(monkeypatch):
    """PSD's energy ½‖y − Wz‖² + λ|z|₁ + ½α‖z − P(y)‖² takes the matrix-product path (no
    power iteration) and reaches the minimiser the autograd path finds."""
    dec, y, _, _ = _lasso_problem()
    enc = torch.nn.Linear(y.shape[1], 24).to(y.dtype)
    energy = 0.5 * E.Reconstruction(dec) + 0.1 * E.L1() + 0.25 * E.LatentPrediction(enc)
    power = L.FISTA(dim=24, steps=1500, lipschitz="power")(energy, y)
    calls = []
    monkeypatch.setattr(L.ISTA, "_estimate", lambda *a: calls.append(a))
    exact = L.FISTA(dim=24, steps=1500)(energy, y)
    assert not calls  # the exact constant, no estimate
    assert energy(y, z=exact).mean().item() == pytest.approx(
        energy(y, z=power).mean().item(), rel=1e-5)


def test_adaptive_restart_speeds_fista_up():
    dec, y, energy, _ = _lasso_problem()
    best = energy(y, z=L.FISTA(dim=24, steps=2000)(energy, y)).mean()
    gaps = {r: (energy(y, z=L.FISTA(dim=24, steps=40, restart=r)(energy, y)).mean() - best).item()
            for r in (False, True)}
    assert 0 <= gaps[True] < gaps[False]


def test_fista_with_group_sparsity_zeroes_whole_groups():
    dec, y, _, _ = _lasso_problem()
    energy = E.Reconstruction(dec) + 2.0 * E.GroupL1(group_size=4)
    z = L.FISTA(dim=24, steps=500)(energy, y).reshape(len(y), 6, 4)
    norms = z.norm(dim=-1)
    assert (norms == 0).any() and ((norms == 0) | (z != 0).all(-1)).all()


@pytest.mark.parametrize(("optimizer", "lr", "steps"), [("sgd", 0.05, 500), ("adam", 0.05, 1500),
                                                        ("lbfgs", 1.0, 100)])
def test_gradient_descent_reaches_the_analytic_minimum(device, optimizer, lr, steps):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 3, generator=g).to(device)
    dec = torch.nn.Linear(3, 6, bias=False).to(device)
    with torch.no_grad():
        dec.weight.copy_(a)
    y = torch.randn(10, 6, generator=g).to(device)
    energy = E.Reconstruction(dec) + 0.3 * E.L2()
    # ∇ = 2Aᵀ(Az − y) + 0.6 z = 0  →  z* = (AᵀA + 0.3 I)⁻¹ Aᵀ y
    exact = torch.linalg.solve(a.T @ a + 0.3 * torch.eye(3, device=device), a.T @ y.T).T
    z = L.GradientDescent(dim=3, steps=steps, lr=lr, optimizer=optimizer)(energy, y)
    torch.testing.assert_close(z, exact, atol=1e-3, rtol=1e-3)
    assert dec.weight.grad is None  # inference never touches the energy's parameters


def test_unrolled_descent_is_differentiable():
    dec = torch.nn.Linear(3, 6)
    energy = E.Reconstruction(dec)
    init = torch.zeros(4, 3, requires_grad=True)
    z = L.GradientDescent(steps=5, lr=0.05, unroll=True)(energy, torch.randn(4, 6), init=init)
    z.sum().backward()
    assert dec.weight.grad is not None and init.grad is not None


def test_exhaustive_equals_brute_force_and_bounds_memory(device):
    g = torch.Generator().manual_seed(2)
    codes = torch.randn(50, 4, generator=g).to(device)
    dec = torch.nn.Linear(4, 8).to(device)
    seen = []

    def energy(y, x=None, z=None):
        seen.append(len(z))
        return ((y - dec(z)) ** 2).sum(1)

    y = torch.randn(7, 8, generator=g).to(device)
    z, e_min, idx = L.Exhaustive(codes, chunk_size=6).search(energy, "z", {"y": y, "x": None})
    with torch.no_grad():
        brute = torch.stack([((y - dec(c)) ** 2).sum(1) for c in codes], dim=1)  # [B, K]
    torch.testing.assert_close(e_min, brute.min(1).values)
    assert torch.equal(idx, brute.argmin(1)) and torch.equal(z, codes[idx])
    assert max(seen) <= 7 * 6  # never more than B · chunk_size pairs at once
    torch.testing.assert_close(L.Exhaustive(codes, chunk_size=6).energies(energy, y), brute)


def test_amortized_encoder_with_refinement():
    dec, y, _, _ = _lasso_problem(dtype=torch.float32)
    energy = E.Reconstruction(dec) + 0.1 * E.L2()
    enc = torch.nn.Linear(64, 24)
    guess = L.Amortized(enc)(energy, y)
    refined = L.Amortized(enc, refine_steps=50, lr=0.05)(energy, y)
    assert energy(y, z=refined).mean() < energy(y, z=guess).mean()


def test_solver_errors_say_what_was_expected():
    dec = torch.nn.Linear(3, 5)
    y = torch.rand(2, 5)
    with pytest.raises(ConfigError, match="needs init= .* or, for z, dim="):
        L.GradientDescent()(E.Reconstruction(dec), y)
    with pytest.raises(ConfigError, match="is not smooth and has no prox"):
        L.ISTA(dim=3)(E.Reconstruction(dec) + E.Lambda(lambda y, x, z: z.abs().max(1).values,
                                                       "linf", smooth=False), y)
    with pytest.raises(ConfigError, match="one proximal term, got several"):
        L.FISTA(dim=4)(E.Reconstruction(torch.nn.Linear(4, 5)) + E.L1() + E.GroupL1(2), y)
    with pytest.raises(ConfigError, match="use ek.latent.Exhaustive, not FISTA"):
        ek.FreeEnergy(E.Reconstruction(dec), L.FISTA(dim=3), beta=2.0)
    with pytest.raises(ConfigError, match="expected one of sgd, adam, lbfgs"):
        L.GradientDescent(optimizer="newton")
    with pytest.raises(ConfigError, match="steps: expected a positive int, got 0"):
        L.FISTA(steps=0)


def _kmeans_energy(k=5, dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dec = torch.nn.Linear(k, dim, bias=False)
    with torch.no_grad():
        dec.weight.copy_(torch.randn(dim, k, generator=g) * 2)
    return E.Reconstruction(dec), torch.eye(k), torch.randn(9, dim, generator=g)


def test_free_energy_at_zero_temperature_is_the_min():
    energy, codes, y = _kmeans_energy()
    F = ek.FreeEnergy(energy, L.Exhaustive(codes))
    brute = torch.stack([energy(y, z=c.expand(len(y), -1)) for c in codes], 1).min(1).values
    torch.testing.assert_close(F(y), brute)
    torch.testing.assert_close(F(y), energy(y, z=F.infer(y)))


@settings(max_examples=25, deadline=None)
@given(beta=st.floats(0.01, 50.0), seed=st.integers(0, 1000))
def test_soft_min_is_below_the_min_and_converges_to_it(beta, seed):
    energy, codes, y = _kmeans_energy(seed=seed)
    f_inf = ek.FreeEnergy(energy, L.Exhaustive(codes))(y)
    f_beta = ek.FreeEnergy(energy, L.Exhaustive(codes, chunk_size=2), beta=beta)(y)
    assert (f_beta <= f_inf + 1e-5).all()
    # −1/β log K ≤ F_β − F∞ ≤ 0, so the gap closes like log K / β
    assert (f_beta >= f_inf - torch.log(torch.tensor(5.0)) / beta - 1e-4).all()
    # a cold β whose log K / β gap (≤ 1.6e-5) is inside the tolerance for every drawn β:
    # β · 1e4 alone leaves a gap of up to 0.016 at β = 0.01 (hypothesis found β = 0.0117)
    f_cold = ek.FreeEnergy(energy, L.Exhaustive(codes), beta=max(beta * 1e4, 1e5))(y)
    torch.testing.assert_close(f_cold, f_inf, atol=2e-4, rtol=1e-4)


def test_soft_min_is_differentiable():
    energy, codes, y = _kmeans_energy()
    ek.FreeEnergy(energy, L.Exhaustive(codes), beta=1.0)(y).sum().backward()
    assert torch.isfinite(energy.decoder.weight.grad).all()


def test_predict_finds_argmin_over_y(device):
    net = torch.nn.Linear(2, 3).to(device)
    energy = E.SquaredDistance(net) + 0.0 * E.L1(on="y")
    x = torch.randn(5, 2, device=device)
    y_hat = ek.predict(energy, x, init=torch.zeros(5, 3, device=device),
                       solver=L.GradientDescent(steps=200, lr=0.1))
    torch.testing.assert_close(y_hat, net(x).detach(), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- solvers are modules
class AmortizedAE(ek.EnergyModel):
    """F(y) = E(y, enc(y)) with the encoder inside the solver only: it must still train."""

    name = "test.amortized-ae"

    def __init__(self, dim: int = 64, code: int = 8) -> None:
        super().__init__()
        self.dim, self.code = dim, code
        enc = torch.nn.Sequential(torch.nn.Linear(dim, code), torch.nn.Tanh())
        self.F = ek.FreeEnergy(E.Reconstruction(torch.nn.Linear(code, dim)), L.Amortized(enc))

    def energy(self, y, x=None, z=None):
        return self.F.energy(y, z=z)

    def infer(self, y, x=None):
        return self.F.infer(y)

    def default_strategy(self):
        return ek.strategies.Architectural()

    def config(self):
        return {"dim": self.dim, "code": self.code}


def test_an_amortized_encoder_trains_moves_saves_and_reloads(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = AmortizedAE()
    enc = model.F.solver.encoder
    assert {id(p) for p in enc.parameters()} <= {id(p) for p in model.parameters()}
    before = enc[0].weight.detach().clone()
    data = ek.data.TensorData({"y": ek.get_dataset("digits").y[:256]}, name="d", split="train")
    f0 = float(model(data.y).mean().detach())
    history = ek.Trainer(model, lr=3e-3, epochs=6, batch_size=64, device="cpu",
                         progress=False).fit(data)
    assert not torch.equal(enc[0].weight, before)  # the Trainer trained the encoder
    assert history[-1]["loss"] < 0.5 * f0
    assert "F.solver.encoder.0.weight" in model.state_dict()
    # save and reload (the registry's get_model stands in for a plugin): the encoder too
    model.save(tmp_path / "m")
    monkeypatch.setattr(ek.plugins, "get_model", lambda name, **cfg: AmortizedAE(**cfg))
    again = ek.load(tmp_path / "m")
    assert torch.equal(again.F.solver.encoder[0].weight, enc[0].weight)
    with torch.no_grad():
        assert torch.allclose(again(data.y[:32]), model.eval()(data.y[:32]))


def test_exhaustive_candidates_move_with_the_module():
    solver = L.Exhaustive(torch.eye(4, dtype=torch.float32))
    F = ek.FreeEnergy(E.Reconstruction(torch.nn.Linear(4, 3)), solver).double()
    assert solver.candidates.dtype == torch.float64  # a buffer: .to()/.double() move it
    assert "solver.candidates" not in F.state_dict()  # rebuilt from config, never saved
    z = F.infer(torch.randn(5, 3, dtype=torch.float64))
    assert z.dtype == torch.float64 and z.sum(1).eq(1).all()


# ---------------------------------------------------------------- AMP, power, L-BFGS
def test_solvers_run_in_float32_under_bf16_autocast():
    dec, y, energy, _ = _lasso_problem(dtype=torch.float32)
    fista = L.FISTA(dim=24, steps=60)
    plain = fista(energy, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = fista(energy, y)  # the Gram matrix would reach eigvalsh in bf16 and fail
        gd = L.GradientDescent(dim=24, steps=30, lr=0.05)(energy, y)
    assert amp.dtype == torch.float32 and torch.allclose(amp, plain, atol=1e-6)
    assert gd.dtype == torch.float32
    assert torch.allclose(gd, L.GradientDescent(dim=24, steps=30, lr=0.05)(energy, y), atol=1e-6)


def test_ista_power_uses_power_iteration_not_the_exact_constant(monkeypatch):
    dec, y, energy, _ = _lasso_problem()
    calls = []
    original = L.ISTA._estimate
    monkeypatch.setattr(L.ISTA, "_estimate",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    auto = L.ISTA(dim=24, steps=400, lipschitz="auto")(energy, y)
    assert not calls
    power = L.ISTA(dim=24, steps=400, lipschitz="power")(energy, y)
    assert calls  # old code took the exact quadratic path for "power" too
    # both reach the same optimum (power's estimated step is only more cautious)
    assert torch.allclose(energy(y, z=power), energy(y, z=auto), rtol=1e-3)


def test_batched_lbfgs_solves_each_problem_as_if_alone():
    """Rosenbrock problems at scales 1, 1e4 and 1e-2: one shared line search over their
    sum (torch.optim.LBFGS) leaves two of them far from (1, 1); per-sample L-BFGS solves all."""
    scales = torch.tensor([1.0, 1e4, 1e-2], dtype=torch.float64)

    def rosenbrock(y, x=None, z=None):
        return scales * ((1 - z[:, 0]) ** 2 + 100 * (z[:, 1] - z[:, 0] ** 2) ** 2)

    init = torch.tensor([[-1.2, 1.0]] * 3, dtype=torch.float64)
    z = L.GradientDescent(steps=60, lr=1.0, optimizer="lbfgs")(
        rosenbrock, torch.zeros(3, 1, dtype=torch.float64), init=init)
    assert torch.allclose(z, torch.ones_like(z), atol=1e-4), z


def test_lbfgs_line_search_reads_nothing_back_on_an_accelerator(monkeypatch):
    """On a device where a read-back is a sync, the line search runs its fixed trials instead
    of stopping early: the same minimiser, and no ``bool(tensor)`` inside the solve."""
    scales = torch.tensor([1.0, 1e4, 1e-2], dtype=torch.float64)

    def rosenbrock(y, x=None, z=None):
        return scales * ((1 - z[:, 0]) ** 2 + 100 * (z[:, 1] - z[:, 0] ** 2) ** 2)

    init = torch.tensor([[-1.2, 1.0]] * 3, dtype=torch.float64)
    solve = lambda: L.GradientDescent(steps=30, lr=1.0, optimizer="lbfgs")(  # noqa: E731
        rosenbrock, torch.zeros(3, 1, dtype=torch.float64), init=init)
    early = solve()
    monkeypatch.setattr(L, "_reads_are_free", lambda t: False)
    reads = []
    real_bool = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: reads.append(1) or real_bool(t))
    fixed = solve()
    assert not reads
    assert torch.equal(early, fixed)


def test_fista_on_an_accelerator_takes_lipschitz_without_eigvalsh(monkeypatch):
    """Where a read-back is a sync, the exact quadratic path bounds λ_max by power iteration
    (no eigvalsh and its host-side convergence check): a bound at or above the exact one by at
    most its 5% margin, and FISTA reaches the same lasso minimum."""
    dec, y, energy, _ = _lasso_problem()
    exact = L.FISTA(dim=24, steps=400)(energy, y)
    gram = dec.weight.detach().T @ dec.weight.detach()
    monkeypatch.setattr(L, "_reads_are_free", lambda t: False)
    bound = L._largest_eigenvalue(gram)
    true = torch.linalg.eigvalsh(gram)[-1]
    assert true <= bound <= 1.05 * true + 1e-9
    monkeypatch.setattr(torch.linalg, "eigvalsh", lambda *a, **k: pytest.fail("eigvalsh ran"))
    fixed = L.FISTA(dim=24, steps=400)(energy, y)
    assert torch.allclose(energy(y, z=fixed), energy(y, z=exact), rtol=1e-4)
