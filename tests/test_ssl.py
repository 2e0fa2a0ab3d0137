"""The joint-embedding SSL family: augmentations, losses, collapse meter, evaluations, quality.

Definitions (from the issue, used by every check): linear probe = StandardScaler +
LogisticRegression on frozen ``encode`` features, train split → test split; kNN = cosine,
k = 5; effective rank = exp(entropy of the normalised singular values of the centred
features); "untrained" = the same model and options, freshly initialised.

Quality (slow / byhand): tests/test_ssl_quality.py. A collapsing configuration (VICReg
without its variance term) is caught by the collapse meter here (fast).
"""

from __future__ import annotations

import json
import math
import socket
import warnings

import pytest
import torch
import torch.nn.functional as nnf

import ebmkit as ek
from ebmkit.errors import ConfigError

NAMES = ["ssl.simclr", "ssl.moco", "ssl.pirl", "ssl.swav", "ssl.byol", "ssl.barlow",
         "ssl.vicreg"]
IMG = {"dim": 64, "image_shape": [1, 8, 8]}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only contend


@pytest.fixture(scope="module")
def digits():
    return ek.get_dataset("digits"), ek.get_dataset("digits", split="test")


def _gen(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


# ---------------------------------------------------------------------------- augmentations
def test_augmentations_are_batched_seeded_and_per_image(device, digits):
    from ebmkit_ssl.augment import Affine, Compose, Erase, Noise, Shift

    images = digits[0].y[:64].to(device).reshape(64, 1, 8, 8)
    aug = Compose([Shift(1), Affine(10, 0.1), Erase(0.5), Noise(0.05)])
    a, b = aug(images, _gen(device)), aug(images, _gen(device))
    assert a.shape == images.shape and a.device == images.device
    assert torch.equal(a, b)                                     # same seed, same views
    c = aug(images, _gen(device, 1))
    assert not torch.equal(a, c)
    # one draw per image: the same image repeated gets different views
    same = images[:1].expand(16, -1, -1, -1).contiguous()
    views = aug(same, _gen(device)).reshape(16, -1)
    assert torch.unique(views, dim=0).shape[0] == 16


def test_shift_moves_by_whole_pixels_and_erase_zeroes_a_rectangle(device):
    from ebmkit_ssl.augment import Erase, Shift

    x = torch.zeros(200, 1, 8, 8, device=device)
    x[:, :, 3, 4] = 1.0
    out = Shift(1)(x, _gen(device))
    where = out.reshape(200, -1).argmax(dim=1)
    rows, cols = where // 8, where % 8
    assert out.sum().item() == 200                               # nothing lost or blurred
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {3, 4, 5}
    ones = torch.ones(200, 1, 8, 8, device=device)
    erased = Erase(p=1.0, size=0.5)(ones, _gen(device))
    holes = (erased == 0).reshape(200, 8, 8)
    assert holes.any(dim=(1, 2)).all()
    r, c = holes.any(dim=2), holes.any(dim=1)                    # a rectangle: rows × cols
    assert torch.equal(holes, r[:, :, None] & c[:, None, :])


def test_jigsaw_permutes_patches(device):
    from ebmkit_ssl.augment import jigsaw

    x = torch.arange(4 * 64, dtype=torch.float32, device=device).reshape(4, 1, 8, 8)
    out = jigsaw(x, _gen(device), tiles=2)
    def patches(t):
        return t.reshape(4, 2, 4, 2, 4).permute(0, 1, 3, 2, 4).reshape(4, 4, 16)

    a, b = patches(x), patches(out)
    for i in range(4):  # the same four patches, in some order
        assert sorted(map(tuple, a[i].tolist())) == sorted(map(tuple, b[i].tolist()))
    with pytest.raises(ConfigError, match="divisible"):
        jigsaw(torch.zeros(1, 1, 7, 7), _gen("cpu"), tiles=2)


# ---------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", NAMES)
def test_every_method_has_the_interface(name, device):
    model = ek.get_model(name, **IMG, proj_dim=32).to(device)
    y = torch.rand(12, 64, device=device)
    x = model.augment(y)
    e = model.energy(y, x=x)
    assert e.shape == (12,) and e.device.type == device.type and torch.isfinite(e).all()
    assert model.encode(y).shape == (12, model.cfg.rep_dim)
    assert model.embed(y).shape == (12, model.cfg.proj_dim)
    loss, logs = model.step(y)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert "std" in logs and all(v.dim() == 0 for v in logs.values())
    assert any(p.grad is not None for p in model.encoder.parameters())
    rebuilt = ek.get_model(name, **model.config())
    assert rebuilt.config() == model.config()


def test_simclr_evaluates_with_the_averaged_encoder():
    """eval_ema: in eval mode encode() is the weight average's, ema ← m·ema + (1 − m)·w."""
    torch.manual_seed(0)
    model = ek.get_model("ssl.simclr", **IMG, eval_ema=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    y = torch.rand(16, 64)
    before = [p.clone() for p in model.encoder.parameters()]
    opt.zero_grad()
    model.step(y)[0].backward()
    opt.step()
    after = [p.clone() for p in model.encoder.parameters()]
    model.step(y)                                        # averages in the step just taken
    for e, b, a in zip(model.ema_encoder.parameters(), before, after):
        assert torch.allclose(e, 0.5 * b + 0.5 * a)
    model.eval()
    assert torch.equal(model.encode(y), model.ema_encoder(y))
    assert not torch.equal(model.encode(y), model.encoder(y))
    plain = ek.get_model("ssl.simclr", **IMG, eval_ema=0.0).eval()
    assert plain.ema_encoder is None and torch.equal(plain.encode(y), plain.encoder(y))
    with pytest.raises(ConfigError, match="eval_ema"):
        ek.get_model("ssl.simclr", **IMG, eval_ema=1.0)


def test_ntxent_is_the_hand_written_simclr_loss():
    from ebmkit_ssl.simclr import NTXentLoss

    torch.manual_seed(0)
    z1, z2 = torch.randn(10, 8), torch.randn(10, 8)
    z1.requires_grad_(True)
    loss, e_pos, e_neg = NTXentLoss(temperature=0.3)(z1, z2)
    (grad,) = torch.autograd.grad(loss, z1)
    z = nnf.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / 0.3).fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(10, 20), torch.arange(10)])
    hand = nnf.cross_entropy(logits, target)
    assert torch.allclose(loss, hand, atol=1e-5)
    torch.testing.assert_close(grad, torch.autograd.grad(hand, z1)[0])
    # the logged means: positives, and the 2n - 2 negatives of each view (not itself, not
    # its positive)
    energy = 1 - z.detach() @ z.detach().T
    neg = ~torch.eye(20, dtype=torch.bool) & ~torch.eye(20, dtype=torch.bool).roll(10, 1)
    torch.testing.assert_close(e_pos, energy.diagonal(10).mean())
    torch.testing.assert_close(e_neg, energy[neg].mean())
    with pytest.raises(ConfigError, match="a batch of 1 pair has no other views"):
        NTXentLoss()(z1[:1], z2[:1])


