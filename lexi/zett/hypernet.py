"""The ZeTT hypernetwork: a tokenizer's vocabulary in, embedding matrices for a frozen base out.

Each target token arrives as its decomposition into base-tokenizer pieces (an int row,
-1 padded; lexi/zett/vocab.py). The pieces are looked up in the frozen base matrices
(input and output rows side by side for an untied base), standardised with the base
matrices' own mean and standard deviation, projected to the encoder width, given a
learned position per piece and read by a small bidirectional Transformer encoder built
from the backbone's layers (padding masked). The first position is pooled and a head
per matrix turns it into a row.

Residual form (default, as in the authors' later code): row = first piece's base row +
head(pooled), with the heads zero-initialised, so before training every token made of
one base piece gets exactly its base row, and the base tokenizer maps to the base model.
`residual=False` predicts rows outright (train it with `identity_steps` of MSE first).
Special tokens always keep their base rows.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lexi.errors import UserError
from lexi.model.config import BackboneConfig
from lexi.model.layers import Attention, Mlp, Norm, Proj, logical

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class HypernetConfig:
    """Shape of the hypernetwork; `d_model` is the base model's (the encoder's width)."""

    d_model: int
    tied: bool  # the base reads out with its input table: predict one matrix
    num_layers: int = 3
    num_heads: int = 4
    mlp_ratio: int = 2
    pieces: int = 8  # base pieces per target token (longer ones are cut)
    residual: bool = True
    dtype: str = "float32"

    def encoder(self) -> BackboneConfig:
        """The backbone layer settings the encoder blocks reuse."""
        if self.d_model % self.num_heads:
            raise UserError(f"config.hypernet.num_heads ({self.num_heads}) must divide the base d_model "
                            f"({self.d_model})")
        return BackboneConfig(num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads,
                              head_dim=self.d_model // self.num_heads, mlp_dim=self.mlp_ratio * self.d_model,
                              activation="gelu", norm="layernorm", position="none", dtype=self.dtype)


class EncoderBlock(nn.Module):
    cfg: BackboneConfig

    @nn.compact
    def __call__(self, x_VxLxD: Array, valid_VxL: Array) -> Array:
        cfg = self.cfg
        h = Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, name="attn_norm")(x_VxLxD)
        x_VxLxD = x_VxLxD + Attention(cfg, causal=False, name="attn")(
            h, segment_ids_BxL=valid_VxL.astype(jnp.int32), positions_BxL=None, bias_1xNxLxS=None,
            deterministic=True)
        h = Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, name="mlp_norm")(x_VxLxD)
        return x_VxLxD + Mlp(cfg, name="mlp")(h, True)


class Hypernet(nn.Module):
    cfg: HypernetConfig

    @nn.compact
    def __call__(self, pieces_VxL: Array, special_V: Array, base_in_WxD: Array,
                 base_out_WxD: Optional[Array] = None) -> tuple[Array, Array]:
        """(input rows, output rows), each float32 [V, D]; for a tied base both are the same matrix."""
        cfg, enc = self.cfg, self.cfg.encoder()
        d = cfg.d_model
        base = [base_in_WxD] if cfg.tied else [base_in_WxD, base_out_WxD]
        valid_VxL = pieces_VxL >= 0
        safe_VxL = jnp.maximum(pieces_VxL, 0)
        # standardise with the base matrices' statistics: inputs of a fixed scale for any base
        parts = [(jnp.take(m, safe_VxL, axis=0) - jnp.mean(m)) / (jnp.std(m) + 1e-6) for m in base]
        x = jnp.concatenate(parts, axis=-1) * valid_VxL[..., None]
        x = Proj((x.shape[-1],), (d,), ("embed_in", "embed"), dtype=enc.compute_dtype, name="in_proj")(x)
        pos = self.param("piece_positions", logical(nn.initializers.normal(0.02), ("positions", "embed")),
                         (cfg.pieces, d), jnp.float32)
        x = x + pos[: x.shape[1]].astype(x.dtype)
        for i in range(cfg.num_layers):
            x = EncoderBlock(enc, name=f"layer_{i}")(x, valid_VxL)
        pooled_VxD = Norm(enc.norm, enc.norm_eps, jnp.float32, name="final_norm")(x)[:, 0]
        head_init = nn.initializers.zeros if cfg.residual else nn.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal")
        first_V = safe_VxL[:, 0]
        rows = []
        for m, name in zip(base, ("in_head", "out_head")):
            kernel = self.param(name, logical(head_init, ("embed", "embed_out")), (d, d), jnp.float32)
            pred = pooled_VxD @ kernel
            own = jnp.take(m, first_V, axis=0)
            if cfg.residual:
                pred = own + pred
            rows.append(jnp.where(special_V[:, None], own, pred))
        return rows[0], rows[-1]
