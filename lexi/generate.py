"""Autoregressive generation with a key/value cache, jit-compiled end to end.

Works for every embedding family: the embedding context (e.g. a lexinvariant sequence's
random seeds) is fixed for the whole generation, so prompt and continuation share one
random matrix, as they would in training.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from lexi.model.lm import LanguageModel

Array = jax.Array


def _sample(logits_BxV: Array, rng: Array, temperature: float, top_k: int) -> Array:
    if temperature <= 0.0:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logits = logits_BxV / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("model", "max_new", "temperature", "top_k"))
def generate(model: LanguageModel, variables: Any, prompt_BxP: Array, ctx: Any, rng: Array, *,
             max_new: int, temperature: float = 0.0, top_k: int = 0) -> Array:
    """Continue each prompt by `max_new` tokens; returns int32[B, max_new].

    `variables`: `model_variables(params, constants)`. All prompts of a batch have the same
    length P (no padding). temperature 0 is greedy.
    """
    b, p = prompt_BxP.shape
    cache_len = p + max_new

    def run(cache, tokens_BxL, start):
        positions = start + jnp.broadcast_to(jnp.arange(tokens_BxL.shape[1], dtype=jnp.int32), tokens_BxL.shape)
        logits, mut = model.apply({**variables, "cache": cache}, tokens_BxL, ctx, None, positions,
                                  decode=True, cache_len=cache_len, method=LanguageModel.logits, mutable=["cache"])
        return logits[:, -1], mut["cache"]

    shapes = jax.eval_shape(
        lambda: model.apply(variables, jnp.zeros((b, cache_len), jnp.int32), ctx, None, None, decode=True,
                            cache_len=cache_len, method=LanguageModel.logits, mutable=["cache"])[1]["cache"])
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    logits, cache = run(cache, prompt_BxP, 0)
    first = _sample(logits, jax.random.fold_in(rng, 0), temperature, top_k)

    def body(carry, i):
        cache, token = carry
        logits, cache = run(cache, token[:, None], p + i)
        nxt = _sample(logits, jax.random.fold_in(rng, i + 1), temperature, top_k)
        return (cache, nxt), token

    (_, last), out = jax.lax.scan(body, (cache, first), jnp.arange(max_new - 1))
    return jnp.concatenate([out.T, last[:, None]], axis=1) if max_new > 1 else first[:, None]
