r"""What every joint-embedding method shares: views, encoder, projection, energy, training step.

A joint-embedding architecture scores a pair of views $(x, y)$ of one input by the distance
between their embeddings,

$$ E(x, y) = \tfrac12 \lVert \hat g(y) - \hat g(x) \rVert^2 = 1 - \cos(g(y), g(x)), \qquad
   \hat g = g / \lVert g \rVert, $$

where $g = \text{head} \circ \text{encoder}$. Each method is one way to keep this energy from
being flat (the same low value for every pair): contrastive methods push it up on pairs of
different inputs, regularised ones limit the volume of low energy. A method subclasses
[`JointEmbedding`][ebmkit_ssl.base.JointEmbedding] and implements ``step(y) -> (loss, logs)``.

Axis legend for comments: ``b`` batch, ``d`` embedding size, ``k`` negatives / prototypes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .augment import Affine, Compose, Erase, Noise, Shift, Transform, photo_views

__all__ = ["JointEmbedding", "SSLConfig", "SelfSupervised"]


@dataclass
class SSLConfig:
    """Options every joint-embedding method has.

    Attributes:
        dim: Input size (features per sample); read off the data by ``ebmkit train``.
        image_shape: ``[C, H, W]`` for images (a conv encoder and image augmentations), or
            None for vectors (an MLP encoder, noise and erasing only).
        channels: The conv encoder's two widths.
        hidden: Width of the encoder's hidden fully connected layer (0: none).
        rep_dim: Size of the representation ``encode(y)``.
        proj_dim: Size of the embedding ``embed(y)`` the energy compares.
        proj_hidden: Hidden width of the projection head (with ``proj_layers >= 2``).
        proj_layers: Linear layers in the projection head.
        shift: Largest random translation in pixels.
        degrees: Largest random rotation.
        scale: Largest relative zoom.
        erase: Probability of random erasing.
        erase_size: Largest erased side, as a fraction of the image's.
        noise: Std of the additive Gaussian noise.
        photo: The RGB photographs' views (random resized crop and flip, colour jitter,
            grey-scale, blur) in place of the small grey images' (shift, affine, erase,
            noise). None: on for 3-channel images, off otherwise.
        crop_scale: With ``photo``: the smallest crop's area fraction.
        flip: With ``photo``: probability of a horizontal flip.
        jitter: With ``photo``: probability of colour jitter.
        grayscale: With ``photo``: probability of grey-scale.
        blur: With ``photo``: probability of Gaussian blur.
        seed: Seeds the augmentations' generator.
        encoder: The ``encoder`` slot, image shape (or ``(dim,)``) → ``(rep_dim,)``: None
            (``ssl.conv_encoder`` with ``channels`` and ``hidden`` for images,
            ``ssl.mlp_encoder`` for vectors), a registered network name,
            ``{"name": ..., **options}``, or an ``nn.Module``.
        projector: The ``projector`` slot, ``(rep_dim,)`` → ``(proj_dim,)``: None
            (``ssl.head`` with ``proj_hidden`` and ``proj_layers``), or as ``encoder``.
    """

    dim: int = 64
    image_shape: list[int] | None = None
    channels: list[int] = field(default_factory=lambda: [32, 64])
    hidden: int = 128
    rep_dim: int = 32
    proj_dim: int = 32
    proj_hidden: int = 128
    proj_layers: int = 1
    shift: int = 1
    degrees: float = 5.0
    scale: float = 0.05
    erase: float = 0.25
    erase_size: float = 0.3
    noise: float = 0.05
    photo: bool | None = None
    crop_scale: float = 0.2
    flip: float = 0.5
    jitter: float = 0.8
    grayscale: float = 0.2
    blur: float = 0.5
    seed: int = 0
    encoder: str | dict[str, Any] | nn.Module | None = None
    projector: str | dict[str, Any] | nn.Module | None = None


class JointEmbedding(ek.EnergyModel):
    """Base class of the ``ssl.*`` models.

    Public surface: ``encode(y)`` (the representation, before the head, for downstream
    tasks), ``embed(y)`` (the head's output, what the energy compares), ``augment(y)`` (one
    random view per sample), ``energy(y, x=x)`` ``[B]`` between two views, ``metrics()``
    (the collapse meter), ``downstream(train, test)`` (k-NN and linear probe),
    ``export_encoder()`` (the network whose features those scores used).
    """

    config_class: ClassVar[type | None] = SSLConfig
    slots: ClassVar[dict[str, str]] = {
        "encoder": "ssl.conv_encoder (vectors: ssl.mlp_encoder), image shape → (rep_dim,)",
        "projector": "ssl.head (proj_hidden, proj_layers), (rep_dim,) → (proj_dim,)"}
    #: True for the methods that need other samples in the batch (negatives, statistics).
    needs_batch: ClassVar[bool] = True
    #: Each view passes the networks alone, so batch norm normalises it by its own
    #: statistics, as the BYOL, Barlow Twins and VICReg reference code does. False:
    #: the views share one pass and one set of statistics, as SimCLR's and SwAV's reference
    #: code does. Without batch-norm layers both give the same numbers, and one pass is made.
    per_view_batch_norm: ClassVar[bool] = False

    def __init__(self, cfg: SSLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        who = self.name
        at_least, number = ek.config.at_least, ek.config.number
        at_least("dim", cfg.dim, who=who)
        for key in ("rep_dim", "proj_dim", "proj_hidden"):
            at_least(key, getattr(cfg, key), who=who)
        at_least("proj_layers", cfg.proj_layers, 0, who=who)
        at_least("hidden", cfg.hidden, 0, who=who)
        if cfg.proj_layers == 0 and cfg.proj_dim != cfg.rep_dim:
            raise ek.errors.ConfigError(f"{who}: proj_layers=0 (no projection head) needs "
                                        f"proj_dim == rep_dim, got {cfg.proj_dim} and "
                                        f"{cfg.rep_dim}")
        number("degrees", cfg.degrees, low=0.0, high=180.0, who=who)
        default: dict[str, Any]
        if cfg.image_shape is not None:
            shape = ek.config.image_shape(cfg.image_shape, who=who, dim=cfg.dim)
            self.view_shape = tuple(shape)
            #: What the encoder slot receives per sample: the image, ``(C, H, W)``.
            self.in_shape: tuple[int, ...] = self.view_shape
            default = {"name": "ssl.conv_encoder", "channels": list(cfg.channels),
                       "hidden": cfg.hidden}
            photo = shape[0] == 3 if cfg.photo is None else bool(cfg.photo)
            self.transform: Transform = (
                photo_views(cfg.crop_scale, cfg.flip, cfg.jitter, cfg.grayscale, cfg.blur)
                if photo else Compose([Shift(cfg.shift), Affine(cfg.degrees, cfg.scale),
                                       Erase(cfg.erase, cfg.erase_size), Noise(cfg.noise)]))
        else:
            if cfg.photo:
                raise ek.errors.ConfigError(f"{who}: photo=True needs images; set "
                                            f"image_shape=[3, H, W]")
            self.view_shape = (1, 1, cfg.dim)
            self.in_shape = (cfg.dim,)
            default = {"name": "ssl.mlp_encoder", "hidden": cfg.hidden or 256}
            self.transform = Compose([Erase(cfg.erase, cfg.erase_size), Noise(cfg.noise)])
        build = ek.networks.build_slot
        self.encoder: nn.Module = build("encoder", cfg.encoder, in_shape=self.in_shape,
                                        out_shape=(cfg.rep_dim,), default=default, who=who)
        self.projector = self.build_projector()
        self._generators: dict[torch.device, torch.Generator] = {}
        #: ``(optimizer step, steps of the whole run or None)``, set by the strategy before
        #: every step (see [`set_progress`][ebmkit_ssl.base.JointEmbedding.set_progress]).
        self.progress: tuple[int, int | None] = (0, None)
        self._has_batch_norm: bool | None = None

    def build_projector(self) -> nn.Module:
        """A network from the ``projector`` slot (default: ``ssl.head`` with ``proj_hidden``,
        ``proj_layers``, and batch norm unless the config's ``head_batch_norm`` is False),
        ``(rep_dim,)`` → ``(proj_dim,)``."""
        cfg = self.cfg
        return ek.networks.build_slot(
            "projector", cfg.projector, in_shape=(cfg.rep_dim,), out_shape=(cfg.proj_dim,),
            default={"name": "ssl.head", "hidden": cfg.proj_hidden, "layers": cfg.proj_layers,
                     "batch_norm": bool(getattr(cfg, "head_batch_norm", True))},
            who=self.name)

    # ------------------------------------------------------------------ views
    def generator(self, device: torch.device) -> torch.Generator:
        """The augmentations' generator on ``device``, seeded from ``cfg.seed`` (and the
        process rank when distributed, so ranks draw different views)."""
        g = self._generators.get(device)
        if g is None:
            rank = 0
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank = torch.distributed.get_rank()
            g = torch.Generator(device=device).manual_seed(self.cfg.seed + 7919 * rank)
            self._generators[device] = g
        return g

    def view_state(self) -> dict[str, Tensor]:
        """The augmentations' generator states, ``{str(device): state}``: what a checkpoint
        keeps so that a resumed run draws the same views as an uninterrupted one."""
        return {str(dev): g.get_state() for dev, g in self._generators.items()}

    def load_view_state(self, state: dict[str, Tensor]) -> None:
        """Restore [`view_state`][ebmkit_ssl.base.JointEmbedding.view_state]. A state saved on
        another kind of device (a CUDA run resumed on the CPU) cannot be carried over: that
        device's generator starts again from the seed, with a warning."""
        for key, value in state.items():
            dev = torch.device(key)
            try:
                g = torch.Generator(device=dev)
                g.set_state(value.detach().cpu())
            except (RuntimeError, ValueError) as exc:
                import warnings

                warnings.warn(f"{self.name}: the saved augmentation state for {key} cannot be "
                              f"restored here ({exc}); views on that device start again from "
                              f"seed {self.cfg.seed}", stacklevel=2)
                continue
            self._generators[dev] = g

    def augment(self, y: Tensor, transform: Transform | None = None) -> Tensor:
        """One random view per sample: ``y`` ``[B, dim]`` → ``[B, dim]`` (no gradient)."""
        self.check(y)
        b = y.shape[0]
        with torch.no_grad():
            images = y.reshape(b, *self.view_shape)
            out = (transform or self.transform)(images, self.generator(y.device))
        return out.reshape(b, -1)

    def check(self, y: Tensor, what: str = "y") -> Tensor:
        """Refuse anything but a finite float batch ``[B, dim]`` on the model's device (the
        value check is skipped on an accelerator in a training step: no device sync there)."""
        return ek.model.check_input(y, what, shape=(None, self.cfg.dim), device=self.device,
                                    finite="auto")

    # ------------------------------------------------------------------ networks
    def images(self, y: Tensor) -> Tensor:
        """Flat ``y`` ``[B, dim]`` as the encoder slot's input ``[B, *in_shape]`` (a view)."""
        return y.reshape(y.shape[0], *self.in_shape)

    def encode(self, y: Tensor) -> Tensor:
        """The representation ``[B, rep_dim]`` (before the projection head)."""
        self.check(y)
        return self.encoder(self.images(y))

    def embed(self, y: Tensor) -> Tensor:
        """The embedding ``[B, proj_dim]`` the energy compares."""
        return self.projector(self.encode(y))

    def has_batch_norm(self) -> bool:
        """Whether any of the model's networks normalises by batch statistics (cached)."""
        if self._has_batch_norm is None:
            self._has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                       for m in self.modules())
        return self._has_batch_norm

    def per_view(self, fn: Any, views: Tensor, parts: int = 2) -> Tensor:
        """``fn`` over ``views`` (``parts`` views of one batch, stacked), one pass per view
        when the class's ``per_view_batch_norm`` asks for it (in train mode) and a network
        has batch norm, else one pass over all of them."""
        if not (self.views_alone() and self.training and self.has_batch_norm()):
            return fn(views)
        return torch.cat([fn(v) for v in views.chunk(parts)])

    def views_alone(self) -> bool:
        """Whether each view passes the networks alone (``per_view_batch_norm``)."""
        return self.per_view_batch_norm

    def export_encoder(self) -> nn.Module:
        """A frozen copy (eval mode, no gradient) of the network that ``encode`` uses in
        eval mode: the weights behind ``downstream``'s k-NN and linear-probe scores. It maps
        ``[B, C, H, W]`` or flat ``[B, dim]`` inputs to ``[B, rep_dim]``."""
        return copy.deepcopy(self.eval_encoder()).eval().requires_grad_(False)

    def eval_encoder(self) -> nn.Module:
        """The encoder ``encode`` runs in eval mode (a method with a weight average returns
        the average)."""
        return self.encoder

    def set_progress(self, step: int, total: int | None) -> None:
        """Tell the model how far the run is: ``step`` optimizer steps done of ``total``
        (None when unknown). The strategy calls it before each step (Python ints: no device
        work); methods whose hyper-parameters follow the run (BYOL's target momentum) read
        ``self.progress``."""
        self.progress = (step, total)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        r"""$E(x, y) = 1 - \cos(g(y), g(x))$ ``[B]`` between two views; with ``x=None``, ``x``
        is a fresh random view of ``y`` (so the value is stochastic)."""
        self.check(y)
        x = self.other_view(y, x)
        return 1.0 - nnf.cosine_similarity(self.embed(y), self.embed(x), dim=1)

    def other_view(self, y: Tensor, x: Tensor | None) -> Tensor:
        """``x`` checked as a view of the same samples as ``y``, or a fresh random view of
        ``y`` when ``x`` is None (what every method's ``energy(y, x=x)`` starts with)."""
        self.check(y)
        if x is None:
            return self.augment(y)
        self.check(x, "x")
        if x.shape[0] != y.shape[0]:
            raise ek.errors.ConfigError(f"{self.name}: y and x must be views of the same "
                                        f"samples, got batches of {y.shape[0]} and {x.shape[0]}")
        return x

    # ------------------------------------------------------------------ training
    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One training step's loss and logs (detached scalars) on a batch ``y``."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(y)")

    def check_batch(self, y: Tensor) -> None:
        self.check(y)
        if self.needs_batch and y.shape[0] < 2:
            raise ek.errors.ConfigError(
                f"{self.name}: a batch of {y.shape[0]} sample has no other samples to contrast "
                f"with or to take statistics over; use batch_size >= 2 (the recipe uses 256)")

    def default_strategy(self) -> SelfSupervised:
        return SelfSupervised()

    def metrics(self) -> dict[str, Any]:
        from .collapse import CollapseMeter

        return {"collapse": CollapseMeter(who=self.name)}

    def downstream(self, train: Any, test: Any, *, k: int = 5) -> dict[str, float]:
        """k-NN (cosine) and linear-probe accuracy of frozen ``encode`` features, fitted on
        ``train``'s labels and scored on ``test``; see
        [`downstream_report`][ebmkit_ssl.evaluate.downstream_report]."""
        from .evaluate import downstream_report

        return downstream_report(self, train, test, k=k)

    def plots(self, data: Any, out: Any) -> list[Any]:
        """``embedding.png`` in ``out``: a PCA view of ``encode`` on ``data`` (at most 2,000
        samples), coloured by class when ``data`` has labels."""
        from pathlib import Path

        from .evaluate import features, plot_pca

        y, labels = data.y[:2000], getattr(data, "labels", None)
        was_training = self.training
        self.eval()
        try:
            feats = features(self.encode, y, self.device)
        finally:
            self.train(was_training)
        if labels is not None:
            labels = labels[:2000].reshape(-1).cpu()
        name = getattr(data, "name", "data")
        return [plot_pca(feats, labels, Path(out) / "embedding.png",
                         title=f"{self.name}: encode(y) on {name}")]


