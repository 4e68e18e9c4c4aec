"""The interface every tokenizer kind implements.

A tokenizer saves itself as `tokenizer.json` (`describe()`: its kind, what loading needs,
and its ids for people to read) plus any model file next to it, so a run directory alone
rebuilds it. `fingerprint()` hashes exactly those bytes: token-stream caches key on it.
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from lexi.files import atomic_write
from lexi.tokenizers.token_bytes import ByteVocab, decoded_vocab, special_name

TOKENIZER_JSON = "tokenizer.json"


class Tokenizer(abc.ABC):
    """Text <-> int ids. `encode` adds no markers: packing and prompts add `bos_id` themselves."""

    name: str  # the kind: "char", "byte", "sentencepiece", ...
    vocab_size: int
    pad_id: int
    bos_id: int  # put before every document when packing (equals eos_id when a model has no bos)
    eos_id: int
    unk_id: Optional[int] = None
    special_ids: tuple[int, ...]  # never stand for text: never ciphered, permuted or drawn as symbols

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of `text`, no bos/eos added."""

    def encode_np(self, text: str) -> np.ndarray:
        """int32[N]; kinds override this with a vectorised path."""
        return np.asarray(self.encode(text), dtype=np.int32)

    def encode_batch_np(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Many documents at once; kinds with a multithreaded encoder override this."""
        return [self.encode_np(t) for t in texts]

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, skipping pad, bos and eos."""

    @abc.abstractmethod
    def record(self) -> dict[str, Any]:
        """What loading needs: {"kind": ..., plus settings and relative model-file names}."""

    def token_info(self, i: int) -> tuple[str, Any]:
        """What id `i` stands for, for people and pictures (lexi/glyph): ("text", str),
        ("byte", int), ("special", "pad" | "bos" | "eos" | "unk" | None) or ("unused", None).
        Here: decoded alone; kinds that know better override it."""
        i = int(i)
        if i in {int(s) for s in self.special_ids}:
            return "special", special_name(self, i)
        text = self.decode([i])
        return ("text", text) if text and "\ufffd" not in text else ("unused", None)

    def token_bytes(self) -> ByteVocab:
        """Every id as the exact bytes it adds to decoded text, or its special role: how ZeTT
        reads a vocabulary (lexi/tokenizers/token_bytes.py). Here: each id decoded alone."""
        return decoded_vocab(self)

    def mid_text(self) -> "Tokenizer":
        """The tokenizer that encodes a text found right after a token boundary inside a text:
        this one, unless the kind puts something before every text (SentencePiece's dummy
        prefix, a Hugging Face prefix space), which the returned one leaves out."""
        return self

    def files(self) -> dict[str, bytes]:
        """Model files saved next to tokenizer.json, by relative name."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The JSON saved as tokenizer.json: `record()` plus the ids, for people and reports."""
        return {**self.record(), "vocab_size": int(self.vocab_size), "pad_id": int(self.pad_id),
                "bos_id": int(self.bos_id), "eos_id": int(self.eos_id),
                "unk_id": None if self.unk_id is None else int(self.unk_id),
                "special_ids": [int(i) for i in self.special_ids]}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write tokenizer.json (and model files) into `directory`; returns the json path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for rel, data in self.files().items():
            atomic_write(directory / rel, data)
        path = directory / TOKENIZER_JSON
        atomic_write(path, (json.dumps(self.describe(), indent=2, sort_keys=True) + "\n").encode())
        return path

    def fingerprint(self) -> str:
        """sha256 of the saved JSON and model files: equal iff the tokenizer encodes the same."""
        h = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode())
        for rel, data in sorted(self.files().items()):
            h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def id_array(ids: Iterable[int]) -> np.ndarray:
    """int64[N] from a list, tuple, generator, numpy or jax array of ids."""
    if not isinstance(ids, (list, tuple)) and not hasattr(ids, "__array__"):
        ids = list(ids)
    return np.asarray(ids, dtype=np.int64).ravel()
