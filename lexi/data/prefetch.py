"""Host-side batch preparation overlapped with device steps."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional


class Prefetcher:
    """Calls fn(start_step), fn(start_step + 1), ... in a daemon thread, at most `depth`
    results ahead, and hands them out in order with `next()`. An exception raised by fn
    is re-raised by the `next()` that would have returned its result."""

    def __init__(self, fn: Callable[[int], Any], start_step: int, depth: int = 2):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, args=(fn, start_step), daemon=True,
                                        name="lexi-prefetch")
        self._thread.start()

    def _work(self, fn: Callable[[int], Any], step: int) -> None:
        while not self._stop.is_set():
            try:
                item = (fn(step), None)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                item = (None, e)
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if item[1] is not None:
                return
            step += 1

    def next(self) -> Any:
        if self._closed:
            raise RuntimeError("Prefetcher.next() after close()")
        if self._error is not None:
            raise self._error
        value, err = self._q.get()
        if err is not None:
            self._error = err
            raise err
        return value

    __next__ = next

    def __iter__(self) -> "Prefetcher":
        return self

    def close(self) -> None:
        """Stop the thread; safe to call twice. Results not yet taken are dropped."""
        self._closed = True
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
