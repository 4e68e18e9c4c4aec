"""The decoder-only Transformer backbone shared by every embedding family.

It maps input vectors x_BxLxD to final hidden states h_BxLxD and never sees token ids:
whatever produced x (a trainable table, a per-sequence random matrix, glyphs, a
hypernetwork) is the embedding's business (lexi/embeddings).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lexi.model import positions as pos
from lexi.model.config import BackboneConfig
from lexi.model.layers import Attention, Mlp, Norm, constrain

Array = jax.Array

_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Block(nn.Module):
    """Pre-norm residual block: x + Attn(Norm(x)), then x + Mlp(Norm(x))."""

    cfg: BackboneConfig
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxLxD, segment_ids_BxL, positions_BxL, bias, rel_positions):
        cfg = self.cfg
        if cfg.position == "t5_bias" and cfg.relpos_per_layer:  # this layer's own distance profile
            bias = pos.T5RelativeBias(cfg.num_heads, cfg.relpos_buckets, cfg.relpos_max_distance,
                                      name="relpos")(*rel_positions)
        x_BxLxD = constrain(x_BxLxD, ("batch", "length", "act_embed"))
        h = Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, name="attn_norm")(x_BxLxD)
        x_BxLxD = x_BxLxD + Attention(cfg, name="attn")(
            h, segment_ids_BxL=segment_ids_BxL, positions_BxL=positions_BxL, bias_1xNxLxS=bias,
            deterministic=self.deterministic, decode=self.decode)
        h = Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, name="mlp_norm")(x_BxLxD)
        x_BxLxD = x_BxLxD + Mlp(cfg, name="mlp")(h, self.deterministic)
        return x_BxLxD


class _ScanBlock(Block):
    """Block with the (carry, out) signature that nn.scan wants; `emit` also stacks each
    layer's output (for probes that read every layer)."""

    emit: bool = False

    @nn.compact
    def __call__(self, x_BxLxD, segment_ids_BxL, positions_BxL, bias, rel_positions):
        x_BxLxD = super().__call__(x_BxLxD, segment_ids_BxL, positions_BxL, bias, rel_positions)
        return x_BxLxD, (x_BxLxD if self.emit else None)


class Backbone(nn.Module):
    cfg: BackboneConfig

    @nn.compact
    def __call__(
        self,
        x_BxLxD: Array,
        segment_ids_BxL: Optional[Array] = None,
        positions_BxL: Optional[Array] = None,
        *,
        deterministic: bool = True,
        decode: bool = False,
        cache_len: int = 0,
        residuals: bool = False,
    ) -> Array:
        """Returns the final-normed hidden states h_BxLxD (float32).

        decode=True runs incrementally with a key/value cache of `cache_len` positions
        (`positions_BxL` are then the absolute positions of the tokens fed in).
        residuals=True returns every layer's residual stream instead, float32[layers + 1,
        B, L, D]: the input, the stream after each block but the last, and the final-normed h.
        """
        cfg = self.cfg
        b, l, _ = x_BxLxD.shape
        if positions_BxL is None:
            positions_BxL = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
        if cfg.position == "learned":
            x_BxLxD = x_BxLxD + pos.LearnedPositions(cfg.max_len, cfg.d_model, name="positions")(positions_BxL)

        bias = None
        if decode:  # queries at their absolute positions, keys over the whole cache
            rel_positions = (positions_BxL[0], jnp.arange(cache_len or l))
        else:  # relative distances within a segment equal index differences
            rel_positions = (jnp.arange(l), jnp.arange(l))
        if cfg.position == "t5_bias" and not cfg.relpos_per_layer:  # one table for every layer, as in T5
            bias = pos.T5RelativeBias(cfg.num_heads, cfg.relpos_buckets, cfg.relpos_max_distance,
                                      name="relpos")(*rel_positions)

        x = nn.Dropout(cfg.dropout)(x_BxLxD.astype(cfg.compute_dtype), deterministic=deterministic)
        block_cls = _ScanBlock if cfg.scan_layers else Block
        if cfg.remat != "none":
            block_cls = nn.remat(block_cls, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=not cfg.scan_layers)
        streams = [x]
        if cfg.scan_layers:
            stack = nn.scan(
                block_cls,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
                length=cfg.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(cfg, deterministic, decode, residuals, name="layers")
            x, per_layer = stack(x, segment_ids_BxL, positions_BxL, bias, rel_positions)
            if residuals:
                streams += list(per_layer[:-1])
        else:
            for i in range(cfg.num_layers):
                x = block_cls(cfg, deterministic, decode, name=f"layer_{i}")(
                    x, segment_ids_BxL, positions_BxL, bias, rel_positions)
                streams.append(x)
            streams = streams[:-1]
        h = Norm(cfg.norm, cfg.norm_eps, jnp.float32, name="final_norm")(x)
        h = constrain(h, ("batch", "length", "act_embed"))
        if residuals:
            return jnp.stack([s.astype(jnp.float32) for s in streams] + [h])
        return h
