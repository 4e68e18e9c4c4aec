"""Lexinvariant embeddings (Huang et al. 2023): a fresh N(0, I_d) matrix E per sequence.

Token v of sequence b is embedded as scale * E_b[v] + bias (scale, bias learned, as in
the paper; `init_scale` picks where scale starts, see below) and the readout is tied to the
same matrix: logits = t * h . E_b^T over the full vocabulary. t is a readout temperature, 1/sqrt(d) at the start (raw logits of
normalised h against N(0, I) rows have std ~ sqrt(d), which otherwise spends the first
hundreds of steps far above the uniform loss), learned or fixed by config.

Initial scale: the paper's ones keep the input vector E_b[v] in the residual stream, and the
untrained tied readout then gives "next token = current token" p = 0.62 (4 layers x 128,
128 ids); random +-1 signs per dimension ("signs") keep the input's norm but make its dot
product with its own row zero on average (p = 0.009; a constant 0.1: 0.013).

E_b is never stored (see lexi/ops/gaussian.py): rows are generated from the sequence's
seeds where they are needed. `ctx` is {"seeds": uint32[B, 2]}, a pure function of (run
key, step, global row index); or {"matrix": float32[B, V, d]} to supply E explicitly
(analysis, tests).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lexi.embeddings.base import Embedding
from lexi.errors import UserError
from lexi.ops import gaussian, xent

Array = jax.Array


INIT_SCALES = ("ones", "signs", "constant")


def _scale_init(kind: str, value: float):
    if kind == "signs":
        return lambda key, shape, dtype: jax.random.rademacher(key, shape, dtype)
    return nn.initializers.constant(value if kind == "constant" else 1.0)


class LexinvariantEmbedding(Embedding):
    restricted_readout_refusal = ("its readout is each sequence's random input matrix, not trainable rows, and "
                                  "scoring only the corpus's ids would tell the model which ids exist")

    generator: str = "hash"  # "hash" | "threefry", see lexi/ops/gaussian.py
    readout_chunk: int = 0  # 0: materialise B x V x d (fine for characters); > 0: online chunks
    learn_temperature: bool = True
    init_scale: str = "ones"  # ones (the paper) | signs (random +-1 per dimension) | constant (init_scale_value)
    init_scale_value: float = 1.0  # the starting scale when init_scale is "constant"

    def __post_init__(self):
        if self.init_scale not in INIT_SCALES:  # at build time, before a run directory is touched
            raise UserError(f"config.embedding.init_scale must be one of {INIT_SCALES}, got {self.init_scale!r}")
        super().__post_init__()

    def setup(self):
        d = self.d_model
        scale_init = _scale_init(self.init_scale, self.init_scale_value)
        self.scale = self.param("scale", nn.with_logical_partitioning(scale_init, ("norm",)), (d,), jnp.float32)
        self.bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)), (d,), jnp.float32)
        init_log_t = math.log(1.0 / math.sqrt(d))
        if self.learn_temperature:
            self.log_temperature = self.param(
                "log_temperature", nn.with_logical_partitioning(nn.initializers.constant(init_log_t), ()), (), jnp.float32)
        else:
            self.log_temperature = jnp.float32(init_log_t)

    def context(self, key: Array, step: Array, rows_B: Array, train: bool = True) -> Any:
        return {"seeds": gaussian.sequence_seeds(key, step, rows_B)}

    def _gen(self):
        return functools.partial(gaussian.gaussian_rows, d=self.d_model, generator=self.generator)

    def rows(self, ctx: Any, ids_BxN: Array) -> Array:
        """E_b[ids] for each sequence b: float32[B, N, d]."""
        if "matrix" in ctx:
            return jnp.take_along_axis(ctx["matrix"], ids_BxN[..., None], axis=1)
        return self._gen()(ctx["seeds"], ids_BxN)

    def matrix(self, ctx: Any, batch: int) -> Array:
        """The whole per-sequence matrix, float32[B, V, d] (direct path only)."""
        if "matrix" in ctx:
            return ctx["matrix"]
        return self.rows(ctx, jnp.broadcast_to(jnp.arange(self.vocab_size), (batch, self.vocab_size)))

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        return self.rows(ctx, tokens_BxL) * self.scale + self.bias

    def logits(self, h_BxLxD: Array, ctx: Any) -> Array:
        e = self.matrix(ctx, h_BxLxD.shape[0])
        return jnp.exp(self.log_temperature) * jnp.einsum(
            "bld,bvd->blv", h_BxLxD, e.astype(h_BxLxD.dtype), preferred_element_type=jnp.float32)

    def target_logprobs(self, h_BxLxD: Array, targets_BxL: Array, ctx: Any) -> Array:
        if not self.readout_chunk or "matrix" in ctx:
            return super().target_logprobs(h_BxLxD, targets_BxL, ctx)
        return xent.online_random_readout(
            self._gen(), self.vocab_size, self.readout_chunk, h_BxLxD, jnp.exp(self.log_temperature),
            ctx["seeds"], self.rows(ctx, targets_BxL))
