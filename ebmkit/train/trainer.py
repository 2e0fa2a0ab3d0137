"""``Trainer``: the loop, devices, AMP, distributed runs, checkpoints and the divergence guard."""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import checkpoint as ckpt
from ..errors import ConfigError
from ..model import EnergyModel, resolve_strategy
from ..strategies import StepOutput
from . import epoch, guard, parallel, rundir
from ..callbacks import Callbacks
from .batching import make_source
from .distributed import Dist, setup
from .guard import DivergenceError
from .monitor import EpochMonitor
from .options import (
    build_optimizer,
    gpu_switches,
    number,
    positive_int,
    resolve_amp,
    resolve_device,
)
from .evaluation import run_metrics
from .schedule import Schedule

__all__ = ["DivergenceError", "Trainer"]

log = logging.getLogger("ebmkit.train")

RUN_FORMAT = "ebmkit.run/1"
# Record keys of the trainer's own; a strategy log with one of these names gets a prefix.

class Trainer:
    """Train an [`EnergyModel`][ebmkit.model.EnergyModel] with a strategy.

    One loop for every family: batches go to the device, the strategy turns each into a
    loss (``strategy(model, batch) -> StepOutput``), the optimizer steps. Losses and logs
    stay on the device as tensors and are read back every ``check_every`` steps and at the
    end of each epoch, never per step.

    Args:
        model: The model to train (moved to ``device``).
        strategy: How to shape the energy; None uses ``model.default_strategy()``.
        lr: Learning rate: the base rate of every parameter group, which ``schedule`` scales.
        epochs: Total epochs; ``fit`` trains until this many are done (counting resumed ones).
        batch_size: Samples per step and per process.
        device: ``"auto"`` (CUDA, else MPS, else CPU), or any torch device string.
        checkpoint_dir: Where to write a checkpoint after every epoch; None for none.
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (PyTorch's fused implementation where
            the device has one), or a callable ``params -> Optimizer`` (which then sets its
            own lr and weight decay).
        weight_decay: Passed to the named optimizers.
        schedule: The learning rate over the run (see
            [`Schedule`][ebmkit.train.schedule.Schedule]): ``"constant"``, ``"cosine"``
            (decayed to 0 at the last step of ``epochs``) or ``"linear"``. Any but constant
            needs data with a ``len()``. It is a function of the step, so resuming and the
            guard's retries land on the same rates.
        warmup: Steps of linear warm-up from ``lr / warmup`` to ``lr`` before the schedule.
        grad_clip: Clip the gradients' global 2-norm to this value (and log ``grad_norm``,
            the norm before clipping; not with fp16's grad scaler, whose skipped steps have
            an infinite norm).
        seed: At the start of ``fit`` (not when resuming): seeds torch (CPU and every
            accelerator), numpy and ``random`` with ``seed + rank``, and the generator that
            shuffles the data with ``seed``. It does **not** cover what happened before:
            the model's initial weights come from the RNG state when it was built, so seed
            before building it (``torch.manual_seed(s)``; the CLI's ``--seed`` does) for a
            run that repeats bit for bit. Nor does it make non-deterministic kernels
            deterministic (``torch.use_deterministic_algorithms``). None leaves the global
            RNGs alone and draws the data order from fresh entropy (rank 0's, shared, so
            distributed shards stay disjoint).
        amp: Mixed precision: ``True`` (bf16 where CUDA supports it, else fp16 with a grad
            scaler; no effect off CUDA), ``"bf16"``, ``"fp16"`` (with a grad scaler) or
            ``False``. The strategy's step runs under autocast; latent solvers and samplers
            switch it off inside and iterate in float32; a run with no trainable
            parameters (closed-form updates) runs without it.
        progress: Show a tqdm bar; None shows one only when stderr is a terminal.
        resume: Continue exactly from the checkpoint in ``checkpoint_dir`` (weights,
            optimizer, RNG states, the strategy's state, history, learning rate).
        max_retries: Divergence guard: retries of an epoch whose loss became non-finite.
        lr_backoff: Factor applied to the learning rate on each retry.
        check_every: Steps between reads of the running sums (one host sync each).
        distributed: Under ``torchrun``: ``"auto"`` (DDP when the strategy declares
            ``ddp = True``, else the explicit all-reduce), ``"ddp"``, ``"fsdp"`` (FSDP2
            sharding, for models larger than one device) or ``"explicit"``; see
            [`ebmkit.train.parallel`][ebmkit.train.parallel]. Ignored on one process.
        accumulate: Gradient accumulation: micro-batches of ``batch_size`` per optimizer
            step, each loss scaled by ``1/accumulate`` (the step equals one of a batch
            ``accumulate`` times larger for a per-sample mean loss; a short last group at the
            end of an epoch is averaged over what it holds). Gradients meet across ranks
            only on the last micro-batch. ``step`` and the schedule count optimizer steps.
        sync_batchnorm: Under ``torchrun``: convert every BatchNorm of the model to
            ebmkit's ``GlobalBatchNorm`` (statistics of the global batch, any device), as
            Lightning's flag does.
        tf32: TF32 matrix products and convolutions on CUDA: True, False, or None (leave
            PyTorch's process-wide setting alone). See
            [`gpu_switches`][ebmkit.train.options.gpu_switches].
        channels_last: Convert the model to the channels-last memory format (conv families
            on GPUs).
        deterministic: Deterministic algorithms (warn where none exists) and cuDNN
            benchmarking off.
        callbacks: Objects with ``on_fit_start`` / ``on_epoch_end`` / ``on_fit_end``
            (see [`ebmkit.callbacks`][ebmkit.callbacks]): they may add to an epoch's record
            and stop the run (``trainer.should_stop = True``); their ``state_dict()`` is
            checkpointed, so ``resume`` continues them exactly. Nothing is called per step.
        loggers: Callbacks that write the records elsewhere (see
            [`ebmkit.loggers`][ebmkit.loggers]); called after ``callbacks``.

    Raises:
        ConfigError: an option out of range, an unknown optimizer, a ``checkpoint_dir`` that
            is a file, or ``resume`` without a ``checkpoint_dir``.

    Example:
        >>> trainer = ek.Trainer(model, epochs=5, checkpoint_dir="runs/ae")  # doctest: +SKIP
        >>> history = trainer.fit(ek.get_dataset("digits"))                  # doctest: +SKIP
        >>> history[-1]["loss"]                                              # doctest: +SKIP

    Distributed: launched by ``torchrun`` (``WORLD_SIZE > 1``), every process runs the
    same script; each trains on its disjoint shard of every epoch's shared permutation with
    ``batch_size`` samples per step, gradients are averaged across processes (by DDP,
    FSDP2 or the explicit all-reduce), buffers are broadcast from rank 0, the strategy's
    state is per rank and saved per rank, means and metrics are global, and only rank 0
    writes ``checkpoint_dir``. The model may be given wrapped in
    ``DistributedDataParallel`` (unwrapped: the trainer wraps the step itself) or
    ``torch.compile`` (the strategy calls the compiled module).
    """

    def __init__(
        self,
        model: EnergyModel,
        strategy: Any = None,
        lr: float = 1e-3,
        epochs: int = 10,
        batch_size: int = 128,
        device: str | torch.device = "auto",
        checkpoint_dir: str | Path | None = None,
        *,
        optimizer: str | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] = "adam",
        weight_decay: float = 0.0,
        schedule: str = "constant",
        warmup: int = 0,
        grad_clip: float | None = None,
        seed: int | None = 0,
        amp: bool | str = False,
        progress: bool | None = None,
        resume: bool = False,
        max_retries: int = 3,
        lr_backoff: float = 0.5,
        check_every: int = 50,
        distributed: str = "auto",
        accumulate: int = 1,
        sync_batchnorm: bool = False,
        tf32: bool | None = None,
        channels_last: bool = False,
        deterministic: bool = False,
        callbacks: Iterable[Any] = (),
        loggers: Iterable[Any] = (),
    ) -> None:
        model, call_model = parallel.unwrap(model)
        if not isinstance(model, EnergyModel):
            raise ConfigError(f"Trainer needs an ek.EnergyModel, got {type(model).__name__}")
        self.accumulate = positive_int("accumulate", accumulate)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.lr = number("lr", lr, low=0.0, low_open=True)
        self.epochs = positive_int("epochs", epochs, minimum=0)
        self.batch_size = positive_int("batch_size", batch_size)
        self.weight_decay = number("weight_decay", weight_decay, low=0.0)
        Schedule.check(schedule, warmup)
        self.schedule, self.warmup = schedule, warmup
        self._schedule: Schedule | None = None  # built by fit, which knows the run's steps
        self.grad_clip = (None if grad_clip is None
                          else number("grad_clip", grad_clip, low=0.0, low_open=True))
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed must be an integer or None, got {seed!r}")
        self.seed = seed
        self.max_retries = positive_int("max_retries", max_retries, minimum=0)
        self.lr_backoff = number("lr_backoff", lr_backoff, low=0.0, high=1.0, low_open=True,
                                 high_open=True)
        self.check_every = positive_int("check_every", check_every)
        if progress is not None and not isinstance(progress, bool):
            raise ConfigError(f"progress must be True, False or None, got {progress!r}")
        self.progress, self.resume = progress, bool(resume)

        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        if self.checkpoint_dir is not None:
            if self.checkpoint_dir.exists() and not self.checkpoint_dir.is_dir():
                raise ConfigError(f"checkpoint_dir {str(self.checkpoint_dir)!r} is a file; "
                                  f"expected a directory (or a path to create one)")
            ckpt.model_header(model)  # a model that cannot be saved fails now, not after epoch 1
        elif self.resume:
            raise ConfigError("resume=True needs checkpoint_dir: the directory of the run to "
                              "continue")

        strategy = resolve_strategy(model, strategy, "Trainer")
        self.model, self.strategy = model, strategy
        self._call_model = call_model  # what the strategy is given (compiled, or the model)

        device = resolve_device(device)
        self.dist: Dist = setup(device.type)
        device = parallel.local_device(device, self.dist)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.dist.local_rank if self.dist.enabled
                                  else torch.cuda.current_device())
        self.device = device
        # The module trees are walked once here: the per-fit and per-epoch work below (train
        # mode, snapshots) uses these lists.
        trained = [model] + ([strategy] if isinstance(strategy, nn.Module) else [])
        self._modules: list[nn.Module] = [m for root in trained for m in root.modules()]
        self._state: list[Tensor] = self._tensors()
        if any(t.device != device for t in self._state):
            for root in trained:
                root.to(device)  # skipped when already there: .to walks every module
            self._state = self._tensors()  # .to may replace buffers

        self.mode = parallel.resolve_mode(distributed, strategy, self.dist, trained)
        if self.sync_batchnorm and self.dist.enabled:  # before DDP/FSDP wrap the modules
            parallel.convert_sync_batchnorm(model)
            self._modules = [m for root in trained for m in root.modules()]
            self._state = self._tensors()
        # The step as a module (DDP- or FSDP-wrapped), or None; FSDP's 0-d parameters stay
        # whole and are averaged by the explicit all-reduce.
        self._ddp: nn.Module | None = None
        self._whole: list[nn.Parameter] = []
        if self.mode == "fsdp":
            self.dist.broadcast_(model.state_dict().values())  # rank 0's weights, then shards
            # before the optimizer: parameters become DTensors
            self._ddp, self._whole = parallel.shard(model, strategy, call_model)
            self._modules = [m for root in trained for m in root.modules()]
            self._state = self._tensors()
        elif self.mode == "ddp":
            self._ddp = parallel.wrap_ddp(model, strategy, call_model, device)
        self._buffers = [b for m in self._modules for b in m._buffers.values() if b is not None]

        # A strategy that is a module (e.g. with a learned sampler) trains alongside.
        seen: set[int] = set()
        self.params: list[nn.Parameter] = []
        for m in self._modules:  # module.parameters() order, without another walk
            for p in m._parameters.values():
                if p is not None and p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    self.params.append(p)
        self.optimizer_name, self.optimizer = build_optimizer(optimizer, self.params, self.lr,
                                                              self.weight_decay)
        # What the schedule scales (the guard lowers these on a retry; checkpointed).
        self._base_lrs: list[float] = ([float(g["lr"]) for g in self.optimizer.param_groups]
                                       if self.optimizer is not None else [])
        self.amp_dtype = resolve_amp(amp, device)
        gpu_switches(model, device, tf32=tf32, channels_last=channels_last,
                     deterministic=deterministic)
        self.scaler = (torch.amp.GradScaler(device.type) if self.amp_dtype == torch.float16
                       else None)

        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps completed
        #: Optimizer steps the whole run takes (``epochs`` × batches per epoch), set by
        #: ``fit``; None before it, or for data without a ``len()``. A strategy whose
        #: hyper-parameters follow the run's progress (BYOL's target momentum) reads
        #: ``step / total_steps`` through its ``on_fit_start(trainer)``.
        self.total_steps: int | None = None
        self.history: list[dict[str, Any]] = []
        self._gen = torch.Generator()  # shuffles the data; on the CPU so runs match across devices
        self._started = False
        self._data_info: dict[str, Any] | None = None
        self.callbacks = Callbacks(callbacks, loggers)
        self.should_stop = False  # a callback sets it to end the run after this epoch
        self.train_data: Any = None  # what fit() trains on and validates with (callbacks
        self.val_data: Any = None  # picture the model on them)

    # ---------------------------------------------------------------------- set-up
    def _tensors(self) -> list[Tensor]:
        """Every parameter and buffer of the trained modules, in module order."""
        return [t for m in self._modules for t in (*m._parameters.values(), *m._buffers.values())
                if t is not None]

    def _seed(self) -> None:
        if self.seed is None:  # fresh entropy, but one data order for every rank
            self._gen.manual_seed(self.dist.shared_seed(self.device))
            return
        s = self.seed + self.dist.rank  # distinct noise per rank; the data order is shared
        random.seed(s)
        try:
            import numpy as np

            np.random.seed(s % 2**32)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass
        if self.device.type == "cpu" and not torch.cuda.is_initialized():
            # torch.manual_seed would also queue a lazy CUDA seeding, which records a stack
            # trace (~0.4 ms); no CUDA is in use, so seed the CPU generator alone.
            torch.default_generator.manual_seed(s)
        else:
            torch.manual_seed(s)  # also every CUDA / MPS device
        self._gen.manual_seed(self.seed)

    def config(self) -> dict[str, Any]:
        """The resolved options: what ``config.json`` in the run directory holds."""
        amp = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        model: dict[str, Any] = {"name": self.model.name}
        with contextlib.suppress(NotImplementedError):
            model["config"] = self.model.config()
        return {
            "format": RUN_FORMAT,
            "ebmkit_version": __import__("ebmkit").__version__,
            "model": model,
            "strategy": repr(self.strategy),
            "data": self._data_info,
            "trainer": {
                "lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size,
                "device": str(self.device), "optimizer": self.optimizer_name,
                "weight_decay": self.weight_decay, "schedule": self.schedule,
                "warmup": self.warmup, "grad_clip": self.grad_clip,
                "seed": self.seed, "amp": amp, "accumulate": self.accumulate,
                "max_retries": self.max_retries,
                "lr_backoff": self.lr_backoff, "check_every": self.check_every,
                "world_size": self.dist.world, "distributed": self.mode,
                "checkpoint_dir": None if self.checkpoint_dir is None else str(self.checkpoint_dir),
            },
        }

    def _show_progress(self) -> bool:
        if not self.dist.main:
            return False
        if self.progress is None:
            return bool(getattr(sys.stderr, "isatty", lambda: False)())
        return self.progress

    def _strategy_name(self) -> str:
        s = self.strategy
        if inspect.isfunction(s) or inspect.ismethod(s):
            return s.__qualname__
        return type(s).__name__

    # ---------------------------------------------------------------------- fit
    def fit(self, data: Any, val: Any = None) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are done; return the history, one dict per epoch.

        Each record holds ``epoch``, ``step``, the sample-weighted mean ``loss`` and mean of
        every strategy log, ``lr``, ``time_s``, ``samples_per_s``, ``retries`` and, with
        ``val``, ``val_<metric>`` for every metric of ``model.metrics()``. With a
        ``checkpoint_dir``, every epoch also lands there (``metrics.jsonl`` has the records).

        Args:
            data: An ``ek.data.TensorData`` (fast path), a torch ``Dataset`` of dicts with
                ``"y"``, tensors or ``(y, label)`` pairs, or a ``DataLoader`` (used as is;
                when distributed, it must give every process as many batches — use a
                ``DistributedSampler``).
            val: Data to evaluate after every epoch, or None.

        Raises:
            DivergenceError: the loss stayed non-finite after ``max_retries`` retries.
            ConfigError: bad data or a strategy that does not return a scalar ``StepOutput``.
        """
        source = make_source(data, batch_size=self.batch_size, device=self.device,
                             generator=self._gen, dist=self.dist, seed=self.seed or 0, train=True)
        val_source = None if val is None else self._eval_source(val)
        total = self.epochs * -(-len(source) // self.accumulate) if len(source) else None
        self._schedule = Schedule(self.schedule, self.warmup, total)
        self.total_steps = total
        on_fit_start = getattr(self.strategy, "on_fit_start", None)
        if callable(on_fit_start):  # e.g. a strategy that follows the run's progress
            on_fit_start(self)
        if not self._started:
            d = self.checkpoint_dir
            if d is not None and self.dist.main and d.is_dir():
                ckpt.recover(d)  # finish or discard a save that a crash interrupted
            if self.resume:
                rundir.restore(self)
            else:
                self._seed()
                self._warn_if_overwriting()
            if self.dist.enabled and self.mode != "fsdp":  # the same weights everywhere
                self.dist.broadcast_(self.model.state_dict().values())
            self._started = True
        self._data_info = _describe_data(data)
        self.train_data, self.val_data, self.should_stop = data, val, False
        callbacks = self.callbacks
        callbacks.fit_start(self)  # after a resume restored their state

        if not all(m.training for m in self._modules):
            self.model.train()  # (module.train walks and sets every submodule)
        while self.epoch < self.epochs and not self.should_stop:
            record = self._epoch_with_guard(source)
            if val_source is not None:
                record.update({f"val_{k}": v for k, v in self._evaluate(val_source).items()})
            if callbacks:
                callbacks.epoch_end(self, record)  # may add to the record, or stop the run
            self.history.append(record)
            rundir.save(self)
            self._report(record)
        callbacks.fit_end(self)
        return [dict(r) for r in self.history]

    def _warn_if_overwriting(self) -> None:
        d = self.checkpoint_dir
        if d is not None and self.dist.main and (d / "trainer.pt").exists():
            warnings.warn(f"{d} already holds a checkpoint; this run starts over and replaces it "
                          f"(pass resume=True to continue it instead)", stacklevel=3)

    def _report(self, record: Mapping[str, Any]) -> None:
        epoch.report(self, record)

    # ---------------------------------------------------------------- divergence guard
    def _current_lr(self) -> float:
        if self.optimizer is None:
            return self.lr
        return float(self.optimizer.param_groups[0]["lr"])

    def _epoch_with_guard(self, source: Any) -> dict[str, Any]:
        return epoch.epoch_with_guard(self, source)

    # ---------------------------------------------------------------------- the loop
    def _bad_output(self, out: Any) -> Tensor:
        """Say what is wrong with a strategy's output (the slow path of the loop's check)."""
        return epoch.bad_output(self, out)

    def _run_epoch(self, source: Any) -> EpochMonitor:
        # The hot loop: locals only, no host sync; the monitor reads values back every
        # `check_every` steps.
        model, strategy, opt, scaler = self._call_model, self.strategy, self.optimizer, self.scaler
        # Autocast only where a loss is backpropagated: a strategy with nothing to learn by
        # gradient (closed-form updates, e.g. K-means' Lloyd) runs in full precision.
        params, clip = self.params, self.grad_clip
        schedule = self._schedule if opt is not None and self._schedule is not None \
            and self._schedule.active else None
        groups, base_lrs = (opt.param_groups, self._base_lrs) if opt is not None else ([], [])
        dtype = self.amp_dtype if opt is not None else None
        explicit = self.mode == "explicit"
        averaged = params if explicit else self._whole
        average = self.dist.average_gradients if averaged else None
        # DDP broadcasts buffers itself; the explicit path does it here, before every step.
        sync_buffers = (self.dist.broadcast_coalesced_ if explicit and self._buffers else None)
        buffers, ddp = self._buffers, self._ddp
        check_every, device_type = self.check_every, self.device.type
        # Gradient accumulation: `acc` micro-batches per optimizer step, each loss scaled by
        # 1/acc; gradients meet across ranks only on the last (DDP no_sync, FSDP's switch).
        acc, micro, n_batches = self.accumulate, 0, len(source) or 0
        sync_grads = parallel.grad_sync(ddp, self.mode) if acc > 1 else None
        on_check = self.callbacks.hooks["on_check"]
        monitor = EpochMonitor(self.device, self.dist, self.step, self._strategy_name())
        losses, sizes, logs_list = monitor.losses, monitor.sizes, monitor.logs
        bar = None
        if self._show_progress():
            from tqdm.auto import tqdm

            bar = tqdm(total=len(source) or None, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                       leave=False, dynamic_ncols=True, file=sys.stderr)
        batches = source.epoch(self.epoch)
        try:
            for batch in batches:
                if sync_buffers is not None:
                    sync_buffers(buffers)
                micro += 1
                final = acc == 1 or micro % acc == 0 or micro == n_batches
                if sync_grads is not None:
                    sync_grads(final)
                with (contextlib.nullcontext() if dtype is None
                      else torch.autocast(device_type, dtype=dtype)):
                    out = strategy(model, batch) if ddp is None else ddp(batch)[1]
                loss = out.loss if isinstance(out, StepOutput) else None
                if (not isinstance(loss, Tensor) or loss.dim() != 0
                        or (opt is not None and not loss.requires_grad)
                        or not isinstance(out.logs, Mapping)):
                    loss = self._bad_output(out)
                logs = out.logs
                for value in logs.values():
                    if getattr(value, "requires_grad", False):  # keep no graph alive in the window
                        logs = {k: v.detach() if isinstance(v, Tensor) else v
                                for k, v in logs.items()}
                        break
                if opt is not None and acc > 1:
                    if micro % acc == 1:
                        opt.zero_grad(set_to_none=True)
                    (loss / acc if scaler is None else scaler.scale(loss / acc)).backward()
                    if not final:
                        losses.append(loss.detach())
                        sizes.append(batch["y"].shape[0])
                        logs_list.append(logs)
                        continue
                    if micro % acc:  # a short last group: its mean, not acc's share
                        parallel.scale_grads(params, acc / (micro % acc))
                elif opt is not None:
                    opt.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                    else:
                        loss.backward()
                if opt is not None:
                    if average is not None:
                        average(averaged)
                    if clip is not None:
                        if scaler is not None:
                            # Overflowing steps are expected (the scaler skips them), so the
                            # norm is not logged: it would read as divergence.
                            scaler.unscale_(opt)
                            nn.utils.clip_grad_norm_(params, clip)
                        else:
                            logs = {**logs, "grad_norm": parallel.whole(
                                nn.utils.clip_grad_norm_(params, clip))}
                    if schedule is not None:  # a float per group: no device work
                        factor = schedule(self.step)
                        for group, base in zip(groups, base_lrs):
                            group["lr"] = base * factor
                    if scaler is not None:
                        scaler.step(opt)
                        scaler.update()
                    else:
                        opt.step()
                losses.append(loss.detach())
                sizes.append(batch["y"].shape[0])
                logs_list.append(logs)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                if len(losses) >= check_every:
                    if not monitor.check(self.step):
                        return monitor
                    for fn in on_check:  # e.g. TensorBoard's running scalars; usually none
                        fn(self, self.step, monitor)
                    if bar is not None:
                        bar.set_postfix(loss=f"{monitor.running_loss():.4g}", refresh=False)
            # Every rank, even with an empty window. The parameters are checked too: a
            # non-finite update in the last step would otherwise surface only in the next
            # epoch, whose snapshot would already hold it.
            monitor.check(self.step, extra=self._nonfinite_params())
            if self.dist.enabled:  # every rank ends with rank 0's buffers (FSDP leaves them whole)
                self.dist.broadcast_coalesced_(buffers)
            return monitor
        finally:
            with contextlib.suppress(Exception):
                batches.close()  # type: ignore[union-attr]
            if bar is not None:
                bar.close()

    def _nonfinite_params(self) -> Tensor | None:
        """A scalar that is finite exactly when every trainable parameter is (no host sync)."""
        return guard.nonfinite_params([parallel.local(p) for p in self.params])

    # ---------------------------------------------------------------------- evaluate
    def _eval_source(self, data: Any) -> Any:
        return make_source(data, batch_size=self.batch_size, device=self.device, generator=None,
                           dist=self.dist, seed=self.seed or 0, train=False)

    def evaluate(self, data: Any) -> dict[str, float]:
        """Every metric of ``model.metrics()`` over ``data``, under ``torch.no_grad()``.

        Each metric is updated with ``(model, batch)``; when the run is distributed each
        process evaluates its shard and torchmetrics reduces the results across processes.

        Args:
            data: Same kinds as for [`fit`][ebmkit.train.trainer.Trainer.fit].

        Returns:
            ``{name: value}``; a metric returning several values adds ``name/<key>`` entries.
        """
        return self._evaluate(self._eval_source(data))

    def _evaluate(self, source: Any) -> dict[str, float]:
        return run_metrics(self.model, source, self.device,
                           self._ddp if self.mode == "fsdp" else None)

    # -------------------------------------------------------------------- checkpoints
    def _strategy_state(self) -> dict[str, Any]:
        fn = getattr(self.strategy, "state_dict", None)
        state = fn() if callable(fn) else {}
        return state if state is not None else {}

    def _load_strategy_state(self, state: Any) -> None:
        fn = getattr(self.strategy, "load_state_dict", None)
        if callable(fn):
            fn(state)


def _describe_data(data: Any) -> dict[str, Any]:
    """Name, split and size of the data where known (for ``config.json``)."""
    base = getattr(data, "dataset", data) if isinstance(data, torch.utils.data.DataLoader) else data
    info: dict[str, Any] = {k: str(getattr(base, k)) for k in ("name", "split")
                            if isinstance(getattr(base, k, None), str)}
    with contextlib.suppress(TypeError):
        info["size"] = len(base)
    return info
