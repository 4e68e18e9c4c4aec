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

Cost per step on this machine, measured with time.perf_counter while two training runs kept
both cores busy (medians over steps 40-71; KJV + Python-source documents; batch 16 x seq 128,
so ~8.3k characters a step; window 32, ~245k live candidates; decomposition excluded):
  vocab 4096:  add to the window 16 ms, sample 19 ms, build the model 10 ms, encode and
               pack 2 ms: 46 ms in all (KJV alone, 61k candidates: 27 ms).
  vocab 32768: add 12 ms, sample 52 ms (materialising 32k strings), build 103 ms (~65 ms of
               it SentencePiece's own model load), encode and pack 18 ms: 190 ms in all.
A chunk of ~21k characters (batch 40) adds in 29 ms against ~470k candidates. A cold start
(a resumed run, or any step out of order) first replays the window: about 0.4-0.5 s.
"""
from __future__ import annotations

import collections
import threading
from typing import Callable, Optional, Sequence

import numpy as np

from lexi.data.packing import pack
from lexi.errors import UserError
from lexi.tokenizers.sentencepiece import SentencePieceTokenizer, _valid_unicode
from lexi.zett.byte_like import ByteLike
from lexi.zett.unigram import (BYTE_PIECES, NUM_FIXED, SPACE, SPECIALS, piece_bytes,  # noqa: F401 (re-exported)
                               placeholder_ids, unigram_tokenizer)

MAX_CHARS = 15  # longest candidate, in characters (the leading space included)
NOISE_MU = -0.5  # the noise std is lognormal(NOISE_MU, NOISE_SIGMA), drawn once per vocabulary
NOISE_SIGMA = 1.0
CHAR_SHARE = 0.25  # single characters may take at most this share of the sampled pieces
CHARS_PER_TOKEN = 4.0  # a step reads this many characters per token it needs, then more if short
_PRIME = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial substring hash


# ---------------------------------------------------- candidate counting


def _clean(text: str) -> str:
    """The text as SentencePiece sees it: lone surrogates -> U+FFFD, U+2581 -> space (same length)."""
    return text if text.isascii() else _valid_unicode(text).replace(SPACE, " ")


def _codes(clean_text: str) -> np.ndarray:
    """uint32 code points of a `_clean` text."""
    if clean_text.isascii():
        return np.frombuffer(clean_text.encode("ascii"), dtype=np.uint8).astype(np.uint32)
    return np.frombuffer(clean_text.encode("utf-32-le"), dtype=np.uint32)


_WHITESPACE = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)  # Python's \s


def _after(flags: np.ndarray) -> np.ndarray:
    """flags shifted one position right: "the previous character is ..."."""
    return np.concatenate([[False], flags[:-1]])


def _pretoken_starts(codes: np.ndarray, text_starts: Optional[np.ndarray] = None) -> np.ndarray:
    """bool[N]: where a pre-token begins (the module docstring's rule), vectorised.
    `text_starts` marks where separate texts were joined: no pre-token crosses them."""
    space = codes == 32
    other = np.isin(codes, _WHITESPACE) & ~space
    word = ~(space | other)
    word_next = np.concatenate([word[1:], [False]])
    if text_starts is not None:
        word_next[text_starts[text_starts > 0] - 1] = False  # a text's last space stays in its text
    start = (other & ~_after(other)) | (space & (~_after(space) | word_next)) | (word & _after(other))
    start[:1] = True
    if text_starts is not None:
        start[text_starts] = True
    return start


def _substrings(codes: np.ndarray, starts: np.ndarray, max_chars: int):
    """(hash, position, length) of every candidate occurrence: substrings of 1..max_chars
    characters inside one pre-token. The hash is polynomial in the code points, so equal
    strings get equal keys wherever they occur; 64 bits make collisions negligible."""
    n = len(codes)
    if not n:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    begin = np.flatnonzero(starts)
    end = np.append(begin[1:], n)
    span = np.repeat(end, end - begin) - np.arange(n)  # characters left in the pre-token
    c = codes.astype(np.uint64) + np.uint64(1)
    keys, poss, lens = [], [], []
    pos = np.arange(n)
    h = np.zeros(n, dtype=np.uint64)
    for length in range(1, max_chars + 1):
        keep = span[pos] >= length
        pos, h = pos[keep], h[keep]
        if not len(pos):
            break
        h = h * _PRIME + c[pos + length - 1]
        keys.append(h)
        poss.append(pos)
        lens.append(np.full(len(pos), length, dtype=np.int64))
    return np.concatenate(keys), np.concatenate(poss), np.concatenate(lens)


def substring_key(s: str) -> int:
    """The candidate key of one string, as `_substrings` computes it."""
    h = 0
    for c in _codes(_clean(s)).tolist():
        h = (h * int(_PRIME) + c + 1) & 0xFFFF_FFFF_FFFF_FFFF
    return h


_RESERVED = np.array(sorted({substring_key(p) for p, _ in SPECIALS} | {substring_key(p) for p in BYTE_PIECES}),
                     dtype=np.uint64)  # strings the fixed pieces spell are never candidates


def _count_chunk(keys: np.ndarray, pos: np.ndarray, lens: np.ndarray):
    """(sorted distinct keys, their counts, refs) of one chunk's occurrences, reserved
    strings dropped. A ref packs (position << 8 | length) of one occurrence; which one
    is fixed by the input (argsort is deterministic), so the chunk alone decides it."""
    order = np.argsort(keys)
    sk = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]])[:len(sk)])
    uk, cnt, first = sk[starts], np.diff(np.append(starts, len(sk))), order[starts]
    at = np.minimum(np.searchsorted(_RESERVED, uk), len(_RESERVED) - 1)
    ok = _RESERVED[at] != uk
    return uk[ok], cnt[ok].astype(np.int64), (pos[first[ok]] << 8) | lens[first[ok]]


class SubstringCounts:
    """Candidate counts over the last `window` chunks (one chunk = one step's text).

    Kept as arrays sorted by key, so what `candidates()` returns depends only on the
    window's texts, never on the order they came in: a cold start and a long run agree
    exactly. Evicted candidates linger with count 0 until a third of the table is dead
    (then it is compacted), so most steps skip that copy. Strings are materialised on
    demand from the newest chunk that holds each candidate.
    """

    def __init__(self, window: int = 32, max_chars: int = MAX_CHARS):
        if window < 1 or not 1 <= max_chars <= 255:
            raise UserError(f"SubstringCounts needs window >= 1 and 1 <= max_chars <= 255, got {window} and "
                            f"{max_chars}")
        self.window, self.max_chars = window, max_chars
        self._keys = np.zeros(0, np.uint64)  # sorted, distinct
        self._counts = np.zeros(0, np.int64)  # 0: evicted, not yet compacted away
        self._refs = np.zeros(0, np.int64)  # newest chunk holding it << 32 | position << 8 | length
        self._chunks: collections.deque = collections.deque()  # (serial, keys, counts) in the window
        self._texts: dict[int, str] = {}
        self._serial = 0

    def __len__(self) -> int:
        return int(np.count_nonzero(self._counts))

    def add(self, texts: str | Sequence[str]) -> None:
        """Count one chunk (texts are separate: no candidate spans two); evict the oldest
        chunk beyond the window, subtracting exactly what it added."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        joined = _clean("".join(texts))
        codes = _codes(joined)
        if len(codes) >= 1 << 24:
            raise UserError(f"one chunk of text holds {len(codes)} characters; SubstringCounts takes under 2**24")
        bounds = np.cumsum([0] + [len(t) for t in texts[:-1]]).astype(np.int64)  # one code per character
        bounds = bounds[bounds < len(codes)]
        uk, cnt, refs = _count_chunk(*_substrings(codes, _pretoken_starts(codes, bounds), self.max_chars))
        serial, self._serial = self._serial, self._serial + 1
        self._texts[serial] = joined
        self._merge(uk, cnt, refs | (serial << 32))
        self._chunks.append((serial, uk, cnt))
        while len(self._chunks) > self.window:
            self._evict()

    def _merge(self, uk: np.ndarray, cnt: np.ndarray, refs: np.ndarray) -> None:
        """Add a chunk's counts; it becomes the owner of all its candidates."""
        n = len(self._keys)
        loc = np.searchsorted(self._keys, uk)
        found = loc < n
        found[found] = self._keys[loc[found]] == uk[found]
        self._counts[loc[found]] += cnt[found]
        self._refs[loc[found]] = refs[found]
        new = ~found
        dest = loc[new] + np.arange(int(new.sum()))  # where the new keys land in the merged arrays
        old = np.ones(n + len(dest), bool)
        old[dest] = False
        self._keys, self._counts, self._refs = (_merged(a, old, dest, v[new]) for a, v in
                                                ((self._keys, uk), (self._counts, cnt), (self._refs, refs)))

    def _evict(self) -> None:
        serial, uk, cnt = self._chunks.popleft()
        self._counts[np.searchsorted(self._keys, uk)] -= cnt
        del self._texts[serial]  # only dead candidates point into it: live ones have a newer owner
        live = self._counts > 0
        if 3 * np.count_nonzero(~live) > len(live):
            self._keys, self._counts, self._refs = self._keys[live], self._counts[live], self._refs[live]

    def candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, counts, lengths) of the live candidates, in key order; `strings(rows)`."""
        rows = np.flatnonzero(self._counts)
        return rows, self._counts[rows], self._refs[rows] & 0xFF

    def strings(self, rows: np.ndarray) -> list[str]:
        """The candidates at `rows` (from `candidates()`), as text."""
        refs = self._refs[rows]
        texts = self._texts
        return [texts[o][p:p + n] for o, p, n in zip((refs >> 32).tolist(), ((refs >> 8) & 0xFFFFFF).tolist(),
                                                      (refs & 0xFF).tolist())]

    def as_dict(self) -> dict[str, int]:
        """{candidate: count}; slow, for tests and inspection."""
        rows, counts, _ = self.candidates()
        return dict(zip(self.strings(rows), counts.tolist()))


def _merged(old_values: np.ndarray, old_mask: np.ndarray, dest: np.ndarray, new_values: np.ndarray) -> np.ndarray:
    out = np.empty(len(old_mask), old_values.dtype)
    out[old_mask] = old_values
    out[dest] = new_values
    return out


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
        from lexi.zett.vocab import byte_vocab, decompose

        d = decompose(byte_vocab(tok), self.base_tokenizer, self.pieces_per_token)
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
