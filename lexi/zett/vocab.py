"""Each token of any tokenizer split into a base tokenizer's pieces: the hypernetwork's input.

ZeTT's hypernetwork reads a target token as the pieces the frozen base model's own tokenizer
makes of it. Every vocabulary (lexi's kinds, SentencePiece, Hugging Face BPE / Unigram /
WordPiece / WordLevel) says what its ids stand for in one byte-level form,
`Tokenizer.token_bytes()` -> `ByteVocab` (lexi/tokenizers/token_bytes.py), and how it encodes a
text found mid-text, `Tokenizer.mid_text()`; this module only reads those.

`decompose(target, base, length)` gives the [V, length] matrix of base ids (-1 padded):
  - a special target id: the base's id of the same role (pad, bos, eos, unk; "control" and
    missing roles fall back to the base's unk, then its pad), one piece;
  - a byte-fallback id ("<0xAB>"): the base's byte-fallback id of that byte, where it has one,
    also with `lexical=False`: the id names a raw byte, not text (read as text, "<0x2C>"
    would get the row of ",", a twin that takes probability from the real one). Only a
    fallback counts: a byte that is no text alone (0x80-0xFF), or one the vocabulary also has
    as a text piece. A byte id without such a twin (the byte tokenizer's b"a", a bytes-only
    vocabulary's "<0x61>") is how that tokenizer writes the character, and is read as text
    (lexi/tokenizers/token_bytes.py: make_vocab);
  - a token the base also has (the same bytes): that base id, one piece, so a tokenizer
    decomposed onto itself is the identity and an untrained residual hypernetwork reproduces
    the base model (`lexical=False` skips this rule: FVT's plain decomposition);
  - a token whose bytes are UTF-8 text t: the base pieces of t as it occurs mid-text, right
    after a token boundary (below);
  - a token whose bytes are not UTF-8 (a byte-level piece such as b"\\xe2", a partial
    character): its UTF-8 runs as above and each other byte as the base's id for that single
    byte (SentencePiece "<0xE2>", the byte and unicode tokenizers' byte ids); a base without
    such ids gets the text with U+FFFD for each bad sequence instead;
  - a row with no pieces (an empty token) gets the base's unk (else pad); rows longer than
    `length` keep their first `length` pieces (`full_lengths_V` keeps the count).

Mid-text pieces: what the base makes of t right after a token boundary inside a text, i.e. its
encoding of t with whatever it puts at the start of a text turned off (`mid_text()`). For a SentencePiece base
that is the same model with add_dummy_prefix (and remove_extra_whitespaces) off, so " the" ->
"▁the" while "the" -> the model's pieces of "the" inside a word ("th", "e" on a small KJV
model), not "▁the". For a Hugging Face base it is the same file with Metaspace's prepend_scheme
"never", ByteLevel's add_prefix_space off and Prepend("▁") normalizers dropped; GPT-2 style
regex pre-tokenizers then cut t as they would anywhere ("'s" stays one contraction). The char,
byte and unicode tokenizers (and kinds lexi does not know) encode t as it is.

Limitation: a WordPiece vocabulary reads "##the" and "the" alike (lexi/tokenizers/hf_pieces.py);
as a base, WordPiece encodes every t as a word start ("the", never "##the").

Cost: `python benchmarks/zett_host.py` measures the host's share of a ZeTT step (sampling and
decomposing each step's vocabulary).
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import weakref
from typing import Any, Callable, Optional

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.token_bytes import ByteVocab

_ESCAPED = re.compile("([\udc80-\udcff])")  # a byte that is not UTF-8, after decoding with surrogateescape


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """Each target token as base-tokenizer ids: the hypernetwork's input."""

    ids_VxL: np.ndarray  # int32 [V, length]: base ids of each target token's pieces, -1 padded
    lengths_V: np.ndarray  # int32 [V]: valid pieces per row after cutting (>= 1 for every row)
    full_lengths_V: np.ndarray  # int32 [V]: pieces before cutting (for statistics)


# ---------------------------------------------------------------------------------------------
# decomposition


@dataclasses.dataclass(frozen=True)
class _Base:
    """What decomposing onto one base tokenizer needs, computed once per base."""

    encode: Callable[[list[str]], list[np.ndarray]]  # texts -> their mid-text pieces
    byte_ids: np.ndarray  # int64[256]: the base id whose piece is exactly that byte, -1 where none
    filler: int  # unk, else pad: a row with nothing else
    by_bytes: dict  # bytes -> the base's (first) non-special, non-byte-fallback id with exactly them
    fallback_ids: np.ndarray  # int64[256]: the base's byte-fallback id of each byte, -1 where none


_BASES: "weakref.WeakKeyDictionary[Any, _Base]" = weakref.WeakKeyDictionary()


def _base(tok) -> _Base:
    try:
        info = _BASES.get(tok)
    except TypeError:  # not weak-referenceable: no cache
        return _describe_base(tok)
    if info is None:
        info = _BASES[tok] = _describe_base(tok)
    return info


def _describe_base(tok) -> _Base:
    v = tok.token_bytes()
    byte_ids = np.full(256, -1, np.int64)
    for i, p in enumerate(v.pieces):
        if len(p) == 1 and byte_ids[p[0]] < 0 and i not in v.roles:
            byte_ids[p[0]] = i
    filler = int(tok.unk_id if tok.unk_id is not None else tok.pad_id)
    by_bytes: dict = {}
    fallback_ids = np.full(256, -1, np.int64)
    for i, p in enumerate(v.pieces):
        if i in v.byte_ids:
            fallback_ids[p[0]] = i
        elif p and i not in v.roles:
            by_bytes.setdefault(p, i)
    return _Base(_plain(tok.mid_text()), byte_ids, filler, by_bytes, fallback_ids)


