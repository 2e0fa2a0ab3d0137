"""The built-in autoencoder family: energies, quality on digits' fixed test split, the CLI.

Quality bars (asserted; the measured figures are printed, see ``pytest -s``):

- ``autoencoder`` with code 16: test MSE ≤ 0.75 × scikit-learn PCA with 16 components;
- ``autoencoder.denoising`` with 50% masking: PSNR of reconstructions of masked test digits
  ≥ 5 dB above that of the masked input;
- ``autoencoder.sparse`` with ``kind="ng"`` (Ng's): mean fraction of active code units below
  the target ρ, test MSE within 1.5× of the plain model's (the default, PSD: test_psd.py);
- ``autoencoder.contractive``: encoder Jacobian norm below the plain model's at comparable
  MSE;
- ``autoencoder.variational``: held-out importance-weighted log-likelihood above a diagonal
  Gaussian's; every digit is at least 3% of 500 samples, labelled by a classifier trained
  on the train split;
- anomaly scores: trained on 0-8, AUROC for 9 on the test split ≥ 0.85.
"""

from __future__ import annotations

import json

import pytest
import torch

import ebmkit as ek
from ebmkit.data import TensorData
from ebmkit.errors import ConfigError

NAMES = ["autoencoder", "autoencoder.denoising", "autoencoder.sparse",
         "autoencoder.contractive", "autoencoder.variational"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend


@pytest.fixture(scope="module")
def digits():
    return ek.get_dataset("digits"), ek.get_dataset("digits", split="test")


def _fit(name, data, epochs, lr=3e-3, batch_size=64, **options):
    torch.manual_seed(0)
    model = ek.get_model(name, **options)
    ek.Trainer(model, epochs=epochs, lr=lr, batch_size=batch_size, device="cpu",
               progress=False).fit(data)
    return model.eval()


def _mse(model, y):
    return float((model.reconstruct(y) - y).square().mean())


def _psnr(y_hat, y):
    return float(10 * torch.log10(1.0 / (y_hat - y).square().mean()))


@pytest.fixture(scope="module")
def plain(digits):
    """The plain autoencoder with code 16 (shared by the PCA and the sparse checks)."""
    train, _ = digits
    return _fit("autoencoder", train, epochs=25, batch_size=32, code=16, image_shape=[1, 8, 8])


# ------------------------------------------------------------------ interface and shapes
def test_registered_with_options_and_round_trip(tmp_path):
    assert set(NAMES) <= set(ek.list_models())
    for name in NAMES:
        model = ek.get_model(name)
        assert isinstance(model, ek.EnergyModel) and model.name == name
        again = ek.get_model(name, **json.loads(json.dumps(model.config())))
        assert again.config() == model.config()
    model = ek.get_model("autoencoder.sparse", code=32)
    model.save(tmp_path / "sparse")
    loaded = ek.load(tmp_path / "sparse")
    y = torch.rand(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(y), model(y))


@pytest.mark.parametrize("name", NAMES)
def test_energies_and_interface_on_every_device(name, device):
    torch.manual_seed(0)
    model = ek.get_model(name, code=8).to(device)
    y = torch.rand(6, 64, device=device)
    e = model(y)
    assert e.shape == (6,) and e.device.type == device.type and torch.isfinite(e).all()
    h = model.encode(y)
    assert h.shape == (6, 8)
    assert model.decode(h).shape == (6, 64)
    assert model.reconstruct(y).shape == y.shape and not model.reconstruct(y).requires_grad
    assert model.score(y).shape == (6,)
    assert model.infer(y).shape == (6, 8)
    if name == "autoencoder.sparse":  # PSD: F(y) = E(y, ž), ž minimises, Enc(y) is a guess
        torch.testing.assert_close(model.free_energy(y), model.energy(y, z=model.infer(y)))
    elif name != "autoencoder.variational":  # deterministic: F(y) = E(y, Enc(y))
        torch.testing.assert_close(model.free_energy(y), model.energy(y, z=model.encode(y)))
    step = model.default_strategy()(model, {"y": y})
    step.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_conv_tied_and_costs():
    torch.manual_seed(0)
    conv = ek.get_model("autoencoder", arch="conv", image_shape=[1, 8, 8], code=8)
    images = torch.rand(3, 1, 8, 8)
    assert conv(images).shape == (3,) and conv.reconstruct(images).shape == (3, 1, 8, 8)
    big = ek.get_model("autoencoder.variational", arch="conv", image_shape=[1, 28, 28],
                       dim=784, channels=4)
    assert big.sample(2).shape == (2, 784)

    tied = ek.get_model("autoencoder", tied=True, depth=0, code=8)
    assert sum(p.numel() for p in tied.parameters()) == 64 * 8 + 8 + 64  # W, b_x, b_h
    h = torch.rand(2, 8)
    w, b = tied.encoder.linears[0].weight, tied.decoder.biases[0]
    torch.testing.assert_close(tied.decode(h), torch.sigmoid(h @ w + b))  # W_h = W_xᵀ

    assert ek.get_model("autoencoder").cost == "bce"  # [0, 1] data: sigmoid + BCE
    real = ek.get_model("autoencoder", dim=2, low=-4.0, high=4.0)  # real data: ½‖·‖²
    assert real.cost == "mse"
    y = torch.randn(4, 2) * 3
    torch.testing.assert_close(real(y), 0.5 * (y - real.reconstruct(y)).square().sum(1))
    vae = ek.get_model("autoencoder.variational", dim=2, low=-4.0, high=4.0)
    assert vae.likelihood == "gaussian"


# ------------------------------------------------------------------------ quality bars
def test_plain_autoencoder_beats_pca(plain, digits):
    from sklearn.decomposition import PCA

    train, test = digits
    pca = PCA(n_components=16).fit(train.y.numpy())
    rec = torch.as_tensor(pca.inverse_transform(pca.transform(test.y.numpy())))
    pca_mse, ae_mse = float((rec - test.y).square().mean()), _mse(plain, test.y)
    print(f"\nautoencoder code 16: test MSE {ae_mse:.5f} = {ae_mse / pca_mse:.3f} × PCA-16 "
          f"({pca_mse:.5f}); bar ≤ 0.75×")
    assert ae_mse <= 0.75 * pca_mse
    report = ek.Trainer(plain, device="cpu", progress=False).evaluate(test)
    assert report["mse"] == pytest.approx(ae_mse, rel=1e-4)
    assert report["psnr"] == pytest.approx(-10 * torch.log10(torch.tensor(ae_mse)).item(), rel=1e-4)
    assert 0.5 < report["ssim"] <= 1.0  # image_shape given: SSIM too


def test_denoising_restores_masked_digits(digits):
    train, test = digits
    model = _fit("autoencoder.denoising", train, epochs=40, code=32, hidden=256,
                 corruption="masking", level=0.5)
    masked = model.corrupt(test.y)
    assert 0.4 < float((masked != test.y).float().mean() / (test.y != 0).float().mean()) < 0.6
    gain = _psnr(model.reconstruct(masked), test.y) - _psnr(masked, test.y)
    print(f"\ndenoising, 50% masking: PSNR {_psnr(masked, test.y):.2f} dB (masked input) -> "
          f"{_psnr(model.reconstruct(masked), test.y):.2f} dB (reconstruction), gain "
          f"{gain:.2f} dB; bar ≥ 5 dB")
    assert gain >= 5.0
    # Contrastively: corrupted digits have a higher energy than clean ones.
    with torch.no_grad():
        assert model(masked).mean() > model(test.y).mean()


def test_sparse_code_is_sparse_and_reconstructs(plain, digits):
    train, test = digits
    model = _fit("autoencoder.sparse", train, epochs=40, kind="ng", code=64, penalty="kl",
                 rho=0.05, weight=0.1)
    active, mse, ref = model.active_fraction(test.y), _mse(model, test.y), _mse(plain, test.y)
    print(f"\nsparse (64 sigmoid units, KL to rho 0.05): active fraction {active:.4f} "
          f"(bar < 0.05), test MSE {mse:.5f} = {mse / ref:.3f} × plain (bar ≤ 1.5×)")
    assert active < 0.05
    assert mse <= 1.5 * ref
    l1 = ek.get_model("autoencoder.sparse", kind="ng", penalty="l1", code_activation="relu")
    h = torch.rand(4, 64)
    torch.testing.assert_close(l1.regularizer(torch.rand(4, 64), z=h), h.abs().sum(1))


def test_contractive_jacobian_forms_agree():
    torch.manual_seed(0)
    model = ek.get_model("autoencoder.contractive", code=8)
    assert model.method == "closed"
    y = torch.rand(5, 64)
    closed = model.jacobian_penalty(y, method="closed")
    torch.testing.assert_close(model.jacobian_penalty(y, method="exact"), closed)
    many = ek.get_model("autoencoder.contractive", code=8, projections=4000)
    many.load_state_dict(model.state_dict())
    torch.testing.assert_close(many.jacobian_penalty(y, method="jvp"), closed, rtol=0.1, atol=0)
    deep = ek.get_model("autoencoder.contractive", depth=1, code_activation="identity")
    assert deep.method == "exact"
    deep.jacobian_penalty(y).sum().backward()  # differentiable through torch.func
    assert deep.encoder.linears[0].weight.grad is not None


def test_contractive_is_flatter_at_comparable_mse(digits):
    train, test = digits
    plain = _fit("autoencoder", train, epochs=30, depth=0, code_activation="sigmoid")
    model = _fit("autoencoder.contractive", train, epochs=30, weight=0.1)
    probe = ek.get_model("autoencoder.contractive")
    probe.load_state_dict(plain.state_dict())
    j_plain, j_cae = probe.jacobian_norm(test.y).mean(), model.jacobian_norm(test.y).mean()
    mse_plain, mse_cae = _mse(plain, test.y), _mse(model, test.y)
    print(f"\ncontractive: Jacobian norm {j_cae:.3f} vs plain {j_plain:.3f}; test MSE "
          f"{mse_cae:.5f} vs {mse_plain:.5f} ({mse_cae / mse_plain:.3f}×)")
    assert j_cae < 0.85 * j_plain
    assert mse_cae <= 1.15 * mse_plain
    assert "jacobian_norm" in ek.Trainer(model, device="cpu", progress=False).evaluate(test)


def _dequantize(y, gen):
    """Digits take 17 grey levels: spread each uniformly over its bin, for densities."""
    return (16 * y + torch.rand(y.shape, generator=gen)) / 17


def test_variational_likelihood_and_samples(digits):
    from sklearn.linear_model import LogisticRegression

    train, test = digits
    gen = torch.Generator().manual_seed(0)
    y_train, y_test = _dequantize(train.y, gen), _dequantize(test.y, gen)
    model = _fit("autoencoder.variational", TensorData({"y": y_train}, name="d", split="train"),
                 epochs=40, likelihood="gaussian")
    iwae = float(model.log_likelihood(y_test, k=64).mean())
    with torch.no_grad():
        elbo = float(model.elbo(y_test, samples=16).mean())
    gaussian = torch.distributions.Normal(y_train.mean(0), y_train.std(0))
    ll_gaussian = float(gaussian.log_prob(y_test).sum(1).mean())
    clf = LogisticRegression(max_iter=2000).fit(train.y.numpy(), train.labels.numpy())
    samples = model.sample(500, generator=torch.Generator().manual_seed(0)).clamp(0, 1)
    hist = torch.bincount(torch.as_tensor(clf.predict(samples.numpy())), minlength=10)
    print(f"\nvariational (Gaussian decoder, dequantised digits): held-out IWAE-64 "
          f"log-likelihood {iwae:.2f} nats (ELBO {elbo:.2f}) vs diagonal Gaussian "
          f"{ll_gaussian:.2f}; classes of 500 samples {hist.tolist()}")
    assert iwae > ll_gaussian
    assert iwae >= elbo - 0.5  # the importance-weighted bound is the tighter one
    assert (hist >= 0.03 * 500).all(), hist  # every digit, at least 3% of the samples (23 of
    # 500, 4.6%, for the rarest when measured)
    report = ek.Trainer(model, device="cpu", progress=False).evaluate(
        TensorData({"y": y_test}, name="d", split="test"))
    assert {"elbo", "log_likelihood", "mse", "psnr"} <= set(report)


def test_iw_bound_rises_to_the_exact_likelihood_of_a_linear_gaussian_model():
    """Linear decoder, Gaussian with a fixed σ: the marginal is exactly N(b, WWᵀ + σ²I).
    With the (untrained, so imperfect) linear encoder as q, ``log_likelihood`` is a lower
    bound that rises with k towards the exact log-likelihood."""
    torch.manual_seed(0)
    d, k, std = 6, 2, 0.5
    model = ek.get_model("autoencoder.variational", dim=d, code=k, low=-10.0, high=10.0,
                         likelihood="gaussian", std=std, encoder=torch.nn.Linear(d, 2 * k),
                         decoder=torch.nn.Linear(k, d)).eval()
    w, b = model.decoder.weight.detach(), model.decoder.bias.detach()
    exact_model = torch.distributions.MultivariateNormal(b, w @ w.T + std ** 2 * torch.eye(d))
    y = exact_model.sample((400,))
    exact = float(exact_model.log_prob(y).mean())
    bound = {}
    for n in (1, 10, 1000):
        torch.manual_seed(1)
        bound[n] = float(model.log_likelihood(y, k=n).mean())
    print(f"\nlinear-Gaussian: exact {exact:.3f} nats; IW bound {bound}")
    assert bound[1] < bound[10] < bound[1000] <= exact + 0.01
    assert exact - bound[1000] < 0.2 * (exact - bound[1])  # most of the gap closes
    with torch.no_grad():
        assert abs(float(model.elbo(y, samples=256).mean()) - bound[1]) < 0.5  # k = 1: ELBO


def test_dequantize_spreads_each_grey_level_over_its_bin():
    vae = ek.get_model("autoencoder.variational", dim=256, dequantize=256)
    y = (torch.arange(256.0) / 255).reshape(1, 256).repeat(50, 1)
    x = vae.dequantize(y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.floor(x * 256), torch.round(y * 255))  # in [k/256, (k+1)/256)
    assert float((x * 256 - torch.floor(x * 256)).std()) > 0.25  # ~U[0, 1): std 0.289
    vae.train()
    torch.manual_seed(0)
    f1 = vae.free_energy(y[:2])
    vae.eval()  # eval: y as given
    torch.manual_seed(0)
    f2 = vae.free_energy(vae.dequantize(y[:2]))  # the same draws of u, then of z
    assert torch.allclose(f1, f2)
    assert not torch.allclose(f1, vae.free_energy(y[:2]))
    for bad in ({"dequantize": 1}, {"dequantize": -2}, {"dequantize": 256, "low": -1.0}):
        with pytest.raises(ConfigError):
            ek.get_model("autoencoder.variational", dim=4, **bad)


def test_anomaly_scores_find_the_unseen_digit(digits):
    """The default autoencoder (no options) on its registered recipe: its score, the
    cross-entropy minus its floor H(y), finds the unseen digit; the raw cross-entropy (what
    the energy was before the floor was subtracted) does not reach the bar."""
    from sklearn.metrics import roc_auc_score

    train, test = digits
    normal = TensorData({"y": train.y[train.labels != 9]}, name="digits-0-8", split="train")
    recipe = ek.plugins.get_entry("models", "autoencoder").demo
    model = _fit("autoencoder", normal, epochs=recipe["epochs"], lr=recipe["lr"],
                 batch_size=recipe["batch_size"], anomaly_classes=[9])
    report = ek.Trainer(model, device="cpu", progress=False).evaluate(test)
    with torch.no_grad():
        logits = model.decoder(model.encode(test.y))
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, test.y, reduction="none").sum(1)
    raw = roc_auc_score((test.labels == 9).numpy(), bce.numpy())
    print(f"\nanomaly: default autoencoder trained on 0-8, AUROC of the score for 9 on the test "
          f"split {report['auroc']:.3f} (raw cross-entropy {raw:.3f}); bar ≥ 0.85")
    assert report["auroc"] >= 0.85
    assert report["auroc"] > raw + 0.03


