"""Position schemes: T5 relative position bias (lexinvariant paper), RoPE (glyph paper),
learned absolute positions (GPT-2)."""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def rope_frequencies(head_dim: int, theta: float, scaling: str = "none", factor: float = 1.0,
                     original_max_len: int = 0, low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                     beta_fast: float = 32.0, beta_slow: float = 1.0,
                     attention_factor: float = 0.0) -> tuple[np.ndarray, float]:
    """(inverse frequencies [H/2], scale on cos and sin) of RoPE and its long-context variants,
    computed once on the host (as Hugging Face's implementations define them, which is how
    imported Llama-family checkpoints were trained).

    linear: every frequency / factor. llama3 (Llama 3.1): wavelengths longer than
    original_max_len / low_freq_factor are divided by factor, shorter than original_max_len /
    high_freq_factor kept, a smooth blend between. yarn (Peng et al. 2023): a linear ramp in
    dimension between extrapolated and interpolated frequencies, between the dimensions that
    turn beta_fast and beta_slow times over original_max_len, with cos/sin scaled by
    attention_factor (0 = 0.1 ln(factor) + 1).
    """
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    scale = 1.0
    if scaling == "linear":
        inv = inv / factor
    elif scaling == "llama3":
        wavelen = 2 * math.pi / inv
        low_wavelen, high_wavelen = original_max_len / low_freq_factor, original_max_len / high_freq_factor
        smooth = (original_max_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        blended = (1 - smooth) * inv / factor + smooth * inv
        inv = np.where(wavelen > low_wavelen, inv / factor, np.where(wavelen < high_wavelen, inv, blended))
    elif scaling == "yarn":
        def dim_of(rotations: float) -> float:
            return head_dim * math.log(original_max_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))
        low = max(math.floor(dim_of(beta_fast)), 0)
        high = min(math.ceil(dim_of(beta_slow)), head_dim - 1)
        ramp = np.clip((np.arange(head_dim // 2) - low) / ((high - low) or 0.001), 0.0, 1.0)
        keep = 1.0 - ramp  # share of the original (extrapolated) frequency
        inv = inv / factor * (1 - keep) + inv * keep
        scale = attention_factor or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
    elif scaling != "none":
        raise ValueError(f"unknown rope scaling {scaling!r}")
    return inv.astype(np.float32), float(scale)


def apply_rope(x_BxLxNxH: Array, positions_BxL: Array, theta: float, inv_freq=None, scale: float = 1.0) -> Array:
    """Rotary embedding on pairs (i, i + H/2), in float32. `inv_freq` (from rope_frequencies)
    replaces the plain theta^(-2i/H) frequencies when given."""
    h = x_BxLxNxH.shape[-1]
    freqs = (theta ** (-jnp.arange(0, h // 2, dtype=jnp.float32) * 2.0 / h) if inv_freq is None
             else jnp.asarray(inv_freq, jnp.float32))
    angles = positions_BxL[..., None].astype(jnp.float32) * freqs  # [B, L, H/2]
    sin, cos = (scale * jnp.sin(angles))[:, :, None, :], (scale * jnp.cos(angles))[:, :, None, :]
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
