"""The core's own plugin, ``ebmkit``: its CLI commands and named engine components.

Registered through the same hooks as every other plugin, so ``ek.plugins.build("losses",
"hinge")``, a config file naming ``"langevin"``, and a third-party plugin all see one
namespace, and a plugin cannot silently replace a core name.
"""

from __future__ import annotations

from typing import Any

from . import commands
from .networks import catalog
from .hookspecs import Register, hookimpl
from .registry import lazy

__all__ = ["register_callbacks", "register_commands", "register_energies", "register_losses", "register_networks",
           "register_samplers",
           "register_strategies"]


register_commands = hookimpl(commands.register_commands)
register_networks = hookimpl(catalog.register_networks)


def _lazy(module: str, attr: str) -> Any:
    """A factory that imports ``module.attr`` (and so torch) only when called or inspected."""
    return lazy(f"{module}:{attr}")


@hookimpl
def register_energies(register: Register) -> None:
    for name, attr, summary in [
        ("reconstruction", "Reconstruction", "C(y, dec(z)): squared error or cross-entropy"),
        ("squared_distance", "SquaredDistance", "‖y − f(x)‖²"),
        ("l1", "L1", "|v|₁ with soft-thresholding prox"),
        ("l2", "L2", "‖v‖²"),
        ("group_l1", "GroupL1", "Σ_g ‖v_g‖₂ with block soft-thresholding prox"),
        ("network", "Network", "A network with one scalar output per sample"),
        ("lambda", "Lambda", "Any function fn(y, x, z) -> [B] as a named term"),
    ]:
        register(name, _lazy("ebmkit.energy", attr), summary=summary)


@hookimpl
def register_callbacks(register: Register) -> None:
    for name, module, attr, summary in [
        ("early_stopping", "ebmkit.callbacks", "EarlyStopping",
         "Stop when a record entry has not improved for `patience` epochs"),
        ("best_checkpoint", "ebmkit.callbacks", "BestCheckpoint",
         "Keep the best model (best.safetensors) beside the last one"),
        ("sample_grid", "ebmkit.callbacks", "SampleGrid",
         "Samples / reconstructions / completions every N epochs, and a summary"),
        ("csv", "ebmkit.loggers", "CSV", "The epoch records as metrics.csv"),
        ("tensorboard", "ebmkit.loggers", "TensorBoard",
         "TensorBoard: scalars, e_pos vs e_neg histograms, per-term energies, pictures"),
    ]:
        register(name, _lazy(module, attr), summary=summary)


@hookimpl
def register_samplers(register: Register) -> None:
    register("langevin", _lazy("ebmkit.samplers", "Langevin"),
             summary="Langevin dynamics / SGLD on ∇E, with clipping and box clamping")
    register("hmc", _lazy("ebmkit.samplers", "HMC"),
             summary="Hamiltonian Monte Carlo: leapfrog + Metropolis, reports acceptance")
    register("replay_buffer", _lazy("ebmkit.samplers", "ReplayBuffer"),
             summary="Device-resident persistent chains with reinitialisation")


@hookimpl
def register_losses(register: Register) -> None:
    for name, summary in [
        ("energy", "E₊: push the energy of data down (no contrast)"),
        ("perceptron", "E₊ − min E₋"),
        ("hinge", "[m + E₊ − E₋]₊"),
        ("log", "log(1 + exp(E₊ − E₋))"),
        ("square_square", "E₊² + [m − E₋]₊²"),
        ("square_exp", "E₊² + γ·exp(−E₋)"),
        ("nll", "InfoNCE: E₊ + T·log Σ exp(−E/T) over the positive and negatives"),
    ]:
        register(name, _lazy("ebmkit.losses", name), summary=summary)


@hookimpl
def register_strategies(register: Register) -> None:
    for name, attr, summary in [
        ("architectural", "Architectural", "Minimise the free energy; capacity is limited by the architecture"),
        ("regularized", "Regularized", "Energy plus a regulariser on z that limits the volume of low energy"),
        ("contrastive", "Contrastive", "Push data down and negatives up with a contrastive loss"),
        ("contrastive_divergence", "ContrastiveDivergence", "Maximum likelihood with MCMC negatives (CD-k, persistent CD)"),
        ("denoising_score_matching", "DenoisingScoreMatching", "Match −∇E to the score of noised data"),
    ]:
        register(name, _lazy("ebmkit.strategies", attr), summary=summary)
