"""The built-in `sparse` family: sparse coding, LISTA, group sparsity, DrSAE."""

from __future__ import annotations

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend


@pytest.fixture(scope="module")
def train():
    return ek.get_dataset("digits")


@pytest.fixture(scope="module")
def test_y():
    return ek.get_dataset("digits", split="test").y


def _exemplars(train, n=128, seed=1):
    """A coherent dictionary: n training digits as atoms (columns), like a learned one."""
    g = torch.Generator().manual_seed(seed)
    return train.y[torch.randperm(len(train.y), generator=g)[:n]].t().contiguous()


def test_fista_codes_reach_scikit_learn_lasso_objective(test_y):
    from sklearn.linear_model import Lasso

    lam = 0.5
    model = ek.get_model("sparse.coding", lam=lam, steps=1000).double()
    y = test_y[:64].double()
    w = model.dictionary.detach()  # [D, M], unit-norm atoms
    z = model.infer(y)
    ours = model.energy(y, z=z).mean().item()
    # sklearn's Lasso minimises 1/(2D)‖y − Wz‖² + α|z|₁: the same problem with α = λ/D
    lasso = Lasso(alpha=lam / 64, fit_intercept=False, tol=1e-10, max_iter=100_000)
    ref = torch.stack([torch.from_numpy(lasso.fit(w.numpy(), row.numpy()).coef_.copy())
                       for row in y])
    theirs = model.energy(y, z=ref).mean().item()
    print(f"objective ebmkit {ours:.8f} vs sklearn Lasso {theirs:.8f}")
    assert ours <= theirs * (1 + 1e-4)
    terms = model.terms(y, z=z)
    torch.testing.assert_close(sum(terms.values()), model.energy(y, z=z))


def _recipe_fit(name, data):
    """``name`` trained with its registered recipe (what `ebmkit train NAME` does)."""
    from ebmkit.runs import recipe

    r = recipe(ek.plugins.get_entry("models", name), "digits")
    torch.manual_seed(0)
    model = ek.get_model(name, **r.get("options", {}))
    ek.Trainer(model, epochs=r["epochs"], lr=r.get("lr", 1e-3), batch_size=r.get("batch_size", 128),
               progress=False, seed=0).fit(data)
    return model


def test_dictionary_learning_matches_scikit_learn(train, test_y):
    """The recipe's dictionary codes held-out digits as well as scikit-learn's
    MiniBatchDictionaryLearning (same λ, same number of unit-norm atoms): both judged by the
    same FISTA on the test split, F(y) = min_z ½‖y − Wz‖² + λ|z|₁."""
    from sklearn.decomposition import MiniBatchDictionaryLearning

    def held_out(w):
        judge = ek.get_model("sparse.coding", lam=0.5, steps=500)
        judge.set_dictionary(w)
        with torch.no_grad():
            return judge(test_y).mean().item()

    model = _recipe_fit("sparse.coding", train)
    ours, start = held_out(model.dictionary.detach()), held_out(ek.get_model("sparse.coding").dictionary)
    sk = MiniBatchDictionaryLearning(n_components=128, alpha=0.5, max_iter=10, batch_size=128,
                                     random_state=0).fit(train.y.numpy())
    w = torch.from_numpy(sk.components_.T.copy()).float()  # [D, M]; sklearn: norms <= 1
    theirs = held_out(w / w.norm(dim=0).clamp_min(1e-12))
    print(f"held-out free energy: random atoms {start:.3f}, ebmkit {ours:.3f}, "
          f"scikit-learn {theirs:.3f}")
    assert ours <= 1.05 * theirs
    assert ours < 0.5 * start


