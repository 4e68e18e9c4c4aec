"""What each id of a Hugging Face tokenizer.json stands for, read from the JSON alone (no
`tokenizers` package): BPE, Unigram, WordPiece and WordLevel models; GPT-2 byte-level pieces;
Metaspace "▁" as a space (mid-text: no prefix space is stripped); "<0xAB>" byte-fallback
pieces; WordPiece "##" dropped.

Limitation: WordPiece pieces are read as their text without "##", so a word-initial piece
("the") and a continuation ("##the") both read "the": the space before a word, which the
WordPiece decoder inserts, is not part of any piece.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lexi.errors import UserError
from lexi.tokenizers import hf_json
from lexi.tokenizers.token_bytes import BYTE_PIECE, ByteVocab, make_vocab


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
        m = BYTE_PIECE.fullmatch(piece) if byte_fallback else None
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
    pieces; WordPiece "##" dropped (see this module's docstring). Added tokens marked special, the
    pad / bos / eos / unk tokens (lexi.tokenizers.hf_json.specials) and ids no token uses are special."""
    data = path_or_bytes
    if not isinstance(data, dict):
        where = "the given bytes" if isinstance(data, bytes) else str(data)
        raw = data if isinstance(data, bytes) else _read(Path(data))
        data = hf_json.parse(raw, where)
    tokens = _id_tokens(data)
    size = max(tokens, default=-1) + 1
    s = hf_json.specials(data)
    roles = {i: "control" for i in range(size) if i not in tokens}
    roles.update({i: "control" for i in s.special})
    roles.update({i: r for r, i in (("pad", s.pad), ("bos", s.bos), ("unk", s.unk), ("eos", s.eos))
                  if i is not None and 0 <= i < size})
    read = _piece_reader(data)
    fallback = bool(data["model"].get("byte_fallback")) or "ByteFallback" in {
        n.get("type") for n in _nodes(data.get("decoder"))}
    byte_ids = [i for i, t in tokens.items() if fallback and i not in roles and BYTE_PIECE.fullmatch(t)]
    return make_vocab([b"" if i in roles else read(tokens[i]) for i in range(size)], roles, byte_ids)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"Hugging Face tokenizer file {path} does not exist; check the path")
    return path.read_bytes()


def no_prefix_space(spec: Any) -> Any:
    """A normalizer or pre-tokenizer spec that puts nothing before a text: Metaspace
    prepend_scheme "never", ByteLevel add_prefix_space false, Prepend normalizers dropped."""
    if not isinstance(spec, dict):
        return spec
    if spec.get("type") == "Sequence":
        key = next((k for k in ("normalizers", "pretokenizers") if k in spec), None)
        if key is None:
            return spec
        kept = [no_prefix_space(n) for n in spec[key] if not (isinstance(n, dict) and n.get("type") == "Prepend")]
        return {**spec, key: kept}
    if spec.get("type") == "Prepend":
        return None
    if spec.get("type") == "Metaspace":  # files from before prepend_scheme say add_prefix_space
        spec = {**spec, "prepend_scheme": "never"}
    if "add_prefix_space" in spec:
        spec = {**spec, "add_prefix_space": False}
    return spec
