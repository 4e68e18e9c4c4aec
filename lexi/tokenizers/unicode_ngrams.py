"""Learning a unicode tokenizer's n-grams from a corpus, and caching them (unicode.py has the
tokenizer and its id layout).

Every window of 2..max_n direct characters is counted inside documents and ranked by the
characters it would save, count x (length - 1), ties broken by longer first, then by code
points; at most MAX_NGRAMS. The list is cached under cache_dir/unicode/ keyed by the corpus
fingerprint (or the texts' hash), so a corpus is read once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from lexi.errors import UserError
from lexi.files import atomic_write
from lexi.tokenizers.ngram_match import pack, unpack
from lexi.tokenizers.unicode import (FORMAT, MAX_N_LIMIT, MAX_NGRAMS, MAX_TRAIN_CHARS, UnicodeTokenizer, code_points,
                                     direct_mask)

_CHUNK_CHARS = 4_000_000  # learning counts windows in chunks of about this many characters
log = logging.getLogger("lexi")


def _chunks(texts: Iterable[str], max_chars: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(code points, document starts inside the chunk) for groups of about _CHUNK_CHARS."""
    buf: list[str] = []
    size = total = 0
    for doc in texts:
        buf.append(doc)
        size += len(doc)
        total += len(doc)
        if size >= _CHUNK_CHARS or total >= max_chars:
            yield code_points("".join(buf)), np.cumsum([0] + [len(d) for d in buf[:-1]])
            buf, size = [], 0
        if total >= max_chars:
            log.info("unicode tokenizer: learning n-grams from the first %d characters of the corpus", total)
            return
    if buf:
        yield code_points("".join(buf)), np.cumsum([0] + [len(d) for d in buf[:-1]])


def learn_ngrams(texts: Iterable[str], num_ngrams: int, max_n: int = 3, *,
                 max_chars: int = MAX_TRAIN_CHARS) -> list[str]:
    """The `num_ngrams` most useful 2..max_n-grams of direct characters in `texts` (documents),
    by count x (length - 1), ties: longer first, then smaller code points. Windows that
    cross a document boundary are not counted; n-grams seen once are not kept."""
    _check_settings(num_ngrams, max_n)
    counted: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in range(2, max_n + 1)}
    for codes, starts in _chunks(texts, max_chars):
        n = codes.size
        nd = np.concatenate([[0], np.cumsum(~direct_mask(codes))])
        flags = np.zeros(n + 1, np.int64)
        flags[starts[1:]] = 1
        brk = np.concatenate([[0], np.cumsum(flags[:n])])
        codes64 = np.zeros(n + MAX_N_LIMIT, np.uint64)
        codes64[:n] = codes & 0xFFFF
        for k in range(2, max_n + 1):
            if k > n:
                break
            i = np.arange(n - k + 1)
            i = i[(nd[i + k] == nd[i]) & (brk[i + k] == brk[i + 1])]
            lo, hi = pack(codes64, i, k)
            counted[k].append(_count(lo, hi, k))
    cand_k, cand_lo, cand_hi, cand_n = [], [], [], []
    for k, parts in counted.items():
        if not parts:
            continue
        lo = np.concatenate([p[0] for p in parts])
        hi = np.concatenate([p[1] for p in parts])
        weights = np.concatenate([p[2] for p in parts])
        lo, hi, cnt = _count(lo, hi, k, weights)
        keep = cnt >= 2
        cand_k.append(np.full(int(keep.sum()), k, np.int64))
        cand_lo.append(lo[keep])
        cand_hi.append(hi[keep])
        cand_n.append(cnt[keep])
    if not cand_k or num_ngrams == 0:
        return []
    k, lo, hi, cnt = (np.concatenate(x) for x in (cand_k, cand_lo, cand_hi, cand_n))
    score = cnt * (k - 1)
    if score.size > num_ngrams:  # keep everything tied with the num_ngrams-th best, then sort
        threshold = np.partition(score, score.size - num_ngrams)[score.size - num_ngrams]
        sel = score >= threshold
        k, lo, hi, score = k[sel], lo[sel], hi[sel], score[sel]
    # code-point order inside a length: big-endian words
    be0 = np.zeros(k.size, np.uint64)
    be1 = np.zeros(k.size, np.uint64)
    for j in range(MAX_N_LIMIT):
        word = lo if j < 4 else hi
        c = (word >> np.uint64(16 * (j % 4))) & np.uint64(0xFFFF)
        if j < 4:
            be0 |= c << np.uint64(16 * (3 - j))
        else:
            be1 |= c << np.uint64(16 * (7 - j))
    order = np.lexsort((be1, be0, -k, -score))[:num_ngrams]
    return [unpack(int(k[o]), int(lo[o]), int(hi[o])) for o in order]


