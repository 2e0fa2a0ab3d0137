"""The masked family: ``masked.lm`` and ``masked.image`` as energies, their contracts, quality.

Fast tests check the energy's definition against the formulas written out, the corruption's
statistics, pseudo-likelihood against a loop, the samplers, bad input, save/load and the
CLI on tiny models. The slow tests run the plain recipes (``ebmkit train masked.lm --data
text`` and ``masked.image --data digits``) and assert, on the test split:

- ``masked.lm``: ``<mask>``-position accuracy and perplexity both better than a
  Witten–Bell count model of the two characters on each side, on the same corruption;
  the true completion's energy below a completion with two hidden characters swapped
  (≥ 95% of pairs); ``score`` ranks real test text below its shuffled-word version (≥ 90%);
- ``masked.image``: PSNR on the hidden pixels ≥ 3 dB above filling them with the training
  mean image.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

import ebmkit as ek
from ebmkit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: threads only contend

TINY = {"n_layer": 1, "d_model": 32, "n_head": 2, "block_size": 64}
MASK = 2


@pytest.fixture(scope="module")
def text():
    return ek.get_dataset("text"), ek.get_dataset("text", split="test")


def _lm(device="cpu", **options):
    torch.manual_seed(0)
    return ek.get_model("masked.lm", **{**TINY, **options}).to(device)


def _masked(y, every=5, offset=1):
    x = y.clone()
    x[:, offset::every] = MASK
    return x


# --------------------------------------------------------------------------- registration
def test_registered_with_recipes():
    assert {"masked.lm", "masked.image"} <= set(ek.list_models())
    entry = ek.plugins.get_entry("models", "masked.lm")
    assert entry.demo["data"] == "text" and entry.demo["tour"]["epochs"] < entry.demo["epochs"]
    assert ek.plugins.get_entry("models", "masked.image").demo["data"] == "digits"


def test_config_rebuilds_and_holds_the_vocabulary(text):
    model = _lm()
    cfg = model.config()
    assert cfg["vocab"] == text[0].vocab.itos[3:] and cfg["block_size"] == 64
    again = ek.get_model("masked.lm", **cfg)
    assert again.config() == cfg and again.vocab == text[0].vocab


# --------------------------------------------------------------------------- corruption
def test_bert_corruption_statistics():
    from ebmkit_masked.corruption import BertCorruption

    y = torch.randint(3, 50, (400, 250))
    gen = torch.Generator().manual_seed(0)
    x, selected = BertCorruption(50).corrupt(y, gen)
    n = selected.sum().item()
    assert abs(n / y.numel() - 0.15) < 0.005
    masked = (x == MASK) & selected
    changed = (x != y) & (x != MASK)
    assert not ((x != y) & ~selected).any()                  # only selected positions change
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    # 10% random, of which 1/47 land on their own token by chance
    assert abs(changed.sum().item() / n - 0.1 * 46 / 47) < 0.01
    for bad in ({"rate": 0.0}, {"rate": 1.0}, {"rate": 1.5}, {"mask": 0.9, "random": 0.2}):
        with pytest.raises(ConfigError, match="mask_rate|mask_prob"):
            BertCorruption(50, **bad)


def test_mask_rate_outside_unit_interval_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"mask_rate must be a number > 0 and < 1, got 1.5"):
        ek.get_model("masked.lm", mask_rate=1.5, **TINY)


# --------------------------------------------------------------------------- the energy
def test_energy_is_the_nll_of_the_masked_tokens(text, device):
    model = _lm(device).eval()
    y = text[1].y[:4, :40].to(device)
    x = _masked(y)
    e = model.energy(y, x=x)
    assert e.shape == (4,) and e.device.type == device.type and torch.isfinite(e).all()
    logp = model.logits(x).log_softmax(-1)                                  # [B, T, V]
    by_hand = -(logp.gather(-1, y.unsqueeze(-1)).squeeze(-1) * (x == MASK)).sum(1)
    torch.testing.assert_close(e, by_hand, rtol=1e-4, atol=1e-4)
    assert torch.equal(model.free_energy(y, x=x), e)
    # no <mask>, no energy: replaced/kept tokens are not hidden
    assert torch.equal(model.energy(y, x=y), torch.zeros(4, device=device))


def test_predict_is_the_argmin_and_keeps_visible_tokens(text, device):
    model = _lm(device).eval()
    y = text[1].y[:6].to(device)
    x = _masked(y, every=7)
    y_hat = model.predict(x)
    assert y_hat.dtype == torch.int64 and y_hat.shape == y.shape
    visible = x != MASK
    assert torch.equal(y_hat[visible], x[visible]) and (y_hat[~visible] >= 3).all()
    e_hat = model.energy(y_hat, x=x)
    assert (e_hat <= model.energy(y, x=x) + 1e-5).all()
    other = torch.where(visible, y, torch.randint(3, model.vocab_size, y.shape, device=device))
    assert (e_hat <= model.energy(other, x=x) + 1e-5).all()


def test_score_is_the_pseudo_nll(text):
    model = _lm().eval()
    y = text[1].y[:2, :12]
    by_hand = torch.zeros(2)
    for i in range(12):
        x = y.clone()
        x[:, i] = MASK
        by_hand += F.cross_entropy(model.logits(x)[:, i], y[:, i], reduction="none")
    torch.testing.assert_close(model.score(y, chunk=5), by_hand, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.free_energy(y), by_hand, rtol=1e-4, atol=1e-4)


def test_any_length_up_to_block_size(text):
    model = _lm().eval()
    y = text[1].y[:2]
    for t in (1, 17, 64):
        x = _masked(y[:, :t], every=3, offset=0)
        assert model.energy(y[:, :t], x=x).shape == (2,)


@pytest.mark.parametrize("bad, match", [
    (lambda y: y.float(), r"integer token ids \(int64\), got a torch.float32"),
    (lambda y: y + 200, r"token id \d+, outside the vocabulary \[0, 106\)"),
    (lambda y: y - 5, r"token id -\d+, outside the vocabulary"),
    (lambda y: torch.cat([y, y], 1), r"128 tokens, longer than the model's context block_size=64"),
    (lambda y: y[0], r"shape \[B, T\]"),
])
def test_bad_ids_are_clear_errors(text, bad, match):
    model = _lm()
    y = text[1].y[:2]
    with pytest.raises(ConfigError, match=match):
        model.energy(bad(y), x=bad(y))
    with pytest.raises(ConfigError, match=match):
        model.predict(bad(y))


def test_predict_without_mask_and_energy_without_x_are_clear_errors(text):
    model = _lm()
    y = text[1].y[:2]
    with pytest.raises(ConfigError, match="holds none"):
        model.predict(y)
    with pytest.raises(ConfigError, match=r"needs the corrupted sequence x"):
        model.energy(y)
    with pytest.raises(ConfigError, match="same shape"):
        model.energy(y, x=y[:, :10])


def test_padded_sentences_score_as_if_alone(text):
    """Sentences of different lengths in one batch, padded with <pad> (id 0) at the end:
    each scores what it scores alone; pads are never selected by the corruption."""
    model = _lm().eval()
    y = text[1].y[:3, :20]
    lengths = (20, 13, 7)
    batch = y.clone()
    for i, n in enumerate(lengths):
        batch[i, n:] = 0
    alone = torch.cat([model.score(y[i:i + 1, :n]) for i, n in enumerate(lengths)])
    torch.testing.assert_close(model.score(batch), alone, rtol=1e-4, atol=1e-4)
    empty = torch.cat([batch, torch.zeros(1, 20, dtype=torch.long)])  # an empty sentence
    torch.testing.assert_close(model.score(empty), torch.cat([alone, torch.zeros(1)]),
                               rtol=1e-4, atol=1e-4)
    x = _masked(batch, every=4)
    x[batch == 0] = 0
    alone_e = torch.cat([model.energy(y[i:i + 1, :n], x=x[i:i + 1, :n])
                         for i, n in enumerate(lengths)])
    torch.testing.assert_close(model.energy(batch, x=x), alone_e, rtol=1e-4, atol=1e-4)
    _, selected = model.corruption.corrupt(batch.repeat(50, 1))
    assert not bool(selected[batch.repeat(50, 1) == 0].any())


def test_small_batches_train_without_nan(text):
    """Batches of 1 × 4 tokens often select nothing: the loss is then 0, never NaN, and the
    run trains without the divergence guard stepping in."""
    model = _lm()
    strategy = model.default_strategy()
    y = text[0].y[:1, :4]
    torch.manual_seed(0)
    losses = torch.stack([strategy(model, {"y": y}).loss for _ in range(40)])
    assert bool(torch.isfinite(losses).all()) and bool((losses == 0).any())
    # the same selection, by hand: the mean NLL over the selected positions
    torch.manual_seed(3)
    x, selected = model.corruption.corrupt(text[0].y[:4])
    torch.manual_seed(3)
    loss = strategy(model, {"y": text[0].y[:4]}).loss
    nll = F.cross_entropy(model.logits(x)[selected], text[0].y[:4][selected])
    torch.testing.assert_close(loss, nll, rtol=1e-5, atol=1e-6)
    small = ek.data.TensorData({"y": text[0].y[:40, :4]}, name="text", split="train")
    history = ek.Trainer(model, epochs=1, batch_size=1, lr=1e-3, device="cpu",
                         progress=False).fit(small)
    assert all(math.isfinite(h["loss"]) for h in history if "loss" in h)


# --------------------------------------------------------------------------- sampling
def _peaked_tiny_lm():
    """A 3-token model of 2-token sequences whose conditionals are far from uniform (the final
    layer norm's gain ×15): 9 sequences, so every distribution is enumerated exactly."""
    import itertools

    torch.manual_seed(0)
    model = ek.get_model("masked.lm", vocab=["a", "b", "c"], n_layer=1, d_model=16, n_head=2,
                         block_size=4, conv_kernel=3).eval()
    with torch.no_grad():
        model.ln_f.weight.mul_(15.0)
    states = torch.tensor(list(itertools.product(range(3, 6), repeat=2)))     # [9, 2]
    return model, states


def _frequencies(ys):
    return torch.bincount((ys[:, 0] - 3) * 3 + (ys[:, 1] - 3), minlength=9).double() / len(ys)


def _chi2(freq, p, n):
    """Pearson's statistic of n draws with frequencies ``freq`` against probabilities p."""
    return float((n * (freq - p) ** 2 / p).sum())


CHI2_8_P001 = 26.12  # χ² with 8 degrees of freedom, upper 0.1% point


@pytest.mark.parametrize("method", ["gibbs", "mh"])
def test_sample_keeps_init_and_draws_ordinary_tokens(method):
    model = _lm().eval()
    gen = torch.Generator().manual_seed(0)
    init = torch.full((2, 8), MASK)
    init[:, 0] = 10
    init[0, 3] = 1  # <unk>: re-drawn like <mask> (it could never be left otherwise)
    init[1, 6:] = 0  # <pad>: where this shorter sequence ends; never drawn
    filled = model.sample(init=init, steps=0, method=method, generator=gen)
    assert (filled[:, 0] == 10).all()  # the initial fill keeps ordinary tokens
    out = model.sample(init=init, steps=1, method=method, generator=gen)
    for y in (filled, out):
        assert (y[1, 6:] == 0).all() and (y[0] >= 3).all() and (y[1, :6] >= 3).all()
    assert len(model.decode(out)) == 2
    if method == "mh":
        assert 0.0 < model.last_acceptance <= 1.0
    else:
        assert model.last_acceptance is None  # not an earlier MH call's rate


def test_mh_samples_exp_minus_score_exactly():
    """Metropolis–Hastings' stationary distribution is ∝ exp(−score): on 2-token sequences
    over 3 tokens (9 sequences, enumerated), 4,000 chains with proposals 3× too hot pass
    Pearson's χ² test at 0.1% against exp(−score)/Z (measured TV 0.011), while Gibbs chains
    with the same proposals are far from it (TV 0.35): the test tells them apart."""
    model, states = _peaked_tiny_lm()
    target = torch.softmax(-model.score(states), 0)
    assert float(target.max()) < 0.6 and float(target.min()) < 0.01  # far from uniform
    gen = torch.Generator().manual_seed(0)
    n = 4000
    mh = _frequencies(model.sample(n, steps=6, length=2, method="mh", temperature=3.0,
                                   generator=gen))
    accepted = model.last_acceptance
    gibbs = _frequencies(model.sample(n, steps=6, length=2, method="gibbs", temperature=3.0,
                                      generator=gen))
    tv_mh = 0.5 * float((mh - target).abs().sum())
    tv_gibbs = 0.5 * float((gibbs - target).abs().sum())
    print(f"TV from exp(−score)/Z: MH {tv_mh:.4f}, Gibbs {tv_gibbs:.4f}; MH acceptance "
          f"{accepted:.3f}")
    assert _chi2(mh, target, n) < CHI2_8_P001
    assert tv_gibbs > 0.2 and _chi2(gibbs, target, n) > CHI2_8_P001


def test_gibbs_samples_its_kernels_stationary_distribution():
    """Gibbs with a fresh random order each sweep has the stationary distribution of
    ½(K₀K₁ + K₁K₀), K_i resampling position i from the model's conditional: computed
    exactly on the 9 sequences, matched by 4,000 chains (χ² at 0.1%)."""
    model, states = _peaked_tiny_lm()
    temperature = 2.0
    kernels = []
    for i in range(2):
        x = states.clone()
        x[:, i] = MASK
        logits = model.logits(x)[:, i].detach() / temperature
        logits[:, :3] = -math.inf
        q = logits.softmax(-1)[:, 3:6]                                        # [9, 3]
        k = torch.zeros(9, 9, dtype=torch.float64)
        for a in range(9):
            for tok in range(3):
                b = states[a].clone()
                b[i] = 3 + tok
                k[a, int((b[0] - 3) * 3 + (b[1] - 3))] += float(q[a, tok])
        kernels.append(k)
    sweep = 0.5 * (kernels[0] @ kernels[1] + kernels[1] @ kernels[0])
    w, v = torch.linalg.eig(sweep.T)
    pi = v[:, torch.argmin((w - 1).abs())].real
    pi = pi / pi.sum()
    n = 4000
    freq = _frequencies(model.sample(n, steps=6, length=2, method="gibbs",
                                     temperature=temperature,
                                     generator=torch.Generator().manual_seed(1)))
    tv = 0.5 * float((freq - pi).abs().sum())
    print(f"TV from the kernel's stationary distribution: {tv:.4f}")
    assert _chi2(freq, pi, n) < CHI2_8_P001


def test_fill_in_text(tmp_path, text):
    model = _lm()
    (path,) = model.plots(text[1], tmp_path)
    lines = path.read_text("utf-8").splitlines()
    assert path.name == "fill-in.txt" and lines[2].startswith("input      _")
    assert lines[4] == "truth      " + model.decode(text[1].y[:1])[0].replace("\n", "⏎")


# --------------------------------------------------------------------------- learning
def test_short_training_beats_the_unigram_model(text):
    train, test = text
    model = _lm()
    small = ek.data.TensorData({"y": train.y[:1600]}, name="text", split="train")
    ek.Trainer(model, epochs=2, batch_size=32, lr=5e-3, device="cpu", progress=False).fit(small)
    report = ek.Trainer(model, device="cpu", progress=False).evaluate(test)
    uni = torch.bincount(train.y.reshape(-1), minlength=model.vocab_size).float() + 1
    uni_ppl = math.exp(-(uni / uni.sum()).log()[test.y.reshape(-1)].mean().item())
    assert report["mlm/perplexity"] < 0.8 * uni_ppl                      # unigram ≈ 27.7
    assert report["mlm/accuracy"] > 0.2                                  # unigram ≈ 0.18
    assert report["mlm/bpc"] == pytest.approx(math.log2(report["mlm/perplexity"]), rel=1e-4)
    assert {"mlm/selected/accuracy", "mlm/selected/perplexity"} <= set(report)


def test_save_and_load(tmp_path, text):
    model = _lm().eval()
    model.save(tmp_path / "m")
    again = ek.load(tmp_path / "m").eval()
    y = text[1].y[:2]
    x = _masked(y)
    torch.testing.assert_close(again.energy(y, x=x), model.energy(y, x=x))


def test_count_model_is_a_distribution_and_beats_unigram(text):
    from ebmkit_masked.baseline import CountModel
    from ebmkit_masked.corruption import BertCorruption

    train, test = text
    v = len(train.vocab)
    corruption = BertCorruption(v)
    x, _ = corruption.corrupt(test.y[:100], torch.Generator().manual_seed(0))
    cm = CountModel(v).fit(train.y, corruption, passes=1)
    p = cm.probs(x[:3])
    torch.testing.assert_close(p.sum(-1), torch.ones(3, 64, dtype=torch.float64))
    r = cm.evaluate(test.y[:100], x, x == MASK)
    assert r["accuracy"] > 0.5 and r["perplexity"] < 6.0


def test_count_model_takes_large_vocabularies(text):
    """The same text with its ids spread over a 20,000-token vocabulary (base-V keys of four
    neighbours overflow int64 beyond ~6,200 tokens) predicts the same tokens as with its own."""
    from ebmkit_masked.baseline import CountModel
    from ebmkit_masked.corruption import BertCorruption

    train, test = text
    v = len(train.vocab)
    spread = 20_000

    def wide(t):  # ordinary id i → 3 + (i − 3)·150; the special ids stay
        return torch.where(t >= 3, 3 + (t - 3) * 150, t)

    corruption = BertCorruption(v, random=0.0)  # no random ids: the same corruption on both
    x, _ = corruption.corrupt(test.y[:6], torch.Generator().manual_seed(0))
    y_tr = train.y[:600]
    small = CountModel(v).fit(y_tr, corruption, passes=1, seed=0)
    big = CountModel(spread).fit(wide(y_tr), corruption, passes=1, seed=0)
    p_small, p_big = small.probs(x), big.probs(wide(x))
    torch.testing.assert_close(p_big.sum(-1), torch.ones(6, 64, dtype=torch.float64))
    agree = (wide(p_small.argmax(-1)) == p_big.argmax(-1)).double().mean()
    print(f"argmax agreement {float(agree):.4f}")
    assert float(agree) >= 0.98, float(agree)


# --------------------------------------------------------------------------- masked.image
def _image_model(device="cpu", **options):
    torch.manual_seed(0)
    return ek.get_model("masked.image", image_shape=[1, 8, 8], **options).to(device)


def test_image_energy_and_inpainting_contract(device):
    model = _image_model(device).eval()
    assert model.config()["patch_size"] == 2
    y = ek.get_dataset("digits", split="test").y[:5].to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x = model.corrupt(y, generator=gen)
    hidden = torch.isnan(x)
    assert hidden.shape == y.shape and hidden.sum().item() == 5 * 32   # half of 16 patches of 4
    e = model.energy(y, x=x)
    by_hand = ((model.reconstruction(x) - y).square() * hidden).sum(1)
    assert e.shape == (5,) and torch.allclose(e, by_hand)
    filled = model.predict(x)
    assert not torch.isnan(filled).any() and torch.equal(filled[~hidden], y[~hidden])
    assert torch.allclose(model.energy(filled, x=x), torch.zeros(5, device=device), atol=1e-6)
    images = y.view(5, 1, 8, 8)                                          # image-shaped input
    assert model.predict(x.view(5, 1, 8, 8)).shape == images.shape


def test_image_patch_grid_follows_the_image_size():
    model = ek.get_model("masked.image", image_shape=[1, 28, 28]).eval()   # Fashion-MNIST's
    assert model.config()["patch_size"] == 4 and model.grid == (7, 7)
    y = torch.rand(2, 784)
    x = model.corrupt(y)
    assert torch.isnan(x).sum().item() == 2 * round(0.5 * 49) * 16
    assert model.predict(x).shape == (2, 784)


def test_image_bad_input():
    with pytest.raises(ConfigError, match="patch_size 3 must divide"):
        _image_model(patch_size=3)
    model = _image_model()
    with pytest.raises(ConfigError, match=r"shape \[B, 64\] or \[B, 1, 8, 8\], got \[2, 10\]"):
        model.predict(torch.zeros(2, 10))
    with pytest.raises(ConfigError, match="needs x"):
        model.energy(torch.zeros(2, 64))
    with pytest.raises(ConfigError, match="floating-point"):
        model.predict(torch.zeros(2, 64, dtype=torch.long))


def test_image_cli_writes_inpainting(tmp_path):
    from ebmkit.cli import main

    out = tmp_path / "run"
    assert main(["train", "masked.image", "--data", "digits", "--epochs", "1", "--out",
                 str(out)]) == 0
    assert (out / "inpainting.png").is_file() and (out / "reconstructions.png").is_file()
    (out / "inpainting.png").unlink()
    assert main(["sample", str(out), "-n", "16"]) == 0
    assert (out / "inpainting.png").is_file()


def test_lm_cli_sample_writes_text(tmp_path):
    """`ebmkit sample` on a masked.lm run writes the Gibbs samples as text (ids are not images)."""
    from ebmkit.cli import main

    out = tmp_path / "run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(["train", "masked.lm", "--data", "text", "--epochs", "1", "--batch-size", "256",
                 *sets, "--out", str(out)]) == 0
    assert main(["sample", str(out), "-n", "3"]) == 0
    lines = (out / "samples.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# 3 samples") and len(lines) == 4 and all(lines[1:])


