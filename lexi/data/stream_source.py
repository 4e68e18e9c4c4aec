"""A Grain source of documents: this process's shards, epoch after epoch, several read at once.

Epoch e reads the shards in the order np.random.default_rng([seed, e]).permutation (or their
listed order without shuffling), `open_shards` of them at a time, taking one document from
each in turn, so documents of different files mix before the window shuffle that follows.
The iterator's state is a few integers per open shard (its place in the epoch order, the
offset to resume reading at), so it is small, JSON-able and exact: set_state reopens the
shards where they were, without reading any document before that position again (.gz files
decompress up to it).
"""
from __future__ import annotations

from typing import Any, Optional

import grain
import numpy as np

from lexi.errors import UserError


class ShardedDocuments(grain.IterDataset):
    """Documents (str) of `shards` (objects with `read(offset, line)` and `name`; lexi/data/shards.py),
    for ever. `what` names this process's share in the error raised when an epoch yields nothing."""

    def __init__(self, shards: list, *, seed: int, shuffle: bool = True, open_shards: int = 4, what: str = "the data"):
        super().__init__()
        if not shards:
            raise ValueError("ShardedDocuments needs at least one shard")
        if open_shards < 1:
            raise UserError(f"config.data.streaming_open_files must be >= 1, got {open_shards}")
        self.shards, self.seed, self.shuffle = list(shards), seed, shuffle
        self.open_shards, self.what = open_shards, what

    def __iter__(self) -> "_ShardedDocumentsIterator":
        return _ShardedDocumentsIterator(self)

    def order(self, epoch: int) -> np.ndarray:
        """Shard indices in epoch `epoch`'s reading order."""
        n = len(self.shards)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)


class _ShardedDocumentsIterator(grain.DatasetIterator):
    def __init__(self, ds: ShardedDocuments):
        super().__init__()
        self._ds = ds
        self._epoch, self._next, self._turn, self._docs_in_epoch = 0, 0, 0, 0
        self._slots: list[list[int]] = []  # per open shard: [place in the epoch order, offset, line]
        self._readers: list[Optional[Any]] = []  # its generator, opened on first use
        self._order, self._order_epoch = ds.order(0), 0

    def _shard(self, place: int):
        if self._order_epoch != self._epoch:
            self._order, self._order_epoch = self._ds.order(self._epoch), self._epoch
        return self._ds.shards[int(self._order[place])]

    def __next__(self) -> str:
        ds = self._ds
        while True:
            while len(self._slots) < ds.open_shards and self._next < len(ds.shards):
                self._slots.append([self._next, 0, 0])
                self._readers.append(None)
                self._next += 1
            if not self._slots:  # the epoch is over
                if self._docs_in_epoch == 0:
                    raise UserError(f"{ds.what} holds no documents: a whole pass over its "
                                    f"{len(ds.shards)} shard(s) found none; give it more data")
                self._epoch, self._next, self._docs_in_epoch = self._epoch + 1, 0, 0
                continue
            self._turn %= len(self._slots)
            slot = self._slots[self._turn]
            if self._readers[self._turn] is None:
                self._readers[self._turn] = self._shard(slot[0]).read(slot[1], slot[2])
            item = next(self._readers[self._turn], None)
            if item is None:  # this shard is done; the next one takes its place in the turn
                del self._slots[self._turn], self._readers[self._turn]
                continue
            text, slot[1], slot[2] = item
            self._turn += 1
            self._docs_in_epoch += 1
            return text

    def get_state(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "next": self._next, "turn": self._turn, "docs_in_epoch": self._docs_in_epoch,
                "slots": [list(s) for s in self._slots]}

    def set_state(self, state: dict[str, Any]) -> None:
        self._close_readers()
        self._epoch, self._next = int(state["epoch"]), int(state["next"])
        self._turn, self._docs_in_epoch = int(state["turn"]), int(state["docs_in_epoch"])
        self._slots = [[int(x) for x in s] for s in state["slots"]]
        self._readers = [None] * len(self._slots)

    def _close_readers(self) -> None:
        for r in self._readers:
            if r is not None:
                r.close()  # closes the file it holds open

    def close(self) -> None:
        self._close_readers()
        self._readers = [None] * len(self._slots)
        super().close()
