"""Synthetic in-context reasoning tasks (Huang et al. 2023): LookUp and Permutation.

A lexinvariant LM cannot know what any symbol means, so these tasks ask only for what the
context defines: copy the value bound to a key, or apply a reordering shown by example.
Symbols are tuples of `symbol_len` token ids drawn uniformly or by corpus frequency.

Each task is one function `(rng, symbols, fmt, **params) -> Example` registered by name,
so adding a task is one decorated function. Prompts carry no BOS/EOS: the caller adds
`tok.bos_id` if its model expects one.

Scoring takes plain arrays, so a rule-based predictor (lexi/eval/calibration.py) and a model
go through the same code: `score_exact_match` on generated ids, `score_ranks` on the
log-probabilities of each example's candidate answers (`candidate_ids`) at the answer
position. Ranking among candidates sees partial success that exact match hides: a model that
prefers the right value over the prompt's other values without making it its top token.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lexi.errors import UserError

Symbol = tuple[int, ...]


@dataclass(frozen=True)
class Example:
    """A prompt and the ids a model must generate right after it. `candidates`: the answers
    the prompt makes plausible (LookUp: its values; Permutation: the query's items), the
    right one among them; empty for tasks without such a set."""

    prompt_ids: list[int]
    answer_ids: list[int]
    candidates: tuple[Symbol, ...] = ()


class _Tokenizer(Protocol):
    vocab_size: int
    special_ids: tuple[int, ...]

    def encode(self, text: str) -> list[int]: ...


ARROWS = ("->", ":", "=")  # the prompt's arrow: the first of these a tokenizer represents losslessly


def _lossless(tok: _Tokenizer, text: str) -> bool:
    """`text` encodes without an unknown or replaced token (tokenizers that cannot represent a
    character either refuse it or count it in `replaced_count`)."""
    before = getattr(tok, "replaced_count", 0)
    try:
        tok.encode(text)
    except UserError:
        return False
    return getattr(tok, "replaced_count", 0) == before


@dataclass(frozen=True)
class Format:
    """Token ids of the prompt's punctuation: the arrow "->" binds a key to a value (or an
    input to its output), the separator " " separates items; two separators in a row
    separate demonstrations. Symbols never contain these ids, so prompts parse uniquely."""

    arrow: tuple[int, ...]
    sep: tuple[int, ...]

    def __post_init__(self):
        if not self.arrow or not self.sep:
            raise UserError(f"arrow and separator must encode to at least one token, got "
                            f"arrow={self.arrow} sep={self.sep}; pick other strings for this tokenizer")
        if set(self.arrow) & set(self.sep):
            raise UserError(f"arrow {self.arrow} and separator {self.sep} share token ids, "
                            "so prompts would not parse uniquely")

    @property
    def demo_sep(self) -> tuple[int, ...]:
        return self.sep + self.sep

    @property
    def structural_ids(self) -> frozenset[int]:
        return frozenset(self.arrow) | frozenset(self.sep)

    def join(self, items: Sequence[Symbol]) -> list[int]:
        """Items separated by `sep` (no trailing separator)."""
        out: list[int] = []
        for i, item in enumerate(items):
            if i:
                out += self.sep
            out += item
        return out

    @classmethod
    def from_tokenizer(cls, tok: _Tokenizer, arrow: str | Sequence[str] = ARROWS, sep: str = " ") -> Format:
        """Encode the punctuation; special ids a tokenizer may add (BOS/EOS) are dropped. Given
        several arrows, the first the tokenizer reads losslessly (a corpus_chars vocabulary
        built from KJV has no ">", so its prompts bind keys with ":")."""
        specials = set(tok.special_ids)
        enc = lambda s: tuple(i for i in tok.encode(s) if i not in specials)  # noqa: E731
        arrows = [arrow] if isinstance(arrow, str) else list(arrow)
        chosen = next((a for a in arrows if _lossless(tok, a)), None)
        if chosen is None:
            raise UserError(f"the {getattr(tok, 'name', 'given')} tokenizer cannot represent any of the prompt arrows "
                            f"{arrows}; pick an arrow made of characters its vocabulary has")
        return cls(arrow=enc(chosen), sep=enc(sep))


class SymbolSampler:
    """Draws symbols (tuples of `symbol_len` token ids), each token independently.

    Allowed ids are all ids minus `excluded_ids` (specials and the format's punctuation).
    kind "uniform": every allowed id is equally likely. kind "frequency": ids are drawn in
    proportion to `counts` (int/float [V], e.g. corpus token counts); allowed ids with
    count 0 never occur. Distinct draws sample without replacement.
    """

    def __init__(self, vocab_size: int, excluded_ids: Sequence[int], symbol_len: int = 1,
                 kind: str = "uniform", counts: np.ndarray | None = None):
        if symbol_len < 1:
            raise UserError(f"symbol_len must be >= 1, got {symbol_len}")
        self.symbol_len = symbol_len
        self.kind = kind
        self.allowed = np.setdiff1d(np.arange(vocab_size), np.asarray(list(excluded_ids), dtype=np.int64))
        if kind == "uniform":
            self.probs = None
            self.support = len(self.allowed)
        elif kind == "frequency":
            if counts is None:
                raise UserError("the 'frequency' sampler needs token counts of shape [vocab_size]")
            counts = np.asarray(counts, dtype=np.float64)
            if counts.shape != (vocab_size,) or (counts < 0).any():
                raise UserError(f"counts must be non-negative with shape ({vocab_size},), got {counts.shape}")
            weights = counts[self.allowed]
            self.support = int(np.count_nonzero(weights))
            self.probs = weights / weights.sum() if self.support else None
        else:
            raise UserError(f"unknown symbol sampler {kind!r}; use 'uniform' or 'frequency'")
        if self.support == 0:
            raise UserError("no token id is left to draw symbols from")

    @classmethod
    def for_tokenizer(cls, tok: _Tokenizer, fmt: Format, symbol_len: int = 1, kind: str = "uniform",
                      counts: np.ndarray | None = None) -> SymbolSampler:
        excluded = sorted(set(tok.special_ids) | fmt.structural_ids)
        return cls(tok.vocab_size, excluded, symbol_len, kind, counts)

    def draw(self, rng: np.random.Generator, n: int, distinct: bool = False) -> list[Symbol]:
        """`n` symbols; with `distinct`, no symbol repeats (exactly as sampling without
        replacement: each next symbol is drawn from the distribution renormalised over the
        symbols not yet drawn)."""
        if not distinct:
            return self._as_symbols(self._tokens(rng, n))
        if n > self.support ** self.symbol_len:
            raise UserError(f"cannot draw {n} distinct symbols of length {self.symbol_len} from "
                            f"{self.support} token ids")
        if self.symbol_len == 1:
            return self._as_symbols(rng.choice(self.allowed, size=(n, 1), replace=False, p=self.probs))
        out: dict[Symbol, None] = {}  # insertion-ordered set
        for _ in range(100):  # rejection in batches: only fails for extremely peaked counts
            for s in self._as_symbols(self._tokens(rng, 4 * n + 64)):
                out.setdefault(s)
                if len(out) == n:
                    return list(out)
        raise UserError(f"could not draw {n} distinct symbols: the counts are too concentrated")

    def _tokens(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.allowed, size=(n, self.symbol_len), p=self.probs)

    @staticmethod
    def _as_symbols(ids_NxS: np.ndarray) -> list[Symbol]:
        return [tuple(int(i) for i in row) for row in ids_NxS]


# --- registry ---------------------------------------------------------------------------

TaskFn = Callable[..., Example]
TASKS: dict[str, TaskFn] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator: make a task available to `make_examples` under `name`."""
    def deco(fn: TaskFn) -> TaskFn:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered")
        TASKS[name] = fn
        return fn
    return deco


def get_task(name: str) -> TaskFn:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]


