"""SentencePiece: load any `.model` (T5's included) or train one on a corpus, cached.

Models trained here are lossless: identity normalisation, whitespace kept as is and
byte fallback, so any valid Unicode text round-trips except the character U+2581 ("▁"),
which SentencePiece itself uses for the space and therefore decodes as " ". Lone
surrogates (not valid Unicode) are encoded as U+FFFD.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.files import atomic_write
from lexi.tokenizers.base import Tokenizer, id_array
from lexi.tokenizers.token_bytes import ByteVocab, make_vocab, special_name, special_roles

log = logging.getLogger("lexi")

MODEL_FILE = "sentencepiece.model"  # name of the copy saved next to tokenizer.json
MAX_TRAIN_CHARS = 32_000_000  # training reads at most this much text (the start of the corpus) ...
SAMPLE_CHARS = 6_000_000  # ... and SentencePiece trains on a seeded random sample of about this much
_CHUNK_CHARS = 4096  # documents are cut at line ends into "sentences" about this long
_MAX_SENTENCE_BYTES = 1 << 16
_SURROGATE = re.compile("[\ud800-\udfff]")
# the special pieces of a model lexi trains (a given .model keeps its own)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
TRAINED_SPECIAL_IDS = (PAD_ID, BOS_ID, EOS_ID)  # what SentencePieceTokenizer.special_ids gives for such a model


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model. Models without a bos (T5: pad 0, eos 1, unk 2) use eos as
    the document separator; models without a pad use unk as pad."""

    name = "sentencepiece"

    def __init__(self, model: str | os.PathLike | bytes):
        import sentencepiece as spm

        if isinstance(model, bytes):
            self.model_file: Optional[Path] = None
            self._proto = model
        else:
            self.model_file = Path(model)
            if not self.model_file.is_file():
                raise UserError(f"SentencePiece model {self.model_file} does not exist; check the path "
                                "(config.data.tokenizer.model_file)")
            self._proto = self.model_file.read_bytes()
        where = self.model_file or "the given bytes"
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError on a bad proto
            raise UserError(f"{where} is not a SentencePiece model ({e}); pass a .model file written "
                            "by SentencePiece") from e
        sp = self._sp
        self.vocab_size = int(sp.get_piece_size())
        self.unk_id = int(sp.unk_id())
        bos, eos, pad = int(sp.bos_id()), int(sp.eos_id()), int(sp.pad_id())
        if bos < 0 and eos < 0:
            raise UserError(f"{where} has neither a bos nor an eos piece, so documents cannot be separated; "
                            "train it with bos_id or eos_id set")
        self.eos_id = eos if eos >= 0 else bos
        self.bos_id = bos if bos >= 0 else eos
        self.pad_id = pad if pad >= 0 else self.unk_id
        control = {i for i in range(self.vocab_size) if sp.is_control(i)}
        self.special_ids = tuple(sorted(control | {self.bos_id, self.eos_id} | ({pad} if pad >= 0 else set())))
        self._skip = np.asarray(sorted(set(self.special_ids) | {self.pad_id}), dtype=np.int64)

    def encode(self, text: str) -> list[int]:
        try:
            return list(self._sp.encode(text, out_type=int))
        except (RuntimeError, TypeError, UnicodeError):  # lone surrogates cannot reach the C++ side
            return list(self._sp.encode(valid_unicode(text), out_type=int))

    def encode_batch_np(self, texts: Sequence[str]) -> list[np.ndarray]:
        if not texts:
            return []
        threads = min(8, os.cpu_count() or 1)
        try:
            ids = self._sp.encode(list(texts), out_type=int, num_threads=threads)
        except (RuntimeError, TypeError, UnicodeError):
            ids = self._sp.encode([valid_unicode(t) for t in texts], out_type=int, num_threads=threads)
        return [np.asarray(x, dtype=np.int32) for x in ids]

    def encode_np(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        a = a[(a >= 0) & (a < self.vocab_size) & ~np.isin(a, self._skip)]
        return self._sp.decode(a.tolist())

    def token_info(self, i: int) -> tuple[str, Any]:
        i, sp = int(i), self._sp
        if sp.is_unknown(i):
            return "special", "unk"
        if i in self.special_ids or sp.is_control(i):
            return "special", special_name(self, i)
        if sp.is_unused(i):
            return "unused", None
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            return "byte", int(piece[3:5], 16)  # "<0xNN>"
        return "text", piece.replace("\u2581", " ")

    def token_bytes(self) -> ByteVocab:
        """Pieces with "▁" as a space and "<0xAB>" byte pieces as that byte; control, unknown and
        unused pieces are special."""
        sp = self._sp
        ids = list(range(self.vocab_size))
        roles = {i: "control" for i, c, u in zip(ids, sp.is_control(ids), sp.is_unused(ids)) if c or u}
        roles.update({i: "unk" for i, u in zip(ids, sp.is_unknown(ids)) if u})
        is_byte = sp.is_byte(ids)
        pieces = [bytes([int(p[3:5], 16)]) if b else p.replace("\u2581", " ").encode("utf-8")
                  for p, b in zip(sp.id_to_piece(ids), is_byte)]
        return make_vocab(pieces, {**roles, **special_roles(self)}, [i for i, b in zip(ids, is_byte) if b])

    def mid_text(self) -> "SentencePieceTokenizer":
        """The same model with add_dummy_prefix and remove_extra_whitespaces off."""
        from sentencepiece import sentencepiece_model_pb2 as pb

        m = pb.ModelProto()
        m.ParseFromString(self.files()[MODEL_FILE])
        m.normalizer_spec.add_dummy_prefix = m.normalizer_spec.remove_extra_whitespaces = False
        return SentencePieceTokenizer(m.SerializeToString())

    def record(self) -> dict[str, Any]:
        return {"kind": "sentencepiece", "model_file": MODEL_FILE,
                "model_sha256": hashlib.sha256(self._proto).hexdigest()}

    def files(self) -> dict[str, bytes]:
        return {MODEL_FILE: self._proto}


def valid_unicode(text: str) -> str:
    """Lone surrogates (from JSON escapes or surrogateescape) -> U+FFFD, as SentencePiece needs."""
    return _SURROGATE.sub("\ufffd", text)


def _sentences(texts: Iterable[str], max_chars: int, hasher) -> Iterator[str]:
    """Documents cut at line ends into pieces of about _CHUNK_CHARS, newlines kept, so
    SentencePiece learns "\\n" and no sentence exceeds its length limit."""
    total = 0
    for doc in texts:
        doc = valid_unicode(doc) if not doc.isascii() else doc
        hasher.update(hashlib.sha256(doc.encode("utf-8")).digest())
        chunk: list[str] = []
        size = 0
        lines = doc.split("\n")
        for i, line in enumerate(lines):
            piece = line + ("\n" if i < len(lines) - 1 else "")
            while len(piece) > 2 * _CHUNK_CHARS:  # one very long line: cut it hard
                yield piece[:_CHUNK_CHARS]
                piece = piece[_CHUNK_CHARS:]
            chunk.append(piece)
            size += len(piece)
            if size >= _CHUNK_CHARS:
                yield "".join(chunk)
                chunk, size = [], 0
        if size:
            yield "".join(chunk)
        total += len(doc)
        if total >= max_chars:
            log.info("sentencepiece: training on the first %d characters of the corpus", total)
            return


def train_sentencepiece(texts: Iterable[str], vocab_size: int, cache_dir: str | os.PathLike, *,
                        model_type: str = "unigram", character_coverage: float = 1.0,
                        byte_fallback: bool = True, split_digits: bool = True, seed: int = 0,
                        max_chars: int = MAX_TRAIN_CHARS, sample_chars: int = SAMPLE_CHARS,
                        key: str = "") -> SentencePieceTokenizer:
    """Train a model on `texts` (documents), or load the one cached for the same inputs.

    Specials are pad 0, unk 1, bos 2, eos 3. The cache key hashes the texts (or `key`, a
    corpus fingerprint, which skips reading the texts on a cache hit) and every option;
    training is deterministic for a given seed, so every process gets the same model.
    """
    import sentencepiece as spm

    if model_type not in ("unigram", "bpe"):
        raise UserError(f"sentencepiece model_type must be 'unigram' or 'bpe', got {model_type!r}")
    minimum = 4 + (256 if byte_fallback else 0) + 1
    if vocab_size < minimum:
        raise UserError(f"sentencepiece vocab_size {vocab_size} is too small: byte fallback needs 256 byte "
                        f"pieces plus 4 specials, so use at least {minimum} (config.data.tokenizer.vocab_size)")
    options = {"vocab_size": int(vocab_size), "model_type": model_type, "character_coverage": character_coverage,
               "byte_fallback": byte_fallback, "split_digits": split_digits, "seed": seed, "max_chars": max_chars,
               "sample_chars": sample_chars, "chunk": _CHUNK_CHARS, "version": 1}
    cache = Path(cache_dir) / "sentencepiece"
    cache.mkdir(parents=True, exist_ok=True)

    def path_for(ident: str) -> Path:
        h = hashlib.sha256(json.dumps({"texts": ident, **options}, sort_keys=True).encode()).hexdigest()[:20]
        return cache / f"{model_type}_{vocab_size}_{h}.model"

    if key and path_for(key).is_file():
        return SentencePieceTokenizer(path_for(key))
    hasher = hashlib.sha256()
    sentences = list(_sentences(texts, max_chars, hasher))
    final = path_for(key or hasher.hexdigest())
    if final.is_file():
        return SentencePieceTokenizer(final)
    if not any(s.strip() for s in sentences):
        raise UserError("cannot train a SentencePiece model: the training documents hold no text")
    log.info("sentencepiece: training a %s model, vocab %d, on %d chunks", model_type, vocab_size, len(sentences))
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, byte_fallback=byte_fallback, split_digits=split_digits,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, normalization_rule_name="identity",
            remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, hard_vocab_limit=False,
            input_sentence_size=max(1, sample_chars // _CHUNK_CHARS), shuffle_input_sentence=True,
            max_sentence_length=_MAX_SENTENCE_BYTES, num_threads=2, minloglevel=2)
    except RuntimeError as e:
        raise UserError(f"SentencePiece training failed (vocab_size {vocab_size}, {len(sentences)} chunks): {e}; "
                        "adjust config.data.tokenizer.vocab_size (it must cover every character plus 260 "
                        "byte and special pieces)") from e
    atomic_write(final, model.getvalue())
    return SentencePieceTokenizer(final)