def test_sinkhorn_equipartitions():
    from ebmkit_ssl.swav import sinkhorn

    torch.manual_seed(0)
    scores = nnf.normalize(torch.randn(60, 8), dim=1) @ nnf.normalize(torch.randn(6, 8), dim=1).T
    q = sinkhorn(scores, epsilon=0.05, iterations=100)   # cosines: SwAV's scores
    assert torch.isfinite(sinkhorn(scores * 100, epsilon=0.05)).all()  # no underflow
    assert torch.allclose(q.sum(dim=1), torch.ones(60), atol=1e-3)
    assert torch.allclose(q.sum(dim=0), torch.full((6,), 10.0), atol=1e-3)


def test_swav_prototypes_frozen_for_the_first_steps():
    model = ek.get_model("ssl.swav", **IMG, freeze_prototypes=2, crops=1)
    y = torch.rand(16, 64)
    grads = []
    for _ in range(3):
        model.zero_grad()
        model.step(y)[0].backward()
        grads.append(model.prototypes.weight.grad.abs().sum().item())
    assert grads[0] == 0 and grads[1] == 0 and grads[2] > 0


def test_memory_masks_own_samples_and_wraps():
    from ebmkit_ssl.memory import Memory, gather

    mem = Memory(size=6, dim=4, input_dim=3)
    y = torch.rand(4, 3)
    keys = nnf.normalize(torch.randn(4, 4), dim=1)
    prints = mem.fingerprint(y)
    mem.push(keys, prints)
    e, share = mem.energies(keys, prints)
    assert torch.isinf(e[torch.arange(4), torch.arange(4)]).all()   # own keys are masked
    assert torch.isfinite(e).sum() == 4 * 6 - 4
    assert share.item() == pytest.approx(4 / 24)
    mem.push(keys, prints)                                           # 8 entries into 6
    assert mem.ptr.item() == 2 and torch.equal(mem.keys[:2], keys[2:])
    assert gather(keys) is not keys and torch.equal(gather(keys), keys)


