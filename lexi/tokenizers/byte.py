"""UTF-8 bytes plus three specials, 259 ids: covers every string with no training."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from lexi.tokenizers.base import Tokenizer, id_array
from lexi.tokenizers.token_bytes import ByteVocab, make_vocab, special_name, special_roles


class ByteTokenizer(Tokenizer):
    """ids 0-255 = UTF-8 bytes, pad 256, bos 257, eos 258.

    Lossless for every str, lone surrogates included: they are written with
    "surrogatepass" and read back the same way. Byte sequences that are not UTF-8 (a model
    can generate them) decode with errors="replace", so `decode` never raises.
    """

    name = "byte"
    vocab_size = 259
    pad_id, bos_id, eos_id = 256, 257, 258
    special_ids = (256, 257, 258)

    def encode_np(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8).astype(np.int32)

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        data = a[(a >= 0) & (a < 256)].astype(np.uint8).tobytes()
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def token_info(self, i: int) -> tuple[str, Any]:
        i = int(i)
        if i in self.special_ids:
            return "special", special_name(self, i)
        return ("text", chr(i)) if i < 0x80 else ("byte", i)

    def token_bytes(self) -> ByteVocab:
        return make_vocab([bytes([i]) for i in range(256)] + [b""] * (self.vocab_size - 256), special_roles(self),
                          range(256))

    def record(self) -> dict[str, Any]:
        return {"kind": "byte"}
