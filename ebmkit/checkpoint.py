"""Atomic saving and safe loading: safetensors for tensors, JSON for everything else.

Nothing here unpickles anything. A model is stored under one *path prefix* ``p``:

- ``p.safetensors``: the state dict (tied or shared tensors are stored once; the aliases are
  recorded in the file's metadata and restored on load);
- ``p.json``: ``{"format": "ebmkit.model/1", "name": ..., "config": ..., "ebmkit_version": ...}``,
  enough for [`load`][ebmkit.checkpoint.load] to rebuild the model through the plugin
  registry with ``ek.get_model(name, **config)``.

Every file is written atomically: to a temporary file in the same directory, flushed and
fsynced, then renamed over the target with ``os.replace`` (and the directory fsynced), so a
reader sees either the old file or the new one, never half of one.

A trainer checkpoint spans several files that must change together.
[`commit`][ebmkit.checkpoint.commit] writes them all to temporary files first, then records the set of renames in a small
journal (written atomically: the commit point), then performs the renames and deletes the
journal. [`recover`][ebmkit.checkpoint.recover] finishes an interrupted commit (or discards
one that never reached its commit point), so a crash at any moment leaves either the old
checkpoint or the new one, complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import (  # noqa: F401 (re-exported; split out by idea)
    _TEMP,
    COMMIT_FORMAT,
    JOURNAL,
    CheckpointError,
    CheckpointNotFoundError,
    _fsync_dir,
    _fsync_file,
    _roll_forward,
    _temp_name,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit,
    json_text,
    recover,
)
from .errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import torch

    from .model import EnergyModel

__all__ = [
    "MODEL_FORMAT",
    "CheckpointError",
    "CheckpointNotFoundError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "commit",
    "json_text",
    "load",
    "load_weights",
    "model_header",
    "read_model_header",
    "read_weights",
    "recover",
    "save_model",
    "write_weights",
]

#: The ``format`` of a model's JSON header; the number is bumped on incompatible changes.
MODEL_FORMAT = "ebmkit.model/1"
_ALIASES_KEY = "ebmkit.aliases"
_LIST_LIMIT = 10  # names listed in one error message before "… and N more"


# ------------------------------------------------------------------------- model files
def _prefix(path_prefix: str | os.PathLike[str]) -> Path:
    """Accept ``p``, ``p.safetensors``, ``p.json`` or a run directory holding ``model.*``."""
    p = Path(path_prefix)
    if p.suffix in (".safetensors", ".json"):
        return p.with_suffix("")
    if p.is_dir() and (p / "model.json").exists():
        return p / "model"
    return p


def _files(prefix: Path) -> tuple[Path, Path]:
    return prefix.with_name(prefix.name + ".safetensors"), prefix.with_name(prefix.name + ".json")


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LIST_LIMIT])
    more = len(names) - _LIST_LIMIT
    return shown + (f" … and {more} more" if more > 0 else "")


def model_header(model: EnergyModel) -> dict[str, Any]:
    """The JSON header of ``model``: format, registry name, config and ebmkit version.

    Raises:
        ConfigError: the model has no ``name`` or its ``config()`` is missing or not JSON-able.
    """
    from . import __version__

    name = getattr(model, "name", "")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{type(model).__name__} has no registry name: set the class attribute "
                          f"`name` (e.g. name = 'kmeans') so ek.load can rebuild it")
    try:
        config = model.config()
    except NotImplementedError as exc:
        raise ConfigError(f"{type(model).__name__}.config() is not implemented; saving needs "
                          f"the options that rebuild the model with "
                          f"ek.get_model({name!r}, **config)") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{type(model).__name__}.config() must return a dict, "
                          f"got {type(config).__name__}")
    try:
        json.dumps(config, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{type(model).__name__}.config() must be JSON-able (numbers, strings, "
                          f"lists, dicts): {exc}") from exc
    return {"format": MODEL_FORMAT, "name": name, "config": config, "ebmkit_version": __version__}


def _deduplicated(
        state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Split a state dict into tensors to store and ``alias -> stored name`` for tied ones.

    safetensors refuses tensors that share memory. Exact aliases (tied weights: same
    storage, offset, shape, stride and dtype) are stored once; other overlapping views are
    stored as contiguous copies.
    """
    stored: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, t in state.items():
        t = t.detach()
        if t.numel() > 0:
            key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                   t.stride(), t.dtype)
            if key in seen:
                aliases[name] = seen[key]
                continue
            seen[key] = name
        stored[name] = t
    per_storage: dict[tuple[Any, int], int] = {}
    for t in stored.values():
        if t.numel() > 0:
            k = (t.device, t.untyped_storage().data_ptr())
            per_storage[k] = per_storage.get(k, 0) + 1
    for name, t in stored.items():
        shared = t.numel() > 0 and per_storage[(t.device, t.untyped_storage().data_ptr())] > 1
        if shared or not t.is_contiguous():
            stored[name] = t.contiguous().clone()
    return stored, aliases


