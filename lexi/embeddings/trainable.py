"""The standard learned embedding table, with a tied or separate readout."""
from __future__ import annotations

import math
from typing import Any, ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lexi.embeddings import readout
from lexi.embeddings.base import Embedding
from lexi.embeddings.readout import UsedIds
from lexi.ops import xent

Array = jax.Array


def readout_scale(logit_scale: float, d_model: int) -> float:
    """The factor on h . R^T: `logit_scale`, or 1/sqrt(d_model) when it is 0 (lexi's default)."""
    return float(logit_scale or 0.0) or 1.0 / math.sqrt(d_model)


class TrainableEmbedding(Embedding):
    """Rows ~ N(0, 1); logits = h . R^T / sqrt(d) with R the table (tied) or a head.

    readout_chunk > 0 computes the loss over vocabulary chunks of that size with a
    running log-sum-exp, never holding B x L x V logits (for large vocabularies).
    logit_scale replaces the 1/sqrt(d): models imported from Hugging Face (lexi/hf) use
    1.0, their plain h . R^T.
    used_ids (set from config.embedding.readout_ids = "train_split", lexi/embeddings/readout.py)
    restricts the readout to those ids plus an "other" row: an untied head then has only
    those rows, a tied readout gathers them from the table. Subclasses share it (frozen).
    """

    restricted_readout_refusal: ClassVar[str] = ""

    tied: bool = True
    readout_chunk: int = 0
    logit_scale: float = 0.0  # 0 = 1/sqrt(d_model)
    used_ids: Optional[UsedIds] = None  # None: read out over the full vocabulary

    def setup(self):
        init = nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed"))
        self.table = self.param("table", init, (self.vocab_size, self.d_model), jnp.float32)
        self._readout_params()

    def _readout_params(self) -> None:
        """In setup: `head`, the untied readout's rows (one per id it scores: every id, or the
        used ones), and `other`, the restricted readout's row for all unused ids (or None)."""
        init = nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed"))
        scored = self.vocab_size if self.used_ids is None else self.used_ids.count
        self.head = self.table if self.tied else self.param("head", init, (scored, self.d_model), jnp.float32)
        has_other = self.used_ids is not None and self.used_ids.has_other
        other_init = nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, "embed"))
        self.other = self.param("other", other_init, (1, self.d_model), jnp.float32) if has_other else None

    @property
    def readout_rows(self) -> int:
        return self.used_ids.rows if self.used_ids is not None else self.vocab_size

    def _restricted_rows(self) -> Array:
        """[K (+1), D]: the used ids' rows, then the trainable "other" row when some id is unused."""
        rows = jnp.take(self.table, jnp.asarray(self.used_ids.ids), axis=0) if self.tied else self.head
        return rows if self.other is None else jnp.concatenate([rows, self.other], axis=0)

    @property
    def _scale(self) -> float:
        return readout_scale(self.logit_scale, self.d_model)

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        return jnp.take(self.table, tokens_BxL, axis=0)

    def logits(self, h_BxLxD: Array, ctx: Any) -> Array:
        rows = self.head if self.used_ids is None else self._restricted_rows()
        z = self._scale * jnp.einsum("bld,vd->blv", h_BxLxD, rows.astype(h_BxLxD.dtype),
                                     preferred_element_type=jnp.float32)
        return z if self.used_ids is None else readout.full_logits(z, self.used_ids)

    def target_logprobs(self, h_BxLxD: Array, targets_BxL: Array, ctx: Any) -> Array:
        if self.used_ids is not None:
            return readout.target_logprobs(h_BxLxD, self._restricted_rows(), targets_BxL, self.used_ids,
                                           self._scale, self.readout_chunk)
        if not self.readout_chunk:
            return super().target_logprobs(h_BxLxD, targets_BxL, ctx)
        head = self.head
        rows_fn = lambda ids_C: jnp.take(head, ids_C, axis=0)[None]
        return xent.chunked_target_logprobs(
            h_BxLxD, rows_fn, targets_BxL, jnp.take(head, targets_BxL, axis=0),
            self.vocab_size, self.readout_chunk, self._scale)
