"""Embedding matrices handed in per batch: what a ZeTT hypernetwork (or a baseline) predicts.

The tables reach the frozen backbone through `ctx` as {"in": [V, D], "out": [V, D],
"mask": bool [V]}, so one compiled step serves every sampled tokenizer of the same padded
size; padded ids (mask False) are never predicted. The readout must be the base's own
(lexi/embeddings/trainable.py), or every number measured through it is off: `from_base`
copies its `logit_scale` (1/sqrt(d) for lexi-trained bases, 1.0 for Hugging Face imports)
and `readout_chunk`. Tied or untied is the table-maker's business: a tied base gets the
same matrix as "in" and "out". The trainable family has no readout bias, so neither has this.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lexi.embeddings.base import Embedding
from lexi.embeddings.trainable import readout_scale
from lexi.errors import UserError
from lexi.ops import xent

Array = jax.Array
MASKED = -1e30  # the logit of a padded id


def tables(rows_in: Array, rows_out: Array, mask_V: Array) -> dict:
    """The ctx a `PredictedEmbedding` reads."""
    return {"in": rows_in, "out": rows_out, "mask": mask_V}


def from_base(base_embedding: dict) -> dict:
    """This family's config for a base run's trainable-embedding config (missing fields: defaults)."""
    if base_embedding.get("readout_ids", "all") != "all":
        raise UserError("the base model reads out only the ids its training split uses "
                        f"(readout_ids={base_embedding['readout_ids']!r}); ZeTT predicts readout rows for a whole "
                        "vocabulary: transfer a base trained with readout_ids='all'")
    return {"kind": "predicted", "logit_scale": float(base_embedding.get("logit_scale", 0.0) or 0.0),
            "readout_chunk": int(base_embedding.get("readout_chunk", 0) or 0)}


class PredictedEmbedding(Embedding):
    restricted_readout_refusal = "its readout rows are handed in for a whole (new) vocabulary"

    logit_scale: float = 0.0  # the base's; 0 = 1/sqrt(d_model)
    readout_chunk: int = 0  # the base's; > 0: never hold B x L x V logits

    @property
    def scale(self) -> float:
        return readout_scale(self.logit_scale, self.d_model)

    def context(self, key: Array, step: Array, rows_B: Array, train: bool = True) -> Any:
        raise UserError("config.embedding.kind 'predicted' runs with matrices a ZeTT hypernetwork or baseline "
                        "hands in per batch; a language model cannot train one: use kind 'trainable'")

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        return jnp.take(ctx["in"], tokens_BxL, axis=0)

    def logits(self, h_BxLxD: Array, ctx: Any) -> Array:
        out = self.scale * jnp.einsum("bld,vd->blv", h_BxLxD, ctx["out"].astype(h_BxLxD.dtype),
                                      preferred_element_type=jnp.float32)
        return jnp.where(ctx["mask"], out, MASKED)

    def target_logprobs(self, h_BxLxD: Array, targets_BxL: Array, ctx: Any) -> Array:
        if not self.readout_chunk:
            return super().target_logprobs(h_BxLxD, targets_BxL, ctx)
        # the mask rides along as one more coordinate: h gets a 1, a row 0 (kept) or a quarter of the
        # compute dtype's lowest value (padded: finite even in float16, and far below any real logit)
        out, scale = ctx["out"], self.scale
        bias_V = jnp.where(ctx["mask"], 0.0, float(jnp.finfo(h_BxLxD.dtype).min) / 4).astype(jnp.float32)
        rows = jnp.concatenate([out, bias_V[:, None]], axis=-1)
        h = jnp.concatenate([h_BxLxD, jnp.ones(h_BxLxD.shape[:-1] + (1,), h_BxLxD.dtype)], axis=-1)
        return xent.chunked_target_logprobs(
            h, lambda ids_C: jnp.take(rows, ids_C, axis=0)[None], targets_BxL, jnp.take(rows, targets_BxL, axis=0),
            rows.shape[0], self.readout_chunk, scale)
