"""The embedding family a transferred model runs with: tables handed in per batch.

The hypernetwork (or a baseline such as FVT) predicts the input and output matrices for a
tokenizer; they reach the frozen backbone through `ctx` as {"in": [V, D], "out": [V, D],
"mask": bool [V]}, so one compiled step serves every sampled tokenizer of the same padded
size. Readout follows the base's trainable family: logits = h . out^T / sqrt(d), with
padded ids (mask False) never predicted.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from lexi.embeddings.base import Embedding

Array = jax.Array


def tables(rows_in: Array, rows_out: Array, mask_V: Array) -> dict:
    """The ctx a `PredictedEmbedding` reads."""
    return {"in": rows_in, "out": rows_out, "mask": mask_V}


class PredictedEmbedding(Embedding):
    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        return jnp.take(ctx["in"], tokens_BxL, axis=0)

    def logits(self, h_BxLxD: Array, ctx: Any) -> Array:
        out = jnp.einsum("bld,vd->blv", h_BxLxD, ctx["out"].astype(h_BxLxD.dtype),
                         preferred_element_type=jnp.float32) / math.sqrt(self.d_model)
        return jnp.where(ctx["mask"], out, -1e30)
