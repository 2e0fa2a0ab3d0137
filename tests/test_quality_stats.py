"""``ek.stats``: the t-interval, the exact McNemar test and the paired bootstrap, checked
against scipy and hand computations."""

from __future__ import annotations

import math

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 9, 30])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(dof, p):
    assert ek.stats.t_quantile(p, dof) == pytest.approx(scipy_stats.t.ppf(p, dof), rel=1e-10)


def test_mean_interval_is_the_student_t_interval():
    values = [0.811, 0.804, 0.819]
    got = ek.stats.mean_interval(values)
    # by hand: mean, s with n-1, t_{2, 0.975} = 4.302652729911275 (tables)
    mean = sum(values) / 3
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = 4.302652729911275 * s / math.sqrt(3)
    assert got.mean == pytest.approx(mean)
    assert (got.low, got.high) == pytest.approx((mean - half, mean + half), rel=1e-9)
    lo, hi = scipy_stats.t.interval(0.95, 2, loc=mean, scale=scipy_stats.sem(values))
    assert (got.low, got.high) == pytest.approx((lo, hi), rel=1e-9)
    assert got.n == 3 and got.values == tuple(values) and "n = 3" in str(got)
    one = ek.stats.mean_interval([0.5])
    assert one.low == one.high == 0.5 and "no interval" in str(one)


def test_mcnemar_is_the_exact_binomial_test_on_discordant_items():
    # 12 items: a right on 10, b right on 6; a-only 5, b-only 1, both 5, neither 1
    a = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=torch.bool)
    b = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0], dtype=torch.bool)
    got = ek.stats.mcnemar(a, b)
    assert (got.only_a, got.only_b, got.n) == (5, 1, 12)
    # by hand: 2 * (C(6,0) + C(6,1)) / 2^6 = 14/64
    assert got.p_value == pytest.approx(14 / 64)
    assert got.p_value == pytest.approx(scipy_stats.binomtest(1, 6, 0.5).pvalue)
    assert got.accuracy_a == pytest.approx(10 / 12) and got.difference == pytest.approx(4 / 12)
    assert not got.above() and not got.below()
    # 0 vs 6 discordant: p = 2/64 < 0.05, and the direction is read from the counts
    c = torch.ones(20)
    d = torch.cat([torch.zeros(6), torch.ones(14)])
    assert ek.stats.mcnemar(c, d).above() and ek.stats.mcnemar(d, c).below()
    assert ek.stats.mcnemar(c, c).p_value == 1.0
    # many items: no overflow, agrees with scipy
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(5000, generator=g) < 0.8, torch.rand(5000, generator=g) < 0.78
    got = ek.stats.mcnemar(x, y)
    ref = scipy_stats.binomtest(min(got.only_a, got.only_b), got.only_a + got.only_b, 0.5)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_paired_bootstrap_finds_a_paired_shift_that_unpaired_noise_hides():
    g = torch.Generator().manual_seed(1)
    item = torch.randn(400, generator=g, dtype=torch.float64) * 5  # large per-item spread
    a = item + 0.2 + 0.1 * torch.randn(400, generator=g, dtype=torch.float64)
    b = item
    got = ek.stats.paired_bootstrap(a, b, n_resamples=2000)
    d = a - b
    se = float(d.std()) / math.sqrt(400)
    assert got.difference == pytest.approx(float(d.mean()))
    # the percentile interval is close to the normal one, mean ± 1.96 se
    assert got.low == pytest.approx(float(d.mean()) - 1.96 * se, abs=0.3 * se)
    assert got.high == pytest.approx(float(d.mean()) + 1.96 * se, abs=0.3 * se)
    assert got.above() and got.p_value == pytest.approx(1 / 2000)
    null = ek.stats.paired_bootstrap(b + 0.1 * torch.randn(400, generator=g,
                                                           dtype=torch.float64), b)
    assert not null.above() and not null.below() and null.low < 0 < null.high
    again = ek.stats.paired_bootstrap(a, b, n_resamples=2000)
    assert again == got  # reproducible for a fixed seed


def test_bad_input_is_refused_clearly():
    with pytest.raises(ConfigError, match="same items, got 3 and 2"):
        ek.stats.mcnemar([1, 0, 1], [1, 0])
    with pytest.raises(ConfigError, match="0/1"):
        ek.stats.mcnemar([0.5, 1.0], [1.0, 1.0])
    with pytest.raises(ConfigError, match="1-D"):
        ek.stats.paired_bootstrap(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="confidence"):
        ek.stats.mean_interval([1.0, 2.0], confidence=95)
    with pytest.raises(ConfigError, match="at least one"):
        ek.stats.mean_interval([])
