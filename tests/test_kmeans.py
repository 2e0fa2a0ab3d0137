"""The built-in `kmeans` family: scikit-learn parity, soft K-means, training, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ebmkit as ek
from ebmkit.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend


@pytest.fixture(scope="module")
def digits():
    return ek.get_dataset("digits", split="all")


def test_matches_scikit_learn_on_digits(digits):
    """K=10, k-means++, n_init=10, mean over 3 seeds: NMI ≥ sklearn − 0.01, inertia ≤ 0.5%."""
    from sklearn.cluster import KMeans as SKKMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    y, labels = digits.y, digits.labels.numpy()
    ours, theirs = [], []
    for seed in range(3):
        km = ek.get_model("kmeans", k=10, dim=64, init="k-means++", n_init=10,
                          random_state=seed).fit(y)
        sk = SKKMeans(10, init="k-means++", n_init=10, random_state=seed).fit(y.numpy())
        ours.append((nmi(labels, km.labels_.numpy()), km.inertia_))
        theirs.append((nmi(labels, sk.labels_), sk.inertia_))
    nmi_ours, in_ours = (sum(v) / 3 for v in zip(*ours))
    nmi_sk, in_sk = (sum(v) / 3 for v in zip(*theirs))
    print(f"NMI ebmkit {nmi_ours:.4f} vs sklearn {nmi_sk:.4f}; inertia {in_ours:.2f} vs {in_sk:.2f}")
    assert nmi_ours >= nmi_sk - 0.01
    assert abs(in_ours - in_sk) / in_sk <= 0.005
    assert km.cluster_centers_.shape == (10, 64) and km.n_iter_ >= 1


def test_same_lloyd_iterations_as_scikit_learn():
    """From the same centroids, the same algorithm: the same inertia and labels."""
    from sklearn.cluster import KMeans as SKKMeans

    g = torch.Generator().manual_seed(0)
    y = torch.randn(3000, 8, generator=g) + 3 * torch.randint(0, 4, (3000, 1), generator=g)
    init = y[:6].clone()
    km = ek.get_model("kmeans", k=6, dim=8, init=init, max_iter=10, tol=0.0).fit(y)
    sk = SKKMeans(6, init=init.numpy(), n_init=1, max_iter=10, tol=0.0,
                  algorithm="lloyd").fit(y.numpy())
    assert abs(km.inertia_ - sk.inertia_) / sk.inertia_ < 1e-4
    assert (km.labels_.numpy() == sk.labels_).mean() > 0.999
    torch.testing.assert_close(km.transform(y[:5]).sqrt(), torch.from_numpy(sk.transform(y[:5].numpy())),
                               rtol=1e-4, atol=1e-3)


def test_packed_cpu_argmin_is_exact_and_sums_stay_in_step():
    """The CPU kernels: the packed amin gives the exact float32 minimum and an index that
    attains it (ties included), and the incremental cluster sums equal fresh sums."""
    from ebmkit_kmeans import lloyd

    g = torch.Generator().manual_seed(0)
    y = torch.randn(5000, 16, generator=g) * 3
    w = torch.randn(37, 16, generator=g)
    w[9] = w[5]  # an exact tie for every sample near them
    search = lloyd.Assigner(y, 37, chunk=512)
    assert search.packed
    labels, dist = search(w)
    c_sq, w_t = torch.einsum("kd,kd->k", w, w), w.t().contiguous()
    b = torch.cat([torch.addmm(c_sq, part, w_t, alpha=-2)
                   for part in y.split(512)])  # the same float32 numbers
    low, _ = b.min(1)
    assert torch.equal(dist, (low + search.y_sq).clamp(min=0))  # bit for bit
    assert torch.equal(b.gather(1, labels[:, None]).squeeze(1), low)  # an argmin, always
    assert (labels == 5).any() or (labels == 9).any()
    ref_labels, ref_dist = lloyd.Assigner(y.double(), 37)(w.double())  # the generic kernel
    assert (ref_labels != labels).float().mean() < 0.05  # differs only on the tie
    sums = lloyd.ClusterSums(y, 37, chunk=700)
    previous = None
    for step in range(4):  # labels that move a little each step
        new = labels.clone()
        new[step * 100:(step + 1) * 100] = (labels[step * 100:(step + 1) * 100] + 1) % 37
        got = sums.update(new, previous if step else None)
        fresh = torch.zeros(37, 16, dtype=torch.float64).index_add_(0, new, y.double())
        torch.testing.assert_close(got, fresh, rtol=1e-12, atol=1e-9)
        previous = new


def test_energy_view_exhaustive_inference_and_core_free_energy(digits):
    y = digits.y[:200]
    km = ek.get_model("kmeans", k=10, dim=64, random_state=0).fit(digits.y)
    z = km.infer(y)  # one-hot [B, K]
    assert z.shape == (200, 10) and torch.equal(z.sum(1), torch.ones(200))
    assert torch.equal(z.argmax(1), km.predict(y))
    e_all = km.transform(y)  # [B, K]: E(y, e_k)
    torch.testing.assert_close(km.energy(y, z=z), e_all.min(1).values, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(km(y), e_all.min(1).values, rtol=1e-4, atol=1e-4)
    # the same free energies from the core: Reconstruction + Exhaustive over one-hot codes
    codes = torch.eye(10)
    for beta in (None, 2.0):
        core = ek.FreeEnergy(km.term, ek.latent.Exhaustive(codes), beta=beta)
        torch.testing.assert_close(km.soft_free_energy(y, beta), core(y), rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), beta=st.floats(0.01, 100.0))
def test_soft_free_energy_is_below_hard_and_tends_to_it(seed, beta):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(16, 4, generator=g)
    km = ek.get_model("kmeans", k=5, dim=4, init=torch.randn(5, 4, generator=g))
    hard = km.soft_free_energy(y, None)
    soft = km.soft_free_energy(y, beta)
    assert (soft <= hard + 1e-5).all()
    # −log K/β ≤ F_β − F∞ ≤ 0: the gap closes as β grows
    assert (soft >= hard - torch.log(torch.tensor(5.0)) / beta - 1e-4).all()
    assert torch.allclose(km.soft_free_energy(y, 1e5), hard, atol=1e-3)


def test_empty_clusters_are_reseeded_and_k_means_pp_spreads():
    y = torch.cat([torch.zeros(50, 2), torch.ones(50, 2) * 10])
    init = torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0]])  # two start empty
    km = ek.get_model("kmeans", k=3, dim=2, init=init, max_iter=5).fit(y)
    assert torch.isfinite(km.cluster_centers_).all()
    assert km.predict(y).unique().numel() >= 2
    km2 = ek.get_model("kmeans", k=2, dim=2, random_state=0).fit(y)
    assert km2.inertia_ < 1e-6


def test_trainer_lloyd_and_gradient_training(digits, tmp_path):
    test = ek.get_dataset("digits", split="test")
    ref = ek.get_model("kmeans", k=10, dim=64, random_state=0).fit(digits.y)
    for training, lr, epochs in (("lloyd", 1e-3, 3), ("gradient", 0.05, 8)):
        km = ek.get_model("kmeans", k=10, dim=64, training=training, random_state=0)
        ek.Trainer(km, epochs=epochs, lr=lr, batch_size=128, progress=False).fit(
            ek.get_dataset("digits"))
        report = ek.Trainer(km, progress=False).evaluate(test)
        mean_ref = ref(test.y).mean().item()
        print(training, report, "full-batch Lloyd:", mean_ref)
        assert report["free_energy"] < 1.15 * mean_ref and report["nmi"] > 0.6
    km.save(tmp_path / "km")
    again = ek.load(tmp_path / "km")
    torch.testing.assert_close(again(test.y[:8]), km(test.y[:8]))
    assert torch.equal(again.predict(test.y), km.predict(test.y))


def test_runs_on_every_device(device):
    y = torch.randn(500, 3, device=device)
    km = ek.get_model("kmeans", k=4, dim=3, random_state=0).to(device).fit(y)
    assert km.cluster_centers_.device.type == device.type
    assert km.predict(y).device.type == device.type and km(y).shape == (500,)
    assert km.transform(y).shape == (500, 4)


def test_bad_input_is_explained():
    km = ek.get_model("kmeans", k=5, dim=3)
    with pytest.raises(ConfigError, match="k=5 prototypes need at least 5 samples, got 3"):
        km.fit(torch.randn(3, 3))
    bad = torch.randn(20, 3)
    bad[4, 1] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        km.fit(bad)
    km.fit(torch.randn(20, 3))
    with pytest.raises(ConfigError, match="has 4 features but the model was fitted on dim=3"):
        km.predict(torch.randn(2, 4))
    with pytest.raises(ConfigError, match="not fitted yet"):
        ek.get_model("kmeans", k=2, dim=3).predict(torch.randn(2, 3))
    with pytest.raises(ConfigError, match="init must be"):
        ek.get_model("kmeans", init="kmeans++")
    with pytest.raises(ConfigError, match=r"init centroids must have shape \[k, dim\] = \[2, 3\]"):
        ek.get_model("kmeans", k=2, dim=3, init=torch.zeros(3, 3))
    with pytest.raises(ConfigError, match="beta must be"):
        ek.get_model("kmeans", beta=-1.0)
    with pytest.raises(ConfigError, match="k must be an integer >= 1"):
        ek.get_model("kmeans", k=0)


def test_cli_train_eval(tmp_path, capsys):
    from ebmkit.cli import main

    run = tmp_path / "km"
    assert main(["train", "kmeans", "--data", "digits", "--epochs", "1", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["config"]["dim"] == 64
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["nmi"] > 0.5 and report["free_energy"] > 0
    assert (run / "reconstructions.png").is_file()
