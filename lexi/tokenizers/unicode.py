"""Unicode code points as ids: 65,536 of them, lossless for every Python string.

The layout follows Bochkov (2025)'s 65k tokenizer (id = code point for the BMP, specials
at 0xE000, frequent n-grams in the surrogate and private-use ranges) and repairs what made
it lossy: anything without its own id goes through 256 byte-fallback ids.

Ids (`UnicodeTokenizer`, vocab_size 65,536):
  0x0000-0xD7FF, 0xF900-0xFFFF  the BMP character with that code point ("direct" characters)
  0xE000 pad, 0xE001 bos, 0xE002 eos, 0xE003 unk  specials; text never produces them
                                (unk is never produced either: nothing is unknown)
  0xE100 + b                    UTF-8 byte b (byte fallback)
  the other 8,188 ids of 0xD800-0xF8FF, ascending (0xD800-0xDFFF, 0xE004-0xE0FF,
  0xE200-0xF8FF)                the learned n-grams, most useful first; unused if fewer

Astral characters (emoji, plane 1+), real private-use characters and lone surrogates have
no id of their own: they are written as their UTF-8 bytes (lone surrogates with
"surrogatepass"), so decode(encode(s)) == s for every str. Byte sequences that are not
UTF-8 (sampled ones) decode with U+FFFD in place of each bad sequence, never raising.

N-grams: 2..max_n direct characters (default max_n 3, at most 8), learned from a corpus by
`learn_ngrams`: every window is counted (inside documents only) and ranked by the
characters it would save, count x (length - 1), ties broken by longer first, then by code
points; at most 8,188. Encoding takes the longest n-gram starting at the current position,
left to right (greedy longest match), with vectorised numpy: an open-addressing hash table
finds the longest match at every position, then a blocked walk picks the greedy path.

Config: `config.data.tokenizer.kind = "unicode"`, with `num_ngrams` (default 0: code points
only, nothing learned) and `max_n` (default 3). The n-grams are learned on the run's
training documents (the first MAX_TRAIN_CHARS characters) and cached under
cache_dir/unicode/ keyed by the corpus fingerprint, as SentencePiece models are; the list
is saved in tokenizer.json, so a run directory rebuilds the tokenizer without the corpus.
`lexi.tokenizers.load("unicode")` is the tokenizer without n-grams. Set them in a config
file or on the command line, e.g. `c.data.tokenizer.update(kind="unicode", num_ngrams=8000)`.

Measured on the King James Bible (`lexi.data.corpora.KJV`): n-grams learned on the train
split (4.07 M characters), chars/token on the train split and on the held-out validation
chapters (65 k characters); encode = `encode_np` of the whole train split as one string,
CPU seconds of this process (best of 3) on a 2-core AMD EPYC host that was busy with two
training runs (wall time was about twice the CPU time; ranges: two measurement runs):
  n-grams  max_n  chars/token train / val  learning    encode
  0        -      1.00 / 1.00              -           0.02-0.04 s
  1000     3      2.64 / 2.61              1.6-2.0 s   0.60-0.63 s  (about 6.6 M chars/s)
  8000     3      3.00 / 3.00              1.5-2.3 s   0.56-0.59 s  (about 7 M chars/s)
  8000     4      3.76 / 3.69              2.3-2.8 s   0.75-0.81 s  (about 5.2 M chars/s)
(The KJV has only 65 distinct characters, so 8000 slots hold nearly all of its frequent
trigrams; the paper's multilingual n-gram set gets about 1.74 chars/token on English.)
Peak memory of encoding the 4 MB string with 8000 n-grams: about 190 MB (numpy).
Re-measure with `python benchmarks/unicode_tokenizer.py [--ngrams N --max-n K]`; on the idle
machine it printed for 8000 3-grams: learning 1.81 s, 3.00 / 3.00 chars/token, encode
0.51 s (0.040 s without n-grams).
`encode_batch_np` (the token-stream builder's call) costs the same; decoding 0.1 s.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer, atomic_write, id_array

log = logging.getLogger("lexi")

VOCAB_SIZE = 1 << 16
RESERVED_LO, RESERVED_HI = 0xD800, 0xF900  # surrogates + private-use area: ids reassigned
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0xE000, 0xE001, 0xE002, 0xE003
SPECIAL_NAMES = {PAD_ID: "pad", BOS_ID: "bos", EOS_ID: "eos", UNK_ID: "unk"}
BYTE_BASE = 0xE100  # UTF-8 byte b -> id BYTE_BASE + b
NGRAM_IDS = np.asarray([i for i in range(RESERVED_LO, RESERVED_HI)
                        if i not in SPECIAL_NAMES and not BYTE_BASE <= i < BYTE_BASE + 256], dtype=np.int64)
MAX_NGRAMS = len(NGRAM_IDS)  # 8188
MAX_N_LIMIT = 8  # an n-gram packs into two 64-bit words of 16-bit code points
MAX_TRAIN_CHARS = 32_000_000  # learning reads at most this much text (the start of the corpus)
FORMAT = 1

_CHUNK_CHARS = 4_000_000  # learning counts windows in chunks of about this many characters
_SMALL = 8192  # below this many characters the greedy walk is a plain Python loop
_BLOCK = 256  # characters per block of the vectorised greedy walk
_WINDOWS = 1 << 20  # n-gram windows looked up per numpy pass
_M1, _M2, _M3, _M4 = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F),
                      np.uint64(0x165667B19E3779F9), np.uint64(0xD6E8FEB86659FD93))


def _surrogatepass_or_replace(err: UnicodeError):
    """Decoding error handler: "surrogatepass" for encoded surrogates, else "replace"."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    b = err.object[err.start: err.start + 3]
    if len(b) == 3 and b[0] == 0xED and 0xA0 <= b[1] <= 0xBF and 0x80 <= b[2] <= 0xBF:
        return chr(0xD000 | ((b[1] & 0x3F) << 6) | (b[2] & 0x3F)), err.start + 3
    return "\ufffd", err.end