@contextlib.contextmanager
def _counters_kept(tok):
    """Decomposing is not corpus encoding: leave the tokenizer's replacement counters alone."""
    saved = {k: v for k, v in vars(tok).items() if k in ("replaced_count", "fallback_count")}
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(tok, k, v)


def _plain(tok):
    """Kinds that put nothing before a text: the text as it is."""
    def encode(texts: list[str]) -> list[np.ndarray]:
        with _counters_kept(tok):
            return tok.encode_batch_np(texts)

    return encode


def _flat(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all ids + one spare, start of each array, length of each array)."""
    counts = np.fromiter(map(len, arrays), np.int64, len(arrays))
    flat = np.concatenate([*(a.astype(np.int64) for a in arrays), np.zeros(1, np.int64)])
    return flat, np.cumsum(counts) - counts, counts


def _byte_parts(b: bytes, byte_ids: np.ndarray) -> Optional[list]:
    """b as UTF-8 text runs (str) and base byte ids (int) for the other bytes; None if the base
    lacks an id for one of them."""
    parts: list = []
    for chunk in _ESCAPED.split(b.decode("utf-8", "surrogateescape")):
        if len(chunk) == 1 and "\udc80" <= chunk <= "\udcff":
            i = int(byte_ids[ord(chunk) - 0xDC00])
            if i < 0:
                return None
            parts.append(i)
        elif chunk:
            parts.append(chunk)
    return parts


def _special_id(tok, role: str) -> int:
    own = {"pad": tok.pad_id, "bos": tok.bos_id, "eos": tok.eos_id, "unk": tok.unk_id}.get(role)
    return int(next(i for i in (own, tok.unk_id, tok.pad_id) if i is not None))


def _shared(target: ByteVocab, info: _Base, text: bool = True) -> dict[int, int]:
    """Target id -> the base id of the same token: same bytes, and a byte-fallback id only for a
    byte-fallback id (so a tokenizer decomposed onto itself is the identity). `text=False`:
    byte-fallback ids only."""
    out = {}
    for i, b in enumerate(target.pieces):
        if i in target.roles or not b:
            continue
        if i in target.byte_ids:
            j = info.fallback_ids[b[0]] if len(b) == 1 else -1
        elif not text:
            continue
        else:
            j = info.by_bytes.get(b, -1)
        if j >= 0:
            out[i] = int(j)
    return out


def _split(target: ByteVocab, info: _Base, skip=()) -> tuple[list[int], list[str], dict[int, list]]:
    """Normal rows as (rows whose whole token is text, those texts, row -> parts for the others);
    the parts' text runs are appended to the texts and referenced by index."""
    rows, texts, mixed = [], [], {}
    for i, b in enumerate(target.pieces):
        if i in target.roles or i in skip:
            continue
        try:
            texts.append(b.decode("utf-8"))
            rows.append(i)
            continue
        except UnicodeDecodeError:
            parts = _byte_parts(b, info.byte_ids)
        if parts is None:  # no byte ids: the text a decoder would show
            texts.append(b.decode("utf-8", "replace"))
            rows.append(i)
        else:
            mixed[i] = parts
    for parts in mixed.values():
        for j, p in enumerate(parts):
            if isinstance(p, str):
                parts[j] = -1 - len(texts)  # a text run: encoded with the others, found by index
                texts.append(p)
    return rows, texts, mixed


def decompose(target: ByteVocab, base, length: int = 8, *, lexical: bool = True) -> Decomposition:
    """Every target token as base-tokenizer pieces; the rules are in the module docstring.
    `lexical=False` drops the shared-token rule for text pieces (FVT's plain decomposition)."""
    if length < 1:
        raise UserError(f"decompose needs length >= 1 pieces per token, got {length}")
    info = _base(base)
    v = len(target)
    ids = np.full((v, length), -1, np.int32)
    full = np.ones(v, np.int32)
    for i, role in target.roles.items():
        ids[i, 0] = _special_id(base, role)
    shared = _shared(target, info, text=lexical)
    for i, j in shared.items():
        ids[i, 0] = j
    rows, texts, mixed = _split(target, info, skip=shared)
    flat, starts, counts = _flat(info.encode(texts))
    n = len(rows)
    _fill(ids, full, np.asarray(rows, np.int64), flat, starts[:n], counts[:n])
    for i, parts in mixed.items():
        row = np.concatenate([flat[starts[-1 - p]:starts[-1 - p] + counts[-1 - p]] if p < 0 else [p]
                              for p in parts])
        full[i] = row.size
        ids[i, : min(row.size, length)] = row[:length]
    empty = full == 0
    ids[empty, 0], full[empty] = info.filler, 1
    return Decomposition(ids, np.minimum(full, length).astype(np.int32), full)


def _fill(ids: np.ndarray, full: np.ndarray, rows: np.ndarray, flat: np.ndarray, starts: np.ndarray,
          counts: np.ndarray) -> None:
    """ids[rows] = the first `length` of each row's pieces, -1 padded (vectorised)."""
    col = np.arange(ids.shape[1])
    keep = col < np.minimum(counts, ids.shape[1])[:, None]
    ids[rows] = np.where(keep, flat[np.where(keep, starts[:, None] + col, 0)], -1)
    full[rows] = counts
