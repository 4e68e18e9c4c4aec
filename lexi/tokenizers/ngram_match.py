"""The unicode tokenizer's longest-match machinery, vectorised with numpy: n-grams of up to 8
16-bit code points packed into two 64-bit words, an open-addressing hash table that finds the
longest n-gram starting at every position, and the blocked walk that picks the greedy
left-to-right path through those matches."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

_SMALL = 8192  # below this many characters the greedy walk is a plain Python loop
_BLOCK = 256  # characters per block of the vectorised greedy walk
_M1, _M2, _M3, _M4 = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F),
                      np.uint64(0x165667B19E3779F9), np.uint64(0xD6E8FEB86659FD93))


def pack(codes64: np.ndarray, starts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) words of the k-grams at `starts`: code point j in bits 16*(j%4) of word j//4."""
    lo = np.zeros(starts.size, np.uint64)
    hi = np.zeros(starts.size, np.uint64)
    for j in range(k):
        word = lo if j < 4 else hi
        word |= codes64[starts + j] << np.uint64(16 * (j % 4))
    return lo, hi


def pack_str(s: str) -> tuple[int, int]:
    lo = hi = 0
    for j, c in enumerate(s):
        if j < 4:
            lo |= ord(c) << (16 * j)
        else:
            hi |= ord(c) << (16 * (j - 4))
    return lo, hi


def unpack(k: int, lo: int, hi: int) -> str:
    return "".join(chr(((lo if j < 4 else hi) >> (16 * (j % 4))) & 0xFFFF) for j in range(k))


def mix(k, lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    """Hash slot in [0, 2**bits) of the n-grams (k, lo, hi); k an array or one length."""
    with np.errstate(over="ignore"):
        h = lo * _M1 + hi * _M2 + np.asarray(k).astype(np.uint64) * _M3
        h ^= h >> np.uint64(31)
        h *= _M4
        h ^= h >> np.uint64(29)
    return (h >> np.uint64(64 - bits)).astype(np.int64)


class NgramTable:
    """Open-addressing hash table (linear probing, load <= 1/8) of n-gram -> id, queried in bulk."""

    def __init__(self, ngrams: Sequence[str], ids: np.ndarray):
        n = len(ngrams)
        self.bits = max(6, math.ceil(math.log2(8 * max(n, 1))))
        size = 1 << self.bits
        packed = [pack_str(g) for g in ngrams]
        k = np.asarray([len(g) for g in ngrams], np.uint8)
        lo = np.asarray([p[0] for p in packed], np.uint64)
        hi = np.asarray([p[1] for p in packed], np.uint64)
        slots = mix(k, lo, hi, self.bits).tolist()
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
        slot = mix(k, lo, hi, self.bits)
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


def greedy_starts(lengths: np.ndarray, max_len: int, small: Optional[int] = None) -> np.ndarray:
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
