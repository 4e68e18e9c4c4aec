"""Host side of ZeTT training: a freshly sampled tokenizer and a batch encoded with it, per step.

Candidates are substrings of 1..15 characters inside pre-tokens, counted over a rolling
window of recent training text. A pre-token is, as SentencePiece's whitespace handling
suggests, one optional leading space plus a run of non-whitespace characters (" the" and
"the" are different candidates); runs of spaces not directly before a word, and runs of
other whitespace (newlines, tabs, ... as Python's `\\s`), are pre-tokens of their own.
Each step scores the candidates by count x length, adds Gaussian noise to the log-score
with a standard deviation drawn per step from a log-normal, keeps the best, and builds a
SentencePiece Unigram model from them in memory (plus the 4 specials and 256 byte pieces)
so every text stays encodable (lexi/zett/unigram.py). The window of step s is the text of
steps s-window+1 ... s. A share of the steps draws a byte-like vocabulary instead: the bytes
and a few multi-character pieces, or the bytes alone (lexi/zett/byte_like.py).

Defaults: the noise scale is lognormal(mu=-0.5, sigma=1): median 0.6 in log-score units,
within [0.22, 1.65] on two thirds of the steps and above 3 on ~5% of them. Most
vocabularies thus stay near frequency order (chars/token on KJV at vocab 4096: 3.6
without noise, 3.5 at scale 1, 3.0 at 2, 2.3 at 4), yet consecutive steps share only 27%
(KJV + Python source) to 41% (KJV) of their pieces (median Jaccard). Every character that
occurs in the window is kept (at most a quarter of the budget, the most frequent first),
as SentencePiece's trainer does with character_coverage 1: a step's counted text needs
byte pieces only when that cap binds.

A step reads about 4 characters per token it needs, as segments of about one row from
documents drawn in proportion to their length, each starting at a line (else word) start
with bos before it; if they encode to too few tokens, more segments are drawn and encoded
but not counted (at vocab 32768, ~4.3 characters a token, that happens on most steps).

Cost per step: benchmarks/RESULTS.md ("ZeTT's host work per step").
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Sequence

import numpy as np

from lexi.data.packing import pack
from lexi.errors import UserError
from lexi.tokenizers.sentencepiece import SentencePieceTokenizer
from lexi.zett.byte_like import ByteLike
from lexi.zett.substrings import SubstringCounts
from lexi.zett.unigram import NUM_FIXED, piece_bytes, placeholder_ids, unigram_tokenizer

NOISE_MU = -0.5  # the noise std is lognormal(NOISE_MU, NOISE_SIGMA), drawn once per vocabulary
NOISE_SIGMA = 1.0
CHAR_SHARE = 0.25  # single characters may take at most this share of the sampled pieces
CHARS_PER_TOKEN = 4.0  # a step reads this many characters per token it needs, then more if short


# --------------------------------------------------- vocabulary sampling


def sample_vocabulary(counts: SubstringCounts, rng: np.random.Generator, size: int, *,
                      noise_mu: float = NOISE_MU, noise_sigma: float = NOISE_SIGMA,
                      single_chars: bool = True) -> list[tuple[str, float]]:
    """`size - 260` pieces (fewer if the window has fewer candidates), best first, each
    with its unigram log-probability: log-softmax of the noisy log(count x length).

    Characters of the window are kept first (up to CHAR_SHARE of the budget, by count);
    the rest go by noisy score. `single_chars=False` keeps no single character, so every
    character outside the chosen pieces is written as its UTF-8 byte pieces (a byte-like
    vocabulary, lexi/zett/byte_like.py); size 260 then gives no pieces at all. The 4
    specials and 256 bytes are not in the list: `unigram_tokenizer` adds them.
    Deterministic in `rng` and the window's content.
    """
    budget = size - NUM_FIXED
    if budget < (1 if single_chars else 0):
        raise UserError(f"the sampled vocabulary size ({size}) must exceed the {NUM_FIXED} specials and byte "
                        f"pieces; use at least {NUM_FIXED + 1}")
    scale = rng.lognormal(noise_mu, noise_sigma)
    rows, count, length = counts.candidates()
    noise = rng.standard_normal(len(rows), dtype=np.float32)
    score = np.log((count * length).astype(np.float32)) + np.float32(scale) * noise  # float32: 4x faster
    chars = np.flatnonzero(length == 1)
    if not single_chars:
        score[chars] = -np.inf
        chars = chars[:0]
        budget = min(budget, int(np.count_nonzero(length > 1)))
    elif len(chars) > int(budget * CHAR_SHARE):
        chars = chars[_top(count[chars].astype(np.float32), int(budget * CHAR_SHARE))]
    others = score.copy()
    others[chars] = -np.inf
    keep = np.zeros(len(rows), bool)
    keep[chars] = keep[_top(others, budget - len(chars))] = True
    chosen = np.flatnonzero(keep)
    best = score[chosen].astype(np.float64)
    logp = best - np.logaddexp.reduce(best) if len(best) else best
    order = np.argsort(-logp, kind="stable")
    return list(zip(counts.strings(rows[chosen[order]]), logp[order].tolist()))


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values (all if fewer), in ascending index order."""
    if k >= len(values):
        return np.arange(len(values))
    if k <= 0:
        return np.zeros(0, np.int64)
    return np.sort(np.argpartition(-values, k - 1)[:k])


