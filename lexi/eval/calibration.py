"""Rule-based next-token predictors, scored by the same code as a model, so a report shows
what its reasoning numbers mean.

A predictor maps the token ids a model would read (bos, any preceding text, the prompt) to
next-token log-probabilities over the vocabulary, float64[V]; greedy generation appends its
argmax. Two are in every report (`evaluate`):

  copier   the in-context counter that copies: find the longest suffix of the context that
           occurred before and predict what followed its earlier occurrences (on LookUp the
           suffix is the query key and the arrow, so it copies the bound value: exact match 1).
  unigram  the in-context unigram counter: predicts each token by its count so far; its
           greedy guess is the most frequent token (punctuation), which is never an answer,
           but with frequency-drawn symbols its top-1 among candidates beats chance (a value
           drawn twice is more often the one asked for), so a model's top-1 is best read
           against both chance and this counter.

A lexinvariant model can learn both rules, nothing else is available to it; a model at 0.000
exact match has learned neither.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lexi.eval import tasks

Predictor = Callable[[np.ndarray], np.ndarray]  # context ids [L] -> log p(next) [V]


def followers(ctx_L: np.ndarray) -> np.ndarray:
    """Tokens that followed the earlier occurrences of the longest suffix of the context that
    occurred before (empty if the last token is new)."""
    ctx_L = np.asarray(ctx_L)
    last = len(ctx_L) - 1
    ends = np.flatnonzero(ctx_L[:-1] == ctx_L[-1])  # earlier positions matching a suffix of length k
    k = 1
    while len(ends):
        ext = ends[ends >= k]
        ext = ext[ctx_L[ext - k] == ctx_L[last - k]]
        if not len(ext):
            break
        ends, k = ext, k + 1
    return ctx_L[ends + 1]


def copier(vocab_size: int, smoothing: float = 1e-3) -> Predictor:
    """What followed the longest earlier match of the context's suffix, mixed with a little
    uniform mass (all of it when nothing matched)."""
    def predict(ctx_L: np.ndarray) -> np.ndarray:
        nxt = followers(ctx_L)
        p = np.full(vocab_size, 1.0 / vocab_size)
        if len(nxt):
            p = (1 - smoothing) * np.bincount(nxt, minlength=vocab_size)[:vocab_size] / len(nxt) + smoothing * p
        return np.log(p)
    return predict


def unigram(vocab_size: int) -> Predictor:
    """Counts so far with add-1/2 smoothing, as benchmarks/in_context_baselines.py."""
    def predict(ctx_L: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.asarray(ctx_L), minlength=vocab_size)[:vocab_size] + 0.5
        return np.log(counts / counts.sum())
    return predict


def greedy(predict: Predictor, ctx_L: Sequence[int], max_new: int) -> list[int]:
    """Append the predictor's most likely token `max_new` times."""
    ctx = list(ctx_L)
    out = []
    for _ in range(max_new):
        out.append(int(np.argmax(predict(np.asarray(ctx)))))
        ctx.append(out[-1])
    return out


def score_predictor(predict: Predictor, contexts: Sequence[Sequence[int]],
                    examples: Sequence[tasks.Example]) -> dict[str, float]:
    """Exact match of greedy generations and, where examples name candidates, their ranks:
    what `lexi.eval.reasoning` reports for a model, for this predictor."""
    gen = [greedy(predict, c, len(e.answer_ids)) for c, e in zip(contexts, examples)]
    out = {"exact_match": tasks.score_exact_match(gen, examples)}
    if all(e.candidates for e in examples):
        cand = [predict(np.asarray(c))[tasks.candidate_ids(e)] for c, e in zip(contexts, examples)]
        out.update(tasks.score_ranks(cand, examples))
    return out


def evaluate(contexts: Sequence[Sequence[int]], examples: Sequence[tasks.Example], vocab_size: int) -> dict:
    """The copier's and the unigram counter's scores on exactly the model's inputs, plus chance."""
    out: dict = {}
    for name, predict in (("copier", copier(vocab_size)), ("unigram", unigram(vocab_size))):
        s = score_predictor(predict, contexts, examples)
        out[f"{name}_exact_match"] = s["exact_match"]
        if "top1_among_candidates" in s:
            out[f"{name}_top1"] = s["top1_among_candidates"]
            out["top1_chance"] = s["top1_chance"]
    return out
