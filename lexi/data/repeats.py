"""Repeated spans in training windows: a data lever for in-context copying (issue 17's study).

Natural text repeats itself rarely within a few hundred characters (KJV: the in-context
bigram counter gains 0.36 nats over the unigram one, and a random string's second copy is
never seen). A model that must learn copying from context alone, as a lexinvariant one must,
then gets little signal for it early in training. With `data.repeat_share` > 0, that share of
training windows has one span of its own text copied further on, overwriting what was there,
so the second copy is predictable only by looking back. Validation and evaluation text is
never changed, so losses stay comparable with runs without it.

Which windows and spans are picked is a pure function of (seed, global row), so a resumed run
and a run on any number of processes see the same batches.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from lexi.errors import UserError


def check(share: float, max_length: int, seq_len: int) -> None:
    if not 0.0 <= share <= 1.0:
        raise UserError(f"config.data.repeat_share must be in [0, 1], got {share}")
    if share and not 4 <= max_length <= seq_len // 2:
        raise UserError(f"config.data.repeat_length must be in [4, seq_len / 2 = {seq_len // 2}] so that a span "
                        f"and its copy fit in one window, got {max_length}")


def repeat_spans(windows_BxL1: np.ndarray, rows_B: np.ndarray, *, share: float, max_length: int, seed: int,
                 bos_id: Optional[int]) -> np.ndarray:
    """A copy of `windows_BxL1` where a `share` of rows (chosen by their global row index) carry one
    span of length in [max_length / 4, max_length] copied to a later place of the same row. Spans
    and their destinations hold no bos, so no document boundary moves."""
    out = np.array(windows_BxL1, copy=True)
    width = out.shape[1]
    for r, row in enumerate(np.asarray(rows_B, np.int64)):
        rng = np.random.default_rng([seed, 7919, int(row)])
        if rng.random() >= share:
            continue
        n = int(rng.integers(max(1, max_length // 4), max_length + 1))
        src = int(rng.integers(0, width - 2 * n + 1))
        dst = int(rng.integers(src + n, width - n + 1))
        if bos_id is not None and (np.any(out[r, src:src + n] == bos_id) or np.any(out[r, dst:dst + n] == bos_id)):
            continue  # across a document boundary: leave the row as it is
        out[r, dst:dst + n] = out[r, src:src + n]
    return out