# --------------------------------------------------------------- batches


DecomposeFn = Callable[[SentencePieceTokenizer], tuple[np.ndarray, np.ndarray]]


class ZettBatches:
    """Per step: text, the window's counts, a sampled tokenizer, the text encoded with it
    and the tokenizer's decomposition into base pieces, as a pure function of the step.

    Vocabulary arrays have the fixed size `padded_vocab_size` (vocab_size rounded up to a
    multiple of 128) and are the same on every process; text rows are this process's
    slice of the global batch. Sequential calls cost one window update each; any other
    step rebuilds the window from its `window` steps (cold start, same result).
    `byte_like`: which steps get a byte-like vocabulary instead (lexi/zett/byte_like.py).
    """

    def __init__(self, documents: Sequence[str], base_tokenizer, *, seq_len: int, batch_size: int,
                 vocab_size: int, pieces_per_token: int = 8, window: int = 32, seed: int = 0,
                 process_index: int = 0, process_count: int = 1, noise_mu: float = NOISE_MU,
                 noise_sigma: float = NOISE_SIGMA, decompose_fn: Optional[DecomposeFn] = None,
                 byte_like: Optional[ByteLike] = None):
        _check_shapes(seq_len, batch_size, vocab_size, pieces_per_token, window, process_count)
        self.byte_like = byte_like or ByteLike()
        self.byte_like.check(vocab_size)
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
        self.documents = [d for d in documents if d]
        if not self.documents:
            raise UserError("ZeTT training needs text: every document given is empty")
        self.base_tokenizer, self.seq_len, self.batch_size = base_tokenizer, seq_len, batch_size
        self.vocab_size, self.pieces_per_token, self.window, self.seed = vocab_size, pieces_per_token, window, seed
        self.noise_mu, self.noise_sigma = noise_mu, noise_sigma
        self.padded_vocab_size = -(-vocab_size // 128) * 128
        self.local_batch_size = batch_size // process_count
        self._row0 = process_index * self.local_batch_size
        self._decompose = decompose_fn or self._default_decompose
        lengths = np.array([len(d) for d in self.documents], dtype=np.float64)
        self._doc_cdf = np.cumsum(lengths) / lengths.sum()  # documents drawn in proportion to their length
        self._counts: Optional[SubstringCounts] = None
        self._step = -1  # the newest step in self._counts
        self._lock = threading.Lock()

    # -- text

    def _segment(self, rng: np.random.Generator, want: int) -> str:
        """Up to `want` characters of a random document, from a random offset moved on to
        the next line (or word) start, so segments rarely begin mid-word."""
        doc = self.documents[min(int(np.searchsorted(self._doc_cdf, rng.random(), side="right")),
                                 len(self.documents) - 1)]
        start = int(rng.integers(0, max(1, len(doc) - want + 1)))
        if start:
            head = doc[start:start + want // 2]
            cut = head.find("\n")
            cut = cut if cut >= 0 else head.find(" ")
            start += cut + 1 if cut >= 0 else 0
        return doc[start:start + want]

    def _segments(self, rng: np.random.Generator, chars: int) -> list[str]:
        want = int((self.seq_len + 1) * CHARS_PER_TOKEN)  # about a row each
        out, total = [], 0
        while total < chars:
            seg = self._segment(rng, want)
            if seg:
                out.append(seg)
                total += len(seg)
        return out

    def _text(self, step: int) -> tuple[list[str], np.random.Generator]:
        """The segments step `step` counts and encodes, and the rng that draws more if short."""
        rng = np.random.default_rng([self.seed, step, 0])
        return self._segments(rng, int(self.batch_size * (self.seq_len + 1) * CHARS_PER_TOKEN)), rng

    # -- window and vocabulary

    def counts_at(self, step: int) -> SubstringCounts:
        """The window after step `step`'s text: steps step-window+1 ... step."""
        if self._counts is None or self._step not in (step - 1, step):
            self._counts = SubstringCounts(self.window)
            for s in range(max(0, step - self.window + 1), step):
                self._counts.add(self._text(s)[0])
            self._step = step - 1
        if self._step == step - 1:
            self._counts.add(self._text(step)[0])
            self._step = step
        return self._counts

    def vocabulary_at(self, step: int) -> tuple[list[tuple[str, float]], bool]:
        """(the pieces sampled for `step`, whether they form a byte-like vocabulary): the same
        on every process; `unigram_tokenizer(pieces, byte_like=...)` builds the tokenizer."""
        with self._lock:
            counts = self.counts_at(step)
            n_pieces = self.byte_like.draw(self.seed, step)
            rng = np.random.default_rng([self.seed, step, 1])
            size = self.vocab_size if n_pieces is None else NUM_FIXED + n_pieces
            pieces = sample_vocabulary(counts, rng, size, noise_mu=self.noise_mu, noise_sigma=self.noise_sigma,
                                       single_chars=n_pieces is None)
            return pieces, n_pieces is not None

    def pieces_at(self, step: int) -> list[tuple[str, float]]:
        """The pieces of `vocabulary_at(step)`."""
        return self.vocabulary_at(step)[0]

    def tokenizer_at(self, step: int) -> SentencePieceTokenizer:
        """The tokenizer step `step` trains with."""
        pieces, byte_like = self.vocabulary_at(step)
        return unigram_tokenizer(pieces, byte_like=byte_like)

    # -- the batch

    def batch_at(self, step: int) -> dict:
        """{"text": this process's rows (the packing keys, num_bytes), "vocab": the step's
        tokenizer as pieces/lengths/mask/special, padded}; the same for the same step always."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        pieces, byte_like = self.vocabulary_at(step)
        return self.batch_with(unigram_tokenizer(pieces, byte_like=byte_like), piece_bytes(pieces), step)

    def batch_with(self, tok, bytes_per_id_V: np.ndarray, step: int) -> dict:
        """Step `step`'s text encoded with any lexi tokenizer `tok` of at most `vocab_size` ids,
        as `batch_at` lays it out (`bytes_per_id_V`: UTF-8 bytes each id stands for). The
        shapes are batch_at's, so a fixed validation tokenizer (lexi/zett/validation.py) runs
        through the same compiled evaluation."""
        if tok.vocab_size > self.padded_vocab_size:
            raise UserError(f"a tokenizer of {tok.vocab_size} ids does not fit ZeTT's padded vocabulary of "
                            f"{self.padded_vocab_size} ids (config.zett.vocab_size)")
        text = pack(self._rows(tok, step), tok.bos_id, tok.pad_id)
        masked = np.asarray(bytes_per_id_V)[text["targets"]] * (text["loss_mask"] > 0)
        text["num_bytes"] = masked.sum(axis=1).astype(np.int64)
        return {"text": text, "vocab": self._vocab(tok)}

    def _rows(self, tok: SentencePieceTokenizer, step: int) -> np.ndarray:
        """int32[B_local, L+1]: this process's rows of the step's token stream (bos before
        every segment); if the step's text is short, more is drawn, encoded but not counted."""
        need = self.batch_size * (self.seq_len + 1)
        segs, rng = self._text(step)
        parts, total = [], 0
        while True:
            for ids in map(tok.encode_np, segs):  # one thread: cheaper than a pool at this size
                parts += [np.array([tok.bos_id], np.int32), ids.astype(np.int32)]
                total += len(ids) + 1
            if total >= need:
                break
            segs = self._segments(rng, int((need - total) * CHARS_PER_TOKEN))
        stream = np.concatenate(parts)[:need].reshape(self.batch_size, self.seq_len + 1)
        return stream[self._row0:self._row0 + self.local_batch_size]

    def _vocab(self, tok: SentencePieceTokenizer) -> dict[str, np.ndarray]:
        v, vp, width = tok.vocab_size, self.padded_vocab_size, self.pieces_per_token
        ids, lengths = self._decompose(tok)
        ids, lengths = np.asarray(ids, np.int32), np.asarray(lengths, np.int32)
        if ids.shape != (v, width) or lengths.shape != (v,):
            raise ValueError(f"decompose_fn returned shapes {ids.shape} and {lengths.shape}; expected "
                             f"({v}, {width}) and ({v},)")
        pieces = np.full((vp, width), -1, np.int32)
        pieces[:v], pieces[v:, 0] = ids, 0  # padding rows: one harmless piece so attention is defined
        lengths_pad = np.zeros(vp, np.int32)  # padding rows stand for nothing
        lengths_pad[:v] = lengths
        special = np.zeros(vp, bool)
        special[[*tok.special_ids, *([tok.unk_id] if tok.unk_id is not None else []), *placeholder_ids(tok)]] = True
        return {"pieces": pieces, "lengths": lengths_pad, "mask": np.arange(vp) < v, "special": special}

    def _default_decompose(self, tok: SentencePieceTokenizer) -> tuple[np.ndarray, np.ndarray]:
        from lexi.zett.vocab import decompose

        d = decompose(tok.token_bytes(), self.base_tokenizer, self.pieces_per_token)
        return d.ids_VxL, d.lengths_V


def _check_shapes(seq_len: int, batch_size: int, vocab_size: int, pieces_per_token: int, window: int,
                  process_count: int) -> None:
    if seq_len < 1 or batch_size < 1 or pieces_per_token < 1 or window < 1:
        raise UserError(f"ZeTT batches need positive seq_len ({seq_len}), batch size ({batch_size}), "
                        f"pieces_per_token ({pieces_per_token}) and window ({window})")
    if vocab_size <= NUM_FIXED:
        raise UserError(f"the sampled vocabulary size ({vocab_size}) must exceed the {NUM_FIXED} specials and "
                        f"byte pieces; use at least {NUM_FIXED + 1}")
    if batch_size % process_count:
        raise UserError(f"the batch size ({batch_size}) must be divisible by the number of processes "
                        f"({process_count})")