# --- tasks ------------------------------------------------------------------------------


@register_task("lookup")
def lookup(rng: np.random.Generator, symbols: SymbolSampler, fmt: Format, num_pairs: int = 4) -> Example:
    """`k1->v1 k2->v2 ... kn->vn kq->`, answer `vq`.

    Keys are distinct (so the answer is defined), values need not be; the query key is
    one of the n keys, chosen uniformly. Every pair is followed by one separator.
    """
    if num_pairs < 1:
        raise UserError(f"num_pairs must be >= 1, got {num_pairs}")
    keys = symbols.draw(rng, num_pairs, distinct=True)
    values = symbols.draw(rng, num_pairs)
    q = int(rng.integers(num_pairs))
    prompt: list[int] = []
    for k, v in zip(keys, values):
        prompt += [*k, *fmt.arrow, *v, *fmt.sep]
    prompt += [*keys[q], *fmt.arrow]
    return Example(prompt, list(values[q]), tuple(dict.fromkeys(values)))


def _reordering(rng: np.random.Generator, num_items: int) -> np.ndarray:
    """A random order of `num_items` positions, never the identity when a non-identity
    one exists (the identity would make the task plain copying)."""
    while True:
        order = rng.permutation(num_items)
        if num_items < 2 or (order != np.arange(num_items)).any():
            return order


