"""The attention family's Hopfield layers: ``Hopfield``, ``HopfieldPooling`` and
``HopfieldLayer`` against ``nn.MultiheadAttention``, their energies, and pooling against mean
pooling (split from test_attention.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ebmkit.errors import ConfigError
from ebmkit_attention import Hopfield, HopfieldLayer, HopfieldPooling
from test_attention import hand_energy

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------- layers
def test_one_step_layer_is_multi_head_attention():
    """Hopfield(steps=1) with MultiheadAttention's weights computes MultiheadAttention."""
    d = 16
    mha, layer = _mha_and_layer(d, heads=4)  # β = 1/√(d/heads), MHA's scale
    q, s = torch.randn(3, 5, d), torch.randn(3, 7, d)
    torch.testing.assert_close(layer(q, s), mha(q, s, s, need_weights=False)[0])
    torch.testing.assert_close(layer.attention(q, s).mean(1),
                               mha(q, s, s, average_attn_weights=True)[1])


def test_layer_updates_never_raise_the_energy(device):
    torch.manual_seed(0)
    layer = Hopfield(12, heads=3, steps=11, beta=2.0).double().to(device)
    q = torch.randn(4, 6, 12, dtype=torch.float64, device=device)
    s = torch.randn(4, 20, 12, dtype=torch.float64, device=device)
    out, energies = layer(q, s, return_energies=True)
    assert out.shape == (4, 6, 12) and energies.shape == (11, 4)
    torch.testing.assert_close(energies[0], layer.energy(q, s))
    assert bool((energies[1:] <= energies[:-1] + 1e-10 * (energies[:-1].abs() + 1)).all())
    early = Hopfield(12, heads=3, steps=50, beta=2.0, tol=1e-9).double().to(device)
    early.load_state_dict(layer.state_dict())
    assert early(q, s, return_energies=True)[1].shape[0] < 51  # stopped on the energy
    pool = HopfieldPooling(12, heads=3, queries=2, steps=3).to(device)
    x = torch.randn(4, 9, 12, device=device)
    assert pool(x).shape == (4, 2, 12) and pool.energy(x).shape == (4,)
    assert pool.attention(x).shape == (4, 3, 2, 9)
    table = HopfieldLayer(12, patterns=10, heads=2, steps=2).to(device)
    assert table(x).shape == (4, 9, 12) and table.energy(x).shape == (4,)
    with pytest.raises(ConfigError, match=r"\[B, \*, 12\]"):
        layer(torch.randn(4, 6, 5, dtype=torch.float64, device=device), s)
    with pytest.raises(ConfigError, match="beta"):
        Hopfield(12, beta=0.0)


def _mha_and_layer(d=16, heads=4, batch_first=True, **kw):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(d, heads, bias=False, batch_first=batch_first)
    layer = Hopfield(d, heads=heads, batch_first=batch_first, **kw)
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    with torch.no_grad():
        layer.q_proj.weight.copy_(wq)
        layer.k_proj.weight.copy_(wk)
        layer.v_proj.weight.copy_(wv)
        layer.out_proj.weight.copy_(mha.out_proj.weight)
    return mha, layer


def test_masks_and_batch_first_are_multihead_attentions():
    """key_padding_mask and attn_mask (bool and float) and batch_first=False give exactly
    nn.MultiheadAttention's answers; a padded bag's energy is the energy of the bag cut short."""
    mha, layer = _mha_and_layer()
    g = torch.Generator().manual_seed(1)
    q, s = torch.randn(3, 5, 16, generator=g), torch.randn(3, 7, 16, generator=g)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[0, 4:] = True
    pad[2, 6:] = True
    assoc = torch.rand(5, 7, generator=g) < 0.3
    assoc[:, 0] = False  # every query sees at least one pattern
    for kw in ({"key_padding_mask": pad}, {"attn_mask": assoc},
               {"key_padding_mask": pad, "attn_mask": assoc},
               {"attn_mask": torch.randn(5, 7, generator=g)},
               {"attn_mask": (torch.rand(12, 5, 7, generator=g) < 0.3)
                & ~torch.eye(5, 7, dtype=torch.bool)}):
        torch.testing.assert_close(layer(q, s, **kw), mha(q, s, s, need_weights=False, **kw)[0])
    # the energy of a padded bag is the energy of the bag without its padding
    e = layer.energy(q, s, key_padding_mask=pad)
    torch.testing.assert_close(e[0], layer.energy(q[:1], s[:1, :4])[0])
    torch.testing.assert_close(e[1], layer.energy(q[1:2], s[1:2])[0])
    w = layer.attention(q, s, key_padding_mask=pad)
    assert float(w[0, :, :, 4:].detach().abs().max()) == 0.0
    # sequence-first, as nn.MultiheadAttention's default
    mha_t, layer_t = _mha_and_layer(batch_first=False)
    qt, st = q.transpose(0, 1), s.transpose(0, 1)
    torch.testing.assert_close(layer_t(qt, st, key_padding_mask=pad),
                               mha_t(qt, st, st, key_padding_mask=pad, need_weights=False)[0])
    with pytest.raises(ConfigError, match=r"key_padding_mask must be \[B, N\] = \[3, 7\]"):
        layer(q, s, key_padding_mask=pad[:, :6])


