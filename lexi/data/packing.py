"""Packed batches from a token stream, as a pure function of the step.

Window w is tokens[w*L : w*L + L + 1]. Epoch e visits every window once, in the order of
np.random.default_rng([seed, e]).permutation; global step s takes rows s*B ... s*B+B-1
of the epoch orders laid end to end. Resuming therefore needs only the step number, and
each process computes just its own contiguous slice of rows.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from lexi.data import repeats
from lexi.errors import UserError

BATCH_KEYS = ("inputs", "targets", "segment_ids", "positions", "loss_mask")


def check_length(n_tokens: int, seq_len: int, what: str = "the token stream") -> None:
    if n_tokens < seq_len + 1:
        raise UserError(f"{what} has {n_tokens} tokens, fewer than one sequence of seq_len + 1 = {seq_len + 1}; "
                        "use more text or a shorter config.data.seq_len")


def segments(inputs_BxL: np.ndarray, bos_id: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids (1 + number of bos seen after position 0) and positions within segments,
    so attention and positions restart at every document a row packs."""
    b, l = inputs_BxL.shape
    idx_BxL = np.broadcast_to(np.arange(l, dtype=np.int32), (b, l))
    if bos_id is None:
        return np.ones((b, l), np.int32), np.array(idx_BxL)
    starts_BxL = inputs_BxL == bos_id
    starts_BxL[:, 0] = True  # tokens before the row's first bos are segment 1 too
    seg_BxL = np.cumsum(starts_BxL, axis=1, dtype=np.int32)
    last_start_BxL = np.maximum.accumulate(np.where(starts_BxL, idx_BxL, 0), axis=1)
    return seg_BxL, (idx_BxL - last_start_BxL).astype(np.int32)


def pack(windows_BxL1: np.ndarray, bos_id: Optional[int], pad_id: Optional[int] = None) -> dict[str, np.ndarray]:
    """Windows of L+1 tokens -> the batch dict a step consumes, every array [B, L]."""
    w = np.asarray(windows_BxL1, dtype=np.int32)
    inputs_BxL, targets_BxL = np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])
    seg_BxL, pos_BxL = segments(inputs_BxL, bos_id)
    mask_BxL = (np.ones(targets_BxL.shape, np.float32) if pad_id is None
                else (targets_BxL != pad_id).astype(np.float32))
    return {"inputs": inputs_BxL, "targets": targets_BxL, "segment_ids": seg_BxL, "positions": pos_BxL,
            "loss_mask": mask_BxL}


def gather_windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """int32[N, L+1]: the L+1 tokens from each start (copies rows, reads only those pages)."""
    view = np.lib.stride_tricks.sliding_window_view(tokens, seq_len + 1)
    return np.asarray(view[np.asarray(starts, dtype=np.int64)], dtype=np.int32)


class Batches:
    """Deterministic packed batches; `batch_at(step)` is this process's rows of that step."""

    def __init__(self, tokens: np.ndarray, seq_len: int, global_batch_size: int, seed: int, shuffle: bool = True,
                 process_index: int = 0, process_count: int = 1, bos_id: Optional[int] = None,
                 pad_id: Optional[int] = None, repeat_share: float = 0.0, repeat_length: int = 64):
        if seq_len < 1 or global_batch_size < 1:
            raise UserError(f"seq_len ({seq_len}) and batch size ({global_batch_size}) must be positive")
        check_length(len(tokens), seq_len)
        if global_batch_size % process_count:
            raise UserError(f"config.train.batch_size ({global_batch_size}) must be divisible by the number of "
                            f"processes ({process_count})")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
        self.tokens, self.seq_len, self.global_batch_size = tokens, seq_len, global_batch_size
        self.seed, self.shuffle, self.bos_id, self.pad_id = seed, shuffle, bos_id, pad_id
        repeats.check(repeat_share, repeat_length, seq_len)
        self.repeat_share, self.repeat_length = repeat_share, repeat_length
        self.num_windows = (len(tokens) - 1) // seq_len
        self.local_batch_size = global_batch_size // process_count
        self._row0 = process_index * self.local_batch_size
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one global step (inputs only)."""
        return self.global_batch_size * self.seq_len

    def epoch_of(self, step: int) -> int:
        """The epoch of the step's first global row."""
        return (step * self.global_batch_size) // self.num_windows

    def order(self, epoch: int) -> np.ndarray:
        """Window indices in epoch `epoch`'s order (the last few are kept)."""
        with self._lock:
            if epoch not in self._orders:
                if len(self._orders) >= 3:
                    self._orders.pop(min(self._orders))
                self._orders[epoch] = (np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
                                       if self.shuffle else np.arange(self.num_windows))
            return self._orders[epoch]

    def rows(self, step: int) -> np.ndarray:
        """int64[B_local]: the global row indices of this process's rows at `step`."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return step * self.global_batch_size + self._row0 + np.arange(self.local_batch_size, dtype=np.int64)

    def window_ids(self, step: int) -> np.ndarray:
        """int64[B_local]: the windows of this process's rows at `step`."""
        rows = self.rows(step)
        epochs, within = np.divmod(rows, self.num_windows)
        out = np.empty_like(rows)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self.order(int(e))[within[sel]]
        return out

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        windows = gather_windows(self.tokens, self.window_ids(step) * self.seq_len, self.seq_len)
        if self.repeat_share:
            windows = repeats.repeat_spans(windows, self.rows(step), share=self.repeat_share, max_length=self.repeat_length,
                                           seed=self.seed, bos_id=self.bos_id)
        return pack(windows, self.bos_id, self.pad_id)


