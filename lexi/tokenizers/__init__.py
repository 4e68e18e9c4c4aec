"""Tokenizers behind one interface (lexi/tokenizers/base.py).

`load(name_or_path)` gives back any of them: a name ("char", "byte"), a SentencePiece
`.model` file, a `tokenizer.json` written by `Tokenizer.save`, or a directory holding
one (a run directory). Families that bring their own tokenizer `register` a kind.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer
from lexi.tokenizers.byte import ByteTokenizer
from lexi.tokenizers.char import CharTokenizer
from lexi.tokenizers.sentencepiece import SentencePieceTokenizer, train_sentencepiece

# kind -> loader(description dict, directory of the tokenizer.json) -> Tokenizer
_KINDS: dict[str, Callable[[dict, Path], Tokenizer]] = {
    "char": lambda d, _: CharTokenizer(),
    "byte": lambda d, _: ByteTokenizer(),
    "sentencepiece": lambda d, base: SentencePieceTokenizer(base / d["model_file"]),
}
_NAMES = {"char": "char", "ascii": "char", "byte": "byte"}


def register(kind: str, loader: Callable[[dict, Path], Tokenizer], *names: str) -> None:
    _KINDS[kind] = loader
    for n in names:
        _NAMES[n] = kind


def _from_description(desc: dict, base: Path, origin: str) -> Tokenizer:
    kind = desc.get("kind") if isinstance(desc, dict) else None
    if kind not in _KINDS:
        raise UserError(f"{origin} is not a lexi tokenizer (kind {kind!r}; known kinds: {sorted(_KINDS)})")
    return _KINDS[kind](desc, base)


def load(name_or_path: str | Path) -> Tokenizer:
    s = str(name_or_path)
    if s in _NAMES:
        return _from_description({"kind": _NAMES[s]}, Path("."), s)
    path = Path(s)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists():
        raise UserError(f"no tokenizer named or found at {s!r}; names: {sorted(_NAMES)}, or a path to a "
                        "SentencePiece .model, a tokenizer.json, or a run directory")
    if path.suffix == ".model":
        return SentencePieceTokenizer(path)
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not a tokenizer file (not JSON: {e})") from e
    return _from_description(desc, path.parent, str(path))


def from_config(tok_cfg, texts_fn: Callable, cache_dir: str | Path, corpus_key: str = "") -> Tokenizer:
    """The tokenizer `config.data.tokenizer` asks for; a SentencePiece model without
    `model_file` is trained on texts_fn() (the corpus' training split) and cached."""
    kind = tok_cfg.kind
    if kind in ("char", "ascii", "byte"):
        return load(kind)
    if kind == "sentencepiece":
        if tok_cfg.get("model_file"):
            return SentencePieceTokenizer(tok_cfg.model_file)
        return train_sentencepiece(texts_fn(), int(tok_cfg.vocab_size), cache_dir,
                                   model_type=tok_cfg.get("model_type", "unigram"), key=corpus_key)
    if kind in _KINDS:
        return _KINDS[kind](dict(tok_cfg), Path(cache_dir))
    raise UserError(f"config.data.tokenizer.kind {kind!r} is unknown; choose one of {sorted(set(_NAMES) | set(_KINDS))}")


__all__ = ["Tokenizer", "CharTokenizer", "ByteTokenizer", "SentencePieceTokenizer", "load", "from_config",
           "register", "train_sentencepiece"]
