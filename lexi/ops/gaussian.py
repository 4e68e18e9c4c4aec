"""Counter-based Gaussian rows: the vector of token v in sequence b, computed on demand.

A lexinvariant model needs a fresh V x d Gaussian matrix per sequence. Storing it costs
B x V x d memory, so rows are generated where they are used (input lookup, each readout
chunk) as a pure function of (sequence seed, token id, coordinate). Two generators:

- "hash" (default): an integer hash of (seed, token, coordinate) turned into a uniform on
  (0, 1) with 24 random bits, then into N(0, 1) by the inverse CDF (sqrt(2) erfinv(2u - 1)).
  About 3x faster than threefry on CPU. Row keys are a bijection of the token id for a
  given seed, so two tokens of one sequence never share a vector. Like jax.random.normal
  in float32, it cannot produce values beyond about 5.3 sigma.
- "threefry": jax.random.normal on fold_in(seed key, token id), the reference generator.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
GENERATORS = ("hash", "threefry")

_GOLDEN = np.uint32(0x9E3779B9)
_C2 = np.uint32(0x85EBCA6B)


def _mix(x: Array) -> Array:
    """lowbias32 integer finaliser: a bijection of uint32 with strong avalanche."""
    x = x ^ (x >> 16)
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> 16)


def sequence_seeds(key: Array, step: Array, rows_B: Array) -> Array:
    """uint32[B, 2] seeds, a pure function of (run key, step, global row index)."""
    step_key = jax.random.fold_in(key, step)
    return jax.vmap(lambda r: jax.random.bits(jax.random.fold_in(step_key, r), (2,), jnp.uint32))(rows_B)


def _hash_rows(seeds_Bx2: Array, ids_BxN: Array, d: int) -> Array:
    s0, s1 = seeds_Bx2[:, 0, None], seeds_Bx2[:, 1, None]
    row = _mix(ids_BxN.astype(jnp.uint32) * _GOLDEN + s0)  # bijective in the id
    col = _mix(jnp.arange(d, dtype=jnp.uint32) * _C2 + np.uint32(0x632BE59B))
    return bits_to_normal(_mix(_mix(row[:, :, None] ^ col) + s1[:, :, None]))


def bits_to_normal(x: Array) -> Array:
    """uint32 -> N(0, 1) by the inverse CDF of the top 24 bits.

    2u - 1 is formed exactly as an odd integer over 2^24 (never +-1, where erf_inv is
    infinite): computing u first and then 2u - 1 in float32 rounds the largest u to 1.
    """
    odd = (x >> 8).astype(jnp.int32) * 2 + (1 - (1 << 24))  # odd, in (-2^24, 2^24): exact in float32
    v = odd.astype(jnp.float32) * np.float32(2.0 ** -24)
    return np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(v)


def _threefry_rows(seeds_Bx2: Array, ids_BxN: Array, d: int) -> Array:
    def one_seq(seed_2, ids_N):
        key = jax.random.wrap_key_data(seed_2, impl="threefry2x32")
        return jax.vmap(lambda v: jax.random.normal(jax.random.fold_in(key, v), (d,)))(ids_N)

    return jax.vmap(one_seq)(seeds_Bx2, ids_BxN)


def gaussian_rows(seeds_Bx2: Array, ids_BxN: Array, d: int, generator: str = "hash") -> Array:
    """float32[B, N, d]: row ids_BxN[b, n] of sequence b's N(0, I_d) matrix."""
    if generator == "hash":
        return _hash_rows(seeds_Bx2, ids_BxN, d)
    if generator == "threefry":
        return _threefry_rows(seeds_Bx2, ids_BxN, d)
    raise ValueError(f"unknown generator {generator!r}; choose one of {GENERATORS}")
