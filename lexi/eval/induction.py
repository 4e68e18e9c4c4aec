"""Induction score: does the model copy a sequence it has seen once in its context?

Each sequence is bos followed by a random string of `length` tokens (uniform over the
non-special vocabulary, with replacement) and the same string again. Nothing predicts the
first copy, so its loss is about log(number of non-special ids) for any model; the second
copy is predictable only by copying. A model that copies (an induction head) drives the
second copy's loss towards 0; an in-context unigram counter stays near log(number of
distinct tokens in the string). `induction_gain` = first - second copy loss, in nats/token.

It is the mechanism LookUp needs (match the key, copy what followed), measured without any
punctuation the training text never contained, so it shows copying before LookUp does.
"""
from __future__ import annotations

import math

import numpy as np

from lexi.errors import UserError
from lexi.eval import scoring

_STREAM = 0x1d0c  # keeps the strings apart from the reasoning examples drawn with the same seed


def non_special_ids(tokenizer) -> np.ndarray:
    return np.setdiff1d(np.arange(tokenizer.vocab_size), np.asarray(tokenizer.special_ids, dtype=np.int64))


def induction_windows(tokenizer, length: int, num: int, seed: int) -> dict[str, np.ndarray]:
    """inputs/targets int32[num, 2 * length]: bos, string, string (shifted by one)."""
    if length < 1 or num < 1:
        raise UserError(f"the induction score needs length >= 1 and at least one sequence, got {length}, {num}")
    strings_NxT = np.random.default_rng([seed, _STREAM]).choice(non_special_ids(tokenizer), size=(num, length))
    seq_NxS = np.concatenate([np.full((num, 1), tokenizer.bos_id), strings_NxT, strings_NxT], axis=1).astype(np.int32)
    return {"inputs": seq_NxS[:, :-1], "targets": seq_NxS[:, 1:]}


def copy_losses(nll_NxL: np.ndarray, length: int) -> dict[str, float]:
    """Mean NLL of the first and the second copy from per-target NLL [N, 2 * length]."""
    nll_NxL = np.asarray(nll_NxL, dtype=np.float64)
    if nll_NxL.shape[1] != 2 * length:
        raise ValueError(f"expected {2 * length} targets per sequence, got {nll_NxL.shape[1]}")
    first, second = float(nll_NxL[:, :length].mean()), float(nll_NxL[:, length:].mean())
    return {"first_copy_loss": first, "second_copy_loss": second, "induction_gain": first - second}


def check_fits(length: int, seq_len: int | None) -> None:
    if length < 0:
        raise UserError(f"--induction-length must be >= 0 (0 skips the induction score), got {length}")
    if seq_len is not None and 2 * length > seq_len:
        raise UserError(f"the induction score reads bos and two copies of {length} tokens, {2 * length + 1} tokens, "
                        f"but the model's context is {seq_len}; lower --induction-length to at most {seq_len // 2}")


def evaluate(model, variables, tokenizer, *, length: int = 32, num: int = 100, seed: int = 0,
             seq_len: int | None = None, batch_size: int = 32) -> dict:
    """Copy losses of the model (its evaluation context for window i is row i, as everywhere in
    the suite) and two reference lines: the uniform loss over non-special ids and the mean
    log number of distinct tokens per string (what an in-context unigram counter approaches)."""
    check_fits(length, seq_len)
    windows = induction_windows(tokenizer, length, num, seed)
    batch_size = min(batch_size, num)
    padded = {k: np.resize(v, (-(-num // batch_size) * batch_size, v.shape[1])) for k, v in windows.items()}
    nll = scoring.token_nll(model, variables, padded, seed=seed, batch_size=batch_size)[:num]  # one batch shape
    strings_NxT = windows["targets"][:, :length]
    distinct = np.asarray([len(np.unique(s)) for s in strings_NxT], dtype=np.float64)
    return {**copy_losses(nll, length), "uniform_loss": math.log(len(non_special_ids(tokenizer))),
            "log_distinct": float(np.log(distinct).mean()), "length": int(length), "sequences": int(num)}
