"""The standard learned embedding table, with a tied or separate readout."""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lexi.embeddings.base import Embedding
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
    """

    tied: bool = True
    readout_chunk: int = 0
    logit_scale: float = 0.0  # 0 = 1/sqrt(d_model)

    def setup(self):
        init = nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed"))
        self.table = self.param("table", init, (self.vocab_size, self.d_model), jnp.float32)
        self.head = self.table if self.tied else self.param("head", init, (self.vocab_size, self.d_model), jnp.float32)

    @property
    def _scale(self) -> float:
        return readout_scale(self.logit_scale, self.d_model)

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        return jnp.take(self.table, tokens_BxL, axis=0)

    def logits(self, h_BxLxD: Array, ctx: Any) -> Array:
        return self._scale * jnp.einsum("bld,vd->blv", h_BxLxD, self.head.astype(h_BxLxD.dtype),
                                        preferred_element_type=jnp.float32)

    def target_logprobs(self, h_BxLxD: Array, targets_BxL: Array, ctx: Any) -> Array:
        if not self.readout_chunk:
            return super().target_logprobs(h_BxLxD, targets_BxL, ctx)
        head = self.head
        rows_fn = lambda ids_C: jnp.take(head, ids_C, axis=0)[None]
        return xent.chunked_target_logprobs(
            h_BxLxD, rows_fn, targets_BxL, jnp.take(head, targets_BxL, axis=0),
            self.vocab_size, self.readout_chunk, self._scale)
