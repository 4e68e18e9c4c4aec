"""A language model = an embedding (any family) around the shared backbone."""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax

from lexi.embeddings.base import Embedding
from lexi.model.config import BackboneConfig
from lexi.model.transformer import Backbone

Array = jax.Array


def model_variables(params: Any, constants: Any = None) -> dict:
    """What `LanguageModel.apply` takes: the trained parameters and, for embeddings with a
    frozen table (glyphs, binary codes), the "constants" collection, which is never
    differentiated, never optimised and never changes."""
    return {"params": params, "constants": constants} if constants else {"params": params}


class LanguageModel(nn.Module):
    backbone: BackboneConfig
    embedding: Embedding

    def setup(self):
        self.body = Backbone(self.backbone)

    def hidden(self, inputs_BxL: Array, ctx: Any, segment_ids_BxL: Optional[Array] = None,
               positions_BxL: Optional[Array] = None, *, deterministic: bool = True,
               decode: bool = False, cache_len: int = 0) -> Array:
        """Final-layer (final-normed) activations h_BxLxD: what the readout and probes read."""
        x = self.embedding.embed(inputs_BxL, ctx)
        return self.body(x, segment_ids_BxL, positions_BxL, deterministic=deterministic,
                         decode=decode, cache_len=cache_len)

    def __call__(self, inputs_BxL: Array, targets_BxL: Array, ctx: Any,
                 segment_ids_BxL: Optional[Array] = None, positions_BxL: Optional[Array] = None,
                 *, deterministic: bool = True) -> Array:
        """log p(targets | inputs) per position, float32[B, L]."""
        h = self.hidden(inputs_BxL, ctx, segment_ids_BxL, positions_BxL, deterministic=deterministic)
        return self.embedding.target_logprobs(h, targets_BxL, ctx)

    def logits(self, inputs_BxL: Array, ctx: Any, segment_ids_BxL: Optional[Array] = None,
               positions_BxL: Optional[Array] = None, *, decode: bool = False, cache_len: int = 0) -> Array:
        h = self.hidden(inputs_BxL, ctx, segment_ids_BxL, positions_BxL, decode=decode, cache_len=cache_len)
        return self.embedding.logits(h, ctx)

    def residual_streams(self, inputs_BxL: Array, ctx: Any, segment_ids_BxL: Optional[Array] = None,
                         positions_BxL: Optional[Array] = None) -> Array:
        """Every layer's view of the sequence, float32[layers + 1, B, L, D]: the embedding
        output, the residual stream after each block but the last, and the final-normed h
        (what the readout sees). Probes read any of them: for a lexinvariant model the final
        layer is written for h . E^T, the hardest place to decode token identities."""
        x = self.embedding.embed(inputs_BxL, ctx)
        return self.body(x, segment_ids_BxL, positions_BxL, residuals=True)
