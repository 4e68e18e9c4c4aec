"""The embedding interface: the only thing that knows what a token id means.

The backbone maps vectors to vectors; an `Embedding` turns token ids into input vectors
and final hidden states into log-probabilities over the vocabulary. Each family is one
subclass in this package:

  trainable.py     learned table, tied or untied readout (standard LM)
  lexinvariant.py  fresh Gaussian matrix per sequence, tied readout
  regularized.py   learned table, tokens permuted per sequence at a rate p
  frozen.py        fixed glyph or binary-code table ("constants"), trainable readout
  predicted.py     tables handed in per batch (ZeTT), read out like the base's trainable family

Anything an embedding needs besides its parameters arrives in `ctx`, an arbitrary pytree
built per batch by `context(...)` (random seeds for lexinvariant, predicted tables for a
hypernetwork) and passed through the model untouched.
"""
from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class Embedding(nn.Module):
    vocab_size: int
    d_model: int

    # Why config.embedding.readout_ids = "train_split" does not apply to this family ("" where it
    # does; lexi/embeddings/readout.py). Stops a run before anything is built.
    restricted_readout_refusal: ClassVar[str] = "its readout is not a table of trainable rows"

    @property
    def readout_rows(self) -> int:
        """Rows the readout multiplies h with per token (for FLOP counts): V unless restricted."""
        return self.vocab_size

    def embed(self, tokens_BxL: Array, ctx: Any) -> Array:
        """Input vectors x_BxLxD for token ids."""
        raise NotImplementedError

    def logits(self, h_BxLxD: Array, ctx: Any) -> Array:
        """float32 logits over the full vocabulary, [B, L, V]."""
        raise NotImplementedError

    def target_logprobs(self, h_BxLxD: Array, targets_BxL: Array, ctx: Any) -> Array:
        """log p(target) per position, [B, L]. Families override this with a chunked path."""
        logits = self.logits(h_BxLxD, ctx)
        return jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), targets_BxL[..., None], axis=-1)[..., 0]

    def host_constants(self, tokenizer, cache_dir, token_counts=None) -> dict:
        """Frozen arrays (numpy, on the host) for this module's "constants" collection, e.g. a
        glyph table rendered from the tokenizer's strings; {} for families without any.
        `token_counts()`, where given, returns int[V] counts of each id in the training split
        (computed only if called). Must be deterministic: every process builds its own copy."""
        return {}

    def context(self, key: Array, step: Array, rows_B: Array, train: bool = True) -> Any:
        """Per-batch context from the run key, the step and each sequence's global row index.

        Must be a pure function of its arguments so that evaluation and resumed runs see
        exactly the same draws. `train=False` for evaluation (where e.g. regularising
        corruption is off). Called outside `apply`: it may read fields, never parameters.
        """
        return None
