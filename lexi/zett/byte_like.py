"""Byte-like training vocabularies: which ZeTT steps get one, and how many pieces it has.

Why: the hypernetwork learns only what its training vocabularies show it. The sampled
vocabularies (lexi/zett/sampler.py) hold thousands of frequent substrings and every
character of the window, so their 256 byte pieces stand only for the rare unseen character,
and nothing in training penalises bad rows for them. A byte-level target (lexi's `byte`
tokenizer, or a byte-level BPE with few merges) is made almost only of such rows: on the
`small` base the hypernetwork gave 8.72 bits/byte on `byte` against FVT's 6.18 (README,
"ZeTT"). A share of the steps therefore draws a vocabulary of the 256 byte pieces plus a
few multi-character pieces and no single characters (every character outside the pieces
is written as its UTF-8 bytes, a space as <0x20>), or the bytes alone.

The draw for step s uses its own stream, default_rng([seed, s, 2]), so share 0 leaves every
vocabulary exactly as before, and a step's kind is a pure function of (seed, step) like the
rest of its batch. Vocabularies stay within `vocab_size` ids and are padded to the same
multiple of 128, so the training step still compiles once.

The paper (Minixhofer et al. 2024) samples unigram vocabularies of one fixed size only:
configs/zett.py:paper keeps share 0.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from lexi.errors import UserError
from lexi.zett.unigram import NUM_FIXED  # the specials and byte pieces


@dataclasses.dataclass(frozen=True)
class ByteLike:
    """share: fraction of steps with a byte-like vocabulary; of those, `bytes_only_share` have
    no piece besides the bytes and the others min_pieces..max_pieces (uniform, inclusive)
    multi-character pieces."""

    share: float = 0.0
    min_pieces: int = 0
    max_pieces: int = 0
    bytes_only_share: float = 0.0

    @classmethod
    def from_config(cls, z) -> "ByteLike":
        """From config.zett (configs/zett.py); configs saved before these fields mean share 0."""
        return cls(float(z.get("byte_like_share", 0.0)), int(z.get("byte_like_min_pieces", 0)),
                   int(z.get("byte_like_max_pieces", 0)), float(z.get("byte_like_bytes_only_share", 0.0)))

    def check(self, vocab_size: int) -> None:
        if not (0.0 <= self.share <= 1.0 and 0.0 <= self.bytes_only_share <= 1.0):
            raise UserError(f"config.zett.byte_like_share ({self.share}) and byte_like_bytes_only_share "
                            f"({self.bytes_only_share}) must lie in [0, 1]")
        if self.share == 0.0:
            return
        room = vocab_size - NUM_FIXED
        if not 0 <= self.min_pieces <= self.max_pieces <= room:
            raise UserError(f"config.zett.byte_like_min_pieces ({self.min_pieces}) and byte_like_max_pieces "
                            f"({self.max_pieces}) must satisfy 0 <= min <= max <= vocab_size - {NUM_FIXED} "
                            f"({room}): a byte-like vocabulary holds the bytes, the specials and at most that "
                            "many pieces")

    def draw(self, seed: int, step: int) -> Optional[int]:
        """None: step `step` samples an ordinary vocabulary; else the number of multi-character
        pieces of its byte-like vocabulary (0: bytes only)."""
        if self.share <= 0.0:
            return None
        rng = np.random.default_rng([seed, step, 2])
        if rng.random() >= self.share:
            return None
        if rng.random() < self.bytes_only_share:
            return 0
        return int(rng.integers(self.min_pieces, self.max_pieces + 1))
