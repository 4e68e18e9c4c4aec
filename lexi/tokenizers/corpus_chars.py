"""The characters a corpus actually uses, plus four specials: a compact character vocabulary.

The lexinvariant readout scores every row of the vocabulary, and rows of characters the
text never uses still get (random) logits: through a 128-row ASCII readout at d = 128 a
perfect in-context unigram predictor pays about 0.57 nats for them, 0.32 with KJV's 66
characters. Built from the train split (`config.data.tokenizer.kind = "corpus_chars"`), saved
with the run. It is lossless or it refuses: text with a character outside the vocabulary
(a user's --text-file, a validation split with new characters) is a UserError that names
the characters, never a silent <unk>; `missing(text)` says which ones before encoding.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer, id_array

NUM_SPECIALS = 4  # pad, bos, eos, unk


class CorpusCharTokenizer(Tokenizer):
    """pad 0, bos 1, eos 2, unk 3, then one id per character in code-point order."""

    name = "corpus_chars"
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    special_ids = (0, 1, 2, 3)

    def __init__(self, chars: str):
        if not chars or len(set(chars)) != len(chars):
            raise UserError("a corpus_chars tokenizer needs a non-empty string of distinct characters")
        self.chars = "".join(sorted(chars))
        self.vocab_size = NUM_SPECIALS + len(self.chars)
        codes = np.frombuffer(self.chars.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
        self._lookup = np.full(int(codes.max()) + 1, self.unk_id, np.int32)  # code point -> id
        self._lookup[codes] = np.arange(NUM_SPECIALS, self.vocab_size, dtype=np.int32)
        self.replaced_count = 0  # always 0: nothing is ever replaced

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> "CorpusCharTokenizer":
        """Every character seen at least `min_count` times in `texts`."""
        counts: Counter = Counter()
        for t in texts:
            counts.update(t)
        chars = "".join(c for c, n in counts.items() if n >= min_count)
        if not chars:
            raise UserError("the corpus' train split has no characters to build a corpus_chars vocabulary from")
        return cls(chars)

    def _ids(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
        inside = codes < len(self._lookup)
        ids = np.full(codes.shape, self.unk_id, np.int32)
        ids[inside] = self._lookup[codes[inside]]
        return ids

    def missing(self, text: str) -> str:
        """The distinct characters of `text` this vocabulary lacks, in order of appearance."""
        ids = self._ids(text)
        return "".join(dict.fromkeys(c for c, i in zip(text, ids.tolist()) if i == self.unk_id))

    def encode_np(self, text: str) -> np.ndarray:
        ids = self._ids(text)
        if (ids == self.unk_id).any():
            lacking = self.missing(text)
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in lacking[:8]) + (" ..." if len(lacking) > 8 else "")
            raise UserError(f"this text has {len(lacking)} character(s) outside the corpus_chars vocabulary "
                            f"({len(self.chars)} characters of the train split): {shown}. The model has no id for "
                            "them; use a tokenizer that covers any text (kind=bytes, unicode, or char for ASCII), "
                            "or train on a corpus that contains them")
        return ids

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        a = a[(a >= NUM_SPECIALS) & (a < self.vocab_size)] - NUM_SPECIALS
        return "".join(self.chars[i] for i in a.tolist())

    def record(self) -> dict[str, Any]:
        return {"kind": "corpus_chars", "chars": self.chars}


def from_description(desc: dict, base) -> CorpusCharTokenizer:
    if "chars" not in desc:
        raise UserError("a corpus_chars tokenizer is built from a corpus: set config.data.tokenizer.kind=corpus_chars "
                        "in a training config, or load the tokenizer.json of a run that has one")
    return CorpusCharTokenizer(str(desc["chars"]))
