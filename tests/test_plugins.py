"""The plugin host against real installed distributions (tests/fixtures/ebmkit-*)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import ebmkit as ek
from ebmkit.errors import (
    ConfigError,
    DuplicateNameError,
    PluginError,
    PluginWarning,
    UnknownNameError,
)


def _infos(plugins) -> dict:
    return {i.name: i for i in plugins.get_plugins()}


def _require_fixtures() -> None:
    for dist in ("ebmkit-hello", "ebmkit-broken"):
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{dist} is not installed: run the README's test command, which "
                        f"pip-installs tests/fixtures/{dist}")


@pytest.fixture(autouse=True)
def _fixtures_installed() -> None:
    _require_fixtures()


def test_builtins_and_third_party_are_discovered(fresh_plugins):
    with pytest.warns(PluginWarning):
        infos = _infos(fresh_plugins)
    assert infos["ebmkit"].dist == "torch-ebmkit" and infos["ebmkit"].builtin
    assert infos["ebmkit"].version == ek.__version__
    assert "train" in infos["ebmkit"].registers["commands"]
    assert {"digits", "moons", "text", "fashion-mnist"} <= set(infos["ebmkit_datasets"].registers["datasets"])
    hello = infos["hello"]
    assert (hello.dist, hello.version, hello.status, hello.error) == ("ebmkit-hello", "0.1.0", "loaded", None)
    assert hello.registers == {"models": ["hello"], "datasets": ["hello-blob"],
                               "networks": ["hello.net"], "commands": ["hello"]}
    assert hello.entry_point == "ebmkit_hello" and not hello.builtin
    assert "hello" in ek.list_models() and "hello-blob" in ek.list_datasets()


def test_broken_plugin_is_reported_and_the_rest_load(fresh_plugins):
    with pytest.warns(PluginWarning, match=r"'broken'.*entry point 'ebmkit_broken'.*ebmkit-broken 0\.0\.1"):
        infos = _infos(fresh_plugins)
    broken = infos["broken"]
    assert broken.status == "failed" and broken.registers == {}
    assert "RuntimeError: ebmkit-broken fails on import on purpose" in broken.error
    assert infos["hello"].status == "loaded"


def test_strict_mode_raises(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken.*fails on import on purpose"):
        fresh_plugins.get_plugins()
    fresh_plugins.reset()  # a failed load is not cached: the next access tries again
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    assert "hello" in ek.list_models()


def test_disable_blocks_by_plugin_or_distribution(fresh_plugins, monkeypatch, recwarn):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken, ebmkit-hello")
    infos = _infos(fresh_plugins)
    assert infos["broken"].status == "disabled" and infos["hello"].status == "disabled"
    assert "hello" not in ek.list_models()
    assert not [w for w in recwarn if issubclass(w.category, PluginWarning)]


def test_disable_a_builtin(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken,ebmkit_datasets")
    assert ek.list_datasets() == ["hello-blob"]


def test_load_plugins_empty_means_builtins_only(fresh_plugins, monkeypatch, recwarn):
    monkeypatch.setenv("EBMKIT_LOAD_PLUGINS", "")
    infos = _infos(fresh_plugins)
    assert infos["hello"].status == "skipped" and infos["broken"].status == "skipped"
    assert infos["ebmkit_datasets"].status == "loaded"
    assert "hello" not in ek.list_models() and "digits" in ek.list_datasets()
    assert not [w for w in recwarn if issubclass(w.category, PluginWarning)]


def test_load_plugins_allow_list(fresh_plugins, monkeypatch, recwarn):
    monkeypatch.setenv("EBMKIT_LOAD_PLUGINS", "hello")
    infos = _infos(fresh_plugins)
    assert infos["hello"].status == "loaded" and infos["broken"].status == "skipped"


class _Clash:
    """An in-process plugin that claims the name the hello plugin already owns."""

    @ek.hookimpl
    def register_models(self, register):
        register("hello", lambda: None, summary="an impostor")
        register("clash.other", lambda: None, summary="a name nobody else has")


def test_duplicate_name_is_an_error_naming_both(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    with pytest.warns(PluginWarning, match="'clash'.*'hello'"):
        info = fresh_plugins.register_plugin(_Clash(), name="clash")
    assert "'clash' and 'hello'" in info.error
    with pytest.raises(DuplicateNameError, match="'clash' and 'hello'") as exc:
        ek.get_model("hello")
    assert exc.value.plugins == ["clash", "hello"]
    assert "hello" not in ek.list_models()  # nobody silently wins
    assert "clash.other" in ek.list_models()  # the plugin's other names still count


def test_duplicate_name_raises_in_strict_mode(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    fresh_plugins.host()
    monkeypatch.setenv("EBMKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'clash' and 'hello'"):
        fresh_plugins.register_plugin(_Clash(), name="clash")


class _NotCallable:
    @ek.hookimpl
    def register_models(self, register):
        register("fine", lambda: None)
        register("bad", 42)


class _Misspelt:
    @ek.hookimpl
    def register_model(self, register):  # no such hook
        register("typo", lambda: None)


class _BadName:
    @ek.hookimpl
    def register_datasets(self, register):
        register("Has Spaces", lambda: None)


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (_NotCallable(), r"registered model 'bad' with a int \(42\); expected a callable"),
        (_Misspelt(), r"register_model"),
        (_BadName(), r"expected lower-case words"),
    ],
)
def test_bad_registrations_fail_that_plugin_only(fresh_plugins, monkeypatch, plugin, message):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    with pytest.warns(PluginWarning, match=message):
        info = fresh_plugins.register_plugin(plugin, name="bad-plugin")
    assert info.status == "failed" and info.registers == {}
    assert "fine" not in ek.list_models()  # registration is all or nothing per plugin
    assert "hello" in ek.list_models()


def test_hook_without_arguments_is_allowed(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")

    class Quiet:
        @ek.hookimpl
        def register_models(self):
            pass

    assert fresh_plugins.register_plugin(Quiet(), name="quiet").error is None


def test_plugins_load_once(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    calls = []
    real = metadata.entry_points

    def counting(**kw):
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(fresh_plugins.metadata, "entry_points", counting)
    first = fresh_plugins.host()
    ek.list_models(), ek.list_datasets(), ek.get_plugins()
    assert fresh_plugins.host() is first and len(calls) == 1


def test_unknown_names_suggest_close_ones(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    with pytest.raises(UnknownNameError, match=r"unknown model 'helo'\. Did you mean 'hello'"):
        ek.get_model("helo")
    with pytest.raises(UnknownNameError, match=r"Did you mean 'digits'"):
        ek.get_dataset("digit")
    with pytest.raises(LookupError):  # also catchable as the builtin
        ek.get_dataset("no-such-thing")


def test_options_are_checked_before_building(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    with pytest.raises(ConfigError, match=r"no option 'dimm' \(did you mean 'dim'\?\).*dim: int = 2"):
        ek.get_model("hello", dimm=3)
    with pytest.raises(ConfigError, match="no option 'splt'"):
        ek.get_dataset("digits", splt="test")


def test_third_party_model_and_dataset_work(fresh_plugins, monkeypatch, device):
    import torch

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    model = ek.get_model("hello", dim=3).to(device)
    assert isinstance(model, ek.EnergyModel)
    y = torch.zeros(5, 3, device=device)
    e = model(y)
    assert e.shape == (5,) and e.device.type == device.type
    data = ek.get_dataset("hello-blob", n=100, dim=3)
    assert len(data) == 100 and data.y.mean().item() == pytest.approx(1.0, abs=0.15)


def test_aliases_resolve_to_the_same_entry(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    entry = fresh_plugins.get_entry("datasets", "fashion_mnist")
    assert entry.name == "fashion-mnist" and entry.aliases == ("fashion_mnist",)
    assert "fashion_mnist" not in ek.list_datasets()  # listings show canonical names only


def test_model_factory_must_return_an_energy_model(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")

    class Wrong:
        @ek.hookimpl
        def register_models(self, register):
            register("wrong", dict, summary="returns a dict")

    fresh_plugins.register_plugin(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="returned a dict; expected an ek.EnergyModel"):
        ek.get_model("wrong")


def test_listing_imports_neither_torch_nor_model_code():
    """`ebmkit models` and `ek.list_models()` stay cheap: factories are not called."""
    code = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("ignore")
        import ebmkit as ek
        from ebmkit.cli import main
        assert "hello" in ek.list_models()
        assert main(["models"]) == 0
        assert main(["datasets"]) == 0
        assert main(["plugins"]) == 0
        heavy = [m for m in ("torch", "ebmkit_hello.model", "ebmkit.data", "sklearn")
                 if m in sys.modules]
        print("HEAVY", heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


class _AliasClash:
    """Claims 'hello' too; 'hi' is an alias of 'hello.alias' registered before."""

    @ek.hookimpl
    def register_models(self, register):
        register("hello.alias", lambda: None, aliases=("hi",))


class _AliasClashTwo:
    @ek.hookimpl
    def register_models(self, register):
        register("hello.alias", lambda: None)


def test_an_alias_of_a_duplicated_name_raises_duplicate_not_unknown(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    fresh_plugins.register_plugin(_AliasClash(), name="first")
    with pytest.warns(PluginWarning):
        fresh_plugins.register_plugin(_AliasClashTwo(), name="second")
    for name in ("hello.alias", "hi"):
        with pytest.raises(DuplicateNameError, match="'first' and 'second'"):
            ek.get_model(name)


def test_the_registry_is_never_handed_out_half_loaded(fresh_plugins, monkeypatch):
    """A thread that asks while another loads waits for the whole load."""
    import threading
    import time

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    original = fresh_plugins.PluginHost.load

    def slow_load(self):
        time.sleep(0.3)  # the window in which the old code published an empty host
        original(self)

    monkeypatch.setattr(fresh_plugins.PluginHost, "load", slow_load)
    seen: dict[str, list[str]] = {}

    def ask(who):
        seen[who] = ek.list_models()

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    time.sleep(0.1)
    ask("second")
    first.join()
    assert seen["second"] == seen["first"] and "kmeans" in seen["second"]


def test_a_plugin_registered_loss_can_be_named_by_a_strategy(fresh_plugins, monkeypatch):
    import torch

    class Losses:
        @ek.hookimpl
        def register_losses(self, register):
            register("test.doubled_hinge",
                     lambda e_pos, e_neg, margin=1.0: 2 * (margin + e_pos - e_neg).clamp_min(0).mean())

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    fresh_plugins.register_plugin(Losses(), name="losses")
    strategy = ek.strategies.Contrastive(ek.negatives.GaussianNoise(0.3),
                                         loss="test.doubled_hinge", margin=0.5)
    opts = strategy.loss_options
    assert float(strategy.loss(torch.zeros(4), torch.ones(4), **opts)) == 0.0  # 2·[0.5 + 0 − 1]₊
    assert float(strategy.loss(torch.ones(4), torch.zeros(4), **opts)) == 3.0  # 2·[0.5 + 1 − 0]₊
    with pytest.raises(UnknownNameError):
        ek.strategies.Contrastive(ek.negatives.GaussianNoise(0.3), loss="test.no_such_loss")