def _check_settings(num_ngrams: int, max_n: int, prefix: str = "unicode tokenizer ") -> None:
    if not 0 <= num_ngrams <= MAX_NGRAMS:
        raise UserError(f"{prefix}num_ngrams must be in [0, {MAX_NGRAMS}], got {num_ngrams}")
    if not 2 <= max_n <= MAX_N_LIMIT:
        raise UserError(f"{prefix}max_n must be in [2, {MAX_N_LIMIT}], got {max_n}")


def _count(lo: np.ndarray, hi: np.ndarray, k: int, weights: Optional[np.ndarray] = None):
    """Distinct (lo, hi) pairs with their (weighted) counts."""
    if k <= 4:
        u, inv = np.unique(lo, return_inverse=True)
        uhi = np.zeros(u.size, np.uint64)
    else:
        pairs = np.ascontiguousarray(np.stack([lo, hi], axis=1)).view("V16").ravel()
        up, inv = np.unique(pairs, return_inverse=True)
        both = up.view(np.uint64).reshape(-1, 2)
        u, uhi = both[:, 0].copy(), both[:, 1].copy()
    cnt = np.bincount(inv.ravel(), weights=weights, minlength=u.size)
    return u, uhi, cnt.astype(np.int64)


def train_unicode(texts: Iterable[str], num_ngrams: int, cache_dir: str | os.PathLike, *, max_n: int = 3,
                  max_chars: int = MAX_TRAIN_CHARS, key: str = "") -> UnicodeTokenizer:
    """A unicode tokenizer with n-grams learned from `texts`, or the one cached for the same
    inputs (under cache_dir/unicode/). `key`, a corpus fingerprint, finds the cached list
    without reading the texts, as for SentencePiece."""
    _check_settings(num_ngrams, max_n)
    if num_ngrams == 0:
        return UnicodeTokenizer()
    options = {"num_ngrams": int(num_ngrams), "max_n": int(max_n), "max_chars": int(max_chars),
               "chunk": _CHUNK_CHARS, "version": FORMAT}
    cache = Path(cache_dir) / "unicode"

    def path_for(ident: str) -> Path:
        h = hashlib.sha256(json.dumps({"texts": ident, **options}, sort_keys=True).encode()).hexdigest()[:20]
        return cache / f"ngrams_{num_ngrams}_{max_n}_{h}.json"

    def read(path: Path) -> Optional[UnicodeTokenizer]:
        try:
            return UnicodeTokenizer(json.loads(path.read_text())["ngrams"])
        except (OSError, ValueError, KeyError, TypeError, UserError) as e:
            log.warning("unicode tokenizer cache %s is unreadable (%s); learning again", path, e)
            return None

    if key and path_for(key).is_file() and (tok := read(path_for(key))) is not None:
        return tok
    hasher, docs, total = hashlib.sha256(), [], 0
    for doc in texts:  # what learning reads, hashed: the cache key when no corpus key is given
        hasher.update(hashlib.sha256(doc.encode("utf-8", "surrogatepass")).digest())
        docs.append(doc)
        total += len(doc)
        if total >= max_chars:
            break
    final = path_for(key or hasher.hexdigest())
    if final.is_file() and (tok := read(final)) is not None:
        return tok
    ngrams = learn_ngrams(docs, num_ngrams, max_n, max_chars=max_chars)
    if not ngrams:
        raise UserError("cannot learn unicode n-grams: the training documents hold no repeated character "
                        "pairs; set config.data.tokenizer.num_ngrams = 0")
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(final, (json.dumps({"ngrams": ngrams, **options}) + "\n").encode())
    log.info("unicode tokenizer: learned %d n-grams (max_n %d), cached at %s", len(ngrams), max_n, final)
    return UnicodeTokenizer(ngrams)


def from_config(cfg: dict, texts_fn, cache_dir: str | os.PathLike, *, key: str = "") -> UnicodeTokenizer:
    """`config.data.tokenizer` with kind "unicode": num_ngrams (default 0 = code points only),
    max_n (default 3). texts_fn() is only called when n-grams must be learned."""
    try:
        num, max_n = int(cfg.get("num_ngrams", 0) or 0), int(cfg.get("max_n", 3) or 3)
    except (TypeError, ValueError):
        raise UserError("config.data.tokenizer.num_ngrams and max_n must be integers") from None
    _check_settings(num, max_n, "config.data.tokenizer.")
    if num == 0:
        return UnicodeTokenizer()
    return train_unicode(_lazy(texts_fn), num, cache_dir, max_n=max_n, key=key)


def _lazy(texts_fn) -> Iterator[str]:
    """texts_fn()'s documents, calling it only when the first one is needed (not on a cache hit)."""
    yield from texts_fn()
