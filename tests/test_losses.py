"""Losses over energies: formulas, gradient signs, reductions and input checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as nnf

from ebmkit import losses
from ebmkit.errors import ConfigError, UnknownNameError

E_POS = [0.5, 2.0, -1.0]
E_NEG = [1.0, 1.5, 3.0]
E_NEG_K = [[1.0, 0.2, 4.0], [1.5, 3.0, 2.5], [3.0, -0.5, 0.0]]
NEEDS_NEG = [n for n in losses.LOSSES if n != "energy"]


def t(values, device):
    return torch.tensor(values, dtype=torch.float64, device=device)


def by_hand(name: str, p: float, n: float) -> float:
    """The tutorial's formulas on plain floats, one negative, default options."""
    relu = lambda v: max(v, 0.0)  # noqa: E731
    return {
        "energy": p,
        "perceptron": p - min(p, n),
        "hinge": relu(1.0 + p - n),
        "log": math.log1p(math.exp(p - n)),
        "square_square": p ** 2 + relu(1.0 - n) ** 2,
        "square_exp": p ** 2 + math.exp(-n),
        "nll": p + math.log(math.exp(-p) + math.exp(-n)),
    }[name]


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_formulas_by_hand(name, device):
    fn = losses.get_loss(name)
    per = fn(t(E_POS, device), t(E_NEG, device), reduction="none")
    want = [by_hand(name, p, n) for p, n in zip(E_POS, E_NEG, strict=True)]
    torch.testing.assert_close(per, t(want, device))
    torch.testing.assert_close(fn(t(E_POS, device), t(E_NEG, device)), t(want, device).mean())
    torch.testing.assert_close(fn(t(E_POS, device), t(E_NEG, device), reduction="sum"),
                               t(want, device).sum())
    assert per.device.type == device.type


def test_options_by_hand(device):
    p, n = t(E_POS, device), t(E_NEG, device)
    torch.testing.assert_close(losses.hinge(p, n, margin=2.5, reduction="none"),
                               (2.5 + p - n).clamp_min(0))
    torch.testing.assert_close(losses.square_square(p, n, margin=2.0, reduction="none"),
                               p ** 2 + (2.0 - n).clamp_min(0) ** 2)
    torch.testing.assert_close(losses.square_exp(p, n, gamma=3.0, reduction="none"),
                               p ** 2 + 3.0 * torch.exp(-n))


@pytest.mark.parametrize("name", NEEDS_NEG)
def test_gradients_push_positive_down_and_negatives_up(name, device):
    torch.manual_seed(0)
    # Energies in a range where every loss is active (hinge margin unmet, square_square < m).
    p = (0.3 * torch.rand(16, device=device, dtype=torch.float64)).requires_grad_(True)
    n = (0.3 * torch.rand(16, 4, device=device, dtype=torch.float64)).requires_grad_(True)
    losses.get_loss(name)(p, n).backward()
    assert bool((p.grad > 0).all()), name
    assert bool((n.grad <= 0).all()), name
    assert bool((n.grad < 0).any()), name


def test_energy_loss_ignores_negatives(device):
    p = t(E_POS, device)
    torch.testing.assert_close(losses.energy(p), p.mean())
    torch.testing.assert_close(losses.energy(p, t(E_NEG, device)), p.mean())


@pytest.mark.parametrize("name", ["hinge", "log", "square_square", "square_exp"])
def test_k_negatives_average_or_most_offending(name, device):
    fn = losses.get_loss(name)
    p, n = t(E_POS, device), t(E_NEG_K, device)
    each = torch.stack([fn(p, n[:, k], reduction="none") for k in range(3)], dim=1)
    torch.testing.assert_close(fn(p, n, reduction="none"), each.mean(dim=1))
    lowest = n.min(dim=1).values
    torch.testing.assert_close(fn(p, n, most_offending=True, reduction="none"),
                               fn(p, lowest, reduction="none"))
    # The most offending negative is the lowest-energy one: [0.2, 1.5, -0.5].
    torch.testing.assert_close(lowest, t([0.2, 1.5, -0.5], device))


def test_perceptron_uses_the_minimum(device):
    p, n = t(E_POS, device), t(E_NEG_K, device)
    lowest = torch.minimum(p, t([0.2, 1.5, -0.5], device))  # the data counts as an answer too
    torch.testing.assert_close(losses.perceptron(p, n, reduction="none"), p - lowest)
    assert (losses.perceptron(p, n, reduction="none") >= 0).all()


@pytest.mark.parametrize("temperature", [1.0, 0.1, 3.0])
def test_nll_is_cross_entropy_with_positive_as_class_zero(temperature, device):
    torch.manual_seed(0)
    p = torch.randn(8, device=device) * 3
    n = torch.randn(8, 5, device=device) * 3
    logits = -torch.cat([p.unsqueeze(1), n], dim=1) / temperature
    target = torch.zeros(8, dtype=torch.long, device=device)
    ce = nnf.cross_entropy(logits, target)
    # nll = T · CE (the energy scale); at T = 1 they are equal.
    torch.testing.assert_close(losses.nll(p, n, temperature=temperature), temperature * ce)
    # Stable for huge energies.
    big = losses.nll(p * 1e4, n * 1e4, temperature=temperature)
    assert bool(torch.isfinite(big))


def test_log_loss_is_stable(device):
    p, n = t([1e4, -1e4], device), t([-1e4, 1e4], device)
    torch.testing.assert_close(losses.log(p, n, reduction="none"), t([2e4, 0.0], device))


@pytest.mark.parametrize("name", NEEDS_NEG)
def test_bad_shapes_raise_naming_the_shapes(name):
    fn = losses.get_loss(name)
    want = r"e_neg: expected shape \[B\] or \[B, K\] with B=32, got \[16, 4\]"
    with pytest.raises(ConfigError, match=want):
        fn(torch.zeros(32), torch.zeros(16, 4))
    with pytest.raises(ConfigError, match=r"e_pos: expected shape \[B\].*got \[32, 1\]"):
        fn(torch.zeros(32, 1), torch.zeros(32))
    with pytest.raises(ConfigError, match=r"got \[32, 2, 2\]"):
        fn(torch.zeros(32), torch.zeros(32, 2, 2))
    with pytest.raises(ConfigError, match="needs e_neg"):
        fn(torch.zeros(32), None)
    with pytest.raises(ConfigError, match="floating-point"):
        fn(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match="reduction"):
        fn(torch.zeros(4), torch.zeros(4), reduction="avg")


def test_bad_options_and_names():
    with pytest.raises(ConfigError, match="temperature"):
        losses.nll(torch.zeros(2), torch.zeros(2), temperature=0.0)
    with pytest.raises(ConfigError, match="margin"):
        losses.hinge(torch.zeros(2), torch.zeros(2), margin=-1.0)
    with pytest.raises(UnknownNameError, match="Did you mean 'hinge'"):
        losses.get_loss("hinje")
    assert sorted(losses.LOSSES) == ["energy", "hinge", "log", "nll", "perceptron",
                                     "square_exp", "square_square"]