def write_weights(model: torch.nn.Module, path: str | os.PathLike[str],
                  metadata: Mapping[str, str] | None = None, *,
                  state: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write ``model.state_dict()`` (or ``state``, e.g. an FSDP model's gathered full state
    dict) to ``path`` in safetensors format (not atomic by itself)."""
    import safetensors.torch

    stored, aliases = _deduplicated(dict(model.state_dict() if state is None else state))
    meta = {"format": "pt", "ebmkit.format": MODEL_FORMAT, _ALIASES_KEY: json.dumps(aliases)}
    meta.update(metadata or {})
    # Looked up at call time so tests can make the writer fail.
    safetensors.torch.save_file(stored, str(path), metadata=meta)


def save_model(model: EnergyModel, path_prefix: str | os.PathLike[str],
               metadata: Mapping[str, str] | None = None) -> None:
    """Save ``model`` as ``p.safetensors`` + ``p.json``, both in one atomic commit.

    This is what ``model.save(p)`` does. The two files change together
    ([`commit`][ebmkit.checkpoint.commit]): a crash at any point leaves the old pair or the
    new pair, never the weights of one save with the header of another. Missing parent
    directories are created.

    Args:
        model: The model; needs a registry ``name`` and a JSON-able ``config()``.
        path_prefix: ``p``; a ``.safetensors`` or ``.json`` suffix is ignored.
        metadata: Extra string metadata for the safetensors header.
    """
    header = model_header(model)  # fail on a bad config before touching the disk
    prefix = _prefix(path_prefix)
    weights, meta = _files(prefix)
    if prefix.parent.exists() and not prefix.parent.is_dir():
        raise ConfigError(f"cannot save to {prefix}: {prefix.parent} is a file, not a directory")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    commit(prefix.parent, {
        weights.name: lambda tmp: write_weights(model, tmp, metadata),
        meta.name: lambda tmp: tmp.write_text(json_text(header), encoding="utf-8"),
    })


def read_model_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a model's JSON header (``p.json``).

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: it is not valid JSON or lacks ``format``, ``name`` or ``config``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"missing model header {path}: a saved model is "
                                      f"{path.with_suffix('.safetensors').name} + {path.name}")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(header).__name__}")
    missing = [k for k in ("format", "name", "config") if k not in header]
    if missing:
        raise CheckpointError(f"{path}: expected the keys 'format', 'name' and 'config', missing "
                              f"{', '.join(repr(k) for k in missing)}; found {sorted(header)}")
    fmt = header["format"]
    if not isinstance(fmt, str) or not fmt.startswith("ebmkit.model/"):
        raise CheckpointError(f"{path}: format {fmt!r} is not an ebmkit model (expected "
                              f"{MODEL_FORMAT!r})")
    if fmt != MODEL_FORMAT:
        raise CheckpointError(f"{path}: format {fmt!r} is not supported by ebmkit "
                              f"(this version reads {MODEL_FORMAT!r}); upgrade ebmkit")
    if not isinstance(header["name"], str) or not isinstance(header["config"], dict):
        raise CheckpointError(f"{path}: 'name' must be a string and 'config' an object, got "
                              f"{type(header['name']).__name__} and "
                              f"{type(header['config']).__name__}")
    return header


def _read_safetensors(path: str | os.PathLike[str], device: str,
                      read: Callable[[Any, str], Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``({name: read(file, name)}, metadata)`` for every tensor of a safetensors file, tied
    aliases restored (each alias gets its target's value).

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: it is not a readable safetensors file, or its aliases are corrupt.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"missing weights file {path}")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            values = {k: read(f, k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        aliases = json.loads(metadata.get(_ALIASES_KEY, "{}"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: corrupt {_ALIASES_KEY} metadata: {exc}") from exc
    for alias, target in aliases.items():
        if target not in values:
            raise CheckpointError(f"{path}: tied tensor {alias!r} refers to {target!r}, which "
                                  f"the file does not hold")
        values[alias] = values[target]
    return values, metadata


def read_weights(
        path: str | os.PathLike[str],
        device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: ``(state dict with tied aliases restored, metadata)``.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: it is not a readable safetensors file.
    """
    return _read_safetensors(path, str(device), lambda f, k: f.get_tensor(k))


def load_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> dict[str, str]:
    """Load a safetensors state dict into ``model`` strictly, with errors that name the keys.

    Returns:
        The file's metadata.

    Raises:
        CheckpointError: missing or unexpected keys, or shapes that do not match, each named.
    """
    state, metadata = read_weights(path)
    check_fit(model, {k: tuple(v.shape) for k, v in state.items()}, path)
    model.load_state_dict(state, strict=True)
    return metadata


def check_fit(model: torch.nn.Module, shapes: Mapping[str, tuple[int, ...]],
              path: str | os.PathLike[str]) -> None:
    """Raise a CheckpointError naming missing, unexpected and mis-shaped keys when the
    tensors of ``path`` (their ``shapes``) do not fit ``model``'s state dict."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [f"{k!r}: file {list(shapes[k])}, model {list(v.shape)}"
             for k, v in expected.items() if k in shapes and tuple(shapes[k]) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing from the file: {_listing(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_listing(unexpected)}")
        if wrong:
            parts.append("shape mismatch: " + "; ".join(wrong[:_LIST_LIMIT]))
        raise CheckpointError(f"the weights in {path} do not fit {type(model).__name__}: "
                              + "; ".join(parts)
                              + ". Was it saved from a model with another config?")


def weight_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a safetensors file, tied aliases included, read from its
    header alone (no tensor is read).

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: it is not a readable safetensors file.
    """
    shapes, _ = _read_safetensors(path, "cpu", lambda f, k: tuple(f.get_slice(k).get_shape()))
    return shapes


def load(path_prefix: str | os.PathLike[str],
         map_location: str | torch.device | None = None, **modules: torch.nn.Module) -> EnergyModel:
    """Rebuild a saved model through the registry and load its weights. No pickle is involved.

    ``ek.load(p)`` reads ``p.json`` (name and config), builds the model with
    ``ek.get_model(name, **config)`` — so the plugin that defines it must be installed — and
    loads ``p.safetensors`` into it.

    Args:
        path_prefix: ``p`` as given to ``model.save(p)``; ``p.safetensors``, ``p.json`` or a
            run directory holding ``model.*`` work too.
        map_location: Device to put the model on; default: where it was built (the CPU).
        **modules: The ``nn.Module`` of each network slot that held a module passed from
            Python when the model was saved (``model.json`` records only its class name):
            ``ek.load(p, encoder=MyEncoder())``. Its weights come from the file.

    The model is first built on PyTorch's ``meta`` device (shapes only, no memory) and its
    state dict compared with the shapes in the safetensors header; memory is allocated only
    when they agree, so a header that asks for a huge model fails without allocating it.
    (A family that cannot be built on ``meta`` is compared after the real build. A family's
    construction should not load and cache data when its saved config holds what it needs:
    under ``meta`` the cache would hold meta tensors.)

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointNotFoundError: ``p.json`` or ``p.safetensors`` is missing (named).
        CheckpointError: a malformed header, or weights that do not fit the model.
        UnknownNameError: no installed plugin registers the saved model name.
        ConfigError: a slot saved as a module passed from Python, without its module in
            ``modules`` (the error names the slot), or a module for an unknown slot.
    """
    prefix = _prefix(path_prefix)
    weights, meta = _files(prefix)
    if (prefix.parent / JOURNAL).exists():
        recover(prefix.parent)  # a save cut short: finish it (or drop it) before reading
    header = read_model_header(meta)
    if not weights.exists():
        raise CheckpointNotFoundError(f"missing weights file {weights} (its header {meta.name} "
                                      f"is there); a saved model is {weights.name} + {meta.name}")
    import torch

    from .plugins import get_model

    config = _with_modules(header, meta, modules)
    shapes = weight_shapes(weights)
    probe = None
    try:
        # plugins and the model's module are imported before the meta device is the
        # default, so nothing they create at import time is a meta tensor
        _import_factory(header["name"])
        with torch.device("meta"):
            probe = get_model(header["name"], **config)
    except (UnknownNameError, ConfigError):
        pass  # raised again, with context, by the real build below
    except Exception:  # noqa: BLE001 - a family that cannot be built on meta
        pass
    if probe is not None:
        check_fit(probe, shapes, weights)
        del probe
    try:
        model = get_model(header["name"], **config)
    except UnknownNameError as exc:
        exc.args = (f"cannot load {meta}: {exc.args[0]}",)
        raise
    except ConfigError as exc:
        raise CheckpointError(f"cannot rebuild the model saved in {meta}: {exc}") from exc
    load_weights(model, weights)
    if map_location is not None:
        model.to(map_location)
    return model.eval()


def _import_factory(name: str) -> None:
    """Load the plugins and import the module of model ``name``'s (lazy) factory."""
    from .plugins import get_entry
    from .registry import LazyFactory

    factory = get_entry("models", name).factory
    if isinstance(factory, LazyFactory):
        LazyFactory.resolve(factory.target)


def _with_modules(header: Mapping[str, Any], meta: Path,
                  modules: Mapping[str, Any]) -> dict[str, Any]:
    """The saved config with each slot saved as an instance replaced by the given module.

    Raises:
        CheckpointError: a slot saved as a module passed from Python and not given (every
            such slot is named, with the call that loads it), or a module for a slot the
            saved model does not have, or something that is not an ``nn.Module``.
    """
    import torch

    from .config import INSTANCE_KEY, is_instance_record

    config = dict(header["config"])
    for slot, module in modules.items():
        if slot not in config:
            raise CheckpointError(
                f"ek.load: the model saved in {meta} ({header['name']!r}) has no slot "
                f"{slot!r}; its options are {', '.join(sorted(config))}")
        if not isinstance(module, torch.nn.Module):
            raise CheckpointError(f"ek.load: {slot}= must be an nn.Module (the network of that "
                                  f"slot), got {type(module).__name__}")
        config[slot] = module
    needed = {k: v[INSTANCE_KEY] for k, v in config.items() if is_instance_record(v)}
    if needed:
        call = ", ".join(f"{k}={str(v).rpartition('.')[2]}(...)" for k, v in needed.items())
        raise CheckpointError(
            f"cannot load {meta}: the model {header['name']!r} was saved with "
            + ", ".join(f"slot {k!r} holding a {v}" for k, v in needed.items())
            + " passed from Python; the file holds the weights but never code, so pass the "
            f"module(s), built as when saving: ek.load(p, {call})")
    return config
