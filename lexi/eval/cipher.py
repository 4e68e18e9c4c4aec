"""Substitution ciphers and key recovery, as in the deciphering probe of Huang et al. 2023.

A lexinvariant LM sees every sequence through fresh random embeddings, so a substitution
cipher is invisible to it: the question is whether its activations still know which plain
token each cipher token stands for. A probe predicts the plain token at every position; a
majority vote of those predictions inside a window gives a key, scored by precision against
the true key. The baseline is frequency analysis of the same window.

Conventions:
- A letter key is int[26]: plain letter index -> cipher letter index (a permutation).
- A token permutation `perm` is int[V]: plain id -> cipher id; enciphering ids is `perm[ids]`.
- Recovered keys go the other way, dict cipher id -> plain id, because the probe reads
  cipher tokens and names plain ones.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


# --- making ciphers ---------------------------------------------------------------------


def letter_key(rng: np.random.Generator) -> np.ndarray:
    """A random key over the 26 lowercase letters: plain letter index -> cipher letter index."""
    return rng.permutation(26)


def invert_key(key: np.ndarray) -> np.ndarray:
    """The inverse permutation (also works for token permutations of any size)."""
    key = np.asarray(key)
    inv = np.empty_like(key)
    inv[key] = np.arange(key.shape[0], dtype=key.dtype)
    return inv


def encipher_text(text: str, key: np.ndarray) -> str:
    """Substitute lowercase a-z by `key`; everything else is unchanged.

    Uppercase letters are deliberately left alone: the paper's cipher acts on the 26
    lowercase letters only. Deciphering is `encipher_text(c, invert_key(key))`.
    """
    table = {ord(ALPHABET[p]): ALPHABET[int(c)] for p, c in enumerate(key)}
    return text.translate(table)


def token_permutation(vocab_size: int, special_ids: Iterable[int], rng: np.random.Generator) -> np.ndarray:
    """A random permutation of all non-special ids, specials fixed: the cipher for subword
    tokenizers, where letters are not tokens. Returns int[V], plain id -> cipher id."""
    perm = np.arange(vocab_size)
    free = np.setdiff1d(perm, np.fromiter(special_ids, dtype=np.int64))
    perm[free] = rng.permutation(free)
    return perm


def letter_permutation_ids(key: np.ndarray, vocab_size: int, letter_ids: Sequence[int]) -> np.ndarray:
    """The 26-letter `key` as a permutation over token ids, for a tokenizer whose letters
    are single tokens (`letter_ids` = ids of 'a'..'z'); every other id is fixed."""
    letter_ids = np.asarray(letter_ids, dtype=np.int64)
    if letter_ids.shape != (26,) or len(set(letter_ids.tolist())) != 26:
        raise ValueError(f"letter_ids must be 26 distinct ids, got {letter_ids.tolist()}")
    perm = np.arange(vocab_size)
    perm[letter_ids] = letter_ids[np.asarray(key)]
    return perm


def cipher_to_plain(perm: np.ndarray, alphabet_ids: Iterable[int]) -> dict[int, int]:
    """The true inverse key restricted to the alphabet, dict cipher id -> plain id: the
    reference that recovered keys are scored against."""
    return {int(perm[p]): int(p) for p in alphabet_ids}


# --- voting a key -----------------------------------------------------------------------


def vote_key(cipher_ids_N: np.ndarray, predicted_plain_ids_N: np.ndarray,
             alphabet_ids: Iterable[int]) -> dict[int, int]:
    """Majority vote of the probe's predictions per cipher id, over positions whose cipher
    id is in the alphabet. Only ids that occur get a vote; ties go to the lowest plain id
    so that results are deterministic."""
    cipher = np.asarray(cipher_ids_N).reshape(-1)
    pred = np.asarray(predicted_plain_ids_N).reshape(-1)
    if cipher.shape != pred.shape:
        raise ValueError(f"cipher ids {cipher.shape} and predictions {pred.shape} differ in shape")
    keep = np.isin(cipher, np.fromiter(alphabet_ids, dtype=np.int64))
    voted: dict[int, int] = {}
    for c in np.unique(cipher[keep]):
        values, counts = np.unique(pred[keep & (cipher == c)], return_counts=True)
        voted[int(c)] = int(values[np.argmax(counts)])  # unique sorts: first max = lowest id
    return voted


@dataclass(frozen=True)
class KeyScore:
    """Precision of a recovered key over the cipher letters that received a vote."""

    precision: float
    correct: int
    count: int


def key_precision(voted: Mapping[int, int], true_inverse: Mapping[int, int]) -> KeyScore:
    """Fraction of voted cipher ids whose voted plain id is right; 0.0 with count 0 when
    nothing was voted, so curves never contain NaN."""
    correct = sum(int(true_inverse.get(c) == p) for c, p in voted.items())
    count = len(voted)
    return KeyScore(correct / count if count else 0.0, correct, count)


def window_starts(length: int, window: int, stride: int | None = None) -> np.ndarray:
    """Starts of the windows that fit in `length`; a single window at 0 if none fits."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    stride = window if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return np.arange(0, max(length - window, 0) + 1, stride)


def _per_sequence(true_inverse_per_seq, num_seqs: int) -> list[Mapping[int, int]]:
    """One mapping per sequence; a single mapping means all sequences share one key."""
    if isinstance(true_inverse_per_seq, Mapping):
        return [true_inverse_per_seq] * num_seqs
    out = list(true_inverse_per_seq)
    if len(out) != num_seqs:
        raise ValueError(f"{len(out)} true keys for {num_seqs} sequences")
    return out


def _mean_over_sequences(scores: list[KeyScore]) -> float:
    """Mean precision over the sequences whose window had at least one alphabet token."""
    voted = [s.precision for s in scores if s.count]
    return float(np.mean(voted)) if voted else 0.0


