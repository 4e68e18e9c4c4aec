"""SentencePiece models: load any `.model` (T5's included) or train one on a corpus."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer


class SentencePieceTokenizer(Tokenizer):
    name = "sentencepiece"

    def __init__(self, model_file: str | Path):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise UserError(f"SentencePiece model {model_file} does not exist")
        self._proto = self.model_file.read_bytes()
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception as e:
            raise UserError(f"{model_file} is not a SentencePiece model: {e}") from e
        self.vocab_size = int(self._sp.GetPieceSize())
        self.eos_id = int(self._sp.eos_id())
        pad = int(self._sp.pad_id())
        bos = int(self._sp.bos_id())
        unk = int(self._sp.unk_id())
        self.pad_id = pad if pad >= 0 else (unk if unk >= 0 else 0)
        self.bos_id = bos if bos >= 0 else self.eos_id  # T5's model has no bos: eos separates documents
        self.unk_id = unk

    def encode(self, text: str) -> list[int]:
        return list(self._sp.EncodeAsIds(text))

    def decode(self, ids) -> str:
        skip = set(self.special_ids)
        return self._sp.DecodeIds([int(i) for i in ids if int(i) not in skip])

    def describe(self) -> dict:
        return {"kind": "sentencepiece", "vocab_size": self.vocab_size, "model_file": self.model_file.name,
                "sha256": hashlib.sha256(self._proto).hexdigest()[:16]}

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / self.model_file.name
        if target.resolve() != self.model_file.resolve():
            shutil.copyfile(self.model_file, target)
        return super().save(directory)


def train_sentencepiece(texts: Iterable[str], vocab_size: int, cache_dir: str | Path, *,
                        model_type: str = "unigram", byte_fallback: bool = True,
                        character_coverage: float = 1.0, max_sentences: int = 2_000_000,
                        key: str = "") -> SentencePieceTokenizer:
    """Train (or fetch from the cache) a model on `texts`. `key` names the corpus so that the
    cache is hit without reading the texts again; the texts' hash is used when it is empty."""
    import sentencepiece as spm

    if model_type not in ("unigram", "bpe"):
        raise UserError(f"sentencepiece model_type must be unigram or bpe, got {model_type!r}")
    cache_dir = Path(cache_dir) / "sentencepiece"
    cache_dir.mkdir(parents=True, exist_ok=True)
    texts = list(texts) if not key else texts
    ident = key or hashlib.sha256("\x00".join(texts).encode("utf-8", "replace")).hexdigest()
    h = hashlib.sha256(f"{ident}|{vocab_size}|{model_type}|{byte_fallback}|{character_coverage}".encode()).hexdigest()[:16]
    final = cache_dir / f"sp_{model_type}_{vocab_size}_{h}.model"
    if final.exists():
        return SentencePieceTokenizer(final)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        n = 0
        with corpus.open("w", encoding="utf-8") as f:
            for doc in texts:
                for line in doc.splitlines():
                    if line.strip():
                        f.write(line + "\n")
                        n += 1
        if n == 0:
            raise UserError("cannot train a SentencePiece model: the corpus has no text")
        prefix = Path(tmp) / "sp"
        try:
            spm.SentencePieceTrainer.Train(
                input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size, model_type=model_type,
                character_coverage=character_coverage, byte_fallback=byte_fallback, pad_id=0, unk_id=1,
                bos_id=2, eos_id=3, input_sentence_size=max_sentences, shuffle_input_sentence=True,
                num_threads=os.cpu_count() or 1, split_digits=True, minloglevel=2,
                max_sentence_length=1 << 16, hard_vocab_limit=False)
        except RuntimeError as e:
            raise UserError(f"SentencePiece training failed (vocab_size {vocab_size} on {n} lines): {e}") from e
        tmp_final = final.with_suffix(".tmp")
        shutil.copyfile(prefix.with_suffix(".model"), tmp_final)
        os.replace(tmp_final, final)
    return SentencePieceTokenizer(final)
