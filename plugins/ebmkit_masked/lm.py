"""``masked.lm``: a BERT-style masked language model read as an energy-based model.

x is the corrupted sequence (``<mask>`` = id 2 where hidden), y the clean one, and

    E(x, y) = −Σ_{i : x_i = <mask>} log p_θ(y_i | x)        (nats, one value per sequence)

so ``predict(x)`` = argmin_y E fills every ``<mask>`` with its most likely token (the
positions are conditionally independent given x), and training — cross-entropy on the
corrupted positions — pushes the energy of the true completion down and, through the
softmax's normaliser, every other completion up.

The network (axis legend: ``b`` batch, ``n`` tokens, ``h`` heads, ``d`` model width,
``e`` head width, ``v`` vocabulary):

    ids [b, n] → token + position embedding [b, n, d]
      → n_layer × Block:  h += DWConv(LN(h))   (depthwise, over n; conv_kernel wide;
                                                in the first conv_layers blocks)
                          h += Attn(LN(h))     (bidirectional, F.scaled_dot_product_attention)
                          h += MLP(LN(h))      (d → 4d → d, GELU)
      → LN → logits = h · Eᵀ + b [b, n, v]      (E: the token embedding, tied)

The depthwise convolution (a residual branch of the first block) is this model's departure
from BERT: on a few CPU cores a plain transformer needs most of a 5-minute budget just to
learn which characters sit next to which (what a count model of the neighbours knows at
once); a k-wide depthwise convolution in the first block gives every token its
neighbourhood from the first step, and attention adds the long range (cf. ConvBERT, Jiang
et al. 2020; Primer's depthwise convolutions, So et al. 2021). ``conv_kernel=0`` gives the
plain transformer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

import ebmkit as ek

from .corruption import MASK_ID, N_SPECIAL, PAD_ID, BertCorruption
from .options import MaskedOptions
from .sampling import sample as _sample

__all__ = ["MaskedLM", "MaskedLMConfig", "MaskedLMStrategy"]

WHO = "masked.lm"


@dataclass
class MaskedLMConfig(MaskedOptions):
    """Options of ``masked.lm``.

    Attributes:
        level: ``"char"`` or ``"word"``: the tokenisation of ``ek.get_dataset("text")``.
        vocab: The ordinary tokens (ids 3, 4, …); None takes the text dataset's vocabulary
            at ``level``. ``config()`` always holds the resolved list, so a saved model
            decodes with its own vocabulary.
        block_size: The context length: sequences of any length up to it are accepted.
            Only the positions that training blocks reach get trained position embeddings
            (64 with ``ek.get_dataset("text")``'s default blocks): score and predict
            sequences no longer than the training blocks, or train on longer ones.
        n_layer: Transformer blocks.
        n_head: Attention heads.
        d_model: Width.
        conv_kernel: Width of the depthwise convolution (odd); 0 for none.
        conv_layers: How many blocks, from the first, hold the convolution (one is enough
            for local context and keeps a step within 5% of a plain transformer's).
        dropout: Dropout on attention weights and residual branches.
        mask_rate: BERT's selection rate, in (0, 1).
        mask_prob: Probability that a selected token becomes ``<mask>``.
        random_prob: Probability that a selected token becomes a random token (the rest
            keep their token).
        eval_seed: Seed of the fixed corruption that ``metrics()`` evaluate on.
    """

    level: str = "char"
    vocab: list[str] | None = None
    block_size: int = 256
    d_model: int = 128
    conv_kernel: int = 7
    conv_layers: int = 1
    dropout: float = 0.0
    mask_rate: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1


class Block(nn.Module):
    """One pre-LN block: depthwise conv, self-attention, MLP, each a residual branch."""

    def __init__(self, cfg: MaskedLMConfig, conv: bool = True) -> None:
        super().__init__()
        d, k = cfg.d_model, cfg.conv_kernel if conv else 0
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.ln_conv = nn.LayerNorm(d) if k else None
        self.conv = nn.Conv1d(d, d, k, padding=k // 2, groups=d) if k else None
        self.ln_attn = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def _conv(self, h: Tensor, keep: Tensor | None) -> Tensor:
        if self.conv is None:
            return h
        c = self.ln_conv(h)
        if keep is not None:  # padding reads as the convolution's own zero padding
            c = c * keep.unsqueeze(-1).to(c.dtype)
        # .contiguous() on both sides: Conv1d on the transposed view is ~2× slower (CPU)
        c = self.conv(rearrange(c, "b n d -> b d n").contiguous())
        return h + self.drop(rearrange(c, "b d n -> b n d").contiguous())

    def forward(self, h: Tensor, keep: Tensor | None = None) -> Tensor:     # h: [b, n, d]
        """The block on every position; ``keep`` ``[b, n]`` (bool, False at padding) keeps
        padding out of the attention and the convolution."""
        h = self._conv(h, keep)
        q, k, v = rearrange(self.qkv(self.ln_attn(h)), "b n (three h e) -> three b h n e",
                            three=3, h=self.n_head)
        mask = None if keep is None else keep[:, None, None, :]               # [b, 1, 1, n]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.proj(rearrange(a, "b h n e -> b n (h e)")))
        return h + self.drop(self.mlp(self.ln_mlp(h)))

    def forward_at(self, h: Tensor, at: Tensor, keep: Tensor | None = None) -> Tensor:
        """The block's output at one position per row, ``at`` ``[b]`` → ``[b, d]``: keys and
        values from every position, the query, the residual and the MLP at ``at`` only (the
        same numbers as ``forward(h)[rows, at]``, for a fraction of the work)."""
        h = self._conv(h, keep)
        d = h.shape[-1]
        rows = torch.arange(h.shape[0], device=h.device)
        a_in = self.ln_attn(h)                                                # [b, n, d]
        w, bias = self.qkv.weight, self.qkv.bias
        kv = F.linear(a_in, w[d:], bias[d:])                                  # [b, n, 2d]
        k, v = rearrange(kv, "b n (two h e) -> two b h n e", two=2, h=self.n_head)
        q = rearrange(F.linear(a_in[rows, at], w[:d], bias[:d]), "b (h e) -> b h 1 e",
                      h=self.n_head)
        mask = None if keep is None else keep[:, None, None, :]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        h_at = h[rows, at] + self.drop(self.proj(rearrange(a, "b h 1 e -> b (h e)")))
        return h_at + self.drop(self.mlp(self.ln_mlp(h_at)))                 # [b, d]


def _resolve_vocab(cfg: MaskedLMConfig) -> list[str]:
    ek.config.one_of("level", cfg.level, ("char", "word"), who=WHO)
    if cfg.vocab is None:
        return list(ek.get_dataset("text", level=cfg.level).vocab.itos[N_SPECIAL:])
    if not isinstance(cfg.vocab, list) or not all(isinstance(t, str) for t in cfg.vocab):
        raise ek.errors.ConfigError(f"{WHO}: vocab must be a list of token strings or None, "
                                    f"got {type(cfg.vocab).__name__}")
    return list(cfg.vocab)


class MaskedLM(ek.EnergyModel):
    """A masked language model whose energy is the NLL of the hidden tokens.

    Args:
        cfg: The options (see [`MaskedLMConfig`][ebmkit_masked.lm.MaskedLMConfig]).
    """

    name = WHO
    config_class = MaskedLMConfig

    def __init__(self, cfg: MaskedLMConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or MaskedLMConfig()
        ek.config.at_least("block_size", cfg.block_size, 1, who=WHO)
        cfg.check_transformer(WHO)
        k = ek.config.at_least("conv_kernel", cfg.conv_kernel, 0, who=WHO)
        ek.config.at_least("conv_layers", cfg.conv_layers, 0, who=WHO)
        if k and k % 2 == 0:
            raise ek.errors.ConfigError(f"{WHO}: conv_kernel must be odd (centred on the token) "
                                        f"or 0, got {k}")
        ek.config.number("dropout", cfg.dropout, low=0.0, high=1.0, high_open=True, who=WHO)
        cfg.vocab = _resolve_vocab(cfg)
        self.cfg = cfg
        self.vocab_size = len(cfg.vocab) + N_SPECIAL
        self.corruption = BertCorruption(self.vocab_size, cfg.mask_rate, cfg.mask_prob,
                                         cfg.random_prob)
        d = cfg.d_model
        self.tok_emb = nn.Embedding(self.vocab_size, d)
        self.pos_emb = nn.Embedding(cfg.block_size, d)
        self.blocks = nn.ModuleList(Block(cfg, conv=i < cfg.conv_layers)
                                    for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.out_bias = nn.Parameter(torch.zeros(self.vocab_size))
        #: Share of Metropolis–Hastings proposals accepted by the last ``sample(method="mh")``
        #: (None before one, and after a Gibbs call).
        self.last_acceptance: float | None = None
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab(self) -> Any:
        """The model's ``ek.data.text.Vocabulary`` (for ``encode`` / ``decode``)."""
        return ek.data.Vocabulary(self.cfg.vocab, level=self.cfg.level)

    # ------------------------------------------------------------------ the network
    def hidden(self, x: Tensor, keep: Tensor | None = None, at: Tensor | None = None
               ) -> Tensor:
        """The last block's output ``[b, n, d]`` for ids x ``[b, n]`` (unchecked).

        Args:
            x: Token ids.
            keep: Optional bool ``[b, n]``, False at padding: no position attends to padding
                and the convolution reads it as zeros, so a padded sequence gets the numbers
                of the sequence alone (up to rounding).
            at: Optional positions ``[b]``: return only the last block's output there,
                ``[b, d]`` (what pseudo-likelihood scoring and sampling read), computing the
                last block's queries, residuals and MLP at those positions only.
        """
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.tok_emb(x) + self.pos_emb(pos)                              # [b, n, d]
        last = len(self.blocks) - 1 if at is not None else len(self.blocks)
        for block in self.blocks[:last]:
            h = block(h, keep)
        return h if at is None else self.blocks[last].forward_at(h, at, keep)

    def head(self, h: Tensor) -> Tensor:
        """Logits over the vocabulary from hidden states ``[..., d]``: final layer norm, then
        the tied embedding. Callers pick the positions first (the norm is per position), so
        training pays for the head on the ~15% selected positions only."""
        return F.linear(self.ln_f(h), self.tok_emb.weight, self.out_bias)

    def logits(self, x: Tensor) -> Tensor:
        """Logits ``[b, n, v]`` of p(y_i | x) at every position of x (int64 ``[b, n]``;
        ``<pad>``, id 0, is padding: attended by no position)."""
        x, keep = self._ids(x, "x")
        return self.head(self.hidden(x, keep))

    def check_ids(self, t: Any, what: str, *, values: bool = True) -> Tensor:
        """Raise a clear error unless ``t`` is int64-like token ids ``[B, T]`` with
        T ≤ block_size (and, when ``values``, ids in ``[0, vocab_size)``: one host sync)."""
        return self._ids(t, what, values=values)[0]

    def _ids(self, t: Any, what: str, *, values: bool = True) -> tuple[Tensor, Tensor | None]:
        """``check_ids`` and the padding: ``(ids, keep)`` with keep bool ``[B, T]`` (False at
        ``<pad>``) when ``values`` found a pad, else None. The pad test rides on the range
        check's sync (``<pad>`` is id 0, the smallest)."""
        if not isinstance(t, Tensor):
            raise ek.errors.ConfigError(f"{WHO}: {what} must be a tensor of token ids [B, T], "
                                        f"got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ek.errors.ConfigError(
                f"{WHO}: {what} must hold integer token ids (int64), got a {t.dtype} tensor; "
                f"encode text with model.vocab.encode(...) or ek.get_dataset('text')")
        if t.dim() != 2 or 0 in t.shape:
            raise ek.errors.ConfigError(f"{WHO}: {what} must have shape [B, T] (a batch of "
                                        f"sequences, B, T ≥ 1), got {list(t.shape)}")
        if t.shape[1] > self.cfg.block_size:
            raise ek.errors.ConfigError(
                f"{WHO}: {what} has {t.shape[1]} tokens, longer than the model's context "
                f"block_size={self.cfg.block_size}; cut it into blocks or build the model with a "
                f"larger block_size")
        if t.device != self.device:
            raise ek.errors.ConfigError(f"{WHO}: {what} is on {t.device} but the model is on "
                                        f"{self.device}; move one of them")
        keep = None
        if values and t.numel():
            lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one host sync
            if lo < 0 or hi >= self.vocab_size:
                bad = lo if lo < 0 else hi
                raise ek.errors.ConfigError(
                    f"{WHO}: {what} holds token id {bad}, outside the vocabulary [0, "
                    f"{self.vocab_size})")
            if lo == PAD_ID:
                keep = t != PAD_ID
                # a row of padding only (an empty sentence) attends to all of itself, so it
                # scores 0 rather than NaN (a softmax over nothing)
                keep = keep | ~keep.any(dim=1, keepdim=True)
        return t.long(), keep

    # ------------------------------------------------------------------ the energy
    def token_nll(self, y: Tensor, x: Tensor) -> Tensor:
        """−log p(y_i | x) at every position, ``[B, T]`` (float32)."""
        logits = self.logits(x)
        return F.cross_entropy(rearrange(logits, "b n v -> b v n").float(), y, reduction="none")

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(x, y) = −Σ_{i: x_i = <mask>} log p(y_i | x), in nats, ``[B]``.

        Args:
            y: The full sequence, int64 ``[B, T]``.
            x: The corrupted sequence, int64 ``[B, T]`` (``<mask>`` = 2 where hidden;
                ``<pad>`` = 0 where a shorter sequence ends: attended by no position).

        Raises:
            ConfigError: x missing, shapes differ, or bad ids (see ``check_ids``).
        """
        if x is None:
            raise ek.errors.ConfigError(
                f"{WHO}: energy(y, x=x) needs the corrupted sequence x (<mask> = {MASK_ID} where "
                f"hidden); for a score of y alone use free_energy(y) or score(y), the "
                f"pseudo-negative-log-likelihood")
        y = self.check_ids(y, "y")
        if not isinstance(x, Tensor) or x.shape != y.shape:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ek.errors.ConfigError(f"{WHO}: x and y must have the same shape, got x "
                                        f"{got} and y {list(y.shape)}")
        nll = self.token_nll(y, x)                                           # [B, T]
        return (nll * (x == MASK_ID)).sum(1)

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """No latent variable: with x, F(x, y) = E(x, y); without x, the pseudo-NLL
        ``score(y)`` (every position masked in turn), which scores y alone."""
        return self.score(y) if x is None else self.energy(y, x=x)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """argmin_y E(x, y): x with every ``<mask>`` replaced by its most likely token.

        Raises:
            ConfigError: bad ids, or x holds no ``<mask>`` (nothing to predict).
        """
        x, keep = self._ids(x, "x")
        masked = x == MASK_ID
        if not bool(masked.any()):
            raise ek.errors.ConfigError(
                f"{WHO}: predict(x) fills the <mask> tokens (id {MASK_ID}) of x, but x holds "
                f"none; hide positions first, e.g. x[:, i] = {MASK_ID}")
        logits = self.head(self.hidden(x, keep))
        logits[..., :N_SPECIAL] = -math.inf            # a hidden token is never pad/unk/mask
        return torch.where(masked, logits.argmax(-1), x)

    @torch.no_grad()
    def score(self, y: Tensor, chunk: int = 64) -> Tensor:
        """Pseudo-negative-log-likelihood −Σ_i log p(y_i | y with position i masked), ``[B]``.

        Each of the T positions is masked in turn; the B·T masked copies run as batches of
        at most ``chunk`` sequences, and the last block computes its output at the masked
        position only (what the sum reads). ``<pad>`` (id 0) marks where a shorter
        sequence ends: pad positions are neither attended to nor counted, so sentences of
        different lengths are scored in one batch, each as if alone. Not a normalised
        likelihood (see the docs).
        """
        ek.config.at_least("chunk", chunk, 1, who=f"{WHO}.score")
        y, keep = self._ids(y, "y")
        return self._score(y, keep, chunk)

    def _score(self, y: Tensor, keep: Tensor | None, chunk: int = 64) -> Tensor:
        """``score`` on checked ids (no host sync: the samplers call it per proposal)."""
        b, t = y.shape
        out = torch.empty(b * t, device=y.device)
        copies = y.repeat_interleave(t, dim=0)                               # [b·t, t]
        at = torch.arange(t, device=y.device).repeat(b)                      # [b·t]
        rows = torch.arange(b * t, device=y.device)
        xs = copies.clone()
        xs[rows, at] = MASK_ID                                               # copy r masks r % t
        targets = copies[rows, at]                                           # [b·t]
        keeps = None if keep is None else keep.repeat_interleave(t, dim=0)
        for s in range(0, b * t, chunk):
            sl = slice(s, s + chunk)
            h = self.hidden(xs[sl], None if keeps is None else keeps[sl], at=at[sl])  # [c, d]
            out[sl] = F.cross_entropy(self.head(h).float(), targets[sl], reduction="none")
        nll = out.view(b, t)
        return (nll if keep is None else nll * (y != PAD_ID)).sum(1)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int = 8, steps: int = 2, length: int | None = None,
               method: str = "gibbs", init: Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw sequences by Gibbs or Metropolis–Hastings sampling; int64 ``[n, length]``.

        See [`ebmkit_masked.sampling`][ebmkit_masked.sampling] for the two chains.

        Args:
            n: Chains (ignored when ``init`` is given).
            steps: Sweeps over every position after the initial fill.
            length: Sequence length (default: 64, at most block_size).
            method: ``"gibbs"`` or ``"mh"`` (target exp(−score), Goyal et al. 2021).
            init: Optional start ``[n, length]``; ``<mask>`` entries are filled first.
            temperature: Softmax temperature of the proposals.
            generator: Optional generator on the model's device.
        """
        return _sample(self, n=n, steps=steps, length=length, method=method, init=init,
                      temperature=temperature, generator=generator)

    def decode(self, ids: Tensor) -> list[str]:
        """Text of each row of ids ``[B, T]``."""
        ids = self.check_ids(ids, "ids")
        vocab = self.vocab
        return [vocab.decode(row) for row in ids.detach().cpu()]

    def plots(self, data: Any, out: str | os.PathLike[str], n: int = 4) -> list[Path]:
        """``fill-in.txt``: n blocks of ``data`` as masked input / prediction / truth, and
        two Gibbs samples; what ``ebmkit train`` writes beside ``curve.png``."""
        y = data.y[:n].to(self.device)
        gen = torch.Generator(device=y.device).manual_seed(self.cfg.eval_seed)
        x, _ = self.corruption.corrupt(y, gen)
        x[:, 0] = MASK_ID  # at least one <mask> per row
        show = [s.replace("\n", "⏎") for s in
                self.decode(x) + self.decode(self.predict(x)) + self.decode(y)]
        lines = [f"{WHO}: {n} test blocks, <mask> shown as _, each as input / prediction / truth",
                 ""]
        for i in range(len(y)):
            lines += [f"input      {show[i].replace('<mask>', '_')}",
                      f"prediction {show[n + i]}", f"truth      {show[2 * n + i]}", ""]
        samples = self.sample(2, steps=1, length=y.shape[1], generator=gen)
        lines += ["Gibbs samples (one fill, one sweep):"]
        lines += [f"  {s.replace(chr(10), '⏎')}" for s in self.decode(samples)]
        path = Path(out) / "fill-in.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return [path]

    # ------------------------------------------------------------------ training
    def default_strategy(self) -> MaskedLMStrategy:
        return MaskedLMStrategy()

    def metrics(self) -> dict[str, Any]:
        """``<mask>``-position accuracy, perplexity and bits per character, the same over
        every corrupted position (``selected/…``), on a corruption fixed by ``eval_seed``."""
        from .metrics import MaskedTokenMetrics

        return {"mlm": MaskedTokenMetrics(self.cfg.eval_seed)}


class MaskedLMStrategy(ek.strategies.Strategy):
    r"""BERT's training step: corrupt y into x, then the mean cross-entropy over every
    *selected* position (masked, replaced or kept):

    $$ L = \frac{1}{\max(|S|, 1)} \sum_{(b, i) \in S} -\log p_\theta(y_{b,i} \mid x_b). $$

    On the ``<mask>`` positions this is the energy E(x, y) averaged per token; the
    replaced and kept positions teach the model not to trust its input blindly. A batch
    in which nothing was selected (possible with a few short rows) gives a loss of 0 with
    no gradient, not 0/0. ``<pad>`` positions are never selected. Logs ``e_pos`` (the mean
    energy per sequence) and ``accuracy`` (on ``<mask>`` positions).

    No host sync per step: the head runs on a fixed number of positions, the selected
    ones first (a stable sort of the selection), as many as
    ``rate·B·T + 6·√(B·T·rate·(1 − rate)) + 8`` (at most B·T), and the loss weights the
    unselected ones by 0. A batch selecting more than that (six standard deviations above
    the mean: probability below 1e-9 per step) leaves the excess out of that step's mean.
    """

    def __init__(self) -> None:
        self._checked = False

    def __call__(self, model: MaskedLM, batch: dict[str, Tensor]) -> ek.StepOutput:
        y = batch["y"] if isinstance(batch, dict) and "y" in batch else None
        y = model.check_ids(y, "batch['y']", values=not self._checked)
        self._checked = True  # the range check syncs: once per run, not per step
        x, selected = model.corruption.corrupt(y)                            # [B, T] each
        b, t = y.shape
        rate = model.corruption.rate
        size = min(b * t, math.ceil(rate * b * t + 6 * math.sqrt(b * t * rate * (1 - rate)) + 8))
        flat = selected.flatten()
        idx = torch.argsort(flat.to(torch.int8), descending=True, stable=True)[:size]  # [S]
        w = flat[idx].float()                                                # 1: selected
        h = model.hidden(x).flatten(0, 1)[idx]                               # [S, d]
        logits = model.head(h)                                               # [S, v]
        target = y.flatten()[idx]
        nll = F.cross_entropy(logits.float(), target, reduction="none")      # [S]
        loss = (nll * w).sum() / w.sum().clamp(min=1)
        with torch.no_grad():
            masked = (x.flatten()[idx] == MASK_ID).float() * w
            e_pos = (nll * masked).sum() / b
            acc = ((logits.argmax(-1) == target).float() * masked).sum() / masked.sum().clamp(min=1)
        return ek.StepOutput(loss, {"e_pos": e_pos, "accuracy": acc})

    def __repr__(self) -> str:
        return "MaskedLMStrategy()"
