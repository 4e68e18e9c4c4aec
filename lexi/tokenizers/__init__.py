"""Tokenizers behind one interface (lexi/tokenizers/base.py).

`load(name_or_path)` gives back any of them: a name ("char" or "ascii", "byte", "unicode"), a
SentencePiece `.model` file, a `tokenizer.json` written by `Tokenizer.save`, a Hugging Face
`tokenizer.json` (kind "hf", needs `pip install "lexi[hf]"`), or a directory holding one of
the two (a run directory, a Hugging Face model directory). New kinds plug in with `register`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from lexi.errors import UserError
from lexi.tokenizers.base import TOKENIZER_JSON, Tokenizer
from lexi.tokenizers.byte import ByteTokenizer
from lexi.tokenizers.char import CharTokenizer
from lexi.tokenizers import corpus_chars as _corpus_chars
from lexi.tokenizers.corpus_chars import CorpusCharTokenizer
from lexi.tokenizers import hf as _hf
from lexi.tokenizers.hf import HFTokenizer
from lexi.tokenizers.hf_json import is_hf_json
from lexi.tokenizers.sentencepiece import TRAINED_SPECIAL_IDS, SentencePieceTokenizer, train_sentencepiece
from lexi.tokenizers import unicode as _unicode
from lexi.tokenizers import unicode_ngrams
from lexi.tokenizers.unicode import UnicodeTokenizer

# loader(description, base) -> Tokenizer. `description` is a tokenizer.json's content, or
# {"kind": name} for a bare name, or the config section for from_config; `base` is the
# directory that relative file names in it are relative to.
Loader = Callable[[dict, Path], Tokenizer]
_KINDS: dict[str, Loader] = {}
_NAMES: dict[str, str] = {}  # names `load` accepts without a file -> kind


def register(kind: str, loader: Loader, *names: str) -> None:
    """Add a tokenizer kind; `names` (e.g. the kind itself) make `load(name)` work without a file."""
    _KINDS[kind] = loader
    for n in names:
        _NAMES[n] = kind


def _load_sentencepiece(desc: dict, base: Path) -> Tokenizer:
    model_file = desc.get("model_file")
    if not model_file:
        raise UserError("a sentencepiece tokenizer needs a model file: pass the path of a .model "
                        "(or set config.data.tokenizer.model_file)")
    return SentencePieceTokenizer(base / model_file)


register("char", lambda desc, base: CharTokenizer(), "char", "ascii")
register("byte", lambda desc, base: ByteTokenizer(), "byte")
register("sentencepiece", _load_sentencepiece)
register("unicode", _unicode.from_description, "unicode")
register("hf", _hf.from_description)
register("corpus_chars", _corpus_chars.from_description)


def _valid() -> str:
    return (f"names {sorted(_NAMES)}, or a path to a SentencePiece .model, a {TOKENIZER_JSON} (lexi's or "
            f"Hugging Face's), or a directory holding one (a run directory)")


def _from_description(desc: Any, base: Path, origin: str) -> Tokenizer:
    kind = desc.get("kind") if isinstance(desc, dict) else None
    if kind not in _KINDS:
        raise UserError(f"{origin} is not a lexi tokenizer file (kind {kind!r}; known kinds: {sorted(_KINDS)})")
    return _KINDS[kind](desc, base)


def _load_file(path: Path) -> Tokenizer:
    if path.suffix == ".model":
        return SentencePieceTokenizer(path)
    data = path.read_bytes()
    try:
        desc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        try:  # a SentencePiece model under another name
            return SentencePieceTokenizer(data)
        except UserError:
            raise UserError(f"{path} is not a tokenizer: expected {_valid()}") from None
    if is_hf_json(desc):  # Hugging Face's tokenizer.json: a "model" where lexi's has a "kind"
        return HFTokenizer(path)
    return _from_description(desc, path.parent, str(path))


def load(name_or_path: str | os.PathLike) -> Tokenizer:
    """A tokenizer by name, from a .model, a tokenizer.json, or a directory with one."""
    s = str(name_or_path)
    path = Path(s).expanduser()
    if s.lower() in _KINDS and s.lower() not in _NAMES and not path.exists():  # a kind that needs a file
        return _KINDS[s.lower()]({"kind": s.lower()}, Path("."))
    if s.lower() in _NAMES and not path.exists():
        kind = _NAMES[s.lower()]
        return _KINDS[kind]({"kind": kind}, Path("."))
    if path.is_dir():
        if not (path / TOKENIZER_JSON).is_file():
            raise UserError(f"directory {path} holds no {TOKENIZER_JSON}; expected {_valid()}")
        return _load_file(path / TOKENIZER_JSON)
    if path.is_file():
        return _load_file(path)
    if os.sep in s or "/" in s or path.suffix in (".model", ".json"):
        raise UserError(f"tokenizer file {s} does not exist; expected {_valid()}")
    raise UserError(f"unknown tokenizer {s!r}; valid: {_valid()}")


def from_config(tok_cfg, texts_fn: Callable[[], Iterable[str]], cache_dir: str | os.PathLike, *,
                corpus_key: str = "", seed: int = 0) -> Tokenizer:
    """The tokenizer `config.data.tokenizer` asks for. SentencePiece without `model_file`
    is trained on texts_fn() (only called then) and cached under cache_dir, and so are the
    n-grams of a unicode tokenizer with num_ngrams > 0; pass a corpus fingerprint as
    `corpus_key` to find the cached model without reading the texts."""
    cfg = dict(tok_cfg)
    kind = str(cfg.get("kind", "")).lower()
    kind = _NAMES.get(kind, kind)
    if kind == "sentencepiece":
        if cfg.get("model_file"):
            return SentencePieceTokenizer(Path(str(cfg["model_file"])).expanduser())
        return train_sentencepiece(texts_fn(), int(cfg.get("vocab_size", 8000)), cache_dir,
                                   model_type=str(cfg.get("model_type", "unigram")), key=corpus_key, seed=seed)
    if kind == "unicode":  # n-grams (num_ngrams, max_n) are learned on texts_fn() and cached
        return unicode_ngrams.from_config(cfg, texts_fn, cache_dir, key=corpus_key)
    if kind == "corpus_chars":  # one pass over the train split's characters (seconds for KJV)
        return CorpusCharTokenizer.from_texts(texts_fn())
    if kind in _KINDS:
        return _KINDS[kind]({**cfg, "kind": kind}, Path("."))
    raise UserError(f"config.data.tokenizer.kind {cfg.get('kind')!r} is unknown; "
                    f"choose one of {sorted(set(_NAMES) | set(_KINDS))}")


def size_from_config(tok_cfg, cache_dir: str | os.PathLike) -> tuple[int, tuple[int, ...]]:
    """(vocab_size, special_ids) of the tokenizer `config.data.tokenizer` names, without reading
    a corpus (for shapes: ahead-of-time compilation, benchmarks). A SentencePiece model still to
    be trained counts as its configured size with the special ids lexi trains it with; a unicode
    tokenizer's learned n-grams only relabel reserved ids, so they are left out."""
    cfg = dict(tok_cfg)
    kind = str(cfg.get("kind", "")).lower()
    kind = _NAMES.get(kind, kind)
    if kind == "sentencepiece" and not cfg.get("model_file"):
        return int(cfg.get("vocab_size", 8000)), TRAINED_SPECIAL_IDS
    if kind == "unicode":
        cfg["num_ngrams"] = 0

    def no_texts():
        raise UserError(f"tokenizer kind {kind!r} needs its training text here; give a saved model file instead")

    tok = from_config(cfg, no_texts, cache_dir)
    return tok.vocab_size, tuple(tok.special_ids)


__all__ = ["Tokenizer", "CharTokenizer", "CorpusCharTokenizer",
           "ByteTokenizer", "SentencePieceTokenizer", "UnicodeTokenizer", "HFTokenizer",
           "load", "from_config", "size_from_config", "register", "train_sentencepiece", "TOKENIZER_JSON"]
