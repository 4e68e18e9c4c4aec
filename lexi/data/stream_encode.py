"""Tokenizing the stream in worker processes (config.data.streaming_tokenizer_processes = N > 0).

A host of a pod has dozens of cores and one Python interpreter: a tokenizer written in Python
(char, unicode, bytes) encodes on one of them however many there are. `ParallelEncode` sends
each group of documents to a pool of N processes and keeps up to `ahead` groups in flight,
handing their chunks on in the order the groups came, so the stream, its batches and its
saved states are exactly those of in-process encoding (`EncodeDocuments` in one thread).

Its state is its parent's state before the oldest group not yet handed on: restoring drops
what is in flight and encodes those groups again. The workers are spawned, not forked (the
parent holds JAX's threads), get the tokenizer once, pickled, and end with `close()`.
"""
from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import pickle
from typing import Any, Optional

import grain
import numpy as np

from lexi.data.stream_packing import EncodeDocuments

_worker_encode: Optional[EncodeDocuments] = None


def _start_worker(encode_pickled: bytes) -> None:
    global _worker_encode
    _worker_encode = pickle.loads(encode_pickled)


def _encode_in_worker(docs: list[str]) -> np.ndarray:
    return _worker_encode(docs)


class ParallelEncode(grain.IterDataset):
    """Groups of documents -> int32 chunks (bos + ids of each document), encoded by `processes`
    worker processes with `ahead` groups in flight (default 2 per process)."""

    def __init__(self, parent: grain.IterDataset, tokenizer, processes: int, ahead: int = 0):
        super().__init__(parent)
        if processes < 1:
            raise ValueError(f"ParallelEncode needs at least one process, got {processes}")
        self.encode, self.processes, self.ahead = EncodeDocuments(tokenizer), processes, ahead or 2 * processes

    def __iter__(self) -> "_ParallelEncodeIterator":
        return _ParallelEncodeIterator(self._parent.__iter__(), self.encode, self.processes, self.ahead)


class _ParallelEncodeIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, encode: EncodeDocuments, processes: int, ahead: int):
        super().__init__(parent)
        self._encode, self._processes, self._ahead = encode, processes, ahead
        self._pool: Optional[concurrent.futures.ProcessPoolExecutor] = None
        self._in_flight: collections.deque = collections.deque()  # (parent state before the group, future)
        self._exhausted = False

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self._processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                initargs=(pickle.dumps(self._encode),))
        return self._pool

    def _fill(self) -> None:
        while not self._exhausted and len(self._in_flight) < self._ahead:
            before = self._parent.get_state()
            try:
                group = next(self._parent)
            except StopIteration:
                self._exhausted = True
                return
            self._in_flight.append((before, self._executor().submit(_encode_in_worker, group)))

    def __next__(self) -> np.ndarray:
        self._assert_not_closed()
        self._fill()
        if not self._in_flight:
            raise StopIteration
        _, chunk = self._in_flight.popleft()
        return chunk.result()

    def get_state(self) -> Any:
        return self._in_flight[0][0] if self._in_flight else self._parent.get_state()

    def set_state(self, state: Any) -> None:
        self._drop_in_flight()
        self._exhausted = False
        self._parent.set_state(state)

    def _drop_in_flight(self) -> None:
        for _, chunk in self._in_flight:
            chunk.cancel()
        self._in_flight.clear()

    def close(self) -> None:
        self._drop_in_flight()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        super().close()
