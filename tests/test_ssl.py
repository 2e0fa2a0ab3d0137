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
