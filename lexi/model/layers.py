"""Building blocks of the backbone: norms, MLP, attention. Every parameter carries logical
axis names (see lexi/sharding.py for the table that maps them to mesh axes)."""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lexi.model import positions as pos
from lexi.ops.attention import attention as attention_op
from lexi.model.config import BackboneConfig

Array = jax.Array


def logical(init, names):
    return nn.with_logical_partitioning(init, names)


def constrain(x: Array, names: tuple) -> Array:
    """Activation sharding hint; a no-op outside a mesh."""
    return nn.with_logical_constraint(x, names)


class Norm(nn.Module):
    """RMSNorm or LayerNorm, computed in float32 for stability."""

    kind: str = "rmsnorm"
    eps: float = 1e-6
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxLxD: Array) -> Array:
        d = x_BxLxD.shape[-1]
        x = x_BxLxD.astype(jnp.float32)
        scale = self.param("scale", logical(nn.initializers.ones, ("norm",)), (d,), jnp.float32)
        if self.kind == "rmsnorm":
            y = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps) * scale
        else:
            bias = self.param("bias", logical(nn.initializers.zeros, ("norm",)), (d,), jnp.float32)
            mean = jnp.mean(x, axis=-1, keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
            y = (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias
        return y.astype(self.dtype)


class Proj(nn.Module):
    """x[..., *in_dims] -> [..., *features] with a kernel of shape in_dims + features.

    Written out (rather than nn.DenseGeneral, which initialises a flattened kernel) so the
    kernel's logical names always match its real shape.
    """

    in_dims: tuple[int, ...]
    features: tuple[int, ...]
    names: tuple[str, ...]
    use_bias: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        n_in = len(self.in_dims)
        init = nn.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=tuple(range(n_in)),
            out_axis=tuple(range(n_in, n_in + len(self.features))))
        kernel = self.param("kernel", logical(init, self.names), self.in_dims + self.features, jnp.float32)
        y = jnp.tensordot(x.astype(self.dtype), kernel.astype(self.dtype), axes=n_in)
        if self.use_bias:
            bias = self.param("bias", logical(nn.initializers.zeros, self.names[n_in:]), self.features, jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


def dense(in_dims, features, names, cfg: BackboneConfig, name: str, bias: bool = False) -> Proj:
    """A projection with a bias when the config has them everywhere (`use_bias`) or `bias` asks."""
    as_tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,)
    return Proj(as_tuple(in_dims), as_tuple(features), names, cfg.use_bias or bias, cfg.compute_dtype, name=name)


class Mlp(nn.Module):
    """Feed-forward block: GELU / ReLU, or SwiGLU (gate and up projections)."""

    cfg: BackboneConfig

    @nn.compact
    def __call__(self, x_BxLxD: Array, deterministic: bool) -> Array:
        cfg = self.cfg
        h = dense(cfg.d_model, cfg.mlp_dim, ("embed", "mlp"), cfg, "up")(x_BxLxD)
        if cfg.activation == "swiglu":
            gate = dense(cfg.d_model, cfg.mlp_dim, ("embed", "mlp"), cfg, "gate")(x_BxLxD)
            h = nn.silu(gate) * h
        elif cfg.activation == "gelu":
            h = nn.gelu(h)
        else:
            h = nn.relu(h)
        h = constrain(h, ("batch", "length", "act_mlp"))
        out = dense(cfg.mlp_dim, cfg.d_model, ("mlp", "embed"), cfg, "down")(h)
        return nn.Dropout(cfg.dropout)(out, deterministic=deterministic)


def _attention_mask(segment_ids_BxL: Optional[Array], kv_segment_ids_BxS: Optional[Array]) -> Optional[Array]:
    if segment_ids_BxL is None:
        return None
    return (segment_ids_BxL[:, :, None] == kv_segment_ids_BxS[:, None, :])[:, None, :, :]


class Attention(nn.Module):
    """Self-attention through `jax.nn.dot_product_attention` (the fused kernel on GPU) or lexi's
    einsum attention (CPU, TPU; lexi/ops/attention.py): causal
    for the language model, bidirectional (`causal=False`) for encoders such as the ZeTT
    hypernetwork's. Positions attend only within their segment (segment id 0 = padding).

    With `decode=True` it keeps a key/value cache in the "cache" collection and consumes one
    position per call (used by lexi.generate).
    """

    cfg: BackboneConfig
    causal: bool = True

    @nn.compact
    def __call__(self, x_BxLxD, *, segment_ids_BxL, positions_BxL, bias_1xNxLxS, deterministic, decode=False):
        cfg = self.cfg
        n, k, h = cfg.num_heads, cfg.kv_heads, cfg.head_dim
        d = cfg.d_model
        q = dense(d, (n, h), ("embed", "heads", "kv"), cfg, "query", cfg.qkv_bias)(x_BxLxD)
        key = dense(d, (k, h), ("embed", "kv_heads", "kv"), cfg, "key", cfg.qkv_bias)(x_BxLxD)
        value = dense(d, (k, h), ("embed", "kv_heads", "kv"), cfg, "value", cfg.qkv_bias)(x_BxLxD)
        q = constrain(q, ("batch", "length", "act_heads", "act_kv"))
        if cfg.position == "rope":
            inv_freq, scale = None, 1.0
            if cfg.rope_scaling != "none":
                inv_freq, scale = pos.rope_frequencies(
                    h, cfg.rope_theta, cfg.rope_scaling, cfg.rope_factor, cfg.rope_original_max_len,
                    cfg.rope_low_freq_factor, cfg.rope_high_freq_factor, cfg.rope_beta_fast, cfg.rope_beta_slow,
                    cfg.rope_attention_factor)
            q = pos.apply_rope(q, positions_BxL, cfg.rope_theta, inv_freq, scale)
            key = pos.apply_rope(key, positions_BxL, cfg.rope_theta, inv_freq, scale)

        if decode:
            key, value, mask = self._update_cache(key, value)
            is_causal = False
        else:
            mask = _attention_mask(segment_ids_BxL, segment_ids_BxL)
            is_causal = self.causal
        bias = bias_1xNxLxS
        impl = cfg.attention_impl
        if impl == "auto":
            impl = None if jax.default_backend() == "gpu" else "einsum"
        if impl == "einsum":
            out = attention_op(q, key, value, bias_1xNxLxS=bias, mask_Bx1xLxS=mask, is_causal=is_causal,
                               blocks=cfg.attention_blocks)
        else:
            if bias is not None:
                bias = bias.astype(q.dtype)
            out = jax.nn.dot_product_attention(
                q, key, value, bias=bias, mask=mask, is_causal=is_causal, implementation=impl)
        out = constrain(out, ("batch", "length", "act_heads", "act_kv"))
        proj = dense((n, h), d, ("heads", "kv", "embed"), cfg, "out")(out)
        return nn.Dropout(cfg.dropout)(proj, deterministic=deterministic)

    def _update_cache(self, key_BxLxKxH, value_BxLxKxH):
        """Write L new keys/values at the cache index; each query sees the cache up to itself.

        The cache is created by an init call whose inputs have the full cache length S.
        """
        is_initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key_BxLxKxH.shape, key_BxLxKxH.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value_BxLxKxH.shape, value_BxLxKxH.dtype)
        index = self.variable("cache", "index", lambda: jnp.array(0, jnp.int32))
        if not is_initialized:
            return key_BxLxKxH, value_BxLxKxH, None
        b, s = cached_key.value.shape[:2]
        i, l = index.value, key_BxLxKxH.shape[1]
        cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key_BxLxKxH, (0, i, 0, 0))
        cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, value_BxLxKxH, (0, i, 0, 0))
        index.value = i + l
        mask_LxS = jnp.arange(s)[None, :] <= (i + jnp.arange(l))[:, None]
        return cached_key.value, cached_value.value, jnp.broadcast_to(mask_LxS, (b, 1, l, s))