def _gloo_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from ebmkit_ssl.memory import Memory

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        mem = Memory(size=8, dim=2, input_dim=1)
        keys = torch.full((2, 2), float(rank + 1))
        mem.push(keys, torch.full((2,), float(rank)))
        torch.save(mem.keys[:4].clone(), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_moco_queue_gathers_keys_from_every_rank(tmp_path):
    """Two gloo processes: each enqueues its own keys; both queues hold both ranks'."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gloo_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    q0, q1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(q0, q1)
    assert torch.equal(q0[:, 0], torch.tensor([1.0, 1.0, 2.0, 2.0]))   # rank order


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_clearly(digits):
    model = ek.get_model("ssl.simclr", **IMG)
    with pytest.raises(ConfigError, match=r"expected shape \[B, 64\], got \[4, 65\]"):
        model.encode(torch.rand(4, 65))
    with pytest.raises(ConfigError, match="batch of 1"):
        model.step(torch.rand(1, 64))
    with pytest.raises(ConfigError, match="temperature"):
        ek.get_model("ssl.simclr", **IMG, temperature=0.0)
    with pytest.raises(ConfigError, match="image_shape"):
        ek.get_model("ssl.simclr", dim=64, image_shape=[1, 8, 9])
    moco = ek.get_model("ssl.moco", **IMG, queue=5000)
    with pytest.raises(ConfigError, match="5000 entries but the data has only 1438"):
        moco.check_data(digits[0])
    with pytest.raises(ConfigError, match="5000 entries"):
        ek.get_model("ssl.pirl", **IMG, bank=5000).check_data(digits[0])
    unlabelled = ek.data.TensorData({"y": digits[1].y}, name="digits", split="test")
    with pytest.raises(ConfigError, match="need class labels"):
        model.downstream(digits[0], unlabelled)


# ---------------------------------------------------------------------------- meter & evals
def test_collapse_meter_definitions():
    from ebmkit_ssl.collapse import effective_rank, normalized_std

    torch.manual_seed(0)
    iso = torch.randn(20000, 16)
    assert normalized_std(iso).item() == pytest.approx(1 / 4, rel=0.02)
    assert effective_rank(iso).item() > 15
    line = torch.randn(500, 1) * torch.randn(1, 16)
    assert effective_rank(line).item() == pytest.approx(1.0, abs=0.01)
    assert normalized_std(torch.ones(50, 16)).item() == 0.0


def test_knn_and_probe_match_scikit_learn(digits):
    from sklearn.neighbors import KNeighborsClassifier

    from ebmkit_ssl.evaluate import knn_accuracy, labels_of, linear_probe

    (tr, te) = digits
    a, b = labels_of(tr), labels_of(te)
    ours = knn_accuracy(tr.y, a, te.y, b, k=5)
    sk = KNeighborsClassifier(5, metric="cosine").fit(tr.y.numpy(), a.numpy())
    assert ours == pytest.approx(sk.score(te.y.numpy(), b.numpy()), abs=1 / 359)
    assert linear_probe(tr.y, a, te.y, b) == pytest.approx(0.983, abs=0.004)  # the figure


def test_collapsing_configuration_is_caught(digits):
    """VICReg without its variance term: the embedding shrinks to a point; the meter sees it
    and warns. The same run with the variance term keeps its spread."""
    from ebmkit_ssl.collapse import CollapseWarning

    train = ek.data.TensorData({"y": digits[0].y[:512]}, name="digits", split="train")
    reports = {}
    for variance in (0.0, 25.0):
        torch.manual_seed(0)
        model = ek.get_model("ssl.vicreg", **IMG, variance=variance, covariance=0.0)
        trainer = ek.Trainer(model, epochs=6, batch_size=128, lr=3e-3, device="cpu",
                             progress=False)
        trainer.fit(train)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reports[variance] = trainer.evaluate(digits[1])
        reports[variance]["warned"] = any(issubclass(w.category, CollapseWarning) for w in caught)
    print(reports)
    assert reports[0.0]["warned"] and not reports[25.0]["warned"]
    assert reports[0.0]["collapse/std_ratio"] < 0.1 < reports[25.0]["collapse/std_ratio"]


def test_train_eval_and_pca_png_through_the_run_directory(tmp_path, digits):
    from ebmkit.runs import evaluate_run, train_run

    out, history = train_run("ssl.simclr", "digits", epochs=1, out=tmp_path / "run",
                             batch_size=256, device="cpu", progress=False)
    assert {"val_knn5", "val_linear_probe", "val_collapse/std"} <= set(history[-1])
    assert (out / "embedding.png").stat().st_size > 10_000
    assert json.loads((out / "downstream.json").read_text())["metrics"]["knn5"] > 0.5
    report = evaluate_run(out)
    assert 0.5 < report["linear_probe"] <= 1 and 0.5 < report["knn5"] <= 1
    assert report["collapse/rank"] > 1


def test_resumed_run_draws_the_same_views_bit_exact(tmp_path, digits):
    """k epochs, then a resume to k + m from the checkpoint (a fresh model and trainer),
    ends with the same weights as an uninterrupted k + m run: the augmentation generator's
    state travels in the checkpoint."""
    tiny = {**IMG, "channels": [4, 8], "hidden": 16, "rep_dim": 8, "proj_dim": 8,
            "proj_hidden": 16}
    train = ek.data.TensorData({"y": digits[0].y[:256]}, name="digits", split="train")

    def run(out, epochs, resume=False):
        torch.manual_seed(0)  # the same initial weights (a resumed run loads its own)
        model = ek.get_model("ssl.simclr", **tiny)
        ek.Trainer(model, epochs=epochs, batch_size=64, lr=3e-3, device="cpu", progress=False,
                   checkpoint_dir=out, resume=resume).fit(train)
        return model.state_dict()

    whole = run(tmp_path / "whole", 3)
    run(tmp_path / "parts", 1)
    resumed = run(tmp_path / "parts", 3, resume=True)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
# ---------------------------------------------------------------------------- faithful edges
def test_barlow_energy_is_the_documented_per_sample_invariance():
    """E = mean over dimensions of the squared difference of the standardised embeddings:
    batch statistics in train mode, the running ones in eval mode; not 1 − cos."""
    torch.manual_seed(0)
    model = ek.get_model("ssl.barlow", **IMG)
    y, x = torch.rand(16, 64), torch.rand(16, 64)

    def by_batch(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    e = model.energy(y, x=x)
    za, zb = model.embed(y), model.embed(x)
    torch.testing.assert_close(e, (by_batch(za) - by_batch(zb)).square().mean(1))
    assert not torch.allclose(e, 1 - nnf.cosine_similarity(za, zb), atol=1e-2)
    for _ in range(3):                                        # running statistics move
        model.step(torch.rand(16, 64))
    bn = model.criterion.bn
    model.eval()
    mean, var = bn.running_mean, bn.running_var
    za, zb = model.embed(y), model.embed(x)
    by_running = ((za - mean) / torch.sqrt(var + 1e-5) - (zb - mean) / torch.sqrt(var + 1e-5))
    torch.testing.assert_close(model.energy(y, x=x), by_running.square().mean(1))
    torch.testing.assert_close(model.energy(y[:1], x=x[:1]), model.energy(y, x=x)[:1])


def test_byol_target_momentum_follows_the_cosine_schedule():
    """τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 over the trainer's K steps; the logged rate
    is each epoch's mean of it."""
    tiny = {**IMG, "channels": [4, 8], "hidden": 16, "rep_dim": 8, "proj_dim": 8,
            "proj_hidden": 16, "pred_hidden": 16}
    model = ek.get_model("ssl.byol", **tiny, momentum=0.9)
    model.set_progress(0, 100)
    assert model.momentum() == pytest.approx(0.9)
    model.set_progress(50, 100)
    assert model.momentum() == pytest.approx(0.95)
    model.set_progress(100, 100)
    assert model.momentum() == pytest.approx(1.0)
    data = ek.data.TensorData({"y": torch.rand(64, 64)}, name="noise", split="train")
    history = ek.Trainer(model, epochs=2, batch_size=16, lr=1e-3, device="cpu",
                         progress=False).fit(data)
    total = 8

    def tau(k):
        return 1 - 0.1 * (math.cos(math.pi * k / total) + 1) / 2

    for epoch, record in enumerate(history):
        steps = range(4 * epoch, 4 * epoch + 4)
        assert record["momentum"] == pytest.approx(sum(map(tau, steps)) / 4, abs=1e-6)
    constant = ek.get_model("ssl.byol", **tiny, momentum=0.9, momentum_schedule="constant")
    constant.set_progress(50, 100)
    assert constant.momentum() == 0.9
    with pytest.raises(ConfigError, match="momentum_schedule"):
        ek.get_model("ssl.byol", **tiny, momentum_schedule="linear")


@pytest.mark.parametrize("name", ["ssl.moco", "ssl.pirl"])
def test_moco_and_pirl_offer_v2s_head_without_batch_norm(name):
    """``head_batch_norm=False`` is MoCo v2's MLP head: no batch norm anywhere, so nothing
    is normalised by the batch (the default keeps it: measured, see ebmkit_ssl.momentum)."""
    v2 = ek.get_model(name, **IMG, head_batch_norm=False)
    assert v2.cfg.proj_layers == 2
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in v2.modules())
    loss, _ = v2.step(torch.rand(8, 64))
    assert torch.isfinite(loss)
    default = ek.get_model(name, **IMG)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in default.key_projector.modules())


