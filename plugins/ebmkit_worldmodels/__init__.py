"""Built-in plugin ``ebmkit_worldmodels``: Ha & Schmidhuber's World Models on pixels.

Registers the ``worldmodels`` model (V: ``autoencoder.variational`` on frames, M: a
mixture-density RNN, C: a linear controller trained by CMA-ES) and the ``ebmkit
worldmodels`` command that collects, trains and reports. Registered through the public
hooks; nothing heavy (torch, gymnasium, cma) is imported until a model is built or the
command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

import ebmkit as ek

_PKG = "ebmkit_worldmodels"


@ek.hookimpl
def register_models(register: Any) -> None:
    register("worldmodels", ek.plugins.lazy(f"{_PKG}.model:WorldModel.from_options",
                                            signature=f"{_PKG}.model:WorldModelConfig"),
             summary="World Models: VAE on frames (V), MDN-RNN memory (M), CMA-ES linear "
                     "controller (C)")


@ek.hookimpl
def register_commands(register: Any) -> None:
    register("worldmodels", _setup, summary="World Models on a gymnasium environment's pixels: "
             "collect, train V, M and C, write a report", demo={"args": ["--budget", "tiny"]})


def _setup(parser: argparse.ArgumentParser) -> Any:
    from .cli import setup

    return setup(parser)