class SelfSupervised(ek.strategies.Strategy):
    """The joint-embedding strategy: ``loss, logs = model.step(batch["y"])``. Labels in the
    batch are ignored. The method's own anti-collapse term is inside ``step``.

    Its checkpoint state is the model's augmentation generators
    ([`view_state`][ebmkit_ssl.base.JointEmbedding.view_state]), so a resumed run, or an
    epoch replayed by the divergence guard, draws the same views as an uninterrupted run. A
    state loaded before the first step waits until the strategy meets its model.
    """

    def __init__(self) -> None:
        self._model: Any = None
        self._pending: dict[str, Tensor] | None = None
        self._trainer: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        """Called by ``ek.Trainer.fit``: from then on each step tells the model the run's
        progress (``trainer.step`` of ``trainer.total_steps``)."""
        self._trainer = trainer

    def __call__(self, model: Any, batch: dict[str, Tensor]) -> Any:
        if self._model is not model:
            self._model = model
        if self._pending is not None:
            model.load_view_state(self._pending)
            self._pending = None
        if self._trainer is not None:
            model.set_progress(self._trainer.step, self._trainer.total_steps)
        loss, logs = model.step(batch["y"])
        return ek.StepOutput(loss, logs)

    def state_dict(self) -> dict[str, Any]:
        if self._pending is not None:
            return {"views": dict(self._pending)}
        if self._model is None:
            return {}
        return {"views": self._model.view_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        views = state.get("views")
        if views is None:
            return
        if self._model is not None:
            self._model.load_view_state(views)
        else:
            self._pending = dict(views)

    def __repr__(self) -> str:
        return "SelfSupervised()"
