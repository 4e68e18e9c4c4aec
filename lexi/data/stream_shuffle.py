"""Window shuffle for the streaming pipeline: bounded memory, a state of three numbers.

The stream is cut into consecutive windows of `window_size` elements; window w comes out in
the order np.random.default_rng([seed, w]).permutation. The state is the parent's state at the
start of the current window plus the window number and how many of its elements were handed
out, so restoring reads that one window again and nothing else.

Grain has the same transformation (WindowShuffleIterDataset), but it draws each position with
its index_shuffle, whose cost per element grows as the window shrinks, to more than packing a
row of 128 characters; one numpy permutation per window does not
(benchmarks/design_figures.py compares the two per element).
"""
from __future__ import annotations

import itertools
from typing import Any, Optional

import grain
import numpy as np


class WindowShuffle(grain.IterDataset):
    def __init__(self, parent: grain.IterDataset, *, window_size: int, seed: int):
        super().__init__(parent)
        if window_size < 1:
            raise ValueError(f"window_size must be positive, got {window_size}")
        self.window_size, self.seed = window_size, seed

    def __iter__(self) -> "_WindowShuffleIterator":
        return _WindowShuffleIterator(self._parent.__iter__(), self.window_size, self.seed)


class _WindowShuffleIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, window_size: int, seed: int):
        super().__init__(parent)
        self._size, self._seed = window_size, seed
        self._window: Optional[list] = None  # the current window, None before the first / after a restore at 0
        self._order = np.zeros(0, np.int64)
        self._index, self._pos = 0, 0  # the current (or next) window's number; elements of it handed out
        self._start_state: Any = None  # the parent's state at the start of the current window

    def _fill(self) -> None:
        self._start_state = self._parent.get_state()
        self._window = list(itertools.islice(self._parent, self._size))
        self._order = np.random.default_rng([self._seed, self._index]).permutation(len(self._window))
        self._pos = 0

    def __next__(self):
        if self._window is None or self._pos >= len(self._window):
            if self._window is not None:
                self._index += 1
            self._fill()
            if not self._window:
                self._window = None
                raise StopIteration
        item = self._window[self._order[self._pos]]
        self._pos += 1
        return item

    def get_state(self) -> dict[str, Any]:
        if self._window is None:
            return {"parent": self._parent.get_state(), "window": self._index, "pos": 0}
        if self._pos >= len(self._window):  # used up: the next window starts where the parent is now
            return {"parent": self._parent.get_state(), "window": self._index + 1, "pos": 0}
        return {"parent": self._start_state, "window": self._index, "pos": self._pos}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._index, self._window = int(state["window"]), None
        if int(state["pos"]):
            self._fill()
            self._pos = int(state["pos"])