_ERRORS = "lexi.surrogatepass_replace"
codecs.register_error(_ERRORS, _surrogatepass_or_replace)


def is_direct(cp: int) -> bool:
    """Whether code point `cp` has its own id (= cp)."""
    return cp < RESERVED_LO or RESERVED_HI <= cp < VOCAB_SIZE


def _codes(text: str) -> np.ndarray:
    """uint32 code points of `text`, lone surrogates included."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _direct_mask(codes: np.ndarray) -> np.ndarray:
    return (codes < RESERVED_LO) | ((codes >= RESERVED_HI) & (codes < VOCAB_SIZE))


def _pack(codes64: np.ndarray, starts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) words of the k-grams at `starts`: code point j in bits 16*(j%4) of word j//4."""
    lo = np.zeros(starts.size, np.uint64)
    hi = np.zeros(starts.size, np.uint64)
    for j in range(k):
        word = lo if j < 4 else hi
        word |= codes64[starts + j] << np.uint64(16 * (j % 4))
    return lo, hi


def _pack_str(s: str) -> tuple[int, int]:
    lo = hi = 0
    for j, c in enumerate(s):
        if j < 4:
            lo |= ord(c) << (16 * j)
        else:
            hi |= ord(c) << (16 * (j - 4))
    return lo, hi


def _unpack(k: int, lo: int, hi: int) -> str:
    return "".join(chr(((lo if j < 4 else hi) >> (16 * (j % 4))) & 0xFFFF) for j in range(k))


