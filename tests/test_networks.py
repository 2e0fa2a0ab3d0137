"""The networks registry and the families' slots (issue 20 §1).

- built-in networks map ``[B, *in_shape]`` to ``[B, *out_shape]``; wrong shapes, options and
  specs fail with errors that say what was expected and what came;
- ``torchvision.*`` is registered only when torchvision imports cleanly (simulated both ways:
  this machine's torchvision wheel fails on import beside torch 2.13);
- an outside plugin (tests/fixtures/ebmkit-hello) registers ``hello.net``; ``autoencoder``,
  ``neural.conv`` and ``ssl.simclr`` train with it by name, save, and load in a fresh
  process with bit-identical outputs;
- modules passed from Python: training, the error of ``ek.load`` without them, identical
  outputs with them;
- loading builds on ``meta`` first: a header asking for terabytes fails without allocating.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import ebmkit as ek
from ebmkit.checkpoint import CheckpointError
from ebmkit.errors import ConfigError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the registry --------------------------------------------------------------------------
@pytest.mark.parametrize("name, in_shape, out_shape, options", [
    ("mlp", (1, 8, 8), (5,), {}),
    ("mlp", (7,), (), {"depth": 0}),
    ("mlp", (4,), (3, 2, 2), {"hidden": 8}),
    ("conv", (3, 9, 7), (6,), {"channels": 4}),
    ("conv", (3, 8, 8), (), {"channels": 4}),
    ("conv", (6,), (3, 13, 11), {"channels": 4}),
    ("conv", (2, 8, 8), (1, 8, 8), {"channels": 4}),
    ("resnet", (3, 16, 16), (12,), {"depth": 10, "width": 4}),
    ("resnet", (1, 12, 12), (), {"depth": 10, "width": 4, "stem": "imagenet", "norm": "group"}),
    ("autoencoder.conv_decoder", (5,), (3, 10, 10), {"channels": 4}),
    ("dcgan.generator", (8,), (3, 16, 16), {"width": 4}),
    ("dcgan.discriminator", (3, 16, 16), (), {"width": 4}),
    ("neural.conv", (3, 8, 8), (10,), {"channels": 4}),
    ("masked.patch_transformer", (2, 8, 8), (1, 8, 8), {"d_model": 16}),
])
def test_networks_map_in_shape_to_out_shape(name, in_shape, out_shape, options):
    net = ek.get_network(name, in_shape=in_shape, out_shape=out_shape, **options)
    assert isinstance(net, nn.Module)
    out = net(torch.rand(3, *in_shape))
    assert out.shape == (3, *out_shape)
    out.sum().backward()  # a network trains: every parameter gets a gradient
    assert all(p.grad is not None for p in net.parameters())


def test_list_networks_has_the_built_ins_and_the_families_nets():
    names = ek.list_networks()
    assert names == sorted(names)
    for name in ("mlp", "conv", "resnet", "autoencoder.mlp_encoder", "autoencoder.conv_decoder",
                 "dcgan.generator", "dcgan.discriminator", "neural.conv",
                 "masked.patch_transformer", "hello.net"):
        assert name in names


def test_two_plugins_registering_one_network_name_is_an_error(fresh_plugins):
    from ebmkit.errors import DuplicateNameError

    class Clash:
        @ek.hookimpl
        def register_networks(self, register):
            register("mlp", lambda in_shape, out_shape: nn.Identity(), summary="another mlp")

    fresh_plugins.register_plugin(Clash(), name="clash")
    with pytest.raises(DuplicateNameError, match=r"network name 'mlp' is registered by more "
                                                  r"than one plugin: 'clash' and 'ebmkit'"):
        ek.get_network("mlp", in_shape=(3,), out_shape=(2,))


def test_resnet_depth_sets_the_blocks_and_small_stem_keeps_the_resolution():
    small = ek.get_network("resnet", in_shape=(3, 32, 32), out_shape=(8,), depth=18, width=4)
    deep = ek.get_network("resnet", in_shape=(3, 32, 32), out_shape=(8,), depth=34, width=4)
    blocks = [sum(1 for m in n.modules() if type(m).__name__ == "BasicBlock")
              for n in (small, deep)]
    assert blocks == [8, 16]  # 2-2-2-2 and 3-4-6-3, as in the paper's table 1
    feats = {}
    small.stages[0].register_forward_hook(lambda m, a, out: feats.update(s=out.shape))
    small(torch.rand(2, 3, 32, 32))
    assert feats["s"][-2:] == (32, 32)  # 3×3 stride-1 stem, no max-pool


def test_network_errors_say_what_was_expected():
    with pytest.raises(ConfigError, match=r"network 'resnet' has no option 'dept' \(did you mean "
                                          r"'depth'"):
        ek.get_network("resnet", in_shape=(3, 8, 8), out_shape=(4,), dept=18)
    with pytest.raises(ConfigError, match=r"depth must be one of 10, 18, 34, got 50"):
        ek.get_network("resnet", in_shape=(3, 8, 8), out_shape=(4,), depth=50)
    with pytest.raises(ConfigError, match=r"expected an image shape \(C, H, W\), got \(64,\)"):
        ek.get_network("resnet", in_shape=(64,), out_shape=(4,))
    with pytest.raises(ConfigError, match=r"in_shape: expected a shape.*got \[3, -1\]"):
        ek.get_network("mlp", in_shape=[3, -1], out_shape=(4,))
    with pytest.raises(UnknownNameError, match=r"unknown network 'resnett'.*Did you mean 'resnet'"):
        ek.get_network("resnett", in_shape=(3, 8, 8), out_shape=(4,))


# -- torchvision: registered only when it imports cleanly ---------------------------------
def _fake_torchvision(tmp_path: Path) -> Path:
    """A stand-in torchvision package whose models.resnet18 has torchvision's attributes
    (conv1, maxpool, fc; 3 input channels): enough to test the adapter without the wheel."""
    pkg = tmp_path / "fake" / "torchvision"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import models\n")
    (pkg / "models.py").write_text(textwrap.dedent("""
        from torch import nn

        class _ResNet(nn.Module):
            def __init__(self, num_classes=1000):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
                self.maxpool = nn.MaxPool2d(3, 2, 1)
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(8, num_classes)

            def forward(self, x):
                return self.fc(self.pool(self.maxpool(self.conv1(x))).flatten(1))

        def resnet18(weights=None):
            assert weights is None
            return _ResNet()

        resnet34 = resnet50 = resnet101 = wide_resnet50_2 = resnet18
    """))
    return pkg.parent


def test_torchvision_names_missing_with_the_reason_when_the_import_fails(fresh_plugins,
                                                                          monkeypatch, capsys):
    from ebmkit.networks import catalog

    def broken():
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(catalog, "_find_torchvision", lambda: object())  # "installed"
    monkeypatch.setattr(catalog, "_import_torchvision", broken)
    assert not [n for n in ek.list_networks() if n.startswith("torchvision.")]
    assert "resnet" in ek.list_networks()  # the pure-PyTorch path stays
    from ebmkit.cli import main

    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    assert ("torchvision.* networks are not registered: torchvision is installed but fails to "
            "import (RuntimeError: operator torchvision::nms does not exist)") in out


@pytest.fixture
def fake_torchvision(monkeypatch, tmp_path):
    """The fake package first on sys.path for one test; every torchvision module it imported
    is forgotten afterwards (and a real one, if any was imported, comes back)."""
    before = {m: sys.modules[m] for m in list(sys.modules)
              if m == "torchvision" or m.startswith("torchvision.")}
    for mod in before:
        del sys.modules[mod]
    monkeypatch.syspath_prepend(str(_fake_torchvision(tmp_path)))
    yield
    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[mod]
    sys.modules.update(before)


def test_torchvision_backbones_adapted_when_it_imports(fresh_plugins, fake_torchvision):
    names = ek.list_networks()
    assert {"torchvision.resnet18", "torchvision.resnet34", "torchvision.resnet50"} <= set(names)
    net = ek.get_network("torchvision.resnet18", in_shape=(1, 16, 16), out_shape=(5,),
                         stem="small")
    assert net.backbone.conv1.in_channels == 1 and net.backbone.conv1.kernel_size == (3, 3)
    assert isinstance(net.backbone.maxpool, nn.Identity)
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 5)
    net = ek.get_network("torchvision.resnet18", in_shape=(3, 16, 16), out_shape=())
    assert net.backbone.conv1.kernel_size == (7, 7)  # ImageNet stem kept for RGB
    assert net(torch.rand(2, 3, 16, 16)).shape == (2,)


# -- slots ---------------------------------------------------------------------------------
class MyEnc(nn.Module):
    def __init__(self, code: int = 8):
        super().__init__()
        self.lin = nn.Linear(64, code)

    def forward(self, y):
        return self.lin(y.flatten(1))


class MyDec(nn.Module):
    def __init__(self, code: int = 8):
        super().__init__()
        self.lin = nn.Linear(code, 64)

    def forward(self, h):
        return self.lin(h)


def test_modules_from_python_train_save_and_need_passing_to_load(tmp_path):
    torch.manual_seed(0)
    model = ek.get_model("autoencoder", code=8, encoder=MyEnc(), decoder=MyDec())
    y = ek.get_dataset("digits").y[:512]
    before = model.free_energy(y).mean()
    ek.Trainer(model, epochs=3, batch_size=64, lr=5e-3, device="cpu").fit(
        ek.data.TensorData({"y": y}, name="digits-512", split="train"))
    model.eval()
    assert model.free_energy(y).mean() < 0.8 * before  # it trained through the user's modules
    assert model.config()["encoder"] == {"instance": f"{__name__}.MyEnc"}
    model.save(tmp_path / "m")
    with pytest.raises(CheckpointError) as err:
        ek.load(tmp_path / "m")
    msg = str(err.value)
    assert "slot 'encoder' holding a" in msg and "slot 'decoder' holding a" in msg
    assert "ek.load(p, encoder=MyEnc(...), decoder=MyDec(...))" in msg
    again = ek.load(tmp_path / "m", encoder=MyEnc(), decoder=MyDec())
    assert torch.equal(again.free_energy(y), model.free_energy(y))
    with pytest.raises(CheckpointError, match=r"has no slot 'encodr'"):
        ek.load(tmp_path / "m", encodr=MyEnc(), decoder=MyDec())
    with pytest.raises(CheckpointError, match=r"slot 'encoder': expected a network mapping "
                                              r"\[B, 64\] to \[B, 8\], got MyEnc returning"):
        ek.load(tmp_path / "m", encoder=MyEnc(4), decoder=MyDec())
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 8))  # the right shape, other weights
    with pytest.raises(CheckpointError, match=r"do not fit Autoencoder: missing from the file: "
                                              r"'encoder.1.weight'"):
        ek.load(tmp_path / "m", encoder=other, decoder=MyDec())


def test_a_wrong_output_shape_fails_before_training():
    with pytest.raises(ConfigError, match=r"autoencoder: slot 'encoder': expected a network "
                                          r"mapping \[B, 64\] to \[B, 16\], got MyEnc returning "
                                          r"\[B, 8\]"):
        ek.get_model("autoencoder", encoder=MyEnc(8))
    with pytest.raises(ConfigError, match=r"neural.conv: slot 'energy': expected a network "
                                          r"mapping \[B, 1, 8, 8\] to \[B\], got Sequential "
                                          r"returning \[B, 3\]; reduce its output to one number"):
        ek.get_model("neural.conv", energy=nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))


@pytest.mark.parametrize("spec, message", [
    ({"depth": 18}, r"slot 'encoder': a dict spec needs a 'name'"),
    ({"name": "mlp", "out_shape": [3]}, r"'out_shape' is set by the family"),
    (3, r"slot 'encoder': expected a registered network name .* got int 3"),
    ({"name": "mlp", "hiden": 3}, r"network 'mlp' has no option 'hiden' \(did you mean 'hidden'"),
    ({"instance": "x.MyEnc"}, r"held a x.MyEnc passed from Python .* ek.load\(p, encoder=MyEnc"),
])
def test_bad_slot_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        ek.get_model("autoencoder", encoder=spec)


def test_the_shape_check_leaves_a_module_as_it_was():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    net[1].eval()  # a frozen batch norm inside a module in training mode stays frozen
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model = ek.get_model("autoencoder", dim=4, code=2, encoder=net,
                         decoder=nn.Linear(2, 4))
    assert model.encoder is net and net.training and not net[1].training and net[2].training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # BN stats too
    state = torch.random.get_rng_state()
    ek.networks.check_output(net, (4,), (2,), what="encoder")
    assert torch.equal(torch.random.get_rng_state(), state)  # zeros in: no random numbers


def test_momentum_copies_are_copies_of_the_users_network():
    gen = ek.get_network("dcgan.generator", in_shape=(32,), out_shape=(1, 8, 8), width=8)
    model = ek.get_model("gan.dcgan", generator=gen, d_width=8)
    assert model.generator is gen and model.generator_ema is not gen
    for a, b in zip(model.generator.parameters(), model.generator_ema.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_models_verbose_lists_slots_and_their_defaults(capsys):
    from ebmkit.commands import model_slots
    from ebmkit.plugins import get_entry

    assert set(model_slots(get_entry("models", "autoencoder"))) == {"encoder", "decoder"}
    assert set(model_slots(get_entry("models", "gan.ebgan"))) == {"generator", "encoder",
                                                                  "decoder"}
    assert set(model_slots(get_entry("models", "neural.jem"))) == {"classifier"}
    assert model_slots(get_entry("models", "kmeans")) == {}


# -- an outside plugin's network, by name, through save and a fresh process ---------------
_FAMILIES = {  # digits: 8×8 grey images, flat [B, 64]
    "autoencoder": {"code": 8, "encoder": "hello.net",
                    "decoder": {"name": "hello.net", "hidden": 16}},
    "neural.conv": {"energy": "hello.net", "langevin_steps": 5, "image_shape": [1, 8, 8]},
    "ssl.simclr": {"encoder": {"name": "hello.net", "hidden": 16}, "dim": 64,
                   "image_shape": [1, 8, 8]},
}


def test_a_plugin_network_trains_by_name_and_reloads_in_a_fresh_process(tmp_path):
    """One fresh process loads every family's run (one interpreter start-up, not three)."""
    from ebmkit.plugins import get_entry

    train = ek.data.TensorData({"y": ek.get_dataset("digits").y[:256]}, name="digits-256",
                               split="train")
    y = train.y[:16]
    torch.save(y, tmp_path / "y.pt")
    expected, trained = {}, []
    for family, options in _FAMILIES.items():
        known = {o.name for o in get_entry("models", family).options()}
        slot = next(k for k in options if k in ("encoder", "energy"))
        if slot not in known:  # a family whose slots have not landed yet
            continue
        torch.manual_seed(0)
        model = ek.get_model(family, **options)
        net = model.encoder if slot == "encoder" else model.net
        assert type(net).__module__ == "ebmkit_hello.model"
        ek.Trainer(model, epochs=1, batch_size=64, device="cpu").fit(train)
        model.eval()
        model.save(tmp_path / family)
        assert json.loads((tmp_path / f"{family}.json").read_text())["config"][slot] == \
            options[slot]  # recorded by name and options
        with torch.no_grad():
            expected[family] = model.encode(y) if family.startswith("ssl.") else \
                model.free_energy(y)
        trained.append(family)
    assert {"autoencoder", "neural.conv"} <= set(trained)
    script = textwrap.dedent(f"""
        import torch, ebmkit as ek
        y = torch.load({str(tmp_path / 'y.pt')!r})
        for family in {trained!r}:
            m = ek.load({str(tmp_path)!r} + "/" + family)
            with torch.no_grad():
                out = m.encode(y) if family.startswith("ssl.") else m.free_energy(y)
            torch.save(out, {str(tmp_path)!r} + "/" + family + ".out.pt")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    for family in trained:
        assert torch.equal(torch.load(tmp_path / f"{family}.out.pt"), expected[family]), family


# -- loading is input too: shapes compared on meta before any memory is allocated ---------
def test_a_header_asking_for_terabytes_fails_without_allocating(tmp_path):
    small = ek.get_model("neural.mlp", dim=2, hidden=8, depth=2)
    small.save(tmp_path / "m")
    header = json.loads((tmp_path / "m.json").read_text())
    header["config"]["hidden"] = 2 ** 20  # two 2^20 × 2^20 layers: 4 TiB of float32
    (tmp_path / "m.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match=r"do not fit MLPEnergy: shape mismatch: "
                                              r"'net.body.1.weight': file \[8, 2\], model "
                                              r"\[1048576, 2\]"):
        ek.load(tmp_path / "m")


# Families whose construction reads tensor values (a Lipschitz constant by .item()): ek.load
# builds them for real and compares the shapes after, as the docstring of ek.load says.
_NOT_ON_META = {"sparse.drsae", "sparse.lista"}


def test_families_build_on_meta_so_loading_checks_shapes_first():
    # masked.lm reads its vocabulary off the text data set when none is given (a saved one
    # holds it): under the meta device that cached data set would be made of meta tensors
    options = {"ssl.pirl": {"image_shape": [1, 8, 8]}, "masked.lm": {"vocab": list("abc ")}}
    built = []
    for name in ek.list_models():
        if name in _NOT_ON_META:
            continue
        with torch.device("meta"):
            model = ek.get_model(name, **options.get(name, {}))
        assert {t.device.type for t in (*model.parameters(), *model.buffers())} <= {"meta"}, name
        built.append(name)
    assert {"autoencoder", "gan.dcgan", "neural.conv", "masked.image"} <= set(built)
