"""Quality runs of the joint-embedding SSL family's recipes (slow / byhand).

Moved out of tests/test_ssl.py unchanged; the protocol rewrite follows.
"""

from __future__ import annotations

import os

import pytest
import torch

import ebmkit as ek

IMG = {"dim": 64, "image_shape": [1, 8, 8]}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend


@pytest.fixture(scope="module")
def digits():
    return ek.get_dataset("digits"), ek.get_dataset("digits", split="test")


# ---------------------------------------------------------------------------- quality
def _quality(name, digits, **overrides):
    """Train ``name`` with its registered recipe (what `ebmkit train NAME` runs); return the
    trained and untrained reports and raw pixels' scores."""
    from ebmkit_ssl.evaluate import knn_accuracy, labels_of, linear_probe

    from ebmkit.runs import recipe

    train, test = digits
    plan = recipe(ek.plugins.get_entry("models", name))
    options = {**IMG, **plan.get("options", {}), **overrides}
    torch.manual_seed(0)
    untrained = ek.get_model(name, **options).downstream(train, test)
    torch.manual_seed(0)
    model = ek.get_model(name, **options)
    ek.Trainer(model, epochs=plan["epochs"], batch_size=plan["batch_size"], lr=plan["lr"],
               device="cpu", progress=False).fit(train)
    trained = model.downstream(train, test)
    a, b = labels_of(train), labels_of(test)
    raw = {"knn5": knn_accuracy(train.y, a, test.y, b), "linear_probe": linear_probe(
        train.y, a, test.y, b)}
    print(f"\n{name}: trained {trained}\n  untrained {untrained}\n  raw pixels {raw}")
    return trained, untrained, raw, model


#: Measured at or below raw pixels' linear probe (0.983) with the seeded recipe (figures in
#: docs/families/ssl.md): the bar is kept and the shortfall reported as an xfail, not hidden.
#: One test digit is 0.0028: PIRL's probe moved from 0.986 to 0.983 when ek.losses.nll
#: switched to the fused log-softmax (same maths, other rounding), which is the noise level.
_BELOW_RAW = {"ssl.byol": "0.981 with 400 epochs",
              "ssl.pirl": "0.983 = raw pixels' probe, 5-NN 0.989 above their 0.986"}


def _learns_without_collapse_and_beats_raw_pixels(name, digits):
    """Every method must learn without collapsing (asserted); beating raw pixels is asserted
    too, except that a method measured at or below them is reported as an xfail with its
    figure."""
    trained, untrained, raw, model = _quality(name, digits)
    d = model.cfg.proj_dim
    assert trained["linear_probe"] > untrained["linear_probe"]
    assert trained["embedding_std"] >= 2 * untrained["embedding_std"]
    assert trained["embedding_rank"] >= d / 4
    if name in _BELOW_RAW and trained["linear_probe"] <= raw["linear_probe"]:
        pytest.xfail(f"{name}: linear probe {trained['linear_probe']:.3f} <= raw pixels' "
                     f"{raw['linear_probe']:.3f} (measured before: {_BELOW_RAW[name]})")
    assert trained["linear_probe"] > raw["linear_probe"]


@pytest.fixture(scope="module")
def simclr(digits):
    return _quality("ssl.simclr", digits)


@pytest.mark.slow
def test_simclr_recipe_learns_and_does_not_collapse(simclr):
    """Above its untrained encoder on both evaluations, and no collapse."""
    trained, untrained, _, model = simclr
    assert trained["linear_probe"] > untrained["linear_probe"] + 0.01
    assert trained["knn5"] > untrained["knn5"] + 0.01
    assert trained["embedding_std"] >= 2 * untrained["embedding_std"]
    assert trained["embedding_rank"] >= model.cfg.proj_dim / 4


@pytest.mark.slow
def test_simclr_recipe_beats_raw_pixels(simclr):
    """The issue's bar: linear probe >= 0.985 and cosine 5-NN >= 0.98, both above raw
    pixels' measured here (0.983 / 0.986)."""
    trained, _, raw, _ = simclr
    assert trained["linear_probe"] >= 0.985 and trained["linear_probe"] > raw["linear_probe"]
    assert trained["knn5"] >= 0.98 and trained["knn5"] > raw["knn5"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ssl.vicreg", "ssl.swav", "ssl.pirl", "ssl.moco"])
def test_recipe_quality_ci(name, digits):
    _learns_without_collapse_and_beats_raw_pixels(name, digits)


@pytest.mark.byhand
@pytest.mark.parametrize("name", ["ssl.byol", "ssl.barlow"])
def test_recipe_quality_byhand(name, digits):
    _learns_without_collapse_and_beats_raw_pixels(name, digits)


@pytest.mark.byhand
def test_simclr_on_fashion_mnist_against_raw_pixels():
    from ebmkit_ssl.evaluate import labels_of, linear_probe

    try:
        train = ek.get_dataset("fashion-mnist")
        test = ek.get_dataset("fashion-mnist", split="test")
    except ek.errors.EbmkitError as exc:
        pytest.skip(f"fashion-mnist not installed: {exc}")
    torch.manual_seed(0)
    model = ek.get_model("ssl.simclr", dim=784, image_shape=[1, 28, 28])
    ek.Trainer(model, epochs=int(os.environ.get("EBMKIT_FASHION_EPOCHS", "3")),
               batch_size=256, lr=2e-3, device="auto", progress=False).fit(train)
    ours = model.downstream(train, test)
    raw = linear_probe(train.y, labels_of(train), test.y, labels_of(test))
    print(f"\nfashion-mnist: SimCLR {ours}, raw pixels linear probe {raw:.4f}")
    assert ours["linear_probe"] > 0.7
