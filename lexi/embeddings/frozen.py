"""A frozen input table with a trainable, untied readout (Bochkov 2025, and its controls).

The table is computed once on the host and lives in the "constants" collection (see
`lexi.train.state`): it is not a parameter, gets no gradient, no optimizer slot and no
weight decay, is checkpointed with the run and is bit-for-bit the same after training.

Sources (`source`):
  glyph   each token's rendered Unifont glyphs -> full-rank PCA -> unit rows (lexi.glyph),
          cell_px 32 (1024 dims) or 64 (4096 dims).
  binary  random binary ID codes of `code_bits` bits (+-1), distinct for every token, the
          follow-up papers' control: it tests whether freezing, not the glyph shape, helps.

Width: the table has W columns (cell_px**2 or code_bits). If d_model < W, `projection`
chooses how W dims become d_model, none of it trained:
  pca                the leading d_model principal components over all ids (glyph rows are
                     PCA-rotated, so these are the table's first columns): the best rank-d
                     summary of the whole table, which for 65,536 glyphs is dominated by CJK.
  random_orthogonal  all W dims through a fixed random matrix with orthonormal columns
                     (seeded by `projection_seed`): pairwise distances are kept approximately
                     (Johnson-Lindenstrauss), whatever script the rows come from.
  pca_used           principal components fitted on the rows of the ids the training
                     split actually produces (centred on their mean), applied to every row.
  pca_used_whitened  the same, each component divided by its standard deviation over the used
                     rows, so the corpus's tokens spread over all d_model directions instead
                     of a few (benchmarks/glyph_geometry.py: about 12 effective dimensions
                     of 128 for KJV's glyph rows under pca_used, 6 under pca).
If d_model > W the columns are repeated (tiled) and cut at d_model. Rows are then scaled to
RMS 1, the scale of the trainable table's N(0, 1) rows, so the backbone sees inputs of the
same size whichever family it gets.

The readout is the trainable family's untied head, restricted to the training split's ids
with readout_ids = "train_split" exactly as there (lexi/embeddings/readout.py).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lexi.embeddings.trainable import TrainableEmbedding
from lexi.errors import UserError

Array = jax.Array
SOURCES = ("glyph", "binary")
PROJECTIONS = ("pca", "random_orthogonal", "pca_used", "pca_used_whitened")


class FrozenEmbedding(TrainableEmbedding):
    source: str = "glyph"
    cell_px: int = 32  # glyph: pixels per character cell (32 -> 1024-dim rows, 64 -> 4096)
    code_bits: int = 64  # binary: bits per token code (16-1024)
    code_seed: int = 0  # binary: which random codes
    projection: str = "pca"  # W dims -> d_model: pca | random_orthogonal | pca_used | pca_used_whitened (docstring)
    projection_seed: int = 0  # random_orthogonal: which matrix
    tied: bool = False  # the readout is always a separate trainable head

    def setup(self):
        if self.source not in SOURCES:
            raise UserError(f"config.embedding.source {self.source!r} is unknown; choose one of {SOURCES}")
        if self.projection not in PROJECTIONS:
            raise UserError(f"config.embedding.projection {self.projection!r} is unknown; choose one of {PROJECTIONS}")
        if self.tied:
            raise UserError("a frozen embedding cannot tie its readout to the frozen table; set tied=False")
        shape = (self.vocab_size, self.d_model)
        zeros = nn.with_logical_partitioning(lambda: jnp.zeros(shape, jnp.float32), ("vocab", "embed"))
        self.table = self.variable("constants", "table", zeros).value  # real values: host_constants()
        self._readout_params()

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        return jnp.take(jax.lax.stop_gradient(self.table), tokens_BxL, axis=0)

    def host_constants(self, tokenizer, cache_dir, token_counts=None) -> dict:
        if tokenizer is not None and tokenizer.vocab_size != self.vocab_size:
            raise UserError(f"tokenizer has {tokenizer.vocab_size} ids but the model {self.vocab_size}")
        if self.source == "glyph":
            from lexi.glyph import glyph_table

            if tokenizer is None:
                raise UserError("a glyph table is rendered from the tokenizer's strings: build the run with one")

            raw = glyph_table(tokenizer, cell_px=self.cell_px, cache_dir=cache_dir)
        else:
            raw = binary_codes(self.vocab_size, self.code_bits, self.code_seed)
        used = None
        if self.projection.startswith("pca_used") and self.d_model < raw.shape[1]:
            if token_counts is None:
                raise UserError(f"projection={self.projection} fits on the ids the training split produces; this run "
                                "has no training split to count (use pca or random_orthogonal)")
            used = np.flatnonzero(np.asarray(token_counts()))
        return {"table": fit_width(raw, self.d_model, principal=self.source == "glyph", projection=self.projection,
                                   seed=self.projection_seed, used_ids=used)}


def binary_codes(vocab_size: int, bits: int, seed: int = 0) -> np.ndarray:
    """[vocab_size, bits] of +-1, every row distinct (duplicates are redrawn)."""
    if not 1 <= bits <= 4096:
        raise UserError(f"config.embedding.code_bits must be in [1, 4096], got {bits}")
    if bits < 63 and 2 ** bits < vocab_size:
        raise UserError(f"{bits}-bit codes cannot tell {vocab_size} tokens apart; use at least "
                        f"{math.ceil(math.log2(vocab_size))} bits")
    rng = np.random.default_rng([seed, bits, vocab_size])
    if bits < 63:  # sample distinct integers, then spell them in binary
        ints = rng.choice(2 ** bits, size=vocab_size, replace=False).astype(np.uint64)
        codes = ((ints[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.int8)
    else:
        codes = rng.integers(0, 2, size=(vocab_size, bits), dtype=np.int8)
        while True:
            _, first = np.unique(codes, axis=0, return_index=True)
            dup = np.setdiff1d(np.arange(vocab_size), first)
            if not dup.size:
                break
            codes[dup] = rng.integers(0, 2, size=(dup.size, bits), dtype=np.int8)
    return (2.0 * codes - 1.0).astype(np.float32)


def random_orthogonal(w: int, d: int, seed: int = 0) -> np.ndarray:
    """[w, d] with orthonormal columns, a fixed function of (w, d, seed)."""
    g = np.random.default_rng([seed, w, d]).standard_normal((w, d))
    q, r = np.linalg.qr(g)
    return (q * np.sign(np.diag(r))).astype(np.float32)  # signs fixed: the Haar measure, reproducible


def fit_width(table: np.ndarray, d_model: int, principal: bool = False, projection: str = "pca", seed: int = 0,
              used_ids: np.ndarray | None = None) -> np.ndarray:
    """[V, W] -> [V, d_model] with rows of RMS 1 (see the module docstring). `principal`: the
    columns are already principal components (glyph tables), so "pca" keeps the leading ones;
    otherwise "pca" keeps the first d_model columns."""
    t = np.asarray(table, np.float32)
    w = t.shape[1]
    if d_model < w:
        if projection == "random_orthogonal":
            t = t @ random_orthogonal(w, d_model, seed)
        elif projection in ("pca_used", "pca_used_whitened"):
            if used_ids is None or len(used_ids) == 0:
                raise UserError(f"projection={projection} needs the ids the training split uses, and it uses none")
            rows = t[np.asarray(used_ids)].astype(np.float64)
            mean = rows.mean(axis=0)
            _, sv, vt = np.linalg.svd(rows - mean, full_matrices=False)
            vt *= np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]  # one sign on every machine
            basis = np.zeros((w, d_model))
            k = min(d_model, int(np.count_nonzero(sv > sv[0] * 1e-6)))  # directions the used rows span
            basis[:, :k] = vt[:k].T
            if projection == "pca_used_whitened":
                basis[:, :k] /= sv[:k] / np.sqrt(len(rows))
            t = ((t - mean) @ basis).astype(np.float32)
        elif principal:  # keep the highest-variance (leading principal) columns, in that order
            order = np.argsort(-t.var(axis=0), kind="stable")[:d_model]
            t = t[:, order]
        else:
            t = t[:, :d_model]
    elif d_model > w:
        t = np.tile(t, (1, -(-d_model // w)))[:, :d_model]
    norm = np.linalg.norm(t, axis=1, keepdims=True)
    return (t * (math.sqrt(d_model) / np.maximum(norm, 1e-12))).astype(np.float32)
