"""Trainer state helpers: RNG capture and restore, tree copies, and checks for checkpoints."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .distributed import Dist

__all__ = ["check_plain", "seed_everything", "clone_tree", "flatten_metric", "gather_rng", "json_roundtrip",
           "local_rng", "restore_rng", "set_local_rng", "to_device"]


def check_plain(obj: Any, where: str) -> None:
    """Raise a ConfigError unless ``obj`` holds only what ``torch.load(weights_only=True)``
    reads."""
    if obj is None or isinstance(obj, (Tensor, bool, int, float, str, torch.dtype, torch.Size)):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ConfigError(f"{where} has a key of type {type(k).__name__}; checkpoints "
                                  f"hold only str or int keys")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise ConfigError(f"{where} is a {type(obj).__name__}; a checkpoint holds only tensors, "
                      f"numbers, strings, lists and dicts (it is loaded with weights_only=True)")


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor in nested dicts / lists / tuples moved to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    return obj


def clone_tree(obj: Any) -> Any:
    """A copy of nested dicts / lists / tuples with every tensor cloned (faster than deepcopy)."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(clone_tree(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj  # immutable
    return copy.deepcopy(obj)


def json_roundtrip(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparing configs."""
    return json.loads(json.dumps(obj))


# --------------------------------------------------------------------------------- RNG
def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every accelerator), numpy and ``random`` with ``seed``.

    Call it before building a model, whose initial weights come from the global RNG:
    ``seed_everything(0); model = ek.get_model(...); ek.Trainer(model, seed=0).fit(data)``
    is the order that repeats bit for bit (``ebmkit train --seed`` does this).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)


def local_rng(device: torch.device, generator: torch.Generator) -> dict[str, Any]:
    """This process's torch RNG states (CPU, the CUDA device in use, the data generator)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "data": generator.get_state()}


def set_local_rng(rng: Mapping[str, Any], device: torch.device, generator: torch.Generator) -> None:
    """Undo to a [`local_rng`][ebmkit.train.state.local_rng] capture."""
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    generator.set_state(rng["data"])


def gather_rng(device: torch.device, generator: torch.Generator, dist: Dist) -> dict[str, Any]:
    """Every rank's torch RNG states (a collective when distributed) and this rank's others.

    ``torch`` and ``cuda`` are lists indexed by rank; the data generator is the same on
    every rank; Python's and numpy's global states are rank 0's.
    """
    local = local_rng(device, generator)
    comm = device if device.type == "cuda" else torch.device("cpu")  # NCCL needs CUDA tensors

    def gather(t: Tensor | None) -> list[Tensor] | None:
        return None if t is None else [g.cpu() for g in dist.all_gather(t.to(comm))]

    state: dict[str, Any] = {"torch": gather(local["torch"]), "cuda": gather(local["cuda"]),
                             "data": local["data"], "python": random.getstate()}
    try:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state()
        # As tensors and numbers: torch.load(weights_only=True) refuses numpy arrays.
        state["numpy"] = {"name": str(name), "keys": torch.from_numpy(keys.astype("int64")),
                          "pos": int(pos), "has_gauss": int(has_gauss),
                          "cached_gaussian": float(cached)}
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return state


def restore_rng(rng: Mapping[str, Any], device: torch.device, generator: torch.Generator,
                dist: Dist) -> None:
    """Restore a [`gather_rng`][ebmkit.train.state.gather_rng] capture on this rank.

    With a different world size than at saving, every rank takes rank 0's torch states.
    """
    def mine(states: list[Tensor] | None) -> Tensor | None:
        if not states:
            return None
        return states[dist.rank] if len(states) == dist.world else states[0]

    torch.set_rng_state(mine(rng["torch"]))
    cuda = mine(rng.get("cuda"))
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)
    generator.set_state(rng["data"])
    if rng.get("python") is not None:
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
    if rng.get("numpy") is not None:
        import numpy as np

        s = rng["numpy"]
        np.random.set_state((s["name"], s["keys"].numpy().astype("uint32"), s["pos"],
                             s["has_gauss"], s["cached_gaussian"]))


# ------------------------------------------------------------------------------ metrics
def flatten_metric(name: str, value: Any, out: dict[str, float]) -> None:
    """Add a metric's computed value to ``out`` as floats (``name/<key>`` for several)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            flatten_metric(f"{name}/{k}", v, out)
    elif isinstance(value, Tensor) and value.numel() == 1:
        out[name] = float(value)
    elif isinstance(value, (int, float)):
        out[name] = float(value)
    elif isinstance(value, Tensor):
        for i, v in enumerate(value.flatten().tolist()):
            out[f"{name}/{i}"] = float(v)
    else:
        raise ConfigError(f"metric {name!r} computed a {type(value).__name__}; expected a "
                          f"tensor, a number or a dict of them")
