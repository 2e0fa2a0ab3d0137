"""The joint-embedding SSL losses, each against its method's formula written again in plain
torch (as SimCLR's NT-Xent in tests/test_ssl.py): the value and the gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as nnf

import ebmkit as ek

IMG = {"dim": 64, "image_shape": [1, 8, 8]}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend

# ---------------------------------------------------------------------------- losses by hand
# Each loss module against the method's formula written again in plain torch (as SimCLR's
# NT-Xent above): the value and the gradient.
def _ce(logits, target):
    return -logits.log_softmax(dim=1)[torch.arange(logits.shape[0]), target].mean()


def test_barlow_loss_is_the_hand_written_formula():
    from ebmkit_ssl.barlow import BarlowTwinsLoss

    torch.manual_seed(0)
    z1, z2 = torch.randn(12, 6, requires_grad=True), torch.randn(12, 6) * 3 + 1
    loss, inv, red = BarlowTwinsLoss(lambda_=0.1, eps=1e-5)(z1, z2)

    def std(z):  # the reference code's affine-free batch norm: biased variance, eps inside
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    c = std(z1).T @ std(z2) / 12
    off = ~torch.eye(6, dtype=torch.bool)
    hand = ((1 - c.diagonal()) ** 2).sum() + 0.1 * (c[off] ** 2).sum()
    torch.testing.assert_close(loss, hand)
    torch.testing.assert_close(inv, ((1 - c.diagonal()) ** 2).sum())
    torch.testing.assert_close(red, (c[off] ** 2).sum())
    torch.testing.assert_close(torch.autograd.grad(loss, z1)[0], torch.autograd.grad(hand, z1)[0])


def test_vicreg_loss_is_the_reference_formula():
    """The variance term is the mean over the two branches (the reference code's halving),
    the covariance term their sum."""
    from ebmkit_ssl.vicreg import VICRegLoss

    torch.manual_seed(0)
    z1, z2 = torch.randn(16, 5, requires_grad=True), torch.randn(16, 5) * 0.3
    loss, terms = VICRegLoss(invariance=25, variance=25, covariance=1, gamma=1)(z1, z2)

    def var(z):
        return torch.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean()

    def cov(z):
        zc = z - z.mean(0)
        c = zc.T @ zc / 15
        return (c[~torch.eye(5, dtype=torch.bool)] ** 2).sum() / 5

    inv = nnf.mse_loss(z1, z2)
    hand = 25 * inv + 25 * (var(z1) / 2 + var(z2) / 2) + cov(z1) + cov(z2)
    torch.testing.assert_close(loss, hand)
    torch.testing.assert_close(terms["variance"], (var(z1) / 2 + var(z2) / 2).detach())
    torch.testing.assert_close(torch.autograd.grad(loss, z1)[0], torch.autograd.grad(hand, z1)[0])


def test_byol_loss_is_the_hand_written_formula():
    from ebmkit_ssl.byol import BYOLLoss

    torch.manual_seed(0)
    p, t = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    e = BYOLLoss()(p, t)
    hand = ((p / p.norm(dim=1, keepdim=True) - t / t.norm(dim=1, keepdim=True)) ** 2).sum(1)
    torch.testing.assert_close(e, hand)
    e.sum().backward()
    assert t.grad is None                                  # the target is a stop-gradient


def test_moco_loss_is_the_reference_cross_entropy():
    """MoCo's reference code: logits [q·k₊, q·queue] / τ, label 0; a masked (own-image)
    queue entry is left out of the softmax."""
    from ebmkit_ssl.moco import MoCoLoss

    torch.manual_seed(0)
    q = nnf.normalize(torch.randn(6, 4), dim=1).requires_grad_(True)
    k, queue = nnf.normalize(torch.randn(6, 4), dim=1), nnf.normalize(torch.randn(10, 4), dim=1)
    e_neg = (1 - q @ queue.T).masked_fill(torch.eye(6, 10, dtype=torch.bool), math.inf)
    loss, e_pos = MoCoLoss(temperature=0.2)(q, k, e_neg)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.2
    logits = logits.masked_fill(nnf.pad(torch.eye(6, 10, dtype=torch.bool), (1, 0)), -math.inf)
    hand = _ce(logits, torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(loss, hand)
    torch.testing.assert_close(e_pos, 1 - (q * k).sum(1))
    torch.testing.assert_close(torch.autograd.grad(loss, q)[0], torch.autograd.grad(hand, q)[0])


def test_pirl_loss_is_the_hand_written_mix():
    from ebmkit_ssl.pirl import PIRLLoss

    torch.manual_seed(0)
    f, g, m, bank = (nnf.normalize(torch.randn(n, 4), dim=1) for n in (5, 5, 5, 9))
    f.requires_grad_(True)
    loss = PIRLLoss(temperature=0.3, weight=0.7)(f, g, m, 1 - f @ bank.T, 1 - g @ bank.T)

    def nce(a):
        logits = torch.cat([(a * m).sum(1, keepdim=True), a @ bank.T], 1) / 0.3
        return _ce(logits, torch.zeros(5, dtype=torch.long))

    hand = 0.7 * nce(g) + 0.3 * nce(f)
    torch.testing.assert_close(loss, hand)
    torch.testing.assert_close(torch.autograd.grad(loss, f)[0], torch.autograd.grad(hand, f)[0])


def test_swav_loss_is_the_papers_algorithm():
    """Sinkhorn as the paper's Algorithm 1 (probability domain), then the swapped
    cross-entropy over every (code, other view) pair: two global views and one crop."""
    from ebmkit_ssl.swav import SwAVLoss

    torch.manual_seed(0)
    scores = [torch.randn(12, 5).tanh().requires_grad_(True) for _ in range(3)]
    loss, codes = SwAVLoss(temperature=0.1, epsilon=0.5, iterations=3)(scores)

    def sinkhorn(s):
        q = torch.exp(s.detach() / 0.5).T                                     # [K, B]
        q /= q.sum()
        for _ in range(3):
            q /= q.sum(dim=1, keepdim=True) * 5
            q /= q.sum(dim=0, keepdim=True) * 12
        return (q * 12).T

    hand, pairs = 0.0, 0
    for t in (0, 1):
        q = sinkhorn(scores[t])
        torch.testing.assert_close(codes[t], q)
        for s in range(3):
            if s != t:
                hand = hand - (q * (scores[s] / 0.1).log_softmax(1)).sum(1).mean()
                pairs += 1
    hand = hand / pairs
    torch.testing.assert_close(loss, hand)
    torch.testing.assert_close(torch.autograd.grad(loss, scores[2])[0],
                               torch.autograd.grad(hand, scores[2])[0])
