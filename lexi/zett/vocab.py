"""Any tokenizer's vocabulary in one byte-level form, and each token split into base pieces.

ZeTT's hypernetwork reads a target token as the pieces the frozen base model's own tokenizer
makes of it, so every vocabulary (lexi's kinds, SentencePiece, Hugging Face BPE / Unigram /
WordPiece / WordLevel) is first brought into one form, `ByteVocab`: for each id, the exact bytes
it adds to decoded text in the middle of a text (SentencePiece's "▁" is a space, "<0xAB>" is the
byte 0xAB, GPT-2's byte alphabet maps back to bytes), and for special ids a role instead.

`decompose(target, base, length)` gives the [V, length] matrix of base ids (-1 padded):
  - a special target id: the base's id of the same role (pad, bos, eos, unk; "control" and
    missing roles fall back to the base's unk, then its pad), one piece;
  - a byte-fallback id ("<0xAB>"): the base's byte-fallback id of that byte, where it has one,
    also with `lexical=False`: the id names a raw byte, not text (read as text, "<0x2C>"
    would get the row of ",", a twin that takes probability from the real one);
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
encoding of t with whatever it puts at the start of a text turned off. For a SentencePiece base
that is the same model with add_dummy_prefix (and remove_extra_whitespaces) off, so " the" ->
"▁the" while "the" -> the model's pieces of "the" inside a word ("th", "e" on a small KJV
model), not "▁the". For a Hugging Face base it is the same file with Metaspace's prepend_scheme
"never", ByteLevel's add_prefix_space off and Prepend("▁") normalizers dropped; GPT-2 style
regex pre-tokenizers then cut t as they would anywhere ("'s" stays one contraction). The char,
byte and unicode tokenizers (and kinds lexi does not know) encode t as it is.

Limitation: WordPiece pieces are read as their text without "##", so a word-initial piece
("the") and a continuation ("##the") both read "the": the space before a word, which the
WordPiece decoder inserts, is not part of any piece. As a base, WordPiece encodes every t as a
word start ("the", never "##the").

Cost, time.perf_counter on a 2-core host kept busy by two training runs (range of 3 calls): a
32,000-piece target (a SentencePiece Unigram of random KJV substrings, as lexi/zett/sampler.py
builds) to bytes 0.022-0.026 s; `decompose` of it onto a lexi SentencePiece base of 8,000
pieces 0.13-0.17 s, onto the unicode tokenizer 0.07-0.09 s, onto a byte-level BPE
tokenizer.json of 8,000 tokens 0.34-0.38 s. A base's first call adds its own setup (its byte
form and mid-text encoder, cached per base): 0.09 s for the SentencePiece base.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import weakref
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers import hf
from lexi.tokenizers import unicode as uni

ROLES = ("pad", "bos", "eos", "unk", "control")
_ESCAPED = re.compile("([\udc80-\udcff])")  # a byte that is not UTF-8, after decoding with surrogateescape
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


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


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """Each target token as base-tokenizer ids: the hypernetwork's input."""

    ids_VxL: np.ndarray  # int32 [V, length]: base ids of each target token's pieces, -1 padded
    lengths_V: np.ndarray  # int32 [V]: valid pieces per row after cutting (>= 1 for every row)
    full_lengths_V: np.ndarray  # int32 [V]: pieces before cutting (for statistics)


# ---------------------------------------------------------------------------------------------
# byte vocabularies


def tokenizer_roles(tok) -> dict[int, str]:
    """Role of each special id of a lexi tokenizer. eos wins over bos (a model without bos uses
    eos for both) and unk over pad (one without pad pads with unk)."""
    roles = {int(i): "control" for i in tok.special_ids}
    for role in ("pad", "bos", "unk", "eos"):
        i = getattr(tok, f"{role}_id", None)
        if i is not None and i >= 0:
            roles[int(i)] = role
    return roles


def _vocab(pieces: list[bytes], roles: dict[int, str], byte_ids=()) -> ByteVocab:
    for i in roles:
        pieces[i] = b""
    return ByteVocab(tuple(pieces), roles, frozenset(int(i) for i in byte_ids if i not in roles))


def _char(tok) -> ByteVocab:
    """ASCII: id = byte. pad NUL, bos STX, eos ETX carry no text (the tokenizer SUBs them in
    text), and SUB (26) is its unk, standing for any replaced character."""
    return _vocab([bytes([i]) for i in range(tok.vocab_size)], tokenizer_roles(tok))


def _byte(tok) -> ByteVocab:
    return _vocab([bytes([i]) for i in range(256)] + [b""] * (tok.vocab_size - 256), tokenizer_roles(tok),
                  range(256))


def _unicode(tok) -> ByteVocab:
    """Code points, byte-fallback ids as single bytes, n-grams as UTF-8; unused n-gram slots are
    control ids (text never produces them)."""
    pieces = [chr(i).encode("utf-8", "surrogatepass") for i in range(uni.VOCAB_SIZE)]
    for b in range(256):
        pieces[uni.BYTE_BASE + b] = bytes([b])
    for i, g in zip(uni.NGRAM_IDS.tolist(), tok.ngrams):
        pieces[i] = g.encode("utf-8")
    roles = {i: "control" for i in uni.NGRAM_IDS[len(tok.ngrams):].tolist()}
    return _vocab(pieces, {**roles, **tokenizer_roles(tok)}, range(uni.BYTE_BASE, uni.BYTE_BASE + 256))