# --------------------------------------------------------------------------- quality (slow)
def _swap_pairs(y, x, rng):
    """For each row, y with two hidden positions holding different characters swapped."""
    pairs = []
    for b in range(y.shape[0]):
        hidden = (x[b] == MASK).nonzero().flatten().tolist()
        cand = [(i, j) for i in hidden for j in hidden if i < j and y[b, i] != y[b, j]]
        if cand:
            i, j = rng.choice(cand)
            swapped = y[b].clone()
            swapped[i], swapped[j] = y[b, j], y[b, i]
            pairs.append((b, swapped))
    return pairs


@pytest.mark.slow
def test_lm_recipe_beats_the_count_model(tmp_path, text):
    """The plain `ebmkit train masked.lm --data text` (its registered recipe)."""
    from ebmkit.runs import train_run

    train, test = text
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run, _ = train_run("masked.lm", "text", out=tmp_path / "lm", plots=False, progress=False)
    finally:
        torch.set_num_threads(before)
    _check_lm_quality(ek.load(run / "model").eval(), train, test)


def _check_lm_quality(model, train, test):
    """The quality bars of a trained masked.lm on the test split (printed with pytest -s)."""
    from ebmkit_masked.baseline import CountModel

    gen = torch.Generator().manual_seed(2024)
    x, _ = model.corruption.corrupt(test.y, gen)
    hidden = x == MASK
    with torch.no_grad():
        logp = model.logits(x).log_softmax(-1)[hidden]
    target = test.y[hidden]
    acc = (logp.argmax(-1) == target).double().mean().item()
    ppl = math.exp(-logp.gather(1, target[:, None]).mean().item())
    counts = CountModel(model.vocab_size).fit(train.y, model.corruption, passes=8)
    base = counts.evaluate(test.y, x, hidden)
    print(f"\nmasked.lm accuracy {acc:.3f} perplexity {ppl:.2f}; count model "
          f"{base['accuracy']:.3f} / {base['perplexity']:.2f} on {base['n']} <mask> positions")

    # the true completion has lower energy than one with two hidden characters swapped
    rng = random.Random(0)
    pairs = _swap_pairs(test.y, x, rng)
    rows = torch.tensor([b for b, _ in pairs])
    swapped = torch.stack([s for _, s in pairs])
    with torch.no_grad():
        better = model.energy(test.y[rows], x=x[rows]) < model.energy(swapped, x=x[rows])
    print(f"true < swapped in {better.double().mean():.3f} of {len(pairs)} pairs")

    # score ranks real text below the same words shuffled
    vocab = model.vocab
    real, shuffled = [], []
    for row in test.y[:400:4]:
        if (row == 1).any():  # <unk> would not survive decode -> encode
            continue
        words = vocab.decode(row).split(" ")
        perm = words[:]
        while perm == words and len(set(words)) > 1:
            rng.shuffle(perm)
        if perm != words:
            real.append(row)
            shuffled.append(torch.tensor(vocab.encode(" ".join(perm))))
    s_real, s_shuf = model.score(torch.stack(real)), model.score(torch.stack(shuffled))
    ranked = (s_real < s_shuf).double().mean()
    print(f"score(real) < score(shuffled words) in {ranked:.3f} of {len(real)}")
    assert acc > base["accuracy"] and ppl < base["perplexity"]
    assert better.double().mean() >= 0.95
    assert ranked >= 0.90
    return {"accuracy": acc, "perplexity": ppl, "count": base, "swapped": float(better.double().mean()),
            "shuffled": float(ranked)}


@pytest.mark.slow
def test_image_recipe_inpaints_better_than_the_mean_image(tmp_path):
    from ebmkit.runs import train_run

    run, _ = train_run("masked.image", "digits", out=tmp_path / "img", plots=False,
                       progress=False)
    model = ek.load(run / "model").eval()
    train, test = ek.get_dataset("digits"), ek.get_dataset("digits", split="test")
    x = model.corrupt(test.y, generator=torch.Generator().manual_seed(7))
    hidden = torch.isnan(x)

    def psnr(y_hat):
        return -10 * math.log10((y_hat - test.y)[hidden].square().mean().item())

    mean = train.y.mean(0, keepdim=True).expand_as(test.y)
    ours, base = psnr(model.predict(x)), psnr(mean)
    print(f"\nmasked.image PSNR on hidden pixels {ours:.2f} dB; mean image {base:.2f} dB")
    assert ours >= base + 3.0
