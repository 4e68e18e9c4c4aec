"""Loss as a function of context position (Huang et al. 2023, figure 2), and bits per byte.

The paper averages per-token loss over 100 sequences at each position and smooths the curve
with a moving average of window 100; windows here start at a document boundary where the
corpus allows, so position 0 really has no context. "readout" records whether the readout
scored every id or only the training split's (and how many), lexi/embeddings/readout.py.
"""
from __future__ import annotations

import math

import numpy as np

from lexi.embeddings import readout
from lexi.eval import scoring
from lexi.eval.smoothing import moving_average


def target_bytes(tokenizer, targets_NxL: np.ndarray, mask_NxL: np.ndarray) -> int:
    """UTF-8 bytes of the scored text: each window's targets decoded together (so subword
    pieces join exactly as they would in the document)."""
    total = 0
    for row, mask in zip(targets_NxL, mask_NxL):
        total += len(tokenizer.decode([int(t) for t, m in zip(row, mask) if m > 0]).encode("utf-8"))
    return total


def evaluate(model, variables, tokenizer, windows: dict, *, seed: int = 0, smooth: int = 100,
             batch_size: int = 16) -> dict:
    nll = scoring.token_nll(model, variables, windows, seed=seed, batch_size=batch_size)
    mask = windows["loss_mask"].astype(np.float64)
    per_pos = (nll * mask).sum(0) / np.maximum(mask.sum(0), 1)
    total_nats = float((nll * mask).sum())
    nbytes = target_bytes(tokenizer, windows["targets"], windows["loss_mask"])
    out = {
        "loss_by_position": moving_average(per_pos, min(smooth, len(per_pos))).tolist(),
        "loss_by_position_raw": per_pos.tolist(),
        "mean_loss": total_nats / max(mask.sum(), 1.0),
        "bits_per_byte": total_nats / math.log(2) / max(nbytes, 1),
        "num_sequences": int(len(nll)),
        "smoothing_window": int(min(smooth, len(per_pos))),
    }
    emb = getattr(model, "embedding", None)  # None: a stand-in model that only scoring sees
    if emb is not None:
        out["readout"] = readout.describe(getattr(emb, "used_ids", None), emb.vocab_size)
    return out
