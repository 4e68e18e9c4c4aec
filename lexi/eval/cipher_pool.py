"""The deciphering probe's inputs: ciphers for a tokenizer, enciphered windows, and the
frozen model's residual streams at every layer for them (decipher.py trains and scores the
probes on these).

Character tokenizers get the paper's cipher over the 26 lowercase letters; other tokenizers
(subwords) a permutation of every non-special token. Features are computed once per pool;
beyond POOL_BYTES a random subset of each window's positions is kept.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lexi.eval import cipher as ciph
from lexi.eval import scoring
from lexi.model.lm import LanguageModel

FEATURE_KEYS = ("inputs", "segment_ids", "positions")
POOL_BYTES = 2 << 30  # pool features beyond this keep a random subset of each window's positions

# (batch with FEATURE_KEYS [B, L] of ciphered windows, their row indices) -> float32[K, B, L, D]
Featurizer = Callable[[dict, np.ndarray], Any]


# Every pair of lowercase letters, and words: a tokenizer that merges letters anywhere here
# (n-grams, subwords) does not read text letter by letter.
_LETTER_PROBE = " ".join(a + ciph.ALPHABET for a in ciph.ALPHABET) + " and the lord said unto moses"


def alphabet_for(tokenizer) -> tuple[np.ndarray, bool]:
    """(alphabet ids, letter mode): the 26 letters when the tokenizer reads text one character
    per token, else every non-special id. A tokenizer with the letters as tokens that also
    merges them (the unicode tokenizer with learned n-grams) gets the token permutation: a
    letter cipher would leave its n-grams in the clear."""
    ids = [tokenizer.encode(c) for c in ciph.ALPHABET]
    per_char = [i for c in _LETTER_PROBE for i in tokenizer.encode(c)]
    if (all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 26
            and list(tokenizer.encode(_LETTER_PROBE)) == per_char):
        return np.asarray([i[0] for i in ids]), True
    special = set(tokenizer.special_ids)
    return np.asarray([i for i in range(tokenizer.vocab_size) if i not in special]), False


def random_cipher(rng: np.random.Generator, tokenizer, alphabet: np.ndarray, letter_mode: bool) -> np.ndarray:
    """int[V] plain id -> cipher id."""
    if letter_mode:
        return ciph.letter_permutation_ids(ciph.letter_key(rng), tokenizer.vocab_size, alphabet)
    return ciph.token_permutation(tokenizer.vocab_size, tokenizer.special_ids, rng)


def random_ciphers(rng: np.random.Generator, n: int, tokenizer, alphabet: np.ndarray,
                   letter_mode: bool) -> np.ndarray:
    """int[N, V]: one fresh cipher per window."""
    return np.stack([random_cipher(rng, tokenizer, alphabet, letter_mode) for _ in range(n)])


def encipher(windows: dict, perms_NxV: np.ndarray) -> dict:
    out = dict(windows)
    for k in ("inputs", "targets"):
        out[k] = np.take_along_axis(perms_NxV, windows[k], axis=1).astype(np.int32)
    return out


def row_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    for lo in range(0, n, batch_size):
        yield np.arange(lo, min(lo + batch_size, n))


# --- features ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model",))
def _residual_streams(model, variables, inputs_BxL, segment_ids_BxL, positions_BxL, ctx):
    return model.apply(variables, inputs_BxL, ctx, segment_ids_BxL, positions_BxL,
                       method=LanguageModel.residual_streams)


def model_featurizer(model, variables, seed: int) -> Featurizer:
    """Every layer's residual stream of the frozen model, float32[layers + 1, B, L, D], read
    with segment ids and positions as in training; window `rows[i]` gets the evaluation
    context of row rows[i] under `seed` (a lexinvariant model: its own random embeddings)."""
    def featurize(batch: dict, rows: np.ndarray):
        x = [jnp.asarray(batch[k]) for k in FEATURE_KEYS]
        return _residual_streams(model, variables, *x, scoring.eval_context(model, seed, rows))
    return featurize


@dataclass(frozen=True)
class CipherSet:
    """Plain windows (the dict `eval_windows` makes), one cipher per window, and the reader of
    the ciphered windows' features."""

    windows: dict
    perms_NxV: np.ndarray
    featurize: Featurizer

    @functools.cached_property
    def ciphered(self) -> dict:
        return encipher(self.windows, self.perms_NxV)

    def features(self, rows: np.ndarray):
        """float32[K, B, L, D] of the ciphered windows `rows`."""
        return self.featurize({k: self.ciphered[k][rows] for k in FEATURE_KEYS}, rows)

    def true_inverses(self, alphabet: np.ndarray) -> list[dict[int, int]]:
        return [ciph.cipher_to_plain(p, alphabet) for p in self.perms_NxV]


@dataclass(frozen=True)
class FeaturePool:
    """Per-token probe data: features at every layer and the plain token, split into the
    tokens the probes train on and those of held-out windows, which choose each probe's
    stopping point and the reported layer."""

    train_KxTxD: np.ndarray
    train_plain_T: np.ndarray
    heldout_KxHxD: np.ndarray
    heldout_plain_H: np.ndarray


def _subsample_positions(keep_NxL: np.ndarray, per_window: int, rng: np.random.Generator) -> np.ndarray:
    """At most `per_window` of each row's kept positions, drawn uniformly."""
    out = np.zeros_like(keep_NxL)
    for i, row in enumerate(keep_NxL):
        idx = np.flatnonzero(row)
        out[i, rng.choice(idx, size=min(per_window, len(idx)), replace=False)] = True
    return out


def feature_pool(pool: CipherSet, special_ids: Iterable[int], *, heldout_windows: int,
                 positions_per_window: int | None = None, seed: int = 0, batch_size: int = 16) -> FeaturePool:
    """Features of the pool's windows at every layer, computed once, at the positions whose
    plain token is not special (at most `positions_per_window` per window, to bound memory);
    the last `heldout_windows` windows are held out."""
    plain_NxL = np.asarray(pool.windows["inputs"])
    n, seq_len = plain_NxL.shape
    if not 1 <= heldout_windows < n:
        raise ValueError(f"heldout_windows must be in [1, {n}) for a pool of {n} windows, got {heldout_windows}")
    keep_NxL = ~np.isin(plain_NxL, np.asarray(list(special_ids), dtype=np.int64))
    if positions_per_window is not None and positions_per_window < seq_len:
        keep_NxL = _subsample_positions(keep_NxL, positions_per_window, np.random.default_rng(seed))
    total = int(keep_NxL.sum())
    feats = None
    at = 0
    for rows in row_batches(n, batch_size):
        f_KxBxLxD = np.asarray(pool.features(rows), dtype=np.float32)
        if feats is None:
            feats = np.empty((f_KxBxLxD.shape[0], total, f_KxBxLxD.shape[-1]), np.float32)
        m_BxL = keep_NxL[rows]
        t = int(m_BxL.sum())
        feats[:, at:at + t] = f_KxBxLxD[:, m_BxL]
        at += t
    plain_T = plain_NxL[keep_NxL].astype(np.int32)
    split = int(keep_NxL[:n - heldout_windows].sum())
    return FeaturePool(feats[:, :split], plain_T[:split], feats[:, split:], plain_T[split:])
