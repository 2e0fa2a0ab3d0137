"""``autoencoder.sparse``'s default: predictive sparse decomposition (PSD).

E(y, z) = ½‖y − Wz‖² + λ|z|₁ + ½α‖z − Enc(y)‖², ž = argmin_z E by FISTA from Enc(y).

Quality bar (asserted; figures printed with ``pytest -s``): the registered recipe's
dictionary, judged by the plain sparse-coding objective ½‖y − Wz‖² + λ|z|₁ at optimal codes
on the digits' test split, is within 2% of scikit-learn's MiniBatchDictionaryLearning at
the same λ and size; its encoder's guess beats 5 FISTA steps from zero.
"""

from __future__ import annotations

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_default_is_psd_and_ng_is_an_option(tmp_path):
    psd = ek.get_model("autoencoder.sparse")
    assert type(psd).__name__ == "PredictiveSparseDecomposition" and psd.cfg.kind == "psd"
    ng = ek.get_model("autoencoder.sparse", kind="ng")
    assert type(ng).__name__ == "SparseAutoencoder" and ng.cfg.code_activation == "sigmoid"
    psd.save(tmp_path / "psd")
    loaded = ek.load(tmp_path / "psd")
    y = torch.rand(4, 64)
    assert type(loaded) is type(psd)
    torch.testing.assert_close(loaded(y), psd(y))


def test_energy_is_its_three_terms_and_atoms_are_unit_norm():
    torch.manual_seed(0)
    model = ek.get_model("autoencoder.sparse", code=16, lam=0.3, alpha=2.0)
    y, z = torch.rand(5, 64), torch.randn(5, 16)
    w = model.dictionary
    want = (0.5 * (y - z @ w.t()).square().sum(1) + 0.3 * z.abs().sum(1)
            + 0.5 * 2.0 * (z - model.encode(y)).square().sum(1))
    torch.testing.assert_close(model.energy(y, z=z), want)
    assert set(model.terms(y, z=z)) == {"reconstruction", "sparsity", "prediction"}
    # one optimiser step on the raw atoms keeps them unit-norm (the parametrisation)
    model.energy(y, z=z).mean().backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    torch.testing.assert_close(model.dictionary.norm(dim=0), torch.ones(16))


def test_ista_descends_and_infer_beats_the_encoders_guess():
    torch.manual_seed(0)
    model = ek.get_model("autoencoder.sparse", code=32, lam=0.2, solver="ista")
    y = torch.rand(8, 64)
    with torch.no_grad():
        path = [model.energy(y, z=model.infer(y, steps=s)) for s in (1, 2, 4, 8, 16, 64)]
        guess = model.energy(y, z=model.encode(y))
    for a, b in zip(path, path[1:]):  # ISTA with step 1/L never goes up, per sample
        assert (b <= a + 1e-5).all()
    assert (path[-1] < guess).all()  # infer minimises; Enc(y) is only its starting guess
    assert (model.amortisation_gap(y) > 0).all()
    z = model.infer(y)
    assert z.shape == (8, 32) and not z.requires_grad and (z == 0).any()
    cold = model.infer(y, steps=64, init=torch.zeros(8, 32))  # same minimum from elsewhere
    torch.testing.assert_close(model.energy(y, z=cold), path[-1], rtol=1e-3, atol=1e-3)


def test_training_step_reaches_encoder_and_atoms():
    torch.manual_seed(0)
    model = ek.get_model("autoencoder.sparse", code=8)
    step = model.default_strategy()(model, {"y": torch.rand(6, 64)})
    step.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_recipe_dictionary_matches_scikit_learn_and_encoder_amortises():
    from sklearn.decomposition import MiniBatchDictionaryLearning

    train, test = ek.get_dataset("digits"), ek.get_dataset("digits", split="test")
    recipe = ek.plugins.get_entry("models", "autoencoder.sparse").demo
    torch.manual_seed(0)
    model = ek.get_model("autoencoder.sparse", **recipe.get("options", {}))
    ek.Trainer(model, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"],
               device="cpu", progress=False).fit(train)
    lam, atoms = model.cfg.lam, model.cfg.code

    def objective(w):  # ½‖y − Wz‖² + λ|z|₁ at FISTA's optimal codes (no prediction term)
        judge = ek.get_model("sparse.coding", lam=lam, atoms=atoms, steps=500)
        judge.set_dictionary(w)
        with torch.no_grad():
            return float(judge.energy(test.y, z=judge.infer(test.y)).mean())

    sk = MiniBatchDictionaryLearning(n_components=atoms, alpha=lam, batch_size=64, max_iter=30,
                                     random_state=0).fit(train.y.numpy())
    w = torch.from_numpy(sk.components_.T.copy()).float()
    ours, theirs = objective(model.dictionary.detach()), objective(w / w.norm(dim=0))
    report = ek.Trainer(model, device="cpu", progress=False).evaluate(test)
    y, n = test.y, len(test.y)
    with torch.no_grad():
        guess = float(model.energy(y, z=model.encode(y)).mean())
        cold5 = float(model.energy(y, z=model.infer(y, steps=5, init=torch.zeros(n, atoms))).mean())
        star = float(model.free_energy(y).mean())
    print(f"\nPSD recipe (λ={lam}, {atoms} atoms): sparse-coding objective {ours:.4f} vs "
          f"scikit-learn {theirs:.4f} ({ours / theirs:.3f}×, bar ≤ 1.02×); zeros "
          f"{report['zero_fraction']:.3f}, test MSE {report['mse']:.4f}; E at Enc(y) {guess:.3f}, "
          f"5 cold FISTA steps {cold5:.3f}, ž {star:.3f} (gap {report['amortisation_gap']:.3f})")
    assert ours <= 1.02 * theirs
    assert report["zero_fraction"] > 0.5
    assert star < guess < cold5
    assert report["amortisation_gap"] == pytest.approx(guess - star, rel=1e-3)


def test_bad_input_is_explained():
    model = ek.get_model("autoencoder.sparse")
    with pytest.raises(ConfigError, match=r"y must have shape \[B, 64\], got \[2, 3\]"):
        model(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match=r"z must have shape \[2, 64\], got \[2, 5\]"):
        model.energy(torch.zeros(2, 64), z=torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="kind must be one of 'psd', 'ng', got 'lista'"):
        ek.get_model("autoencoder.sparse", kind="lista")
    with pytest.raises(ConfigError, match="lam"):
        ek.get_model("autoencoder.sparse", lam=-1.0)
    with pytest.raises(ConfigError, match="solver must be one of 'fista', 'ista'"):
        ek.get_model("autoencoder.sparse", solver="lbfgs")
    with pytest.raises(ConfigError, match="tied=True is for kind='ng'"):
        ek.get_model("autoencoder.sparse", tied=True)
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        model.infer(torch.zeros(2, 64), steps=0)
