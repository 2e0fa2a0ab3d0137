"""The run directory's checkpoint: what ``trainer.pt`` holds, one atomic commit per epoch,
and the checks made when a run resumes.

Functions of a [`Trainer`][ebmkit.train.trainer.Trainer]: a crash at any point of ``save`` leaves
either the previous checkpoint or this one, whole (``ebmkit.checkpoint.commit``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch

from .. import checkpoint as ckpt
from ..errors import ConfigError
from . import parallel
from .state import check_plain, gather_rng, json_roundtrip, restore_rng, to_device

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["TRAINER_FORMAT", "restore", "save", "trainer_state"]

TRAINER_FORMAT = "ebmkit.trainer/1"


def _rank_file(trainer: Trainer, step: int) -> Any:
    """This rank's strategy-state file for the checkpoint of ``step``."""
    assert trainer.checkpoint_dir is not None
    return trainer.checkpoint_dir / f"strategy-rank{trainer.dist.rank}-step{step}.pt"


def _save_rank_state(trainer: Trainer, mine: dict[str, Any]) -> None:
    """Distributed: each rank writes its own strategy state (replay buffer, queue, memory
    bank) to its own file in its own ``checkpoint_dir``, so no rank's state passes through
    rank 0 and nodes without a shared filesystem keep theirs. Named by step: the file of
    the last committed checkpoint stays until the next commit, so a crash between the
    two leaves a consistent pair."""
    if not (trainer.dist.enabled and mine):
        return
    path = _rank_file(trainer, trainer.step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{trainer.dist.rank}")
    torch.save({"step": trainer.step, "state": to_device(mine, torch.device("cpu"))}, tmp)
    tmp.replace(path)


def _drop_old_rank_states(trainer: Trainer) -> None:
    """After a commit: this rank's files of earlier checkpoints go."""
    d = trainer.checkpoint_dir
    if d is None or not trainer.dist.enabled or not d.is_dir():
        return
    keep = _rank_file(trainer, trainer.step).name
    for old in d.glob(f"strategy-rank{trainer.dist.rank}-step*.pt"):
        if old.name != keep:
            old.unlink(missing_ok=True)


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """What ``trainer.pt`` holds: plain tensors, numbers and strings only.

    ``strategy`` is rank 0's strategy state; in a distributed run every rank also writes
    its own to ``strategy-rank{r}-step{step}.pt`` (persistent chains, queues: each rank
    resumes with its own)."""
    mine = trainer._strategy_state()
    state = {
        "format": TRAINER_FORMAT,
        "ebmkit_version": __import__("ebmkit").__version__,
        "epoch": trainer.epoch,
        "step": trainer.step,
        "optimizer_name": trainer.optimizer_name,
        # FSDP: the full state, keyed by parameter name, gathered to rank 0 (a collective)
        "optimizer": (None if trainer.optimizer is None
                      else parallel.full_optimizer_state(trainer.model, trainer.optimizer)
                      if trainer.mode == "fsdp" else trainer.optimizer.state_dict()),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "strategy": mine,  # rank 0's; the others' are in their own files (see save)
        "rng": gather_rng(trainer.device, trainer._gen, trainer.dist),
        "history": trainer.history,
        "lr": [float(g["lr"]) for g in trainer.optimizer.param_groups] if trainer.optimizer else [],
        "base_lrs": list(trainer._base_lrs),  # what the schedule scales (lowered by the guard)
        "world_size": trainer.dist.world,
        "callbacks": trainer.callbacks.state_dict(),  # EarlyStopping's wait, the best value, …
    }
    check_plain(state["strategy"], "strategy.state_dict()")
    check_plain(state["callbacks"], "the callbacks' state_dict()")
    return state

def save(trainer: Trainer) -> None:
    """Commit this epoch's checkpoint to the run directory (all ranks call it)."""
    d = trainer.checkpoint_dir
    if d is None:
        return
    state = trainer_state(trainer)  # a collective: every rank takes part
    _save_rank_state(trainer, state["strategy"])  # before rank 0 commits the checkpoint
    trainer.dist.barrier(trainer.device)
    weights = parallel.full_state_dict(trainer.model, trainer.mode)  # a collective under FSDP
    if trainer.dist.main:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ConfigError(f"cannot create checkpoint_dir {str(d)!r}: {exc}") from exc
        header = ckpt.model_header(trainer.model)
        meta = {"ebmkit.epoch": str(trainer.epoch), "ebmkit.step": str(trainer.step)}
        config = trainer.config()
        lines = "".join(json.dumps(r) + "\n" for r in trainer.history)
        # One commit: a crash leaves either the previous checkpoint or this one, whole.
        # metrics.jsonl is rewritten from the history, so a crash never duplicates a line.
        ckpt.commit(d, {
            "model.safetensors": lambda p: ckpt.write_weights(trainer.model, p, meta,
                                                              state=weights),
            "model.json": lambda p: p.write_text(ckpt.json_text(header), encoding="utf-8"),
            "config.json": lambda p: p.write_text(ckpt.json_text(config), encoding="utf-8"),
            "metrics.jsonl": lambda p: p.write_text(lines, encoding="utf-8"),
            "trainer.pt": lambda p: torch.save(state, p),
        })
    trainer.dist.barrier(trainer.device)
    _drop_old_rank_states(trainer)

def restore(trainer: Trainer) -> None:
    """Load the run directory's checkpoint into the trainer, checking it fits.

    Rank 0 reads the files and broadcasts what it read (and any error, raised on every
    rank), so nodes without a shared filesystem resume: only rank 0's node needs the
    run directory."""
    d = trainer.checkpoint_dir
    assert d is not None
    trainer.dist.barrier(trainer.device)  # rank 0 has recovered the directory
    payload: Any = None
    if trainer.dist.main:
        try:
            payload = _read(trainer)
        except Exception as exc:  # noqa: BLE001 - raised on every rank below
            payload = exc
    if trainer.dist.enabled:
        box = [payload]
        torch.distributed.broadcast_object_list(box, src=0)
        payload = box[0]
    if isinstance(payload, BaseException):
        raise payload
    state, weights, meta = payload
    path = d / "trainer.pt"
    if trainer.mode == "fsdp":  # full weights and optimizer state, sharded from rank 0
        parallel.load_full(trainer.model, weights, trainer.optimizer, state["optimizer"])
    else:
        ckpt.check_fit(trainer.model, {k: tuple(v.shape) for k, v in weights.items()},
                       d / "model.safetensors")
        trainer.model.load_state_dict(weights, strict=True)
    _apply(trainer, state, meta, path)


def _read(trainer: Trainer) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Rank 0: ``(trainer.pt's state, the weights, their metadata)``, checked."""
    d = trainer.checkpoint_dir
    assert d is not None
    path = d / "trainer.pt"
    if not path.exists():
        raise ckpt.CheckpointNotFoundError(
            f"resume=True but {str(d)!r} holds no checkpoint (no trainer.pt); expected the "
            f"checkpoint_dir of an earlier run, or train without resume first")
    header = ckpt.read_model_header(d / "model.json")
    mine = {"name": trainer.model.name, "config": json_roundtrip(trainer.model.config())}
    if header["name"] != mine["name"] or json_roundtrip(header["config"]) != mine["config"]:
        raise ckpt.CheckpointError(
            f"the checkpoint in {d} is of model {header['name']!r} with config "
            f"{header['config']}; this trainer's model is {mine['name']!r} with config "
            f"{mine['config']}. Build the same model to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ckpt.CheckpointError(f"{path} cannot be loaded with weights_only=True: "
                                   f"{exc}") from exc
    if not isinstance(state, dict) or state.get("format") != TRAINER_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ckpt.CheckpointError(f"{path}: expected format {TRAINER_FORMAT!r}, got {got!r}")
    weights, meta = ckpt.read_weights(d / "model.safetensors")
    return state, weights, meta


def _apply(trainer: Trainer, state: dict[str, Any], meta: dict[str, str], path: Any) -> None:
    """Every rank: the checks and the restore of what rank 0 read (the weights are in)."""
    d = trainer.checkpoint_dir
    if meta.get("ebmkit.step") != str(state["step"]):
        raise ckpt.CheckpointError(
            f"the checkpoint in {d} is inconsistent: model.safetensors is from step "
            f"{meta.get('ebmkit.step')}, trainer.pt from step {state['step']}")
    if (state["optimizer"] is None) != (trainer.optimizer is None):
        raise ckpt.CheckpointError(f"{path}: the checkpoint's optimizer state does not fit "
                                   f"this model's trainable parameters")
    if trainer.optimizer is not None and trainer.mode != "fsdp":
        if state.get("optimizer_name") != trainer.optimizer_name:
            raise ckpt.CheckpointError(
                f"{path} was written with optimizer {state.get('optimizer_name')!r}; this "
                f"trainer uses {trainer.optimizer_name!r}")
        # The implementation (fused, foreach) is this trainer's choice for this device, not
        # the checkpoint's: a run written on CUDA may resume where no fused kernel exists.
        impl = [{k: g[k] for k in ("fused", "foreach") if k in g}
                for g in trainer.optimizer.param_groups]
        try:
            trainer.optimizer.load_state_dict(state["optimizer"])
            for group, keep in zip(trainer.optimizer.param_groups, impl):
                group.update(keep)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ckpt.CheckpointError(f"{path}: the optimizer state does not fit: {exc}"
                                       ) from exc
    if trainer.scaler is not None and state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    trainer._load_strategy_state(to_device(_my_strategy_state(trainer, state), trainer.device))
    restore_rng(state["rng"], trainer.device, trainer._gen, trainer.dist)
    trainer.epoch, trainer.step = int(state["epoch"]), int(state["step"])
    # Checkpoints from before schedules existed ran at a constant rate: their lr is the base.
    trainer._base_lrs = [float(v) for v in state.get("base_lrs", state.get("lr", []))]
    trainer.history = [dict(r) for r in state["history"]]
    trainer.callbacks.load_state_dict(state.get("callbacks"))


def _my_strategy_state(trainer: Trainer, state: dict[str, Any]) -> Any:
    """This rank's saved strategy state: its own file when there is one for this checkpoint
    (distributed runs), else (one process, or a checkpoint of another world size, or a node
    that lost its files) what ``trainer.pt`` holds: rank 0's, or every rank's in checkpoints
    written before the per-rank files."""
    import warnings

    if trainer.dist.enabled:
        own = _rank_file(trainer, int(state["step"]))
        if own.is_file():
            saved = torch.load(own, map_location="cpu", weights_only=True)
            return saved["state"]
    ranks = state.get("strategy_ranks")  # checkpoints before per-rank files
    if ranks and len(ranks) == trainer.dist.world:
        return ranks[trainer.dist.rank]
    if trainer.dist.rank != 0 and (ranks or state.get("strategy")):
        warnings.warn(f"rank {trainer.dist.rank} finds no strategy state of its own for step "
                      f"{state['step']} in {trainer.checkpoint_dir}; it resumes with rank 0's",
                      stacklevel=3)
        if ranks:
            return ranks[trainer.dist.rank % len(ranks)]
    return state.get("strategy")
