"""What each id of a tokenizer stands for, as bytes: the form ZeTT reads every vocabulary in.

`Tokenizer.token_bytes()` gives a `ByteVocab`: for each id, the exact bytes it adds to decoded
text in the middle of a text (SentencePiece's "▁" is a space, "<0xAB>" is the byte 0xAB,
GPT-2's byte alphabet maps back to bytes), and for special ids a role instead. Each kind
builds it in its own file; `make_vocab` applies the rules they share.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Optional

import numpy as np

from lexi.errors import UserError

ROLES = ("pad", "bos", "eos", "unk", "control")
BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's and Llama's byte-fallback pieces


@dataclasses.dataclass(frozen=True)
class ByteVocab:
    """A tokenizer's vocabulary as the exact bytes each id adds to decoded text."""

    pieces: tuple[bytes, ...]  # id -> its bytes in the text; b"" for special/control ids
    roles: dict  # special id -> "pad" | "bos" | "eos" | "unk" | "control"
    byte_ids: frozenset = frozenset()  # byte-fallback ids ("<0xAB>"): one byte, kept apart from text pieces

    def __post_init__(self):
        bad = [(i, r) for i, r in self.roles.items() if r not in ROLES or not 0 <= int(i) < len(self.pieces)]
        if bad:
            raise UserError(f"ByteVocab roles {bad[:3]} are invalid: ids must lie in [0, {len(self.pieces)}) "
                            f"and roles be one of {list(ROLES)}")

    def __len__(self) -> int:
        return len(self.pieces)

    def special_mask(self) -> np.ndarray:
        """bool[V]: the ids that stand for no text."""
        mask = np.zeros(len(self), bool)
        mask[list(self.roles)] = True
        return mask


def special_roles(tok) -> dict[int, str]:
    """Role of each special id of a lexi tokenizer. eos wins over bos (a model without bos uses
    eos for both) and unk over pad (one without pad pads with unk)."""
    roles = {int(i): "control" for i in tok.special_ids}
    for role in ("pad", "bos", "unk", "eos"):
        i = getattr(tok, f"{role}_id", None)
        if i is not None and i >= 0:
            roles[int(i)] = role
    return roles


def special_name(tok, i: int) -> Optional[str]:
    """The name a picture or a report gives special id `i`: unk, pad, bos, eos, else None."""
    if i == getattr(tok, "unk_id", None) and i not in (tok.bos_id, tok.eos_id):
        return "unk"
    if i == tok.pad_id:
        return "pad"
    if i == tok.bos_id and tok.bos_id != tok.eos_id:
        return "bos"
    if i == tok.eos_id:
        return "eos"
    return None


def make_vocab(pieces: list[bytes], roles: dict[int, str], byte_ids: Iterable[int] = ()) -> ByteVocab:
    """The ByteVocab of `pieces`, special ids emptied. A byte id is kept apart from text only
    where it is a fallback: its byte is no UTF-8 text on its own (0x80-0xFF), or the vocabulary
    also has a text piece of that byte (SentencePiece's "<0x2C>" beside ","). Otherwise it is how
    the tokenizer writes that character (the byte tokenizer's b"a", a bytes-only vocabulary's
    "<0x61>") and counts as text."""
    pieces = list(pieces)
    for i in roles:
        pieces[i] = b""
    fallback = {int(i) for i in byte_ids if i not in roles}
    text = {p for i, p in enumerate(pieces) if i not in roles and i not in fallback}
    return ByteVocab(tuple(pieces), dict(roles),
                     frozenset(i for i in fallback if pieces[i][0] >= 0x80 or pieces[i] in text))


def decoded_vocab(tok) -> ByteVocab:
    """Any kind without its own rule: each id decoded alone."""
    roles = special_roles(tok)
    return make_vocab([tok.decode([i]).encode("utf-8", "surrogatepass") for i in range(tok.vocab_size)], roles)