def test_lista_beats_fista_20_on_held_out_optimal_codes(train, test_y):
    model = ek.get_model("sparse.lista", layers=5, tied=False, lam=0.5, fista_steps=500)
    model.set_dictionary(_exemplars(train))
    z_star = model.optimal_codes(test_y)
    fista20 = ek.latent.FISTA(dim=128, steps=20)(model.term, test_y)
    data = model.with_targets(train)
    ek.Trainer(model, epochs=30, lr=3e-3, batch_size=64, progress=False).fit(data)
    with torch.no_grad():
        err_lista = (model.infer(test_y) - z_star).square().sum(1).mean().item()
        # the core's Amortized solver runs the same encoder
        z_amortized = ek.FreeEnergy(model.term, model.solver()).infer(test_y)
    err_fista = (fista20 - z_star).square().sum(1).mean().item()
    print(f"held-out code error: LISTA-5 {err_lista:.4f}, FISTA-20 {err_fista:.4f}")
    assert err_lista < err_fista
    torch.testing.assert_close(z_amortized, model.infer(test_y).detach())


def test_group_magnitudes_are_more_shift_invariant_than_units(train, test_y):
    from ebmkit_sparse.coding import shift_group_dictionary, shift_image

    g = torch.Generator().manual_seed(0)
    patterns = train.y[torch.randperm(len(train.y), generator=g)[:32]]
    model = ek.get_model("sparse.group", group_size=4, lam=0.5, steps=200)
    model.set_dictionary(shift_group_dictionary(patterns, (-1, 0, 1, 2)))
    shifted = shift_image(test_y, 1)
    z, z_s = model.infer(test_y), model.infer(shifted)
    p, p_s = model.pooled(test_y), model.pooled(shifted)
    units = ((z_s.abs() - z.abs()).norm(dim=1) / z.norm(dim=1).clamp_min(1e-8)).mean().item()
    groups = ((p_s - p).norm(dim=1) / p.norm(dim=1).clamp_min(1e-8)).mean().item()
    print(f"relative change under a one-pixel shift: units {units:.3f}, groups {groups:.3f}")
    assert groups < 0.5 * units


def test_drsae_recipe_beats_raw_pixel_logistic_regression(train):
    """A linear classifier on DrSAE's sparse codes beats one on the raw pixels."""
    from sklearn.linear_model import LogisticRegression

    test = ek.get_dataset("digits", split="test")
    raw = LogisticRegression(max_iter=5000).fit(train.y.numpy(), train.labels.numpy())
    baseline = raw.score(test.y.numpy(), test.labels.numpy())
    model = _recipe_fit("sparse.drsae", train)
    report = ek.Trainer(model, progress=False).evaluate(test)
    print(f"DrSAE: accuracy {report['accuracy']:.4f} (raw-pixel logistic regression "
          f"{baseline:.4f}), zero fraction {report['zero_fraction']:.3f}")
    assert report["accuracy"] > baseline
    assert report["zero_fraction"] >= 0.5


def test_save_load_and_devices(tmp_path, device):
    y = torch.rand(4, 64, device=device)
    for name in ("sparse.coding", "sparse.group", "sparse.lista", "sparse.drsae"):
        model = ek.get_model(name).to(device)
        with torch.no_grad():
            e = model(y)
        assert e.shape == (4,) and e.device.type == device.type
        if device.type == "cpu":
            model.save(tmp_path / name)
            torch.testing.assert_close(ek.load(tmp_path / name)(y), e)


def test_bad_input_is_explained():
    with pytest.raises(ConfigError, match=r"lam \(λ, the sparsity weight\) must be a number >= 0, got -0.1"):
        ek.get_model("sparse.coding", lam=-0.1)
    with pytest.raises(ConfigError, match="lam"):
        ek.get_model("sparse.lista", lam=-1.0)
    with pytest.raises(ConfigError, match="group_size must be a positive int dividing atoms=128"):
        ek.get_model("sparse.group", group_size=5)
    model = ek.get_model("sparse.coding")
    with pytest.raises(ConfigError, match=r"y: expected shape \[B, 64\], got \[2, 10\]"):
        model(torch.zeros(2, 10))
    with pytest.raises(ConfigError, match="solver must be"):
        ek.get_model("sparse.coding", solver="admm")