def sequence_windows(seqs, pad_id: int, length: int, scored=None) -> dict[str, np.ndarray]:
    """[N, length] windows of given token sequences (bos first, at most length + 1 tokens each):
    inputs seq[:-1], targets seq[1:], right-padded, one segment each; the loss covers the last
    `scored[i]` targets of sequence i (all of them by default). What scoring a document or a
    multiple-choice answer reads; `eval_windows` instead samples windows from a token stream."""
    n = len(seqs)
    inputs = np.full((n, length), pad_id, np.int32)
    targets = np.full((n, length), pad_id, np.int32)
    segs = np.zeros((n, length), np.int32)
    mask = np.zeros((n, length), np.float32)
    for i, s in enumerate(seqs):
        m = len(s) - 1
        if not 0 < m <= length:
            raise ValueError(f"sequence {i} has {len(s)} tokens; a window of {length} takes 2 to {length + 1}")
        k = m if scored is None else min(int(scored[i]), m)
        inputs[i, :m], targets[i, :m], segs[i, :m] = s[:-1], s[1:], 1
        mask[i, m - k:m] = 1.0
    positions = np.broadcast_to(np.arange(length, dtype=np.int32), (n, length)).copy()
    return {"inputs": inputs, "targets": targets, "segment_ids": segs, "positions": positions, "loss_mask": mask}


def _evenly(n_items: int, num: int) -> np.ndarray:
    """`num` indices spread over range(n_items), distinct when num <= n_items."""
    return (np.arange(num, dtype=np.int64) * n_items) // num


def eval_windows(tokens: np.ndarray, seq_len: int, num: int, bos_id: Optional[int], start_at_document: bool = False,
                 pad_id: Optional[int] = None) -> dict[str, np.ndarray]:
    """`num` deterministic windows spread evenly over the stream (overlapping only when it
    has fewer than `num` windows). With start_at_document each window starts at a bos and
    lies inside one document where there are enough long documents, as the loss-vs-position
    curves need; shorter documents (and, failing those, even spacing) fill the rest."""
    n = len(tokens)
    check_length(n, seq_len)
    if num < 1:
        raise ValueError(f"num must be positive, got {num}")
    last = n - (seq_len + 1)  # the largest valid start
    starts = None
    if start_at_document and bos_id is not None:
        all_bos = np.flatnonzero(np.asarray(tokens) == bos_id)
        lengths = np.append(all_bos[1:], n) - all_bos  # document lengths, bos included
        fits = all_bos <= last
        bos, lengths = all_bos[fits], lengths[fits]
        if len(bos):
            long_enough = bos[lengths >= seq_len + 1]
            if len(long_enough) >= num:
                starts = long_enough[_evenly(len(long_enough), num)]
            else:
                short = np.flatnonzero(lengths < seq_len + 1)
                short = short[np.argsort(-lengths[short], kind="stable")]  # longest first
                starts = np.concatenate([long_enough, bos[short][: num - len(long_enough)]])
                if len(starts) < num:
                    starts = np.concatenate([starts, np.linspace(0, last, num - len(starts)).round()])
            starts = np.sort(starts.astype(np.int64))
    if starts is None:
        n_windows = (n - 1) // seq_len
        if num <= n_windows:  # aligned windows with disjoint targets
            starts = _evenly(n_windows, num) * seq_len
        else:
            starts = np.linspace(0, last, num).round().astype(np.int64)
    return pack(gather_windows(tokens, starts, seq_len), bos_id, pad_id)