@pytest.mark.parametrize("name", ["ssl.moco", "ssl.pirl"])
def test_shuffle_bn_normalises_keys_by_random_halves(name):
    """shuffle_bn: MoCo's shuffled batch norm on one device. Queries are normalised view by
    view; keys by two random halves of the views (drawn from the views' generator), put
    back in order, so a key's statistics never come from its query's group."""
    torch.manual_seed(0)
    model = ek.get_model(name, **IMG, shuffle_bn=True)
    views = torch.rand(16, 64)
    g = model.generator(views.device)
    state = g.get_state()
    keys = model.keys(views)
    g.set_state(state)
    perm = torch.randperm(16, generator=g)

    def net(v):
        return model.key_projector(model.key_encoder(v.reshape(-1, 1, 8, 8)))

    with torch.no_grad():
        hand = torch.cat([net(views[perm[:8]]), net(views[perm[8:]])])[perm.argsort()]
        whole = net(views)
    torch.testing.assert_close(keys, nnf.normalize(hand, dim=1))
    assert not torch.allclose(keys, nnf.normalize(whole, dim=1), atol=1e-3)
    sizes = _bn_batch_sizes(model, torch.rand(10, 64))
    # queries per view (10); keys by halves of the 20 views (MoCo) or of PIRL's 10 m_I views
    assert set(sizes) == ({10} if name == "ssl.moco" else {10, 5})
    with pytest.raises(ConfigError, match="at least 4 samples, got 3"):
        model.step(torch.rand(3, 64))


