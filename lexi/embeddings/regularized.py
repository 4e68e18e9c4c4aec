"""Lexinvariance regularisation of a standard LM (Huang et al. 2023, section 6).

A standard learned table, trained on corrupted sequences: with probability p each token x
is replaced by pi(x), where pi is a random permutation of the vocabulary drawn per
sequence (p = 0.2 in the paper). The corruption is applied to the sequence, so an input
and the target that names the same text position are replaced together; special tokens
(pad, bos, eos) are never touched. Evaluation (`train=False`) sees clean text.

mode = "gaussian_mix" is the variant the paper reports as failing: with probability p a
token's learned input vector is swapped for its per-sequence random Gaussian vector; the
model learns to ignore the random vectors, whose norms are smaller than the learned ones.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lexi.embeddings.trainable import TrainableEmbedding
from lexi.ops import gaussian

Array = jax.Array
MODES = ("permute", "gaussian_mix")


class RegularizedEmbedding(TrainableEmbedding):
    restricted_readout_refusal = ("it permutes tokens over the whole vocabulary, so its targets leave the "
                                  "training split's ids by design")

    p: float = 0.2
    mode: str = "permute"
    special_ids: tuple = ()

    def context(self, key: Array, step: Array, rows_B: Array, train: bool = True) -> Any:
        if not train or self.p <= 0:
            return None
        return {"seeds": gaussian.sequence_seeds(key, step, rows_B)}

    # Window index i of a row is inputs[i] for i < L and targets[i - 1] for i >= 1: the same
    # decision for both views of one text position.
    def _replace_mask(self, seeds_Bx2: Array, window_idx_BxL: Array, tokens_BxL: Array) -> Array:
        keys = jax.vmap(lambda s: jax.random.wrap_key_data(s, impl="threefry2x32"))(seeds_Bx2)
        u = jax.vmap(lambda k, idx: jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(k, i)))(idx))(
            keys, window_idx_BxL)
        protected = jnp.isin(tokens_BxL, jnp.asarray(self.special_ids, jnp.int32)) if self.special_ids else False
        return (u < self.p) & ~protected

    def _permutations(self, seeds_Bx2: Array) -> Array:
        """pi_b over the vocabulary with special ids fixed: int32[B, V]."""
        movable = np.setdiff1d(np.arange(self.vocab_size), np.asarray(self.special_ids, np.int64)).astype(np.int32)

        def one(seed):
            key = jax.random.fold_in(jax.random.wrap_key_data(seed, impl="threefry2x32"), 0x7FFFFFFF)  # a stream apart from positions
            return jnp.arange(self.vocab_size, dtype=jnp.int32).at[movable].set(jax.random.permutation(key, movable))

        return jax.vmap(one)(seeds_Bx2)

    def corrupt(self, tokens_BxL: Array, ctx: Any, offset: int) -> Array:
        """Apply the sequence's replacement to tokens at window positions offset + [0, L)."""
        if ctx is None or self.mode != "permute":
            return tokens_BxL
        b, l = tokens_BxL.shape
        idx = jnp.broadcast_to(offset + jnp.arange(l), (b, l))
        mask = self._replace_mask(ctx["seeds"], idx, tokens_BxL)
        perm = self._permutations(ctx["seeds"])
        return jnp.where(mask, jnp.take_along_axis(perm, tokens_BxL, axis=1), tokens_BxL)

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        if ctx is None:
            return super().embed(tokens_BxL, ctx)
        if self.mode == "permute":
            return super().embed(self.corrupt(tokens_BxL, ctx, 0), ctx)
        b, l = tokens_BxL.shape
        mask = self._replace_mask(ctx["seeds"], jnp.broadcast_to(jnp.arange(l), (b, l)), tokens_BxL)
        random_rows = gaussian.gaussian_rows(ctx["seeds"], tokens_BxL, self.d_model)
        return jnp.where(mask[..., None], random_rows, super().embed(tokens_BxL, ctx))

    def target_logprobs(self, h_BxLxD: Array, targets_BxL: Array, ctx: Any) -> Array:
        return super().target_logprobs(h_BxLxD, self.corrupt(targets_BxL, ctx, 1), ctx)
