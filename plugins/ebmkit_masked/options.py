"""What ``masked.image`` and ``masked.lm`` share in their options: the default transformer's
depth, heads and width, and the seed of the fixed hiding their metrics evaluate on."""

from __future__ import annotations

from dataclasses import dataclass

import ebmkit as ek

__all__ = ["MaskedOptions"]


@dataclass
class MaskedOptions:
    """The options both masked families have (each documents them in its own config).

    Attributes:
        n_layer: Transformer blocks (of the default network).
        n_head: Attention heads.
        d_model: Width.
        eval_seed: Seed of the fixed hiding (or corruption) that ``metrics()`` evaluate on.
    """

    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    eval_seed: int = 1234

    def check_transformer(self, who: str) -> None:
        """``n_layer`` ≥ 1, ``n_head`` ≥ 1 dividing ``d_model`` (``ek.config.attention_dims``).

        Raises:
            ConfigError: one of them is out of range, naming ``who``.
        """
        ek.config.attention_dims(self.n_layer, self.n_head, self.d_model, who=who)