def _bn_batch_sizes(model, y):
    sizes = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
             for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.step(y)
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("name,per_view", [("ssl.byol", True), ("ssl.barlow", True),
                                           ("ssl.vicreg", True), ("ssl.simclr", False),
                                           ("ssl.swav", False), ("ssl.moco", True)])
def test_batch_norm_statistics_per_view_as_the_reference_code(name, per_view):
    """BYOL, Barlow Twins and VICReg normalise each view by its own batch statistics;
    SimCLR and SwAV share one pass over the views (their reference code does); MoCo's
    queries go view by view under its shuffled batch norm (shuffle_bn, the default)."""
    extra = {"proj_layers": 2} if name == "ssl.simclr" else {"crops": 0} if name == "ssl.swav" \
        else {}
    model = ek.get_model(name, **IMG, **extra)
    sizes = _bn_batch_sizes(model, torch.rand(10, 64))
    assert sizes and set(sizes) == ({10} if per_view else {20})


def test_simclr_evaluates_the_averaged_projector_and_every_model_exports_its_encoder():
    torch.manual_seed(0)
    model = ek.get_model("ssl.simclr", **IMG, eval_ema=0.5, proj_layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model.step(torch.rand(16, 64))[0].backward()
        opt.step()
    model.step(torch.rand(16, 64))
    y = torch.rand(8, 64)
    model.eval()
    torch.testing.assert_close(model.embed(y), model.ema_projector(model.ema_encoder(y)))
    assert not torch.allclose(model.embed(y), model.projector(model.ema_encoder(y)))
    for name in NAMES:
        m = ek.get_model(name, **IMG).eval()
        exported = m.export_encoder()
        assert not exported.training and not any(p.requires_grad for p in exported.parameters())
        assert torch.equal(exported(y), m.encode(y))                 # the scored features
        assert torch.equal(exported(y.reshape(8, 1, 8, 8)), m.encode(y))
    exported = model.export_encoder()
    assert torch.equal(exported(y), model.ema_encoder(y))
    with torch.no_grad():
        next(model.ema_encoder.parameters()).add_(1.0)             # a copy, not a view
    assert not torch.equal(exported(y), model.ema_encoder(y))


def test_knn_scores_test_rows_in_chunks(digits):
    from sklearn.neighbors import KNeighborsClassifier

    from ebmkit_ssl.evaluate import knn_accuracy, labels_of

    (tr, te) = digits
    a, b = labels_of(tr), labels_of(te)
    blocks = []
    real_topk = torch.Tensor.topk

    def spy(self, *args, **kwargs):
        blocks.append(tuple(self.shape))
        return real_topk(self, *args, **kwargs)

    torch.Tensor.topk = spy
    try:
        chunked = knn_accuracy(tr.y, a, te.y, b, k=5, chunk=100)
    finally:
        torch.Tensor.topk = real_topk
    assert blocks == [(100, 1438)] * 3 + [(59, 1438)]              # never 359 × 1438 at once
    assert chunked == knn_accuracy(tr.y, a, te.y, b, k=5, chunk=4096)
    sk = KNeighborsClassifier(5, metric="cosine").fit(tr.y.numpy(), a.numpy())
    assert chunked == pytest.approx(sk.score(te.y.numpy(), b.numpy()), abs=1 / 359)


def test_swav_runs_sinkhorn_once_per_global_view(monkeypatch):
    import ebmkit_ssl.swav as swav

    calls = []
    real = swav.sinkhorn
    monkeypatch.setattr(swav, "sinkhorn", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = ek.get_model("ssl.swav", **IMG, crops=1)
    loss, logs = model.step(torch.rand(16, 64))
    assert len(calls) == 2 and 0 < logs["code_entropy"] <= 1


def test_ssl_modules_import_no_circle(no_import_circle):
    """No import circle inside the plugin (function-level imports count too)."""
    import ast
    from pathlib import Path

    import ebmkit_ssl

    root = Path(ebmkit_ssl.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
        graph[path.stem] = deps

    no_import_circle(graph)
