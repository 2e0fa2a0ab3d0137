"""Energies: composition is exact and flat, standard terms match their formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf

import ebmkit as ek
from ebmkit.errors import ConfigError

E = ek.energies


def test_composition_is_one_flat_weighted_sum(device):
    dec = torch.nn.Linear(4, 6).to(device)
    a, b, c = E.Reconstruction(dec), E.L1(), E.L2()
    total = (a + 0.1 * b) + c - 0.5 * (b + c)
    assert isinstance(total, E.Sum)
    assert [round(w, 6) for w, _ in total.weighted_terms()] == [1.0, 0.1, 1.0, -0.5, -0.5]
    assert all(not isinstance(t, E.Sum) for _, t in total.weighted_terms())
    assert sum([a, b, c]).weights == [1.0, 1.0, 1.0]  # Python's sum() starts from 0
    assert {id(p) for p in total.parameters()} == {id(p) for p in dec.parameters()}

    y, z = torch.rand(5, 6, device=device), torch.randn(5, 4, device=device)
    e = total(y, z=z)
    assert e.shape == (5,) and e.device.type == device.type
    expected = ((y - dec(z)) ** 2).sum(1) + 0.1 * z.abs().sum(1) + (z**2).sum(1) \
        - 0.5 * (z.abs().sum(1) + (z**2).sum(1))
    torch.testing.assert_close(e, expected)
    parts = total.terms(y, z=z)
    assert list(parts) == ["reconstruction", "l1", "l2", "l1_2", "l2_2"]
    torch.testing.assert_close(sum(parts.values()), e)


def test_scaling_by_tensor_and_division():
    t = E.L1() * torch.tensor(3.0) / 2
    assert t.weights == [1.5]
    with pytest.raises(TypeError):
        E.L1() * "x"


def test_energy_must_return_one_value_per_sample():
    bad = E.Lambda(lambda y, x, z: y, name="identity")
    with pytest.raises(ConfigError, match=r"shape \[3\], but returned \[3, 2\]"):
        bad(torch.zeros(3, 2))


def test_reconstruction_costs(device):
    dec = torch.nn.Linear(3, 5).to(device)
    y, z = torch.rand(4, 5, device=device), torch.randn(4, 3, device=device)
    mse = E.Reconstruction(dec)(y, z=z)
    torch.testing.assert_close(mse, ((y - dec(z)) ** 2).sum(1))
    bce = E.Reconstruction(dec, cost="bce")(y, z=z)
    torch.testing.assert_close(
        bce, nnf.binary_cross_entropy(torch.sigmoid(dec(z)), y, reduction="none").sum(1),
        rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="needs z, but z was None"):
        E.Reconstruction(dec)(y)
    with pytest.raises(ConfigError, match=r"decoder returned \[4, 5\], expected y's shape \[4, 7\]"):
        E.Reconstruction(dec)(torch.rand(4, 7, device=device), z=z)
    with pytest.raises(ConfigError, match="expected 'mse' or 'bce', got 'l3'"):
        E.Reconstruction(dec, cost="l3")


def test_quadratic_form_matches_the_energy():
    dec = torch.nn.Linear(3, 5).double()
    y, z = torch.rand(4, 5).double(), torch.randn(4, 3).double()
    gram, lin = E.Reconstruction(dec).quadratic(y)
    const = ((y - dec.bias) ** 2).sum(1)
    via_quadratic = ((z @ gram) * z).sum(1) - 2 * (lin * z).sum(1) + const
    torch.testing.assert_close(via_quadratic, E.Reconstruction(dec)(y, z=z))


def test_latent_prediction_and_its_quadratic_form():
    enc = torch.nn.Linear(5, 3).double()
    y, z = torch.rand(4, 5).double(), torch.randn(4, 3).double()
    term = E.LatentPrediction(enc)
    torch.testing.assert_close(term(y, z=z), ((z - enc(y)) ** 2).sum(1))
    gram, lin = term.quadratic(y)
    via_quadratic = ((z @ gram) * z).sum(1) - 2 * (lin * z).sum(1) + (lin ** 2).sum(1)
    torch.testing.assert_close(via_quadratic, term(y, z=z))
    with pytest.raises(ConfigError, match=r"predictor returned \[4, 3\], expected z's shape "
                                          r"\[4, 2\]"):
        term(y, z=torch.zeros(4, 2).double())


@pytest.mark.parametrize("term", [E.L1(), E.L2(), E.GroupL1(group_size=2)])
def test_prox_is_the_argmin_of_its_subproblem(term):
    """prox(v, s) minimises ½‖u − v‖² + s·g(u): no random perturbation does better."""
    g = torch.Generator().manual_seed(0)
    v, step = torch.randn(8, 6, generator=g, dtype=torch.float64), 0.7

    def objective(u):
        return 0.5 * ((u - v) ** 2).sum(1) + step * term(v, z=u)

    u = term.prox(v, step)
    best = objective(u)
    for scale in (1e-1, 1e-2, 1e-3):
        for _ in range(20):
            other = objective(u + scale * torch.randn(u.shape, generator=g, dtype=u.dtype))
            assert (other >= best - 1e-12).all()


def test_group_l1_pools_groups():
    gl = E.GroupL1(group_size=3)
    z = torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0, 1.0]])
    assert gl(torch.zeros(1, 1), z=z).item() == pytest.approx(6.0)
    torch.testing.assert_close(gl.group_norms(z), torch.tensor([[5.0, 1.0]]))
    with pytest.raises(ConfigError, match="not a multiple of group_size=4"):
        E.GroupL1(group_size=4)(torch.zeros(1, 1), z=z)


def test_network_and_squared_distance(device):
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1)).to(device)
    y, x = torch.randn(6, 3, device=device), torch.randn(6, 2, device=device)
    cond = E.Network(net, inputs=("x", "y"), name="critic")
    assert cond(y, x=x).shape == (6,) and list(cond.terms(y, x=x)) == ["critic"]
    dist = E.SquaredDistance(torch.nn.Linear(2, 3).to(device))
    assert dist(y, x=x).shape == (6,)
    with pytest.raises(ConfigError, match="needs x"):
        dist(y)
    with pytest.raises(ConfigError, match="expected a tuple of y, x, z"):
        E.Network(net, inputs=("w",))


def test_penalty_on_y():
    e = E.L1(on="y")
    assert e(torch.tensor([[1.0, -2.0]])).item() == 3.0
    with pytest.raises(ConfigError, match="expected one of y, x, z; got 'q'"):
        E.L1(on="q")


def test_inputs_are_checked_before_use():
    e = E.Reconstruction(torch.nn.Linear(3, 5)) + E.L1()
    y = torch.rand(4, 5)
    with pytest.raises(ConfigError, match="z has batch size 2 but y has 4"):
        e(y, z=torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="y must be a torch.Tensor"):
        e([[0.0] * 5], z=torch.zeros(1, 3))
    with pytest.raises(ConfigError, match="y must be floating-point, got torch.int64"):
        e(torch.ones(4, 5, dtype=torch.long), z=torch.zeros(4, 3))
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="expected both on one device"):
            e(y, z=torch.zeros(4, 3, device="cuda"))
