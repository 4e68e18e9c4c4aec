"""Token streams and packed batches.

Every document is encoded, prefixed with the tokenizer's bos id and concatenated into one
stream, cached on disk. Batches are windows of seq_len + 1 tokens; which windows make up
step s is a pure function of (seed, s), so the only data state a checkpoint needs is the
step. Attention does not cross documents: `segment_ids` change at every bos.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from lexi.errors import UserError


def build_token_stream(corpus, split: str, tokenizer, cache_dir: str | Path) -> np.ndarray:
    """1-D int32 stream (memory-mapped on a cache hit)."""
    key = hashlib.sha256(f"{corpus.fingerprint()}|{split}|{tokenizer.fingerprint()}".encode()).hexdigest()[:20]
    cache = Path(cache_dir) / "streams"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{corpus.name.replace(':', '_').replace('/', '_')}_{split}_{key}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    dtype = np.uint16 if tokenizer.vocab_size <= 65535 else np.int32
    parts, n_docs = [], 0
    for doc in corpus.documents(split):
        parts.append(np.asarray([tokenizer.bos_id], dtype))
        parts.append(tokenizer.encode_np(doc).astype(dtype))
        n_docs += 1
    if n_docs == 0:
        raise UserError(f"corpus {corpus.name} has no {split} documents "
                        "(too few documents for the validation fraction? see config.data.val_fraction)")
    stream = np.concatenate(parts)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, stream)
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def _segments(inputs_BxL: np.ndarray, bos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids (from 1, +1 at every bos after position 0) and positions within them."""
    starts = inputs_BxL == bos_id
    starts[:, 0] = True
    seg = np.cumsum(starts, axis=1).astype(np.int32)
    idx = np.broadcast_to(np.arange(inputs_BxL.shape[1]), inputs_BxL.shape)
    last_start = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
    return seg, (idx - last_start).astype(np.int32)


def pack(windows_BxL1: np.ndarray, bos_id: int, pad_id: int) -> dict:
    """Windows of L+1 tokens -> the batch dict every step consumes (all [B, L])."""
    w = np.asarray(windows_BxL1, dtype=np.int32)
    inputs, targets = w[:, :-1], w[:, 1:]
    seg, pos = _segments(inputs.copy(), bos_id)
    return {"inputs": np.ascontiguousarray(inputs), "targets": np.ascontiguousarray(targets),
            "segment_ids": seg, "positions": pos, "loss_mask": (targets != pad_id).astype(np.float32)}


class Batches:
    """Deterministic batches: step s holds rows s*B ... s*B+B-1 of the concatenated epoch
    orders, each epoch a permutation of all windows seeded by (seed, epoch)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, global_batch_size: int, seed: int, *,
                 shuffle: bool = True, process_index: int = 0, process_count: int = 1, bos_id: int = 0,
                 pad_id: int = -1):
        self.tokens, self.seq_len, self.batch = tokens, seq_len, global_batch_size
        self.seed, self.shuffle, self.bos_id, self.pad_id = seed, shuffle, bos_id, pad_id
        self.num_windows = (len(tokens) - 1) // seq_len
        if self.num_windows < 1:
            raise UserError(f"the corpus has {len(tokens)} tokens, fewer than one sequence of {seq_len + 1}; "
                            "use more text or a shorter config.data.seq_len")
        if global_batch_size % process_count:
            raise UserError(f"config.train.batch_size ({global_batch_size}) must be divisible by the number of "
                            f"processes ({process_count})")
        self.local = global_batch_size // process_count
        self.lo = process_index * self.local
        self._order_cache: dict[int, np.ndarray] = {}

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.seq_len

    def epoch_of(self, step: int) -> int:
        return (step * self.batch) // self.num_windows

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._order_cache:
            if len(self._order_cache) > 2:
                self._order_cache.clear()
            self._order_cache[epoch] = (np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
                                        if self.shuffle else np.arange(self.num_windows))
        return self._order_cache[epoch]

    def window_ids(self, step: int) -> np.ndarray:
        rows = step * self.batch + self.lo + np.arange(self.local)
        epochs, within = np.divmod(rows, self.num_windows)
        return np.asarray([self._order(int(e))[int(i)] for e, i in zip(epochs, within)])

    def batch_at(self, step: int) -> dict:
        starts = self.window_ids(step) * self.seq_len
        idx = starts[:, None] + np.arange(self.seq_len + 1)
        return pack(np.asarray(self.tokens[idx.ravel()]).reshape(idx.shape), self.bos_id, self.pad_id)


def eval_windows(tokens: np.ndarray, seq_len: int, num: int, bos_id: int, *, start_at_document: bool = False,
                 pad_id: int = -1) -> dict:
    """`num` deterministic windows spread evenly over the stream. With start_at_document,
    windows begin at document starts (bos) where there are enough of them, so position 0
    has no context, as in the paper's loss-vs-position curves."""
    n_tok = len(tokens)
    if n_tok < seq_len + 1:
        raise UserError(f"the evaluation text has {n_tok} tokens, fewer than one sequence of {seq_len + 1}")
    last = n_tok - seq_len - 1
    starts = None
    if start_at_document:
        bos = np.flatnonzero(np.asarray(tokens[: last + 1]) == bos_id)
        if len(bos) >= num:
            starts = bos[np.linspace(0, len(bos) - 1, num).astype(np.int64)]
        elif len(bos) > 0:
            starts = np.concatenate([bos, np.linspace(0, last, num - len(bos)).astype(np.int64)])
    if starts is None:
        starts = np.linspace(0, last, num).astype(np.int64)
    idx = starts[:, None] + np.arange(seq_len + 1)
    return pack(np.asarray(tokens[idx.ravel()]).reshape(idx.shape), bos_id, pad_id)


class Prefetcher:
    """Calls fn(step), fn(step + 1), ... in a background thread, `depth` ahead of the consumer."""

    def __init__(self, fn: Callable[[int], dict], start_step: int, depth: int = 2):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(fn, start_step), daemon=True)
        self._thread.start()

    def _work(self, fn, step):
        while not self._stop.is_set():
            try:
                item = (fn(step), None)
            except BaseException as e:  # handed to the consumer
                item = (None, e)
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[1] is not None:
                return
            step += 1

    def next(self) -> dict:
        value, err = self._q.get()
        if err is not None:
            raise err
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