def _mix(k, lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    """Hash slot in [0, 2**bits) of the n-grams (k, lo, hi); k an array or one length."""
    with np.errstate(over="ignore"):
        h = lo * _M1 + hi * _M2 + np.asarray(k).astype(np.uint64) * _M3
        h ^= h >> np.uint64(31)
        h *= _M4
        h ^= h >> np.uint64(29)
    return (h >> np.uint64(64 - bits)).astype(np.int64)


class _NgramTable:
    """Open-addressing hash table (linear probing, load <= 1/8) of n-gram -> id, queried in bulk."""

    def __init__(self, ngrams: Sequence[str], ids: np.ndarray):
        n = len(ngrams)
        self.bits = max(6, math.ceil(math.log2(8 * max(n, 1))))
        size = 1 << self.bits
        packed = [_pack_str(g) for g in ngrams]
        k = np.asarray([len(g) for g in ngrams], np.uint8)
        lo = np.asarray([p[0] for p in packed], np.uint64)
        hi = np.asarray([p[1] for p in packed], np.uint64)
        slots = _mix(k, lo, hi, self.bits).tolist()
        self.occ = np.zeros(size, bool)
        self.k = np.zeros(size, np.uint8)
        self.lo = np.zeros(size, np.uint64)
        self.hi = np.zeros(size, np.uint64)
        self.id = np.zeros(size, np.int64)
        self.max_probe = 0
        for i, s in enumerate(slots):
            probe = 0
            while self.occ[(s + probe) & (size - 1)]:
                probe += 1
            t = (s + probe) & (size - 1)
            self.occ[t], self.k[t], self.lo[t], self.hi[t], self.id[t] = True, k[i], lo[i], hi[i], ids[i]
            self.max_probe = max(self.max_probe, probe)

    def lookup(self, k: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Ids of the k-grams (lo, hi); -1 where a window is no n-gram."""
        mask = (1 << self.bits) - 1
        slot = _mix(k, lo, hi, self.bits)
        occ = self.occ[slot]  # first probe on everything, later ones on the few that collided
        hit = occ & (self.k[slot] == k) & (self.lo[slot] == lo) & (self.hi[slot] == hi)
        out = np.where(hit, self.id[slot], -1)
        pending = np.flatnonzero(occ & ~hit)
        for probe in range(1, self.max_probe + 1):
            if not pending.size:
                break
            s = (slot[pending] + probe) & mask
            occ = self.occ[s]
            hit = occ & (self.k[s] == k) & (self.lo[s] == lo[pending]) & (self.hi[s] == hi[pending])
            out[pending[hit]] = self.id[s[hit]]
            pending = pending[occ & ~hit]
        return out


def _greedy_starts(lengths: np.ndarray, max_len: int, small: Optional[int] = None) -> np.ndarray:
    """Start positions of the greedy path 0, L[0], L[0] + L[L[0]], ... where `lengths` (>= 1,
    i + L[i] <= n) is the longest match at each position.

    Long inputs are cut into blocks of _BLOCK characters; the path enters a block at one of
    its first max_len positions, so all blocks are walked at once from each of those
    (numpy, about _BLOCK / mean length steps), then stitched block by block."""
    n = lengths.size
    if n == 0:
        return np.zeros(0, np.int64)
    if max_len <= 1 or n <= (_SMALL if small is None else small):
        steps = lengths.tolist()
        out, i = [], 0
        while i < n:
            out.append(i)
            i += steps[i]
        return np.asarray(out, np.int64)
    m, block = max_len, max(_BLOCK, max_len)
    nb = -(-n // block)
    step = np.ones(nb * block + m, np.int64)
    step[:n] = lengths
    base = np.repeat(np.arange(nb, dtype=np.int64) * block, m)
    pos = base + np.tile(np.arange(m, dtype=np.int64), nb)
    end = base + block
    on = np.zeros((nb * m, block), bool)
    exit_pos = np.empty(nb * m, np.int64)
    rows = np.arange(nb * m)
    while rows.size:
        on[rows, pos - base] = True
        pos = pos + step[pos]
        done = pos >= end
        if done.any():
            exit_pos[rows[done]] = pos[done]
            keep = ~done
            rows, pos, base, end = rows[keep], pos[keep], base[keep], end[keep]
    exits = (exit_pos.reshape(nb, m) - (np.arange(1, nb + 1, dtype=np.int64) * block)[:, None]).tolist()
    choice = np.empty(nb, np.int64)
    e = 0
    for b in range(nb):
        choice[b] = e
        e = exits[b][e]
    starts = np.flatnonzero(on.reshape(nb, m, block)[np.arange(nb), choice].ravel())
    return starts[starts < n]


class UnicodeTokenizer(Tokenizer):
    """Code points (BMP) + byte fallback + optional learned n-grams; see the module docstring."""

    name = "unicode"
    vocab_size = VOCAB_SIZE
    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID
    special_ids = (PAD_ID, BOS_ID, EOS_ID, UNK_ID)
    replaced_count = 0  # lossless: nothing is ever replaced

    def __init__(self, ngrams: Sequence[str] = ()):
        ngrams = list(ngrams)
        if len(ngrams) > MAX_NGRAMS:
            raise UserError(f"a unicode tokenizer holds at most {MAX_NGRAMS} n-grams, got {len(ngrams)}")
        seen = set()
        for g in ngrams:
            if not isinstance(g, str) or not 2 <= len(g) <= MAX_N_LIMIT or not all(is_direct(ord(c)) for c in g):
                raise UserError(f"unicode tokenizer n-gram {g!r} is invalid: n-grams are 2-{MAX_N_LIMIT} BMP "
                                "characters outside the surrogate and private-use ranges")
            if g in seen:
                raise UserError(f"unicode tokenizer n-gram {g!r} is listed twice")
            seen.add(g)
        self.ngrams: tuple[str, ...] = tuple(ngrams)
        self.max_len = max((len(g) for g in ngrams), default=1)
        self.fallback_count = 0  # characters written as UTF-8 bytes (astral, private-use, lone surrogates)
        self._table = _NgramTable(self.ngrams, NGRAM_IDS[: len(ngrams)]) if ngrams else None
        self._lengths = sorted({len(g) for g in ngrams})
        self._strings: Optional[list[str]] = None

    # ------------------------------------------------------------------ encode

    def _encode_core(self, codes: np.ndarray, breaks: Optional[np.ndarray] = None):
        """(ids int32, char start of each token, output start of each token). No n-gram crosses
        a position in `breaks` (document starts), so the greedy path stops at each."""
        n = codes.size
        direct = _direct_mask(codes)
        if self._table is None or n < 2:
            ids, tok_start = codes.astype(np.int32), np.arange(n, dtype=np.int64)
            tok_direct = direct
        else:
            match = codes.astype(np.int32)  # non-direct characters: replaced by their bytes below
            lengths = np.ones(n, np.int8)
            codes64 = np.zeros(n + MAX_N_LIMIT, np.uint64)
            codes64[:n] = codes & 0xFFFF
            nd = np.zeros(n + 1, np.int32)
            np.cumsum(~direct, out=nd[1:])
            if breaks is not None:
                breaks = breaks[(breaks > 0) & (breaks < n)]
            brk = np.zeros(n + 1, np.int32)
            if breaks is not None and breaks.size:
                flags = np.zeros(n, np.int32)
                flags[breaks] = 1
                np.cumsum(flags, out=brk[1:])
            for k in self._lengths:  # ascending: longer matches overwrite shorter ones
                for lo in range(0, n - k + 1, _WINDOWS):  # in slices, to bound the temporaries
                    i = np.arange(lo, min(lo + _WINDOWS, n - k + 1))
                    ok = nd[i + k] == nd[i]  # only direct characters
                    if breaks is not None and breaks.size:
                        ok &= brk[i + k] == brk[i + 1]  # inside one document
                    i = i[ok]
                    found = self._table.lookup(k, *_pack(codes64, i, k))
                    hit = found >= 0
                    match[i[hit]] = found[hit]
                    lengths[i[hit]] = k
            tok_start = _greedy_starts(lengths, self.max_len)
            ids = match[tok_start]
            tok_direct = direct[tok_start] | (lengths[tok_start] > 1)
        if tok_direct.all():
            return ids.astype(np.int32), tok_start, np.arange(ids.size, dtype=np.int64)
        ids = ids.astype(np.int64)
        fb = ~tok_direct
        c = codes[tok_start[fb]].astype(np.int64)
        self.fallback_count += int(c.size)
        width = np.where(c >= 0x10000, 4, 3)  # surrogates and private use: 3 bytes; astral: 4
        nbytes = np.ones(ids.size, np.int64)
        nbytes[fb] = width
        out_start = np.cumsum(nbytes) - nbytes
        out = np.repeat(ids, nbytes)
        s = out_start[fb]
        for w, lead in ((3, 0xE0), (4, 0xF0)):
            sel = width == w
            ss, cc = s[sel], c[sel]
            out[ss] = lead | (cc >> (6 * (w - 1)))
            for j in range(1, w):
                out[ss + j] = 0x80 | ((cc >> (6 * (w - 1 - j))) & 0x3F)
            for j in range(w):
                out[ss + j] += BYTE_BASE
        return out.astype(np.int32), tok_start, out_start

    def encode_np(self, text: str) -> np.ndarray:
        return self._encode_core(_codes(text))[0]

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def encode_batch_np(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One vectorised pass over the documents joined; n-grams never cross a document."""
        texts = list(texts)
        if len(texts) <= 1:
            return [self.encode_np(t) for t in texts]
        doc_start = np.cumsum([0] + [len(t) for t in texts])
        ids, tok_start, out_start = self._encode_core(_codes("".join(texts)), doc_start[1:-1])
        first_tok = np.searchsorted(tok_start, doc_start)
        cut = np.append(out_start, ids.size)[first_tok]
        return [ids[a:b] for a, b in zip(cut[:-1], cut[1:])]

    # ------------------------------------------------------------------ decode

    def _id_strings(self) -> list[str]:
        if self._strings is None:
            s = [chr(i) for i in range(VOCAB_SIZE)]
            for i in range(RESERVED_LO, RESERVED_HI):
                s[i] = "\ufffd"  # unk and unused n-gram slots
            for i in SPECIAL_NAMES:
                s[i] = ""
            s[UNK_ID] = "\ufffd"
            for i, g in zip(NGRAM_IDS.tolist(), self.ngrams):
                s[i] = g
            self._strings = s
        return self._strings

    def _decode_chars(self, seg: np.ndarray) -> str:
        if not ((seg >= RESERVED_LO) & (seg < RESERVED_HI)).any():
            return seg.astype("<u4").tobytes().decode("utf-32-le")
        return "".join(map(self._id_strings().__getitem__, seg.tolist()))

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        a = a[(a >= 0) & (a < VOCAB_SIZE) & (a != PAD_ID) & (a != BOS_ID) & (a != EOS_ID)]
        if not a.size:
            return ""
        is_byte = (a >= BYTE_BASE) & (a < BYTE_BASE + 256)
        if not is_byte.any():
            return self._decode_chars(a)
        bounds = [0, *(np.flatnonzero(np.diff(is_byte.astype(np.int8))) + 1).tolist(), a.size]
        parts = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            seg = a[lo:hi]
            if is_byte[lo]:
                parts.append((seg - BYTE_BASE).astype(np.uint8).tobytes().decode("utf-8", _ERRORS))
            else:
                parts.append(self._decode_chars(seg))
        return "".join(parts)

    # ------------------------------------------------------------------ describe

    def token_info(self, i: int) -> tuple[str, Any]:
        """What id `i` stands for: ("text", str), ("byte", int), ("special", name) or ("unused", None)."""
        i = int(i)
        if not 0 <= i < VOCAB_SIZE:
            raise IndexError(f"id {i} is outside the vocabulary [0, {VOCAB_SIZE})")
        if i in SPECIAL_NAMES:
            return "special", SPECIAL_NAMES[i]
        if BYTE_BASE <= i < BYTE_BASE + 256:
            return "byte", i - BYTE_BASE
        if RESERVED_LO <= i < RESERVED_HI:
            slot = int(np.searchsorted(NGRAM_IDS, i))
            return ("text", self.ngrams[slot]) if slot < len(self.ngrams) else ("unused", None)
        return "text", chr(i)

    def record(self) -> dict[str, Any]:
        return {"kind": "unicode", "format": FORMAT, "ngrams": list(self.ngrams)}

    def __repr__(self) -> str:
        return f"UnicodeTokenizer(vocab_size={VOCAB_SIZE}, ngrams={len(self.ngrams)})"


def from_description(desc: dict, base: Path) -> UnicodeTokenizer:
    """Loader for `lexi.tokenizers.register`: a tokenizer.json's content or {"kind": "unicode"}."""
    fmt = desc.get("format", FORMAT)
    if fmt != FORMAT:
        raise UserError(f"unicode tokenizer format {fmt!r} is not supported by this lexi (format {FORMAT})")
    ngrams = desc.get("ngrams") or []
    if not isinstance(ngrams, list):
        raise UserError("a unicode tokenizer file's 'ngrams' must be a list of strings")
    return UnicodeTokenizer(ngrams)


# ---------------------------------------------------------------------- learning


def _chunks(texts: Iterable[str], max_chars: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(code points, document starts inside the chunk) for groups of about _CHUNK_CHARS."""
    buf: list[str] = []
    size = total = 0
    for doc in texts:
        buf.append(doc)
        size += len(doc)
        total += len(doc)
        if size >= _CHUNK_CHARS or total >= max_chars:
            yield _codes("".join(buf)), np.cumsum([0] + [len(d) for d in buf[:-1]])
            buf, size = [], 0
        if total >= max_chars:
            log.info("unicode tokenizer: learning n-grams from the first %d characters of the corpus", total)
            return
    if buf:
        yield _codes("".join(buf)), np.cumsum([0] + [len(d) for d in buf[:-1]])


def learn_ngrams(texts: Iterable[str], num_ngrams: int, max_n: int = 3, *,
                 max_chars: int = MAX_TRAIN_CHARS) -> list[str]:
    """The `num_ngrams` most useful 2..max_n-grams of direct characters in `texts` (documents),
    by count x (length - 1), ties: longer first, then smaller code points. Windows that
    cross a document boundary are not counted; n-grams seen once are not kept."""
    _check_settings(num_ngrams, max_n)
    counted: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in range(2, max_n + 1)}
    for codes, starts in _chunks(texts, max_chars):
        n = codes.size
        nd = np.concatenate([[0], np.cumsum(~_direct_mask(codes))])
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
            lo, hi = _pack(codes64, i, k)
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
    return [_unpack(int(k[o]), int(lo[o]), int(hi[o])) for o in order]


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