def test_per_head_beta_and_dropout():
    """β per head scales each head's logits by its own β (hopfield-layers' per-head scaling);
    dropout acts on the association matrix in training mode only."""
    torch.manual_seed(0)
    layer = Hopfield(8, heads=2, beta=[0.25, 4.0], steps=3).double()
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 8, generator=g, dtype=torch.float64)
    s = torch.randn(2, 6, 8, generator=g, dtype=torch.float64)
    qq, kk = layer.project(q, s)  # [b, h, m, d]
    out, energies = layer(q, s, return_energies=True)
    by_hand = []
    for h, beta in enumerate((0.25, 4.0)):
        xi, k = qq[:, h], kk[:, h]
        for _ in range(2):
            xi = torch.softmax(beta * xi @ k.transpose(1, 2), -1) @ k
        by_hand.append((xi, torch.softmax(beta * xi @ k.transpose(1, 2), -1)))
    w = layer.attention(q, s)
    for h in range(2):
        torch.testing.assert_close(w[:, h], by_hand[h][1])
    e0 = sum(hand_energy_batch(qq[:, h], kk[:, h], b) for h, b in enumerate((0.25, 4.0)))
    torch.testing.assert_close(energies[0], e0)
    assert bool((energies[1:] <= energies[:-1] + 1e-10).all())
    with pytest.raises(ConfigError, match="one per head"):
        Hopfield(8, heads=2, beta=[1.0, 2.0, 3.0])
    drop = Hopfield(8, heads=2, dropout=0.5)
    plain = Hopfield(8, heads=2)
    plain.load_state_dict(drop.state_dict())
    q1, s1 = q.float(), s.float()
    drop.eval()
    torch.testing.assert_close(drop(q1, s1), plain(q1, s1))
    drop.train()
    torch.manual_seed(0)
    assert not torch.allclose(drop(q1, s1), plain(q1, s1))


def hand_energy_batch(xi, k, beta):
    """DESIGN.md's energy per state, summed over states: xi [b, m, d], k [b, n, d] → [b]."""
    return torch.stack([hand_energy(k[i], xi[i], beta).sum() for i in range(len(xi))])


def test_pooling_has_no_unused_parameters():
    """Every parameter of HopfieldPooling gets a gradient (DDP without
    find_unused_parameters), and a padded bag pools as the bag cut short."""
    torch.manual_seed(0)
    pool = HopfieldPooling(8, heads=2, queries=1, steps=2)
    x = torch.randn(3, 5, 8)
    pool(x).square().sum().backward()
    unused = [n for n, p in pool.named_parameters() if p.grad is None]
    assert not unused, unused
    pad = torch.zeros(3, 5, dtype=torch.bool)
    pad[1, 3:] = True
    torch.testing.assert_close(pool(x, key_padding_mask=pad)[1], pool(x[1:2, :3])[0])


def test_hopfield_pooling_beats_mean_pooling_on_bags():
    """Multiple-instance learning: a bag of 16 Gaussian vectors is positive when one of them is
    shifted along a fixed direction. Attention pooling finds it; a mean dilutes it 16×."""
    def bags(n, g, size=16, d=8):
        x = torch.randn(n, size, d, generator=g)
        label = torch.randint(0, 2, (n,), generator=g)
        where = torch.randint(0, size, (n,), generator=g)
        x[torch.arange(n), where, 0] += 3.0 * label
        return x, label.float()

    class MeanPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(8, 8)

        def forward(self, x):
            return self.f(x).mean(1)

    g = torch.Generator().manual_seed(0)
    (xtr, ytr), (xte, yte) = bags(1024, g), bags(1024, g)

    def accuracy(pool):
        torch.manual_seed(0)
        model = nn.Sequential(pool, nn.Linear(8, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            i = torch.randint(0, 1024, (128,), generator=g)
            loss = nn.functional.binary_cross_entropy_with_logits(model(xtr[i]).squeeze(-1), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return ((model(xte).squeeze(-1) > 0).float() == yte).float().mean().item()

    torch.manual_seed(0)
    hop = accuracy(HopfieldPooling(8, hidden_size=8, output_size=8, beta=1.0))
    mean = accuracy(MeanPool())
    print(f"bag accuracy: HopfieldPooling {hop:.3f}, mean pooling {mean:.3f}")
    assert hop >= mean + 0.1
