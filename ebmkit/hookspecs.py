"""The hooks a plugin implements.

Every hook takes a single argument, ``register``: a callable bound to one kind of thing
(models, datasets, …) and to the plugin being loaded. A plugin calls it once per name::

    import ebmkit as ek

    @ek.hookimpl
    def register_models(register):
        def build(dim: int = 2, **kw):
            from .model import HelloEnergy      # heavy imports deferred
            return HelloEnergy(dim=dim, **kw)
        register("hello", build, summary="A toy quadratic energy")

Factories are registered, never built objects: listing what is installed must stay cheap,
so importing a plugin's top-level module should not import its model code (nor torch).

This module imports nothing heavy: ``ebmkit models`` loads it without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pluggy

__all__ = ["PROJECT", "Register", "hookimpl", "hookspec"]

PROJECT = "ebmkit"

#: Marker for hook specifications (used by ebmkit itself).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations: decorate your plugin's ``register_*`` functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The ``register`` callable every hook receives.

    Args:
        name: The public name, e.g. ``"kmeans"`` or ``"autoencoder.denoising"``. Lower case,
            dots separate a family from its variants.
        factory: A callable that builds the thing; keyword arguments are its options.
        summary: One line shown by ``ebmkit models`` and the docs catalogue. Defaults to the
            first line of the factory's docstring.
        aliases: Extra names that resolve to the same factory.
        demo: For models, a recipe that ``ebmkit demo`` trains on embedded data:
            ``{"data": "rings", "epochs": 20, "options": {...}, "batch_size": 256, "lr": 1e-3}``
            (only ``data`` is required).
        recipes: For models, recipes chosen by the data ``ebmkit train MODEL --data D`` is
            given, keyed by a data set's name (``"fashion-mnist"``) or by a data kind
            (``"images"`` of any size, ``"vectors"``, ``"tokens"``), each a dict like
            ``demo``'s without ``data``/``tour``:
            ``{"fashion-mnist": {"epochs": 15, "batch_size": 256}, "images": {...}}``.
            The name wins over the kind, the kind over ``demo``'s own data set; see
            [`choose_recipe`][ebmkit.runs.choose_recipe].

    Raises:
        PluginError: If ``factory`` is not callable or ``name`` is malformed or repeated within
            the same plugin (reported against the plugin; strict mode raises).
    """

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        summary: str = "",
        aliases: Sequence[str] = (),
        demo: Mapping[str, Any] | None = None,
        recipes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None: ...


@hookspec
def register_models(register: Register) -> None:
    """Register energy-model families.

    Each factory takes keyword options and returns an ``ek.EnergyModel``;
    ``ek.get_model(name, **options)`` calls it and ``ek.load`` rebuilds saved models with it
    (so ``factory(**model.config())`` must reproduce the model).

    Args:
        register: Call ``register(name, factory, summary=..., aliases=...)`` once per model.
    """


@hookspec
def register_energies(register: Register) -> None:
    """Register energy terms usable by name (e.g. from a config file).

    Args:
        register: Call ``register(name, factory, summary=...)``; the factory returns an
            ``ek.energies.Energy``.
    """


@hookspec
def register_samplers(register: Register) -> None:
    """Register samplers (Langevin, HMC, …) usable by name.

    Args:
        register: Call ``register(name, factory, summary=...)``; the factory returns an object
            with ``sample(energy, init) -> Tensor``.
    """


@hookspec
def register_strategies(register: Register) -> None:
    """Register training strategies usable by name.

    Args:
        register: Call ``register(name, factory, summary=...)``; the factory returns a
            callable ``strategy(model, batch) -> StepOutput``.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register losses over energies.

    Args:
        register: Call ``register(name, fn, summary=...)`` where ``fn(e_pos, e_neg, **options)``
            returns a scalar loss.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets that load offline.

    Args:
        register: Call ``register(name, factory, summary=...)``; the factory takes options
            such as ``split="train"`` and returns a ``torch.utils.data.Dataset``. It must not
            download anything.
    """


@hookspec
def register_networks(register: Register) -> None:
    """Register networks (encoders, decoders, energy nets, backbones) usable by name.

    A family's network slots (``encoder=``, ``generator=``, …) take these names, and
    ``ek.get_network(name, in_shape=..., out_shape=...)`` builds one.

    Args:
        register: Call ``register(name, factory, summary=...)``. The factory takes the
            keyword arguments ``in_shape`` and ``out_shape`` (tuples of ints, the batch
            excluded) plus its own options, and returns an ``nn.Module`` mapping
            ``[B, *in_shape]`` to ``[B, *out_shape]`` (``out_shape=()`` gives ``[B]``).
    """


@hookspec
def register_callbacks(register: Register) -> None:
    """Register training callbacks (and loggers) usable by name.

    ``ebmkit train --callback NAME --set-callback key=value`` and
    ``ek.callbacks.build_callback(name, **options)`` build them.

    Args:
        register: Call ``register(name, factory, summary=...)``; the factory takes keyword
            options and returns an object with any of ``on_fit_start(trainer)``,
            ``on_epoch_end(trainer, record)``, ``on_fit_end(trainer)`` (see
            [`ebmkit.callbacks`][ebmkit.callbacks]), and ``state_dict`` /
            ``load_state_dict`` when it has state to resume.
    """


@hookspec
def register_commands(register: Register) -> None:
    """Register sub-commands of the ``ebmkit`` command line.

    Args:
        register: Call ``register(name, setup, summary=...)``. ``setup(parser)`` receives an
            ``argparse.ArgumentParser`` to add arguments to and returns the function that runs
            the command: ``run(args: argparse.Namespace) -> int | None``. With
            ``demo={"args": [...]}`` (a short run), ``ebmkit demo`` runs the command with
            these arguments plus ``--out DIR`` and shows the ``DIR/report.md`` it writes.
    """
