"""What every corpus is: documents of a split, a fingerprint, and the split rule.

A document goes to the validation split iff sha256 of its key, mod 10 000, falls below
val_fraction * 10 000: the split never depends on file order, Python's hash seed or how
many documents were read. The corpora themselves are in corpora.py, text_files.py and
tfds_corpus.py.
"""
from __future__ import annotations

import abc
import hashlib
import json
from typing import Any, Iterator

from lexi.errors import UserError

SPLITS = ("train", "validation")


def in_validation(key: str, val_fraction: float) -> bool:
    """The split rule: stable across runs, machines and Python versions."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return h % 10_000 < val_fraction * 10_000


def decode_utf8(raw: bytes) -> tuple[str, int]:
    """Text and how many invalid UTF-8 sequences became U+FFFD (so bad input is noticed)."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text, text.count("\ufffd") - raw.count("\ufffd".encode())


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


class Corpus(abc.ABC):
    """Documents of a split, and a fingerprint that changes whenever they could."""

    name: str

    @abc.abstractmethod
    def documents(self, split: str) -> Iterator[str]:
        """The split's documents in a fixed order, streamed."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Identifies content and settings; token-stream caches key on it."""


class HashSplitCorpus(Corpus):
    """A corpus without its own splits: subclasses yield (key, text) from `_items()` and
    this class splits by `in_validation(key)`. `max_documents` caps each split."""

    def __init__(self, val_fraction: float = 0.02, max_documents: int = 0):
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"config.data.val_fraction must be in [0, 1), got {val_fraction}")
        if max_documents < 0:
            raise UserError(f"config.data.max_documents must be >= 0 (0 = all), got {max_documents}")
        self.val_fraction, self.max_documents = val_fraction, max_documents
        self._fingerprint: str | None = None

    @abc.abstractmethod
    def _items(self) -> Iterator[tuple[str, str]]:
        """(split key, text) for every document, in canonical order."""

    @abc.abstractmethod
    def _content_id(self) -> Any:
        """JSON-able identity of the source content."""

    def documents(self, split: str) -> Iterator[str]:
        check_split(split)
        want_val, n = split == "validation", 0
        for key, text in self._items():
            if self.max_documents and n >= self.max_documents:
                break
            if text and in_validation(key, self.val_fraction) == want_val:
                n += 1
                yield text
        if n == 0:
            raise UserError(f"the {split} split of corpus {self.name!r} has no documents (val_fraction "
                            f"{self.val_fraction}): use more documents or change config.data.val_fraction")

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            ident = {"corpus": self.name, "content": self._content_id(), "val_fraction": self.val_fraction,
                     "max_documents": self.max_documents, "split_rule": "sha256-v1"}
            self._fingerprint = f"{self.name}-" + hashlib.sha256(
                json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
        return self._fingerprint
