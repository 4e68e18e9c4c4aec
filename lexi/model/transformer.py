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
    def __call__(self, x_BxLxD, segment_ids_BxL, positions_BxL, bias):
        cfg = self.cfg
        x_BxLxD = constrain(x_BxLxD, ("batch", "length", "act_embed"))
        h = Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, name="attn_norm")(x_BxLxD)
        x_BxLxD = x_BxLxD + Attention(cfg, name="attn")(
            h, segment_ids_BxL=segment_ids_BxL, positions_BxL=positions_BxL, bias_1xNxLxS=bias,
            deterministic=self.deterministic, decode=self.decode)
        h = Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, name="mlp_norm")(x_BxLxD)
        x_BxLxD = x_BxLxD + Mlp(cfg, name="mlp")(h, self.deterministic)
        return x_BxLxD


class _ScanBlock(Block):
    """Block with the (carry, out) signature that nn.scan wants."""

    @nn.compact
    def __call__(self, x_BxLxD, segment_ids_BxL, positions_BxL, bias):
        return super().__call__(x_BxLxD, segment_ids_BxL, positions_BxL, bias), None


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
    ) -> Array:
        """Returns the final-normed hidden states h_BxLxD (float32).

        decode=True runs incrementally with a key/value cache of `cache_len` positions
        (`positions_BxL` are then the absolute positions of the tokens fed in).
        """
        cfg = self.cfg
        b, l, _ = x_BxLxD.shape
        if positions_BxL is None:
            positions_BxL = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
        if cfg.position == "learned":
            x_BxLxD = x_BxLxD + pos.LearnedPositions(cfg.max_len, cfg.d_model, name="positions")(positions_BxL)

        bias = None
        if cfg.position == "t5_bias":
            rel = pos.T5RelativeBias(cfg.num_heads, cfg.relpos_buckets, cfg.relpos_max_distance, name="relpos")
            if decode:  # queries at their absolute positions, keys over the whole cache
                bias = rel(positions_BxL[0], jnp.arange(cache_len or l))
            else:  # relative distances within a segment equal index differences
                bias = rel(jnp.arange(l), jnp.arange(l))

        x = nn.Dropout(cfg.dropout)(x_BxLxD.astype(cfg.compute_dtype), deterministic=deterministic)
        block_cls = _ScanBlock if cfg.scan_layers else Block
        if cfg.remat != "none":
            block_cls = nn.remat(block_cls, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=not cfg.scan_layers)
        if cfg.scan_layers:
            stack = nn.scan(
                block_cls,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
                length=cfg.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(cfg, deterministic, decode, name="layers")
            x, _ = stack(x, segment_ids_BxL, positions_BxL, bias)
        else:
            for i in range(cfg.num_layers):
                x = block_cls(cfg, deterministic, decode, name=f"layer_{i}")(x, segment_ids_BxL, positions_BxL, bias)
        h = Norm(cfg.norm, cfg.norm_eps, jnp.float32, name="final_norm")(x)
        return constrain(h, ("batch", "length", "act_embed"))
