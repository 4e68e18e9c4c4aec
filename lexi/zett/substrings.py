"""ZeTT's candidate pieces: substrings of 1..MAX_CHARS characters inside pre-tokens, counted
over a rolling window of recent training text (sampler.py draws each step's vocabulary from
them).

A pre-token is, as SentencePiece's whitespace handling suggests, one optional leading space
plus a run of non-whitespace characters (" the" and "the" are different candidates); runs of
spaces not directly before a word, and runs of other whitespace (newlines, tabs, ... as
Python's `\\s`), are pre-tokens of their own. Substrings are keyed by a polynomial hash;
counts live in sorted numpy arrays merged chunk by chunk, and a chunk leaves the window
`window` additions later.
"""
from __future__ import annotations

import collections
from typing import Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.sentencepiece import valid_unicode
from lexi.zett.unigram import BYTE_PIECES, SPACE, SPECIALS

MAX_CHARS = 15  # longest candidate, in characters (the leading space included)
_PRIME = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial substring hash


def _clean(text: str) -> str:
    """The text as SentencePiece sees it: lone surrogates -> U+FFFD, U+2581 -> space (same length)."""
    return text if text.isascii() else valid_unicode(text).replace(SPACE, " ")


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
