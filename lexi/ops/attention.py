"""Attention as plain einsums, with causal query blocks that skip the masked upper triangle.

`jax.nn.dot_product_attention` dispatches to cuDNN's fused kernel on GPUs, which lexi uses
there. Elsewhere (XLA's CPU and TPU compilers) its reference path builds the scores in the
[B, L, N, S] layout and runs the backward pass through generic batched dots; on the
project's CPU a training step's attention ran 1.7x faster written as below: heads-major
einsums, a float32 softmax, and, for causal attention, the queries in `blocks` chunks, chunk
i reading only keys [0, (i+1) L / blocks), so 4 blocks compute 62.5% of the full scores.
Results equal the reference to float32 rounding (tests/test_model.py).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array

_MIN_BLOCK = 64  # queries per causal block, at least
_MASKED = -0.7 * float(jnp.finfo(jnp.float32).max)  # finite: a fully masked row stays finite


def attention(q_BxLxNxH: Array, k_BxSxKxH: Array, v_BxSxKxH: Array, *, bias_1xNxLxS: Optional[Array] = None,
              mask_Bx1xLxS: Optional[Array] = None, is_causal: bool = False, blocks: int = 1) -> Array:
    """softmax(q k^T / sqrt(H) + bias, masked) v, for N query heads sharing K key/value heads (N % K == 0).
    `blocks` > 1 splits causal attention into query chunks of at least 64 (L must divide evenly, and
    S == L; otherwise one block)."""
    b, l, n, h = q_BxLxNxH.shape
    s, kh = k_BxSxKxH.shape[1], k_BxSxKxH.shape[2]
    g = n // kh
    scale = jnp.asarray(h ** -0.5, q_BxLxNxH.dtype)
    q_BxKxGxLxH = (q_BxLxNxH * scale).reshape(b, l, kh, g, h).transpose(0, 2, 3, 1, 4)
    k_BxKxSxH = k_BxSxKxH.transpose(0, 2, 1, 3)
    v_BxKxSxH = v_BxSxKxH.transpose(0, 2, 1, 3)
    blocks = min(blocks, l // _MIN_BLOCK)  # short sequences: one block (fewer ops to compile, nothing to skip)
    if not is_causal or blocks <= 1 or l != s or l % blocks:
        out = _block(q_BxKxGxLxH, k_BxKxSxH, v_BxKxSxH, bias_1xNxLxS, mask_Bx1xLxS, 0, l, s, is_causal)
    else:
        step = l // blocks
        out = jnp.concatenate([
            _block(q_BxKxGxLxH[:, :, :, i * step:(i + 1) * step], k_BxKxSxH[:, :, :(i + 1) * step],
                   v_BxKxSxH[:, :, :(i + 1) * step],
                   None if bias_1xNxLxS is None else bias_1xNxLxS[:, :, i * step:(i + 1) * step, :(i + 1) * step],
                   None if mask_Bx1xLxS is None else mask_Bx1xLxS[:, :, i * step:(i + 1) * step, :(i + 1) * step],
                   i * step, step, (i + 1) * step, True)
            for i in range(blocks)], axis=3)
    return out.transpose(0, 3, 1, 2, 4).reshape(b, l, n, h)


def _block(q_BxKxGxTxH, k_BxKxSxH, v_BxKxSxH, bias, mask, offset: int, t: int, s: int, is_causal: bool):
    """Queries offset..offset+t against keys 0..s."""
    b, kh, g = q_BxKxGxTxH.shape[:3]
    scores = jnp.einsum("bkgth,bksh->bkgts", q_BxKxGxTxH, k_BxKxSxH, preferred_element_type=jnp.float32)
    if bias is not None:
        scores = scores + bias.astype(jnp.float32).reshape(1, kh, g, t, s)
    keep = None
    if mask is not None:
        keep = mask.reshape(b, 1, 1, t, s)
    if is_causal:
        causal_TxS = (offset + jnp.arange(t))[:, None] >= jnp.arange(s)[None, :]
        keep = causal_TxS if keep is None else keep & causal_TxS
    if keep is not None:
        scores = jnp.where(keep, scores, _MASKED)
    probs = jax.nn.softmax(scores, axis=-1).astype(v_BxKxSxH.dtype)
    return jnp.einsum("bkgts,bksh->bkgth", probs, v_BxKxSxH)