def _sentencepiece(tok) -> ByteVocab:
    """Pieces with "▁" as a space and "<0xAB>" byte pieces as that byte; control, unknown and
    unused pieces are special."""
    sp = tok._sp  # the processor the tokenizer itself encodes with
    ids = list(range(tok.vocab_size))
    roles = {i: "control" for i, c, u in zip(ids, sp.is_control(ids), sp.is_unused(ids)) if c or u}
    roles.update({i: "unk" for i, u in zip(ids, sp.is_unknown(ids)) if u})
    is_byte = sp.is_byte(ids)
    pieces = [bytes([int(p[3:5], 16)]) if b else p.replace("\u2581", " ").encode("utf-8")
              for p, b in zip(sp.id_to_piece(ids), is_byte)]
    return _vocab(pieces, {**roles, **tokenizer_roles(tok)}, [i for i, b in zip(ids, is_byte) if b])


def _hf(tok) -> ByteVocab:
    v = read_tokenizer_json(tok.data)
    pieces = list(v.pieces) + [b""] * (tok.vocab_size - len(v))
    return _vocab(pieces, {**v.roles, **tokenizer_roles(tok)}, v.byte_ids)


def _decoded(tok) -> ByteVocab:
    """Any other kind: each id decoded alone."""
    roles = tokenizer_roles(tok)
    return _vocab([tok.decode([i]).encode("utf-8", "surrogatepass") for i in range(tok.vocab_size)], roles)


_KINDS = {"char": _char, "byte": _byte, "unicode": _unicode, "sentencepiece": _sentencepiece, "hf": _hf}


def byte_vocab(tok) -> ByteVocab:
    """The byte form of any lexi tokenizer (kinds not listed in _KINDS: each id decoded alone)."""
    return _KINDS.get(getattr(tok, "name", None), _decoded)(tok)


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json, read without the `tokenizers` package


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte: printable Latin-1 bytes stand for
    themselves, the other 68 bytes for U+0100, U+0101, ... in byte order."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    others = [b for b in range(256) if b not in printable]
    return {**{chr(b): b for b in printable}, **{chr(0x100 + n): b for n, b in enumerate(others)}}


BYTE_ALPHABET = _byte_alphabet()
# str.translate table: alphabet characters -> the Latin-1 character of their byte; Latin-1
# characters outside the alphabet -> U+FFFF, so encoding as Latin-1 fails on them.
_BYTE_TABLE = {**{c: 0xFFFF for c in range(256)}, **{ord(c): b for c, b in BYTE_ALPHABET.items()}}


def _nodes(spec: Any) -> list[dict]:
    """A normalizer / pre-tokenizer / decoder spec as a flat list, Sequences opened."""
    if not isinstance(spec, dict):
        return []
    inner = [n for key in ("decoders", "pretokenizers", "normalizers") for n in spec.get(key) or []]
    return [x for n in inner for x in _nodes(n)] if spec.get("type") == "Sequence" else [spec]


def _replacements(decoder: list[dict], pre: list[dict], norm: list[dict]) -> list[tuple[str, str]]:
    """(old, new) string replacements that turn a piece into its text, e.g. ("▁", " ")."""
    out = []
    for n in decoder:
        if n.get("type") == "Replace" and "String" in (n.get("pattern") or {}):
            out.append((n["pattern"]["String"], n.get("content", "")))
        elif n.get("type") == "Metaspace":
            out.append((n.get("replacement", "\u2581"), " "))
    if not out:  # no decoder says it: the pre-tokenizer or normalizer that made the marks does
        out += [(n.get("replacement", "\u2581"), " ") for n in pre if n.get("type") == "Metaspace"]
        out += [(n["content"], n["pattern"]["String"]) for n in norm if n.get("type") == "Replace"
                and (n.get("pattern") or {}).get("String") == " " and n.get("content")]
    return out


def _piece_reader(data: dict):
    """piece text -> its bytes, following the file's decoder, pre-tokenizer and model."""
    decoder, pre = _nodes(data.get("decoder")), _nodes(data.get("pre_tokenizer"))
    model = data["model"]
    types = {n.get("type") for n in decoder}
    byte_level = "ByteLevel" in types or any(n.get("type") == "ByteLevel" for n in pre)
    byte_fallback = bool(model.get("byte_fallback")) or "ByteFallback" in types
    replace = _replacements(decoder, pre, _nodes(data.get("normalizer")))
    prefix = model.get("continuing_subword_prefix") or ("##" if model["type"] == "WordPiece" else None)
    prefix = next((n.get("prefix") for n in decoder if n.get("type") == "WordPiece"), prefix)
    suffix = model.get("end_of_word_suffix") or next(
        (n.get("suffix") for n in decoder if n.get("type") == "BPEDecoder"), None)

    def read(piece: str) -> bytes:
        m = _BYTE_PIECE.fullmatch(piece) if byte_fallback else None
        if m:
            return bytes([int(m.group(1), 16)])
        if byte_level:
            try:
                return piece.translate(_BYTE_TABLE).encode("latin-1")
            except UnicodeEncodeError:  # not all in the alphabet: the decoder keeps it as written
                return piece.encode("utf-8")
        if prefix and piece.startswith(prefix) and len(piece) > len(prefix):
            piece = piece[len(prefix):]
        if suffix and piece.endswith(suffix):
            piece = piece[: -len(suffix)] + " "
        for old, new in replace:
            piece = piece.replace(old, new)
        return piece.encode("utf-8")

    return read


