"""Tokenizing and packing for the streaming pipeline, in the cached pipeline's exact layout.

`EncodeDocuments` turns a group of documents into the token stream the cached pipeline writes
for them (bos, doc 1, bos, doc 2, ...). `ConcatWindows` cuts the stream of such chunks into
the windows `Batches` takes: window k is tokens[k L : k L + L + 1], so neighbouring windows
share one token (the last target of one is the first input of the next) and documents run
across row boundaries, with no padding and no token dropped. `packing.pack` then turns a
batch of windows into inputs, targets, segment ids and positions, as for the cached stream.

ConcatWindows' state is its parent's state before the oldest chunk it still needs plus an
offset into that chunk, so restoring it encodes at most the chunks of one window again.
"""
from __future__ import annotations

import collections
from typing import Any

import grain
import numpy as np

from lexi.errors import UserError


class EncodeDocuments:
    """list[str] -> int32[N]: bos + ids of each document, concatenated. Picklable, for worker processes."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._bos = np.asarray([tokenizer.bos_id], np.int32)

    def __call__(self, docs: list[str]) -> np.ndarray:
        pieces = []
        for ids in self.tokenizer.encode_batch_np(docs):
            pieces += [self._bos, np.asarray(ids, np.int32)]
        return np.concatenate(pieces) if pieces else np.zeros(0, np.int32)


class ConcatWindows(grain.IterDataset):
    """int32[N] chunks -> int32[L+1] windows with stride L (see the module docstring)."""

    def __init__(self, parent: grain.IterDataset, seq_len: int):
        super().__init__(parent)
        if seq_len < 1:
            raise UserError(f"config.data.seq_len must be positive, got {seq_len}")
        self.seq_len = seq_len

    def __iter__(self) -> "_ConcatWindowsIterator":
        return _ConcatWindowsIterator(self._parent.__iter__(), self.seq_len)


class _ConcatWindowsIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, seq_len: int):
        super().__init__(parent)
        self._seq_len = seq_len
        self._chunks: collections.deque = collections.deque()  # (parent state before it, int32 chunk)
        self._buffered = 0  # tokens in self._chunks
        self._start = 0  # where the next window starts, counted from the first chunk's first token

    def __next__(self) -> np.ndarray:
        need = self._seq_len + 1
        while self._buffered - self._start < need:
            before = self._parent.get_state()
            chunk = next(self._parent)
            self._chunks.append((before, chunk))
            self._buffered += len(chunk)
        first = self._chunks[0][1]
        if self._start + need <= len(first):  # the common case: inside one chunk
            window_L1 = first[self._start: self._start + need].copy()
        else:
            window_L1 = self._gather(need)
        self._start += self._seq_len
        while self._chunks and self._start >= len(self._chunks[0][1]):
            _, dropped = self._chunks.popleft()
            self._start -= len(dropped)
            self._buffered -= len(dropped)
        return window_L1

    def _gather(self, need: int) -> np.ndarray:
        pieces, skip = [], self._start
        for _, chunk in self._chunks:
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            pieces.append(chunk[skip: skip + need - sum(len(p) for p in pieces)])
            skip = 0
            if sum(len(p) for p in pieces) == need:
                break
        return np.concatenate(pieces)

    def get_state(self) -> dict[str, Any]:
        parent = self._chunks[0][0] if self._chunks else self._parent.get_state()
        return {"parent": parent, "offset": self._start}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._chunks.clear()
        self._buffered, self._start = 0, int(state["offset"])
