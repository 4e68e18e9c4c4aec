"""Log-probabilities of targets without materialising B x L x V logits.

Two chunked paths over the vocabulary, both with a running log-sum-exp:

- `chunked_target_logprobs`: any row source (a parameter table slice, a generator).
  The scan body is rematerialised, so the backward pass recomputes each chunk's rows and
  logits instead of storing them; memory O(B L C) instead of O(B L V).
- `online_random_readout`: for rows that are random and not learned (lexinvariant). The
  forward pass also accumulates the softmax-weighted mean row, which is all the backward
  pass needs (d logp / d h = s (e_y - E_p[e])), so each row is generated exactly once per
  step and the backward pass does no matmul at all.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
RowsFn = Callable[[Array], Array]  # ids_C -> rows [B or 1, C, D]


def _num_chunks(vocab: int, chunk: int) -> int:
    return -(-vocab // chunk)


def _chunk_logits(h_BxLxD: Array, rows_BxCxD: Array) -> Array:
    return jnp.einsum("bld,bcd->blc", h_BxLxD, rows_BxCxD.astype(h_BxLxD.dtype),
                      preferred_element_type=jnp.float32)


def _mask_padding(z_BxLxC: Array, ids_C: Array, vocab: int) -> Array:
    """The last chunk may run past the vocabulary: those columns get -inf (after scaling)."""
    return jnp.where(ids_C < vocab, z_BxLxC, -jnp.inf)


def chunked_target_logprobs(h_BxLxD: Array, rows_fn: RowsFn, targets_BxL: Array, target_rows_BxLxD: Array,
                            vocab: int, chunk: int, scale: Array | float = 1.0) -> Array:
    """log softmax(scale * h . W^T)[target] with W's rows produced chunk by chunk."""
    b, l, _ = h_BxLxD.shape

    @jax.checkpoint
    def body(carry, c):
        m, s = carry
        ids_C = c * chunk + jnp.arange(chunk)
        rows = rows_fn(jnp.minimum(ids_C, vocab - 1))
        rows = jnp.broadcast_to(rows, (b,) + rows.shape[1:])
        z = _mask_padding(scale * _chunk_logits(h_BxLxD, rows), ids_C, vocab)
        m_new = jnp.maximum(m, jnp.max(z, axis=-1))
        s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(z - m_new[..., None]), axis=-1)
        return (m_new, s), None

    init = (jnp.full((b, l), -jnp.inf, jnp.float32), jnp.zeros((b, l), jnp.float32))
    (m, s), _ = jax.lax.scan(body, init, jnp.arange(_num_chunks(vocab, chunk)))
    target_logit = scale * jnp.einsum("bld,bld->bl", h_BxLxD, target_rows_BxLxD.astype(h_BxLxD.dtype),
                                      preferred_element_type=jnp.float32)
    return target_logit - (m + jnp.log(s))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def online_random_readout(rows_fn, vocab, chunk, h_BxLxD, scale, seeds, target_rows_BxLxD):
    """log softmax(scale * h . E^T)[target] for a random, non-learned E (see module doc).

    `rows_fn(seeds, ids_C) -> [B, C, D]` is a pure function (no captured arrays) of the
    per-sequence `seeds`; `target_rows_BxLxD` = E[targets]; `scale` a scalar.
    Differentiable in h and scale only.
    """
    return _online_forward(rows_fn, vocab, chunk, h_BxLxD, scale, seeds, target_rows_BxLxD)[0]


def _online_forward(rows_fn, vocab, chunk, h_BxLxD, scale, seeds, target_rows_BxLxD):
    b, l, d = h_BxLxD.shape
    h32 = h_BxLxD.astype(jnp.float32)

    def body(carry, c):
        m, s, acc_e, acc_raw = carry
        ids_C = c * chunk + jnp.arange(chunk)
        rows = rows_fn(seeds, jnp.broadcast_to(jnp.minimum(ids_C, vocab - 1), (b, chunk))).astype(jnp.float32)
        raw = _chunk_logits(h32, rows)
        z = _mask_padding(scale * raw, ids_C, vocab)
        m_new = jnp.maximum(m, jnp.max(z, axis=-1))
        r = jnp.exp(m - m_new)
        p = jnp.exp(z - m_new[..., None])
        s = s * r + jnp.sum(p, axis=-1)
        acc_e = acc_e * r[..., None] + jnp.einsum("blc,bcd->bld", p, rows)
        acc_raw = acc_raw * r + jnp.sum(p * jnp.where(ids_C < vocab, raw, 0.0), axis=-1)
        return (m_new, s, acc_e, acc_raw), None

    init = (jnp.full((b, l), -jnp.inf, jnp.float32), jnp.zeros((b, l), jnp.float32),
            jnp.zeros((b, l, d), jnp.float32), jnp.zeros((b, l), jnp.float32))
    (m, s, acc_e, acc_raw), _ = jax.lax.scan(body, init, jnp.arange(_num_chunks(vocab, chunk)))
    e_y = target_rows_BxLxD.astype(jnp.float32)
    raw_target = jnp.einsum("bld,bld->bl", h32, e_y)
    logp = scale * raw_target - (m + jnp.log(s))
    residuals = (scale * (e_y - acc_e / s[..., None]), raw_target - acc_raw / s,
                 jnp.zeros((0,), h_BxLxD.dtype))  # carries h's dtype
    return logp, residuals


def _online_bwd(rows_fn, vocab, chunk, residuals, g_BxL):
    dlogp_dh, dlogp_dscale, dtype_marker = residuals
    dh = (g_BxL[..., None] * dlogp_dh).astype(dtype_marker.dtype)
    dscale = jnp.sum(g_BxL * dlogp_dscale)
    return dh, dscale, None, None


online_random_readout.defvjp(_online_forward, _online_bwd)