# ------------------------------------------------------------------ negatives, CLI, bad input
@pytest.mark.parametrize(("name", "level"), [("gaussian", 0.3), ("masking", 0.5),
                                             ("salt-and-pepper", 0.2)])
def test_corruptions_are_negative_generators(name, level):
    from ebmkit_autoencoders.corruption import corruption

    torch.manual_seed(0)
    y = torch.rand(200, 64) * 0.8 + 0.1
    gen = corruption(name, level)
    assert isinstance(gen, ek.negatives.NegativeGenerator) and gen.k == 1
    out = gen(y)
    assert out.shape == y.shape and out.min() >= 0 and out.max() <= 1
    if name != "gaussian":
        assert float((out != y).float().mean()) == pytest.approx(level, abs=0.02)
    assert corruption(name, level, k=3)(y).shape == (200, 3, 64)
    model = ek.get_model("autoencoder.denoising", corruption=name, level=level)
    strategy = ek.strategies.Contrastive(negatives=model.negatives(k=2), loss="hinge", margin=1.0)
    out = strategy(model, {"y": y})
    assert out.loss.dim() == 0 and {"e_pos", "e_neg"} <= set(out.logs)


def test_cli_train_eval_sample(tmp_path, capsys, monkeypatch, fresh_plugins):
    from ebmkit.cli import main

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    run = tmp_path / "ae"
    assert main(["train", "autoencoder", "--data", "digits", "--epochs", "2", "--out",
                 str(run)]) == 0
    config = json.loads((run / "config.json").read_text())["model"]["config"]
    assert config["image_shape"] == [1, 8, 8] and config["dim"] == 64
    assert (run / "reconstructions.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"free_energy", "mse", "psnr", "ssim"} <= set(report)
    assert main(["sample", str(run), "-n", "16"]) == 0
    assert (run / "samples.png").is_file()

    vae = tmp_path / "vae"
    assert main(["train", "autoencoder.variational", "--data", "digits", "--epochs", "1",
                 "--set", "code=4", "--out", str(vae)]) == 0
    assert (vae / "samples.png").is_file() and (vae / "reconstructions.png").is_file()


def test_bad_input_is_explained():
    model = ek.get_model("autoencoder")
    with pytest.raises(ConfigError, match=r"y must have shape \[B, 64\], got \[4, 3\]"):
        model(torch.zeros(4, 3))
    with pytest.raises(ConfigError, match=r"needs y in \[0, 1\], got values in \[-1, 2\]"):
        model(torch.tensor([[-1.0] * 32 + [2.0] * 32]))
    with pytest.raises(ConfigError, match="floating-point"):
        model(torch.zeros(2, 64, dtype=torch.long))
    with pytest.raises(ConfigError, match="code must be an integer >= 1, got 0"):
        ek.get_model("autoencoder", code=0)
    with pytest.raises(ConfigError, match="unknown corruption 'blur'; expected one of "
                                          "'gaussian', 'masking', 'salt-and-pepper'"):
        ek.get_model("autoencoder.denoising", corruption="blur")
    with pytest.raises(ConfigError, match=r"arch='conv' needs image_shape=\[C, H, W\]"):
        ek.get_model("autoencoder", arch="conv")
    with pytest.raises(ConfigError, match="tied=True needs arch='mlp'"):
        ek.get_model("autoencoder", arch="conv", image_shape=[1, 8, 8], tied=True)
    with pytest.raises(ConfigError, match=r"cost='bce' needs data in \[0, 1\]"):
        ek.get_model("autoencoder", cost="bce", low=-1.0)
    with pytest.raises(ConfigError, match="image_shape .* has 784 features but dim=64"):
        ek.get_model("autoencoder", image_shape=[1, 28, 28])
    with pytest.raises(ConfigError, match="penalty='kl' .* needs code_activation='sigmoid'"):
        ek.get_model("autoencoder.sparse", kind="ng", code_activation="relu")
    with pytest.raises(ConfigError, match="no option 'cod'"):
        ek.get_model("autoencoder", cod=3)
    with pytest.raises(ConfigError, match="likelihood must be"):
        ek.get_model("autoencoder.variational", likelihood="poisson")
