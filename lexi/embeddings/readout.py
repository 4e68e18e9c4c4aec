"""A readout restricted to the ids the training split uses (`config.embedding.readout_ids`).

A 65,536-id tokenizer on a corpus that uses a few thousand of its ids spends almost all of a
small model's step on readout rows no target ever names. With readout_ids = "train_split"
the readout holds one row per id the training split uses (K of the vocabulary's V) and, when
K < V, one trainable "other" row. The softmax runs over these K (+1) logits, and the model
still defines a distribution over the whole vocabulary:

    log p(id) = z_id - logsumexp(z)                                  id used in training
    log p(id) = z_other - logsumexp(z) - log(V - K)                  any other id

so the unused ids share p(other) evenly and the probabilities of all V ids sum to 1: loss and
bits per byte are comparable with full-readout runs and across embedding families (a text
with ids the training split never produced scores them through "other", never as -inf).
With K = V there is no "other" row and the readout is exactly the full one.

`full_logits` writes those log-probabilities (up to one shared constant) as logits over all
V ids, so sampling, scoring and every evaluation read this model like any other: sampling at
temperature 1 emits an unused id only through "other", uniformly among the unused ids, with
probability p(other) / (V - K) each.

The set is counted once, when a run directory is first built (lexi.train.setup_run), saved
there as `readout_ids.json`, and read back by resumed runs, `lexi eval` and `lexi sample`, so
all of them, on every process, score the identical set. It reaches the model as a static
`UsedIds` value (an HLO constant), never as a parameter.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lexi.errors import UserError
from lexi.ops import xent

Array = jax.Array
OPTIONS = ("all", "train_split")  # config.embedding.readout_ids
FILE = "readout_ids.json"  # in the run directory


@dataclasses.dataclass(frozen=True, eq=False)
class UsedIds:
    """The sorted, distinct ids a restricted readout scores. Hashable by content (a Flax module
    field and a jit static argument), with a short repr; `slots[id]` is the id's readout row,
    `count` (= K) for an unused id ("other")."""

    ids: np.ndarray  # int32[K]
    vocab_size: int

    def __post_init__(self):
        ids = np.asarray(self.ids)
        if ids.ndim != 1 or not len(ids) or (np.diff(ids) <= 0).any() or ids[0] < 0 or ids[-1] >= self.vocab_size:
            raise UserError(f"a readout id set must be sorted, distinct, non-empty ids below {self.vocab_size}")
        object.__setattr__(self, "ids", ids.astype(np.int32))
        object.__setattr__(self, "fingerprint", hashlib.sha256(
            np.int64(self.vocab_size).tobytes() + self.ids.tobytes()).hexdigest())

    @classmethod
    def from_counts(cls, counts_V: np.ndarray) -> "UsedIds":
        counts = np.asarray(counts_V)
        if not counts.any():
            raise UserError("readout_ids='train_split' scores the ids the training split uses, and it uses none")
        return cls(np.flatnonzero(counts), len(counts))

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def has_other(self) -> bool:
        return self.count < self.vocab_size

    @property
    def rows(self) -> int:
        """Readout rows: the used ids, then "other" when some id is unused."""
        return self.count + int(self.has_other)

    @property
    def slots(self) -> np.ndarray:
        """int32[V]: each id's readout row (`count` for unused ids)."""
        out = np.full(self.vocab_size, self.count, np.int32)
        out[self.ids] = np.arange(self.count, dtype=np.int32)
        return out

    @property
    def unused_log_share(self) -> float:
        """log(V - K): what an unused id's log-prob is below log p(other)."""
        return math.log(self.vocab_size - self.count) if self.has_other else 0.0

    def __hash__(self):
        return hash(self.fingerprint)

    def __eq__(self, other):
        return isinstance(other, UsedIds) and other.fingerprint == self.fingerprint

    def __repr__(self):
        return f"UsedIds({self.count} of {self.vocab_size} ids, sha256 {self.fingerprint[:12]})"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"readout_ids": "train_split", "vocab_size": self.vocab_size,
                                    "ids": self.ids.tolist()}) + "\n")

    @classmethod
    def load(cls, path: Path) -> "UsedIds":
        try:
            d = json.loads(Path(path).read_text())
            return cls(np.asarray(d["ids"], np.int64), int(d["vocab_size"]))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path} is not a readout id set lexi wrote ({e}); delete it to count the "
                            "training split again") from e


def describe(used: UsedIds | None, vocab_size: int) -> dict:
    """What an evaluation records beside its losses, so results say which readout produced them."""
    if used is None:
        return {"ids": "all", "vocab_size": vocab_size}
    return {"ids": "train_split", "vocab_size": vocab_size, "scored_ids": used.count, "other_logit": used.has_other,
            "unused_id_logprob": "log p(other) - log(vocab_size - scored_ids)"}


def full_logits(z_BxLxS: Array, used: UsedIds) -> Array:
    """Logits over all V ids from the K (+1) readout logits: used ids keep theirs, each unused
    id gets z_other - log(V - K), so softmax over V is exactly the restricted distribution."""
    if used.has_other:
        z_BxLxS = z_BxLxS.at[..., -1].add(-used.unused_log_share)
    return jnp.take(z_BxLxS, jnp.asarray(used.slots), axis=-1)


def target_logprobs(h_BxLxD: Array, rows_SxD: Array, targets_BxL: Array, used: UsedIds, scale: float,
                    chunk: int = 0) -> Array:
    """log p(target) under the restricted readout (module docstring); `rows_SxD` are the used
    ids' rows in `used.ids` order, then "other". chunk > 0: never hold more than chunk logits."""
    slots_BxL = jnp.take(jnp.asarray(used.slots), targets_BxL, axis=0)
    if chunk:
        chunk = min(chunk, used.rows)
        logp = xent.chunked_target_logprobs(
            h_BxLxD, lambda ids_C: jnp.take(rows_SxD, ids_C, axis=0)[None], slots_BxL,
            jnp.take(rows_SxD, slots_BxL, axis=0), used.rows, chunk, scale)
    else:
        z = scale * jnp.einsum("bld,sd->bls", h_BxLxD, rows_SxD.astype(h_BxLxD.dtype),
                               preferred_element_type=jnp.float32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), slots_BxL[..., None], axis=-1)[..., 0]
    if used.has_other:
        logp = jnp.where(slots_BxL == used.count, logp - used.unused_log_share, logp)
    return logp