@register_task("permutation")
def permutation(rng: np.random.Generator, symbols: SymbolSampler, fmt: Format, num_items: int = 4,
                num_demos: int = 3) -> Example:
    """Demonstrations of one fixed reordering, then a new input to reorder.

    Layout (sep = separator, arrow = "->"):
        x1 sep x2 sep ... xn arrow y1 sep ... yn sep sep   (num_demos times)
        z1 sep z2 sep ... zn arrow
    with y_j = x_{order[j]}. The answer is the reordered query `z_{order[1]} sep ...
    z_{order[n]}`, laid out exactly like the demonstrations' outputs. Items within a row
    are distinct so the reordering can be read off any demonstration.
    """
    if num_items < 1 or num_demos < 0:
        raise UserError(f"need num_items >= 1 and num_demos >= 0, got {num_items}, {num_demos}")
    order = _reordering(rng, num_items)
    prompt: list[int] = []
    for _ in range(num_demos):
        x = symbols.draw(rng, num_items, distinct=True)
        prompt += [*fmt.join(x), *fmt.arrow, *fmt.join([x[i] for i in order]), *fmt.demo_sep]
    z = symbols.draw(rng, num_items, distinct=True)
    prompt += [*fmt.join(z), *fmt.arrow]
    return Example(prompt, fmt.join([z[i] for i in order]), tuple(z))


# --- building and scoring ---------------------------------------------------------------


def make_examples(task: str, n: int, seed: int, tokenizer: _Tokenizer, sampler: str = "uniform",
                  counts: np.ndarray | None = None, symbol_len: int = 1, **params: Any) -> list[Example]:
    """`n` examples of `task`. Example i depends only on (seed, i), so a fixed seed always
    gives the same examples and a longer list extends a shorter one."""
    fn = get_task(task)
    fmt = Format.from_tokenizer(tokenizer)
    symbols = SymbolSampler.for_tokenizer(tokenizer, fmt, symbol_len, sampler, counts)
    return [fn(np.random.default_rng([seed, i]), symbols, fmt, **params) for i in range(n)]


def score_exact_match(generated: Sequence[Sequence[int]], examples: Sequence[Example]) -> float:
    """Fraction of examples whose generation starts with the exact answer ids (anything
    generated after the answer is ignored)."""
    if len(generated) != len(examples):
        raise ValueError(f"{len(generated)} generations for {len(examples)} examples")
    if not examples:
        raise ValueError("no examples to score")
    hits = sum([int(i) for i in g[:len(e.answer_ids)]] == list(e.answer_ids)
               for g, e in zip(generated, examples))
    return hits / len(examples)


def candidate_ids(example: Example) -> list[int]:
    """The distinct first tokens of the example's candidates, in prompt order; the answer's
    first token is always one of them."""
    ids = list(dict.fromkeys(int(c[0]) for c in example.candidates))
    if int(example.answer_ids[0]) not in ids:
        raise ValueError(f"the answer's first token {example.answer_ids[0]} is not among the candidates {ids}")
    return ids


def candidate_rank(candidate_logp: Sequence[float], answer_index: int) -> tuple[float, float]:
    """(rank, top-1 share) of candidate `answer_index`, 1 = best. Ties share their places:
    the rank is their mean place and the top-1 share is 1/(number tied for first), so a
    predictor that cannot tell candidates apart sits exactly at chance."""
    logp = np.asarray(candidate_logp, dtype=np.float64)
    mine = logp[answer_index]
    above = int(np.count_nonzero(logp > mine))
    tied = int(np.count_nonzero(logp == mine))  # itself included
    return 1 + above + (tied - 1) / 2, (1.0 / tied if above == 0 else 0.0)


def score_ranks(candidate_logp: Sequence[Sequence[float]], examples: Sequence[Example]) -> dict[str, float]:
    """Rank of the right answer among each example's candidates by next-token log-probability.

    `candidate_logp[i][j]`: log p(`candidate_ids(examples[i])[j]`) at the first answer position
    (extra trailing entries, e.g. padding, are ignored). Returns the mean rank, the share
    ranked first, and what a predictor that picks a candidate at random gets for both."""
    if len(candidate_logp) != len(examples):
        raise ValueError(f"{len(candidate_logp)} rows of candidate log-probs for {len(examples)} examples")
    if not examples:
        raise ValueError("no examples to score")
    ranks, top1, sizes = [], [], []
    for logp, ex in zip(candidate_logp, examples):
        ids = candidate_ids(ex)
        r, t = candidate_rank(np.asarray(logp)[:len(ids)], ids.index(int(ex.answer_ids[0])))
        ranks.append(r)
        top1.append(t)
        sizes.append(len(ids))
    sizes_N = np.asarray(sizes, dtype=np.float64)
    return {"mean_rank": float(np.mean(ranks)), "top1_among_candidates": float(np.mean(top1)),
            "top1_chance": float(np.mean(1 / sizes_N)), "mean_rank_chance": float(np.mean((sizes_N + 1) / 2)),
            "num_candidates": float(sizes_N.mean())}


def gather_candidates(logp_NxV: np.ndarray, examples: Sequence[Example]) -> list[np.ndarray]:
    """Each example's candidate log-probs from full next-token distributions [N, V] (what a
    rule-based predictor produces), ready for `score_ranks`."""
    return [np.asarray(row)[candidate_ids(ex)] for row, ex in zip(logp_NxV, examples)]
