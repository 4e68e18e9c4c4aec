"""Position schemes: T5 relative position bias (lexinvariant paper), RoPE (glyph paper),
learned absolute positions (GPT-2)."""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def t5_buckets(relative_LxS: Array, num_buckets: int, max_distance: int) -> Array:
    """T5's causal (unidirectional) bucketing of key-minus-query distances.

    Half the buckets are exact small distances, the rest log-spaced up to max_distance;
    keys after the query (masked anyway) fall in bucket 0.
    """
    n = jnp.maximum(-relative_LxS, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    scaled = jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (scaled * (num_buckets - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return jnp.where(is_small, n, large)


class T5RelativeBias(nn.Module):
    """One learned scalar per (bucket, head), shared by all layers as in T5."""

    num_heads: int
    num_buckets: int = 32
    max_distance: int = 128

    @nn.compact
    def __call__(self, q_positions_L: Array, k_positions_S: Array) -> Array:
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(nn.initializers.normal(0.02), ("relpos_buckets", "heads")),
            (self.num_buckets, self.num_heads), jnp.float32)
        buckets_LxS = t5_buckets(k_positions_S[None, :] - q_positions_L[:, None], self.num_buckets, self.max_distance)
        bias_LxSxN = table[buckets_LxS]
        return jnp.transpose(bias_LxSxN, (2, 0, 1))[None]  # [1, N, L, S]


def apply_rope(x_BxLxNxH: Array, positions_BxL: Array, theta: float) -> Array:
    """Rotary embedding on pairs (i, i + H/2), in float32."""
    h = x_BxLxNxH.shape[-1]
    freqs = theta ** (-jnp.arange(0, h // 2, dtype=jnp.float32) * 2.0 / h)
    angles = positions_BxL[..., None].astype(jnp.float32) * freqs  # [B, L, H/2]
    sin, cos = jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]
    x = x_BxLxNxH.astype(jnp.float32)
    x1, x2 = x[..., : h // 2], x[..., h // 2:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxLxNxH.dtype)


class LearnedPositions(nn.Module):
    max_len: int
    d_model: int

    @nn.compact
    def __call__(self, positions_BxL: Array) -> Array:
        table = self.param(
            "pos_embedding",
            nn.with_logical_partitioning(nn.initializers.normal(0.02), ("positions", "embed")),
            (self.max_len, self.d_model), jnp.float32)
        return table[positions_BxL]