def windowed_key_precision(cipher_ids_SxL: np.ndarray, predicted_plain_SxL: np.ndarray,
                           true_inverse_per_seq: Sequence[Mapping[int, int]] | Mapping[int, int],
                           alphabet_ids: Iterable[int], window: int = 100,
                           stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Key-recovery precision of the probe per window start, averaged over sequences.

    Each sequence has its own true inverse key (or pass one mapping shared by all).
    Sequences with no alphabet token in a window (e.g. all padding) are left out of that
    window's mean. Returns (starts_W, precision_W).
    """
    cipher = np.asarray(cipher_ids_SxL)
    pred = np.asarray(predicted_plain_SxL)
    if cipher.ndim != 2 or cipher.shape != pred.shape:
        raise ValueError(f"expected equal [S, L] arrays, got {cipher.shape} and {pred.shape}")
    alphabet = list(alphabet_ids)
    return _windowed(cipher, true_inverse_per_seq, window, stride,
                     lambda i, s: vote_key(cipher[i, s:s + window], pred[i, s:s + window], alphabet))


def _windowed(cipher_SxL: np.ndarray, true_inverse_per_seq, window: int, stride: int | None,
              decipher) -> tuple[np.ndarray, np.ndarray]:
    """Precision of `decipher(sequence, window_start)` per window start, mean over sequences."""
    truths = _per_sequence(true_inverse_per_seq, cipher_SxL.shape[0])
    starts = window_starts(cipher_SxL.shape[1], window, stride)
    precision = np.array([
        _mean_over_sequences([key_precision(decipher(i, s), t) for i, t in enumerate(truths)])
        for s in starts])
    return starts, precision


# --- frequency-analysis baseline --------------------------------------------------------


def letter_frequencies(ids: np.ndarray, alphabet_ids: Iterable[int]) -> dict[int, float]:
    """Relative frequency of each alphabet id among the alphabet tokens of `ids` (all
    alphabet ids present as keys; all 0.0 when none occurs)."""
    ids = np.asarray(ids).reshape(-1)
    alphabet = [int(a) for a in alphabet_ids]
    counts = np.array([np.count_nonzero(ids == a) for a in alphabet], dtype=np.float64)
    total = counts.sum()
    freqs = counts / total if total else counts
    return dict(zip(alphabet, freqs.tolist()))


def _ranked(freqs: Mapping[int, float]) -> list[int]:
    """Ids by descending frequency, ties by ascending id."""
    return sorted(freqs, key=lambda i: (-freqs[i], i))


def frequency_decipher(cipher_window_ids: np.ndarray, reference_frequencies: Mapping[int, float],
                       alphabet_ids: Iterable[int]) -> dict[int, int]:
    """Classic frequency analysis: the k-th most frequent cipher letter of the window is
    taken to be the k-th most frequent plain letter of the reference. Only cipher letters
    that occur in the window get a guess, as in `vote_key`, so precisions compare."""
    freqs = letter_frequencies(cipher_window_ids, alphabet_ids)
    present = _ranked({c: f for c, f in freqs.items() if f > 0})
    reference = _ranked(dict(reference_frequencies))
    return dict(zip(present, reference))


def windowed_frequency_precision(cipher_ids_SxL: np.ndarray, reference_frequencies: Mapping[int, float],
                                 true_inverse_per_seq: Sequence[Mapping[int, int]] | Mapping[int, int],
                                 alphabet_ids: Iterable[int], window: int = 100,
                                 stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The frequency baseline scored exactly like `windowed_key_precision`."""
    cipher = np.asarray(cipher_ids_SxL)
    if cipher.ndim != 2:
        raise ValueError(f"expected [S, L] cipher ids, got shape {cipher.shape}")
    alphabet = list(alphabet_ids)
    return _windowed(cipher, true_inverse_per_seq, window, stride,
                     lambda i, s: frequency_decipher(cipher[i, s:s + window], reference_frequencies, alphabet))


# --- one key shared by many sequences ---------------------------------------------------


@dataclass(frozen=True)
class FullKey:
    """A key voted across sequences that all share one cipher."""

    key: dict[int, int]  # cipher id -> voted plain id
    precision: float  # over the cipher letters that received a vote
    recovered: int  # letters voted correctly (out of len(alphabet), 26 for letters)
    voted: int  # letters that received a vote


def vote_full_key(cipher_ids_SxL: np.ndarray, predicted_plain_SxL: np.ndarray,
                  true_inverse: Mapping[int, int], alphabet_ids: Iterable[int], window: int = 100,
                  lengths_S: np.ndarray | None = None) -> FullKey:
    """The paper's full-key experiment: every sequence is enciphered with ONE fixed key, and
    the probe's predictions from the last `window` positions of all sequences are pooled
    into a single vote. `lengths_S` gives each sequence's real length when it is padded."""
    cipher = np.asarray(cipher_ids_SxL)
    pred = np.asarray(predicted_plain_SxL)
    if cipher.ndim != 2 or cipher.shape != pred.shape:
        raise ValueError(f"expected equal [S, L] arrays, got {cipher.shape} and {pred.shape}")
    ends = np.full(cipher.shape[0], cipher.shape[1]) if lengths_S is None else np.asarray(lengths_S)
    parts = [(c[max(e - window, 0):e], p[max(e - window, 0):e]) for c, p, e in zip(cipher, pred, ends)]
    voted = vote_key(np.concatenate([c for c, _ in parts]), np.concatenate([p for _, p in parts]),
                     alphabet_ids)
    score = key_precision(voted, true_inverse)
    return FullKey(voted, score.precision, score.correct, score.count)
