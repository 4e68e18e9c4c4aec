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
`unicode_ngrams.learn_ngrams`: every window is counted (inside documents only) and ranked by the
characters it would save, count x (length - 1), ties broken by longer first, then by code
points; at most 8,188. Encoding takes the longest n-gram starting at the current position,
left to right (greedy longest match), with vectorised numpy: an open-addressing hash table
finds the longest match at every position, then a blocked walk picks the greedy path.

Config: `config.data.tokenizer.kind = "unicode"`, with `num_ngrams` (default 0: code points
only, nothing learned) and `max_n` (default 3). The n-grams are learned on the run's
training documents (the first MAX_TRAIN_CHARS characters) and cached under
cache_dir/unicode/ keyed by the corpus fingerprint (unicode_ngrams.py), as SentencePiece models are; the list
is saved in tokenizer.json, so a run directory rebuilds the tokenizer without the corpus.
`lexi.tokenizers.load("unicode")` is the tokenizer without n-grams. Set them in a config
file or on the command line, e.g. `c.data.tokenizer.update(kind="unicode", num_ngrams=8000)`.

Speed and chars/token on KJV: benchmarks/RESULTS.md ("The unicode tokenizer").
"""
from __future__ import annotations

import codecs
import logging
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer, id_array
from lexi.tokenizers.ngram_match import NgramTable, greedy_starts, pack
from lexi.tokenizers.token_bytes import ByteVocab, make_vocab, special_roles

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

_WINDOWS = 1 << 20  # n-gram windows looked up per numpy pass


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


def code_points(text: str) -> np.ndarray:
    """uint32 code points of `text`, lone surrogates included."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def direct_mask(codes: np.ndarray) -> np.ndarray:
    return (codes < RESERVED_LO) | ((codes >= RESERVED_HI) & (codes < VOCAB_SIZE))


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
        self._table = NgramTable(self.ngrams, NGRAM_IDS[: len(ngrams)]) if ngrams else None
        self._lengths = sorted({len(g) for g in ngrams})
        self._strings: Optional[list[str]] = None

    # ------------------------------------------------------------------ encode

    def _encode_core(self, codes: np.ndarray, breaks: Optional[np.ndarray] = None):
        """(ids int32, char start of each token, output start of each token). No n-gram crosses
        a position in `breaks` (document starts), so the greedy path stops at each."""
        n = codes.size
        direct = direct_mask(codes)
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
                    found = self._table.lookup(k, *pack(codes64, i, k))
                    hit = found >= 0
                    match[i[hit]] = found[hit]
                    lengths[i[hit]] = k
            tok_start = greedy_starts(lengths, self.max_len)
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
        return self._encode_core(code_points(text))[0]

    def encode(self, text: str) -> list[int]:
        return self.encode_np(text).tolist()

    def encode_batch_np(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One vectorised pass over the documents joined; n-grams never cross a document."""
        texts = list(texts)
        if len(texts) <= 1:
            return [self.encode_np(t) for t in texts]
        doc_start = np.cumsum([0] + [len(t) for t in texts])
        ids, tok_start, out_start = self._encode_core(code_points("".join(texts)), doc_start[1:-1])
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

    def token_bytes(self) -> ByteVocab:
        """Code points, byte-fallback ids as single bytes, n-grams as UTF-8; unused n-gram slots
        are control ids (text never produces them)."""
        pieces = [chr(i).encode("utf-8", "surrogatepass") for i in range(VOCAB_SIZE)]
        for b in range(256):
            pieces[BYTE_BASE + b] = bytes([b])
        for i, g in zip(NGRAM_IDS.tolist(), self.ngrams):
            pieces[i] = g.encode("utf-8")
        roles = {i: "control" for i in NGRAM_IDS[len(self.ngrams):].tolist()}
        return make_vocab(pieces, {**roles, **special_roles(self)}, range(BYTE_BASE, BYTE_BASE + 256))

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