def _id_tokens(data: dict) -> dict[int, str]:
    """id -> token text, the added tokens included (they win on a shared id)."""
    vocab = data["model"].get("vocab") or {}
    out = {i: str(p[0]) for i, p in enumerate(vocab)} if isinstance(vocab, list) else {
        int(i): t for t, i in vocab.items()}
    out.update({int(t["id"]): t["content"] for t in data.get("added_tokens") or []})
    return out


def read_tokenizer_json(path_or_bytes: str | os.PathLike | bytes | dict) -> ByteVocab:
    """The byte form of a Hugging Face tokenizer.json (a path, its bytes or its parsed JSON),
    from the JSON alone: BPE, Unigram, WordPiece and WordLevel models; GPT-2 byte-level pieces;
    Metaspace "▁" as a space (mid-text: no prefix space is stripped); "<0xAB>" byte-fallback
    pieces; WordPiece "##" dropped (see the module docstring). Added tokens marked special, the
    pad / bos / eos / unk tokens (lexi.tokenizers.hf.specials) and ids no token uses are special."""
    data = path_or_bytes
    if not isinstance(data, dict):
        where = "the given bytes" if isinstance(data, bytes) else str(data)
        raw = data if isinstance(data, bytes) else _read(Path(data))
        data = hf.parse(raw, where)
    tokens = _id_tokens(data)
    size = max(tokens, default=-1) + 1
    s = hf.specials(data)
    roles = {i: "control" for i in range(size) if i not in tokens}
    roles.update({i: "control" for i in s.special})
    roles.update({i: r for r, i in (("pad", s.pad), ("bos", s.bos), ("unk", s.unk), ("eos", s.eos))
                  if i is not None and 0 <= i < size})
    read = _piece_reader(data)
    fallback = bool(data["model"].get("byte_fallback")) or "ByteFallback" in {
        n.get("type") for n in _nodes(data.get("decoder"))}
    byte_ids = [i for i, t in tokens.items() if fallback and i not in roles and _BYTE_PIECE.fullmatch(t)]
    return ByteVocab(tuple(b"" if i in roles else read(tokens[i]) for i in range(size)), roles, frozenset(byte_ids))


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"Hugging Face tokenizer file {path} does not exist; check the path")
    return path.read_bytes()


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
    v = byte_vocab(tok)
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
    return _Base(_MID_TEXT.get(getattr(tok, "name", None), _plain)(tok), byte_ids, filler, by_bytes, fallback_ids)


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


def _sentencepiece_mid(tok):
    """The same model with add_dummy_prefix and remove_extra_whitespaces off."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    from lexi.tokenizers.sentencepiece import MODEL_FILE, SentencePieceTokenizer

    m = pb.ModelProto()
    m.ParseFromString(tok.files()[MODEL_FILE])
    m.normalizer_spec.add_dummy_prefix = m.normalizer_spec.remove_extra_whitespaces = False
    return _plain(SentencePieceTokenizer(m.SerializeToString()))


def _hf_mid(tok):
    """The same tokenizer.json with every start-of-text space off: Metaspace prepend_scheme "never",
    ByteLevel add_prefix_space false, Prepend normalizers dropped."""
    data = json.loads(json.dumps(tok.data))
    for key in ("normalizer", "pre_tokenizer"):
        data[key] = _no_prefix_space(data.get(key))
    try:
        return _plain(hf.HFTokenizer(json.dumps(data).encode("utf-8")))
    except UserError:  # a combination this `tokenizers` version rejects: the text as it is
        return _plain(tok)


def _no_prefix_space(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    if spec.get("type") == "Sequence":
        key = next((k for k in ("normalizers", "pretokenizers") if k in spec), None)
        if key is None:
            return spec
        kept = [_no_prefix_space(n) for n in spec[key] if not (isinstance(n, dict) and n.get("type") == "Prepend")]
        return {**spec, key: kept}
    if spec.get("type") == "Prepend":
        return None
    if spec.get("type") == "Metaspace":  # files from before prepend_scheme say add_prefix_space
        spec = {**spec, "prepend_scheme": "never"}
    if "add_prefix_space" in spec:
        spec = {**spec, "add_prefix_space": False}
    return spec


_MID_TEXT = {"sentencepiece": _sentencepiece_mid, "hf": _hf_mid}


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
