"""Statistics for quality claims that hold: intervals over seeds and paired comparisons.

Three tools, each exact where it can be and honest where it is not:

- [`mean_interval`][ebmkit.stats.mean_interval]: the mean of a few runs (seeds) with its
  Student-t confidence interval, ``mean ± t_{n-1, (1+c)/2} · s / √n``. The t quantile is
  computed exactly (bisection on the closed-form t CDF for an integer number of degrees of
  freedom, Abramowitz & Stegun 26.7.3–4), so no scipy is needed.
- [`mcnemar`][ebmkit.stats.mcnemar]: the exact McNemar test of two classifiers scored on the
  **same** test items. Only the discordant items count: ``b`` items only the first gets right,
  ``c`` only the second; under "equally accurate" ``b ~ Binomial(b + c, 1/2)``, and the
  two-sided p-value is ``min(1, 2 · P[X ≤ min(b, c)])`` (McNemar 1947; the exact binomial form
  as in Edwards 1948 / statsmodels' ``mcnemar(exact=True)``).
- [`paired_bootstrap`][ebmkit.stats.paired_bootstrap]: the difference of means of two per-item
  measurements (errors, energies, correctness averaged over seeds) on the same items, with a
  percentile interval from resampling the **items** with replacement (Efron & Tibshirani
  1993, ch. 13) and a two-sided p-value read off the same resamples (the share of resampled
  differences on the other side of zero, doubled). Monte Carlo: the interval and p-value vary
  by about ``1/√n_resamples`` with the seed; they are reproducible for a fixed ``seed``.

A comparison is "above" only when significant at the chosen level, never by one test item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError

__all__ = ["Interval", "McNemar", "PairedDifference", "mcnemar", "mean_interval",
           "paired_bootstrap", "t_quantile"]


# ----------------------------------------------------------------------------- helpers
def _vector(x: Any, what: str, dtype: torch.dtype = torch.float64) -> Tensor:
    """``x`` as a 1-D CPU tensor of ``dtype``; a clear error for anything else."""
    t = x.detach().cpu() if isinstance(x, Tensor) else torch.as_tensor(x, dtype=dtype)
    if t.ndim != 1:
        raise ConfigError(f"{what}: expected one value per item (a 1-D sequence), got shape "
                          f"{tuple(t.shape)}")
    if t.numel() == 0:
        raise ConfigError(f"{what}: expected at least one value, got none")
    return t.to(dtype)


def _check_level(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence!r}")
    return float(confidence)


def _t_cdf(t: float, dof: int) -> float:
    """P[T ≤ t] for Student's t with an integer ``dof``, in closed form (A&S 26.7.3–4)."""
    theta = math.atan2(t, math.sqrt(dof))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if dof % 2:  # odd: 2θ/π + (2/π) sinθ cosθ (1 + 2/3 cos²θ + …)
        term, total = math.cos(theta), 0.0
        if dof > 1:
            total = term
            for k in range(3, dof, 2):
                term *= c2 * (k - 1) / k
                total += term
        a = (2.0 / math.pi) * (theta + s * total)
    else:  # even: sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + …)
        term, total = 1.0, 1.0
        for k in range(2, dof, 2):
            term *= c2 * (k - 1) / k
            total += term
        a = s * total
    return 0.5 * (1.0 + a)


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` (integer ≥ 1) degrees of
    freedom, exact to double precision (bisection on the closed-form CDF).

    Args:
        p: probability in (0, 1).
        dof: degrees of freedom, a positive integer (``n - 1`` for ``n`` seeds).

    Returns:
        ``t`` with ``P[T ≤ t] = p``.
    """
    if not 0.0 < p < 1.0:
        raise ConfigError(f"t_quantile: p must lie in (0, 1), got {p!r}")
    if int(dof) != dof or dof < 1:
        raise ConfigError(f"t_quantile: dof must be a positive integer, got {dof!r}")
    dof = int(dof)
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, dof) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- over seeds
@dataclass(frozen=True)
class Interval:
    """A mean over runs with its Student-t confidence interval.

    Attributes:
        mean: the sample mean.
        low: lower end of the interval (equal to ``mean`` for one run).
        high: upper end of the interval.
        n: number of runs.
        confidence: the interval's level (0.95 for a 95% interval).
        values: the runs' values, in the order given.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float
    values: tuple[float, ...]

    @property
    def half_width(self) -> float:
        """``(high - low) / 2``: the ``±`` of ``mean ± half_width``."""
        return 0.5 * (self.high - self.low)

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.4g} (one run: no interval)"
        return (f"{self.mean:.4g} ± {self.half_width:.2g} ({self.confidence:.0%} t-interval, "
                f"n = {self.n})")


def mean_interval(values: Sequence[float] | Tensor, confidence: float = 0.95) -> Interval:
    """The mean of ``values`` (one per seed) with its two-sided Student-t interval.

    ``mean ± t_{n-1, (1+confidence)/2} · s / √n`` with ``s`` the sample standard deviation
    (``n - 1`` in the denominator). It assumes the runs are independent draws of a roughly
    normal figure; with 3 seeds the interval is wide (``t_{2, 0.975} ≈ 4.30``), as it should be.

    Args:
        values: one figure per run (at least one).
        confidence: the interval's level, in (0, 1).

    Returns:
        An [`Interval`][ebmkit.stats.Interval]; with one value, ``low = high = mean``.
    """
    level = _check_level(confidence)
    v = _vector(values, "mean_interval")
    n = v.numel()
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1, level, (mean,))
    half = t_quantile(0.5 + level / 2, n - 1) * float(v.std(unbiased=True)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level, tuple(float(x) for x in v))


# ----------------------------------------------------------------------------- paired
@dataclass(frozen=True)
class McNemar:
    """The exact McNemar test of two classifiers on the same items.

    Attributes:
        accuracy_a: share of items the first classifier gets right.
        accuracy_b: share of items the second gets right.
        only_a: items only the first gets right (``b`` in McNemar's table).
        only_b: items only the second gets right (``c``).
        n: number of items.
        p_value: exact two-sided p-value of "equally accurate".
    """

    accuracy_a: float
    accuracy_b: float
    only_a: int
    only_b: int
    n: int
    p_value: float

    @property
    def difference(self) -> float:
        """``accuracy_a - accuracy_b`` (= ``(only_a - only_b) / n``)."""
        return (self.only_a - self.only_b) / self.n

    def above(self, level: float = 0.05) -> bool:
        """The first is significantly more accurate at ``level`` (two-sided test)."""
        return self.only_a > self.only_b and self.p_value < level

    def below(self, level: float = 0.05) -> bool:
        """The first is significantly less accurate at ``level`` (two-sided test)."""
        return self.only_a < self.only_b and self.p_value < level

    def __str__(self) -> str:
        return (f"{self.accuracy_a:.4f} vs {self.accuracy_b:.4f} on {self.n} items "
                f"({self.only_a} right only in the first, {self.only_b} only in the second; "
                f"exact McNemar p = {self.p_value:.3g})")


def _binomial_two_sided(k: int, n: int) -> float:
    """``min(1, 2 · P[X ≤ k])`` for ``X ~ Binomial(n, 1/2)``, ``k ≤ n/2``, exactly."""
    if n == 0:
        return 1.0
    # sum of C(n, i) for i ≤ k, as an exact integer, then one division
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / (1 << n))  # int / int: correctly rounded for any n


def mcnemar(correct_a: Any, correct_b: Any) -> McNemar:
    """The exact McNemar test: are two classifiers, scored on the same items, equally accurate?

    Args:
        correct_a: per-item correctness of the first classifier (booleans or 0/1), shape ``[N]``.
        correct_b: the same for the second, on the same items in the same order.

    Returns:
        A [`McNemar`][ebmkit.stats.McNemar] with both accuracies, the discordant counts and the
        exact two-sided p-value ``min(1, 2 · P[X ≤ min(b, c)])``, ``X ~ Binomial(b + c, 1/2)``.
    """
    a = _vector(correct_a, "mcnemar: correct_a", torch.float64)
    b = _vector(correct_b, "mcnemar: correct_b", torch.float64)
    if a.shape != b.shape:
        raise ConfigError(f"mcnemar: the two classifiers must be scored on the same items, got "
                          f"{a.numel()} and {b.numel()} items")
    for name, t in (("correct_a", a), ("correct_b", b)):
        if not bool(((t == 0) | (t == 1)).all()):
            raise ConfigError(f"mcnemar: {name} must hold per-item correctness (booleans or "
                              f"0/1); for graded per-item scores use paired_bootstrap")
    only_a = int(((a == 1) & (b == 0)).sum())
    only_b = int(((a == 0) & (b == 1)).sum())
    p = _binomial_two_sided(min(only_a, only_b), only_a + only_b)
    return McNemar(float(a.mean()), float(b.mean()), only_a, only_b, a.numel(), p)


@dataclass(frozen=True)
class PairedDifference:
    """The mean difference of two per-item measurements on the same items, bootstrapped.

    Attributes:
        mean_a: mean of the first measurement.
        mean_b: mean of the second.
        difference: ``mean_a - mean_b``.
        low: lower end of the percentile interval of the difference.
        high: upper end.
        p_value: two-sided bootstrap p-value of "no difference" (at least
            ``1 / n_resamples``: the resampling cannot resolve smaller ones).
        n: number of items.
        confidence: the interval's level.
        n_resamples: number of bootstrap resamples.
    """

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    p_value: float
    n: int
    confidence: float
    n_resamples: int

    def above(self, level: float = 0.05) -> bool:
        """The first is significantly larger at ``level`` (two-sided)."""
        return self.difference > 0 and self.p_value < level

    def below(self, level: float = 0.05) -> bool:
        """The first is significantly smaller at ``level`` (two-sided)."""
        return self.difference < 0 and self.p_value < level

    def __str__(self) -> str:
        return (f"{self.mean_a:.4g} vs {self.mean_b:.4g}: difference {self.difference:+.4g} "
                f"[{self.low:+.4g}, {self.high:+.4g}] ({self.confidence:.0%} paired bootstrap "
                f"over {self.n} items, p = {self.p_value:.3g})")


def paired_bootstrap(a: Any, b: Any, *, n_resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> PairedDifference:
    """The difference of means of two per-item measurements on the same items.

    Each resample draws ``N`` item indices with replacement and takes the mean of
    ``a[i] - b[i]`` over them; the interval is the percentile interval of those means and the
    two-sided p-value is ``2 · min(share ≤ 0, share ≥ 0)`` of them (clipped to
    ``[1 / n_resamples, 1]``). Use it for per-item errors, energies, log-likelihoods, or
    correctness averaged over seeds.

    Args:
        a: the first measurement per item, shape ``[N]``.
        b: the second, on the same items in the same order.
        n_resamples: number of bootstrap resamples.
        confidence: the interval's level, in (0, 1).
        seed: seed of the resampling (the result is reproducible for a fixed seed).

    Returns:
        A [`PairedDifference`][ebmkit.stats.PairedDifference].
    """
    level = _check_level(confidence)
    x = _vector(a, "paired_bootstrap: a")
    y = _vector(b, "paired_bootstrap: b")
    if x.shape != y.shape:
        raise ConfigError(f"paired_bootstrap: the two measurements must be on the same items, "
                          f"got {x.numel()} and {y.numel()} items")
    if n_resamples < 100:
        raise ConfigError(f"paired_bootstrap: n_resamples must be at least 100, got "
                          f"{n_resamples}")
    d = x - y
    n = d.numel()
    gen = torch.Generator().manual_seed(seed)
    means = torch.empty(n_resamples, dtype=torch.float64)
    chunk = max(1, 2_000_000 // n)  # bound memory: chunk × n indices at a time
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        idx = torch.randint(n, (m, n), generator=gen)
        means[start:start + m] = d[idx].mean(dim=1)
    alpha = 1.0 - level
    low, high = torch.quantile(means, torch.tensor([alpha / 2, 1 - alpha / 2],
                                                   dtype=torch.float64)).tolist()
    share = min(float((means <= 0).double().mean()), float((means >= 0).double().mean()))
    p = min(1.0, max(2.0 * share, 1.0 / n_resamples))
    return PairedDifference(float(x.mean()), float(y.mean()), float(d.mean()), low, high, p, n,
                            level, n_resamples)
