"""The tokenizer interface every lexi tokenizer implements."""
from __future__ import annotations

import abc
import json
from pathlib import Path

import numpy as np


class Tokenizer(abc.ABC):
    name: str
    vocab_size: int
    pad_id: int
    bos_id: int  # put at the start of every document when packing (the document separator)
    eos_id: int

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids that never stand for text: never ciphered, permuted or drawn as task symbols."""
        return tuple(sorted({self.pad_id, self.bos_id, self.eos_id}))

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        ...

    def encode_np(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), np.int32)

    @abc.abstractmethod
    def decode(self, ids) -> str:
        """Text of `ids`, skipping pad, bos and eos."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-able description; `load` rebuilds the tokenizer from it."""

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.describe(), indent=2))
        return path

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:16]
