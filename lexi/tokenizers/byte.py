"""Byte level: the UTF-8 bytes of the text, plus three specials (259 ids)."""
from __future__ import annotations

import numpy as np

from lexi.tokenizers.base import Tokenizer


class ByteTokenizer(Tokenizer):
    """ids 0-255 = bytes, pad 256, bos 257, eos 258. Lossless for every str: lone
    surrogates are written with "surrogatepass" and read back the same way."""

    name = "byte"
    vocab_size = 259
    pad_id, bos_id, eos_id = 256, 257, 258

    def encode_np(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8).astype(np.int32)

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def decode(self, ids) -> str:
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def describe(self) -> dict:
        return {"kind": "byte", "vocab_size": 259}
