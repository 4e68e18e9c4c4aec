"""ASCII characters, 128 ids: the lexinvariant paper's character vocabulary."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from lexi.tokenizers.base import Tokenizer, id_array
from lexi.tokenizers.token_bytes import ByteVocab, make_vocab, special_roles

SUB = 26  # ASCII "substitute": stands for every non-ASCII character


class CharTokenizer(Tokenizer):
    """id = ord(c) for ASCII; pad = NUL (0), bos = STX (2), eos = ETX (3). Any other
    character, and NUL / STX / ETX inside the text (which would otherwise read as padding or
    a document boundary), becomes SUB (26) and is counted in `replaced_count`, so a corpus
    that is not really ASCII is noticed. Lossless on ASCII text without NUL, STX and ETX."""

    name = "char"
    vocab_size = 128
    pad_id, bos_id, eos_id, unk_id = 0, 2, 3, SUB
    special_ids = (0, 2, 3)

    def __init__(self) -> None:
        self.replaced_count = 0

    def encode_np(self, text: str) -> np.ndarray:
        try:  # the common all-ASCII case: one C-level pass
            codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int32)
        except UnicodeEncodeError:
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        # NUL, STX and ETX in the text would read as pad / document boundaries: SUB them too
        bad = (codes >= 128) | (codes == 0) | (codes == 2) | (codes == 3)
        if bad.any():
            self.replaced_count += int(bad.sum())
            codes = np.where(bad, SUB, codes)
        return codes.astype(np.int32)

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        keep = (a >= 0) & (a < 128) & ~np.isin(a, self.special_ids)
        return a[keep].astype(np.uint8).tobytes().decode("ascii")

    def token_bytes(self) -> ByteVocab:
        """id = byte. pad NUL, bos STX, eos ETX carry no text (encode SUBs them in text), and SUB
        (26) is the unk, standing for any replaced character."""
        return make_vocab([bytes([i]) for i in range(self.vocab_size)], special_roles(self))

    def record(self) -> dict[str, Any]:
        return {"kind": "char"}
