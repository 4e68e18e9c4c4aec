"""ASCII character level, 128 ids (the lexinvariant paper's character vocabulary)."""
from __future__ import annotations

import numpy as np

from lexi.tokenizers.base import Tokenizer

SUB = 26  # ASCII "substitute": stands for any non-ASCII character


class CharTokenizer(Tokenizer):
    """id = ord(c) for ASCII; pad = NUL (0), bos = STX (2), eos = ETX (3); anything else
    becomes SUB (26) and is counted in `replaced_count`. Lossless on ASCII text without
    those control characters."""

    name = "char"
    vocab_size = 128
    pad_id, bos_id, eos_id = 0, 2, 3

    def __init__(self):
        self.replaced_count = 0

    def encode_np(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        bad = codes >= 128
        n_bad = int(bad.sum())
        if n_bad:
            self.replaced_count += n_bad
            codes = np.where(bad, SUB, codes)
        return codes.astype(np.int32)

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def decode(self, ids) -> str:
        skip = set(self.special_ids)
        return "".join(chr(int(i)) for i in ids if int(i) not in skip and 0 <= int(i) < 128)

    def describe(self) -> dict:
        return {"kind": "char", "vocab_size": 128}
