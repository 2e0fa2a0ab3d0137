"""The built-in GAN family: DCGAN and EBGAN as energy-based models, on digits.

Quality bars (CPU, digits): classifier FID of 1,000 samples at most a fifth of the
uniform-noise FID and below a fitted Gaussian's, every class at least 4% of the samples;
the energy the adversarial loss trains is the per-sample one the model exposes; resume
equals an uninterrupted run; bad inputs raise clear errors.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

# The recipe the quality tests train: batch 32 on the digits train split (45 steps an epoch).
DIGITS = {"lr_d": 1e-3, "lr_g": 1e-3}
EPOCHS, BATCH = {"gan.dcgan": 30, "gan.ebgan": 20}, 32


def _train(name: str, epochs: int | None = None, **options):
    torch.manual_seed(0)
    model = ek.get_model(name, **{**DIGITS, **options})
    history = ek.Trainer(model, epochs=epochs or EPOCHS[name], batch_size=BATCH, progress=False,
                         seed=0).fit(ek.get_dataset("digits"))
    return model, history


@pytest.fixture(scope="module")
def scores():
    from ebmkit_gan.scores import evaluate_samples

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield evaluate_samples


@pytest.mark.slow  # trains both recipes (~1 min of CPU each)
@pytest.mark.parametrize("name", ["gan.dcgan", "gan.ebgan"])
def test_samples_score_well_and_cover_every_digit(name, scores, tmp_path):
    model, history = _train(name)
    report = scores(model, "digits", n=1000)
    print(f"\n{name}: {report}")
    assert report.fid <= report.fid_ceiling / 5, report
    assert report.kid < report.kid_ceiling / 3, report
    # and better than a full-covariance Gaussian fitted to the training images (FID ≈ 1.8)
    y = ek.get_dataset("digits").y.double()
    cov = torch.cov(y.T) + 1e-4 * torch.eye(y.shape[1], dtype=torch.float64)
    eps = torch.randn(1000, y.shape[1], generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    gauss = scores((y.mean(0) + eps @ torch.linalg.cholesky(cov).T).clamp(0, 1).float(),
                   "digits")
    print(f"fitted Gaussian: classifier FID {gauss.fid:.2f}")
    assert report.fid < gauss.fid, (report, gauss)
    assert min(report.class_shares) >= 0.04, report.class_shares  # every digit, 4% or more
    # both players logged, energies separate data from samples in the discriminator's eyes
    last = history[-1]
    assert {"loss_d", "loss_g", "e_pos", "e_neg", "diversity", "grad_g"} <= set(last)
    assert last["e_pos"] < last["e_neg"]
    # sample grids, latent interpolations and both players' curves
    from ebmkit_gan.plots import plot_interpolations, plot_samples, plot_training

    for path in (plot_samples(model, tmp_path / "s.png"),
                 plot_interpolations(model, tmp_path / "i.png", rows=4, steps=6),
                 plot_training(history, tmp_path / "c.png")):
        assert path.stat().st_size > 1000


def test_energy_contract_and_sampling():
    model = ek.get_model("gan.dcgan", image_size=8, g_width=8, d_width=8)
    y = torch.rand(5, 64)
    e = model(y)
    assert e.shape == (5,) and torch.isfinite(e).all()
    assert torch.allclose(model.energy(y.reshape(5, 1, 8, 8)), e)
    assert torch.allclose(model.prob_data(y), torch.sigmoid(-e))
    assert model.infer(y) is None
    gen = torch.Generator().manual_seed(1)
    s1 = model.sample(7, generator=gen)
    s2 = model.sample(7, generator=torch.Generator().manual_seed(1))
    assert s1.shape == (7, 64) and torch.equal(s1, s2) and 0 <= s1.min() and s1.max() <= 1
    path = model.interpolate(torch.randn(3, 32), torch.randn(3, 32), steps=5)
    assert path.shape == (3, 5, 64)
    eb = ek.get_model("gan.ebgan", g_width=8, d_width=8, code_dim=4)
    assert eb(y).shape == (5,) and (eb(y) >= 0).all()  # a reconstruction error
    assert eb.reconstruct(y).shape == (5, 64)


@pytest.mark.parametrize("name", ["gan.dcgan", "gan.ebgan"])
def test_trained_energy_is_the_exposed_one_and_per_sample(name):
    """In training mode, the discriminator the adversarial loss calls gives each sample the
    energy that ``energy`` exposes, whatever else is in the batch (no batch statistics)."""
    torch.manual_seed(0)
    model = ek.get_model(name, g_width=8, d_width=8).train()
    y = torch.rand(6, 64)
    images = model.as_images(y)
    with torch.no_grad():
        trained = model.discriminate(images)  # what the loss sees, in training mode
        alone = torch.cat([model.discriminate(images[i:i + 1]) for i in range(6)])
        other = model.discriminate(torch.cat([images[:2], torch.rand(4, 1, 8, 8)]))[:2]
        exposed = model.energy(y)
    torch.testing.assert_close(trained, exposed)
    torch.testing.assert_close(alone, exposed)
    torch.testing.assert_close(other, exposed[:2])
    if name == "gan.ebgan":  # the paper's batch norm stays an option, batch-dependent in training
        paper = ek.get_model(name, g_width=8, d_width=8, d_norm="batch").train()
        with torch.no_grad():
            assert not torch.allclose(paper.discriminate(images)[:2],
                                      paper.discriminate(images[:2]))


def test_sizes_from_image_size_and_fashion_shape():
    for size, channels in [(8, 1), (16, 3), (28, 1), (32, 1)]:
        model = ek.get_model("gan.dcgan", image_size=size, channels=channels, g_width=4,
                             d_width=4)
        assert model.sample(2).shape == (2, channels * size * size)
        assert model.config()["image_shape"] == [channels, size, size]
    rebuilt = ek.get_model("gan.dcgan", **model.config())
    assert rebuilt.config() == model.config()


def test_generator_is_a_negative_generator_for_any_contrastive_strategy():
    model = ek.get_model("gan.dcgan", g_width=8, d_width=8)
    neg = model.negatives()
    assert isinstance(neg, ek.negatives.NegativeGenerator)
    y = torch.rand(6, 64)
    assert neg(y).shape == y.shape and not neg(y).requires_grad
    assert model.negatives(k=3)(y).shape == (6, 3, 64)
    assert neg(y.reshape(6, 1, 8, 8)).shape == (6, 1, 8, 8)
    minimax = ek.plugins.get_entry("losses", "gan.minimax").factory  # a registered loss
    strategy = ek.strategies.Contrastive(negatives=neg, loss=minimax)
    out = strategy(model, {"y": y})
    assert out.loss.dim() == 0 and {"e_pos", "e_neg"} <= set(out.logs)
    with pytest.raises(ConfigError, match=r"\[1, 8, 8\] images .* expected y of shape \[B, 64\]"):
        neg(torch.rand(6, 2))


def test_losses_match_the_value_function():
    from ebmkit_gan.losses import GAN_LOSSES, pulling_away, value_function

    e_pos, e_neg = torch.randn(16), torch.randn(16)
    d_real, d_fake = torch.sigmoid(-e_pos), torch.sigmoid(-e_neg)
    v = (d_real.log().mean() + (1 - d_fake).log().mean())
    assert torch.allclose(value_function(e_pos, e_neg), v, atol=1e-5)
    assert torch.allclose(GAN_LOSSES["minimax"].d(e_pos, e_neg), -v, atol=1e-5)
    assert torch.allclose(GAN_LOSSES["minimax"].g(e_neg), (1 - d_fake).log().mean(), atol=1e-5)
    assert torch.allclose(GAN_LOSSES["non_saturating"].g(e_neg), -d_fake.log().mean(), atol=1e-5)
    assert torch.allclose(GAN_LOSSES["hinge"].d(e_pos, e_neg),
                          torch.relu(1 + e_pos).mean() + torch.relu(1 - e_neg).mean())
    assert torch.allclose(GAN_LOSSES["margin"].d(e_pos.abs(), e_neg.abs(), margin=2.0),
                          e_pos.abs().mean() + torch.relu(2 - e_neg.abs()).mean())
    same = torch.ones(8, 4)
    assert torch.isclose(pulling_away(same), torch.tensor(1.0))
    assert torch.isclose(pulling_away(torch.eye(4)), torch.tensor(0.0))
    assert ek.plugins.get_entry("losses", "gan.hinge").factory(e_pos, e_neg).dim() == 0


def test_adversarial_d_g_ratio_and_both_players_move():
    from ebmkit_gan.strategy import Adversarial

    model = ek.get_model("gan.dcgan", g_width=8, d_width=8)
    strategy = Adversarial(loss="hinge", d_steps=3, g_steps=2, lr_d=1e-3, lr_g=1e-3)
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    out = strategy(model, {"y": torch.rand(8, 64)})
    model.zero_grad(set_to_none=True)
    out.loss.backward()  # what the trainer does: it reaches no model parameter
    assert all(p.grad is None for p in model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()))
    state = strategy.state_dict()
    assert int(state["opt_d"]["state"][0]["step"]) == 3
    assert int(state["opt_g"]["state"][0]["step"]) == 2


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["gan.dcgan", "gan.ebgan"])
def test_resume_equals_an_uninterrupted_run(name, tmp_path):
    data = ek.data.TensorData({"y": ek.get_dataset("digits").y[:256]}, name="digits",
                              split="train")
    opts = {"g_width": 8, "d_width": 8}

    def trainer(model, epochs, d, resume=False):
        return ek.Trainer(model, epochs=epochs, batch_size=64, progress=False, seed=3,
                          checkpoint_dir=d, resume=resume)

    torch.manual_seed(0)
    straight = ek.get_model(name, **opts)
    trainer(straight, 4, tmp_path / "a").fit(data)

    torch.manual_seed(0)
    first = ek.get_model(name, **opts)
    trainer(first, 2, tmp_path / "b").fit(data)
    torch.manual_seed(123)  # a new process: other weights, other RNG state
    second = ek.get_model(name, **opts)
    history = trainer(second, 4, tmp_path / "b", resume=True).fit(data)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    a, b = _params(straight), _params(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    state = torch.load(tmp_path / "b" / "trainer.pt", weights_only=True)
    assert {"opt_d", "opt_g", "step"} <= set(state["strategy"])


def test_divergence_guard_restores_both_players_and_backs_off(monkeypatch):
    from ebmkit_gan import strategy as strat
    from ebmkit_gan.losses import GANLoss

    model = ek.get_model("gan.dcgan", g_width=8, d_width=8)
    data = ek.data.TensorData({"y": torch.rand(64, 64)}, name="noise", split="train")
    calls = {"n": 0}
    real = strat.get_gan_loss("non_saturating")

    def d_loss(e_pos, e_neg):  # non-finite on the 3rd step of the first attempt only
        calls["n"] += 1
        loss = real.d(e_pos, e_neg)
        return loss * float("nan") if calls["n"] == 3 else loss

    strategy = strat.Adversarial(lr_d=1e-3, lr_g=1e-3)
    strategy.loss = GANLoss("flaky", d_loss, real.g)
    trainer = ek.Trainer(model, strategy, epochs=1, batch_size=16, progress=False,
                         check_every=1, max_retries=2)
    history = trainer.fit(data)
    assert history[-1]["retries"] == 1
    assert strategy.lrs == (5e-4, 5e-4)  # backed off once, like the trainer's own lr
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_train_eval_sample(tmp_path, capsys, monkeypatch, fresh_plugins):
    from ebmkit.cli import main

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    run = tmp_path / "run"
    assert main(["train", "gan.dcgan", "--data", "digits", "--epochs", "1", "--set",
                 "g_width=8", "--set", "d_width=8", "--set", "eval_samples=200",
                 "--out", str(run)]) == 0
    for name in ("config.json", "model.json", "trainer.pt", "samples.png", "curve.png"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["model"]["config"]["image_shape"] == [1, 8, 8]
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("classifier_fid", "classifier_fid_floor", "classifier_fid_ceiling",
                "classifier_kid", "classes_covered", "class_share_min"):
        assert f"samples/{key}" in report, key
    assert report["samples/classifier_fid_floor"] < report["samples/classifier_fid_ceiling"]
    assert main(["sample", str(run), "-n", "16"]) == 0
    assert (run / "samples.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["train", "gan.dcgan", "--data", "moons", "--epochs", "1", "--out",
                 str(tmp_path / "moons"), "--no-plots"]) != 0  # non-image data
    err = capsys.readouterr().err
    assert "models 1×8×8 images: y must be [B, 1, 8, 8] or flat [B, 64]; got [128, 2]" in err, err


def test_bad_inputs_name_the_expected_shape():
    with pytest.raises(ConfigError, match="cannot produce 9×9 images.*8, 16, 32"):
        ek.get_model("gan.dcgan", image_size=9)
    with pytest.raises(ConfigError, match=r"image_size=28 does not match image_shape=\[1, 8, 8\]"):
        ek.get_model("gan.dcgan", image_shape=[1, 8, 8], image_size=28)
    with pytest.raises(ConfigError, match=r"square images \[C, S, S\]"):
        ek.get_model("gan.dcgan", image_shape=[1, 8, 6])
    with pytest.raises(ConfigError, match="unknown GAN loss 'wasserstein'"):
        ek.get_model("gan.dcgan", loss="wasserstein")
    with pytest.raises(ConfigError, match="EBGAN's"):
        ek.get_model("gan.dcgan", loss="margin")
    model = ek.get_model("gan.dcgan", g_width=8, d_width=8)
    with pytest.raises(ConfigError, match=r"y must be \[B, 1, 8, 8\] or flat \[B, 64\]; got \[4, 2\]"):
        model(torch.rand(4, 2))
    with pytest.raises(ConfigError, match="z belongs to the generator"):
        model.energy(torch.rand(4, 64), z=torch.rand(4, 32))
    # a generator whose images the discriminator cannot read
    from ebmkit_gan.models import DCGAN, DCGANConfig
    from ebmkit_gan.networks import Generator

    with pytest.raises(ConfigError, match=r"slot 'generator': expected a network mapping "
                                          r"\[B, 32\] to \[B, 1, 8, 8\], got Generator "
                                          r"returning \[B, 1, 16, 16\]"):
        DCGAN(DCGANConfig(image_size=8, g_width=8, d_width=8),
              generator=Generator(32, (1, 16, 16), 8))
    from ebmkit_gan.strategy import Adversarial

    with pytest.raises(ConfigError, match="d_steps must be an integer >= 1"):
        Adversarial(d_steps=0)
    with pytest.raises(ConfigError, match="GAN models"):
        Adversarial()(ek.get_model("neural.mlp", dim=2), {"y": torch.rand(4, 2)})


def test_classifier_cache_honours_the_override(tmp_path, monkeypatch, scores):
    from ebmkit_gan import scores as sc

    monkeypatch.setenv("EBMKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert sc.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("EBMKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sc.cache_dir() == tmp_path / "xdg" / "ebmkit"
    monkeypatch.setenv("EBMKIT_CACHE_DIR", str(tmp_path / "cache"))
    sc.classifier_for.cache_clear()
    try:
        net, acc = sc.classifier_for("digits")
        assert acc > 0.85  # on the 72 validation digits (test digits: about 0.98)
        files = sorted(p.name for p in (tmp_path / "cache" / "classifiers").iterdir())
        assert files == ["digits-v2-seed0.json", "digits-v2-seed0.safetensors"]
        sc.classifier_for.cache_clear()
        again, acc2 = sc.classifier_for("digits")  # loaded, not retrained
        assert acc2 == acc
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                      again.state_dict().values()))
    finally:
        sc.classifier_for.cache_clear()
    report = scores(torch.rand(300, 64), "digits")
    assert report.fid > report.fid_floor * 5  # noise is far from digits
    with pytest.raises(ConfigError, match=r"digits images are \[1, 8, 8\]"):
        scores(torch.rand(10, 5), "digits")


@pytest.mark.byhand  # minutes on a CPU (a Fashion-MNIST classifier, then the GAN): by hand,
# EBMKIT_SLOW_TESTS=all python -m pytest -q tests/test_gan.py -k fashion
def test_fashion_mnist_28(scores):
    try:
        data = ek.get_dataset("fashion-mnist")
    except ek.errors.DatasetUnavailableError as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    model = ek.get_model("gan.dcgan", image_size=28, g_width=32, d_width=32, **DIGITS)
    sub = ek.data.TensorData({"y": data.y[:10_000]}, name="fashion-mnist", split="train")
    history = ek.Trainer(model, epochs=2, batch_size=64, progress=False).fit(sub)
    report = scores(model, "fashion-mnist", n=1000)
    print(f"\nfashion-mnist 28×28, {history[-1]['time_s']:.1f} s/epoch: {report}")
    assert report.fid < report.fid_ceiling


def test_quality_row_frechet_and_its_bootstrap():
    """bench/quality_gen.py's pieces (issue 21's gan / neural.jem rows): the Fréchet distance
    equals its closed form for diagonal covariances, ‖μ1 − μ2‖² + Σ (√a − √b)²; the paired
    bootstrap puts a shifted set's excess FID in an interval above 0 and two draws of the
    same distribution in one that covers 0; the fitted Gaussian's draws are in [0, 1]."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ at the repo root
    from bench.quality_gen import fid_bootstrap, frechet, gaussian_samples

    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    expected = float((mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    assert frechet(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, abs=1e-9)
    # a full covariance against itself: 0 (rotation-invariant square roots)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(0)))
    cov = q @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1])) @ q.T
    assert abs(frechet(torch.zeros(5), cov, torch.zeros(5), cov)) < 1e-6
    g = torch.Generator().manual_seed(1)
    ref, same, shifted = (torch.randn(2000, 4, generator=g, dtype=torch.float64)
                          for _ in range(3))
    far = fid_bootstrap(shifted + 0.3, same, ref, n_resamples=100)
    assert far["low"] > 0 and far["difference"] == pytest.approx(
        far["fid_a"] - far["fid_b"])
    near = fid_bootstrap(same, shifted, ref, n_resamples=100)
    assert near["low"] < 0 < near["high"]
    y = ek.get_dataset("digits").y
    draws = gaussian_samples(y, 500, seed=0)
    assert draws.shape == (500, y.shape[1]) and 0 <= float(draws.min()) <= float(draws.max()) <= 1
    assert float((draws.mean(0) - y.mean(0)).abs().max()) < 0.1
