"""Substitution ciphers and key recovery, as in the deciphering probe of Huang et al. 2023.

A lexinvariant LM sees every sequence through fresh random embeddings, so a substitution
cipher is invisible to it: the question is whether its activations still know which plain
token each cipher token stands for. A probe predicts the plain token at every position and
a window's predictions are decoded into a key, scored by precision against the true key.
Three decodings (`DECODINGS`), from the paper's to the ones that use partial knowledge:
- `vote`: majority vote of each position's argmax over the whole vocabulary (the paper's);
- `letters`: the same vote with each argmax restricted to the alphabet, so a probe that
  favours a space or a comma still names its best letter;
- `assignment`: the one-to-one key that maximises the summed log-probabilities of the
  window's positions (a substitution key is a bijection; a vote need not be).
The baseline is frequency analysis of the same window, scored through the same decodings.

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
from scipy.optimize import linear_sum_assignment

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
DECODINGS = ("vote", "letters", "assignment")


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


def _alphabet_array(alphabet_ids: Iterable[int]) -> np.ndarray:
    return np.fromiter((int(a) for a in alphabet_ids), dtype=np.int64)


def _check_logprobs(cipher_N: np.ndarray, logp_NxA: np.ndarray, alphabet_A: np.ndarray) -> None:
    if logp_NxA.shape != (cipher_N.shape[0], alphabet_A.shape[0]):
        raise ValueError(f"expected log-probabilities [{cipher_N.shape[0]}, {alphabet_A.shape[0]}] (positions x "
                         f"alphabet), got {logp_NxA.shape}")


def letters_key(cipher_ids_N: np.ndarray, logp_NxA: np.ndarray, alphabet_ids: Iterable[int]) -> dict[int, int]:
    """`vote_key` of each position's best plain letter: the argmax of its log-probabilities
    over the alphabet (column j of `logp_NxA` is `alphabet_ids[j]`), not over the vocabulary."""
    alphabet = _alphabet_array(alphabet_ids)
    cipher, logp = np.asarray(cipher_ids_N).reshape(-1), np.asarray(logp_NxA)
    _check_logprobs(cipher, logp, alphabet)
    return vote_key(cipher, alphabet[np.argmax(logp, axis=-1)], alphabet)


def summed_logprobs(cipher_ids_N: np.ndarray, logp_NxA: np.ndarray,
                    alphabet_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """(present_C, score_CxA): the alphabet cipher ids that occur, and per id the sum of its
    positions' log-probabilities of each plain letter, i.e. log p("c stands for a") when
    positions are independent."""
    alphabet = _alphabet_array(alphabet_ids)
    cipher, logp = np.asarray(cipher_ids_N).reshape(-1), np.asarray(logp_NxA)
    _check_logprobs(cipher, logp, alphabet)
    keep = np.isin(cipher, alphabet)
    present, row_K = np.unique(cipher[keep], return_inverse=True)
    onehot_CxK = (row_K[None, :] == np.arange(len(present))[:, None]).astype(np.float64)
    return present, onehot_CxK @ logp[keep].astype(np.float64)


def assignment_key(cipher_ids_N: np.ndarray, logp_NxA: np.ndarray, alphabet_ids: Iterable[int]) -> dict[int, int]:
    """The one-to-one key over the cipher ids that occur maximising the summed log-probabilities
    (`summed_logprobs`): a substitution key is a bijection, so a letter the probe favours
    everywhere can be claimed by one cipher id only. Ties go to scipy's solver.

    Only each row's top C columns (C = cipher ids present) can be needed: a row assigned
    elsewhere has a free column among its top C to move to at no loss. The solve therefore
    runs on their union, which keeps it small for token ciphers over large vocabularies."""
    alphabet = _alphabet_array(alphabet_ids)
    present, score_CxA = summed_logprobs(cipher_ids_N, logp_NxA, alphabet)
    if not len(present):
        return {}
    c = len(present)
    cols = np.arange(len(alphabet))
    if c < len(alphabet):
        cols = np.unique(np.argpartition(-score_CxA, c - 1, axis=1)[:, :c])
    rows, picked = linear_sum_assignment(score_CxA[:, cols], maximize=True)
    return {int(present[r]): int(alphabet[cols[k]]) for r, k in zip(rows, picked)}


def decode_key(decoding: str, cipher_ids_N: np.ndarray, predicted_plain_ids_N: np.ndarray,
               logp_NxA: np.ndarray, alphabet_ids: Iterable[int]) -> dict[int, int]:
    """The key one of `DECODINGS` reads from a window's predictions (`vote`) or
    log-probabilities over the alphabet (`letters`, `assignment`)."""
    if decoding == "vote":
        return vote_key(cipher_ids_N, predicted_plain_ids_N, alphabet_ids)
    if decoding == "letters":
        return letters_key(cipher_ids_N, logp_NxA, alphabet_ids)
    if decoding == "assignment":
        return assignment_key(cipher_ids_N, logp_NxA, alphabet_ids)
    raise ValueError(f"unknown decoding {decoding!r}; choose from {list(DECODINGS)}")


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


def _mean_over_sequences(scores: Sequence[KeyScore]) -> float:
    """Mean precision over the sequences whose window had at least one alphabet token."""
    voted = [s.precision for s in scores if s.count]
    return float(np.mean(voted)) if voted else 0.0


def mean_precision(scores_SxW: Sequence[Sequence[KeyScore]]) -> np.ndarray:
    """float[W]: per window, `_mean_over_sequences` of the sequences' scores, so scores can be
    gathered sequence by sequence (e.g. a batch at a time) and averaged at the end."""
    return np.array([_mean_over_sequences(column) for column in zip(*scores_SxW)], dtype=np.float64)


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
    return starts, mean_precision([[key_precision(decipher(i, s), t) for s in starts] for i, t in enumerate(truths)])


def window_key_scores(cipher_ids_L: np.ndarray, predicted_plain_L: np.ndarray, logp_LxA: np.ndarray,
                      true_inverse: Mapping[int, int], alphabet_ids: Iterable[int], starts: np.ndarray,
                      window: int) -> dict[str, list[KeyScore]]:
    """One sequence's score under every decoding in each window `[start, start + window)`:
    {decoding: [KeyScore per start]}. `logp_LxA` are the log-probabilities of the alphabet's
    ids (column j is `alphabet_ids[j]`); they need not be normalised over the alphabet, as a
    per-position shift changes no decoding."""
    alphabet = _alphabet_array(alphabet_ids)
    return {d: [key_precision(decode_key(d, cipher_ids_L[s:s + window], predicted_plain_L[s:s + window],
                                         logp_LxA[s:s + window], alphabet), true_inverse) for s in starts]
            for d in DECODINGS}


def windowed_precisions(cipher_ids_SxL: np.ndarray, predicted_plain_SxL: np.ndarray, logp_SxLxA: np.ndarray,
                        true_inverse_per_seq: Sequence[Mapping[int, int]] | Mapping[int, int],
                        alphabet_ids: Iterable[int], window: int = 100,
                        stride: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`windowed_key_precision` under every decoding: (starts_W, {decoding: precision_W})."""
    cipher, pred, logp = np.asarray(cipher_ids_SxL), np.asarray(predicted_plain_SxL), np.asarray(logp_SxLxA)
    if cipher.ndim != 2 or cipher.shape != pred.shape or logp.shape[:2] != cipher.shape:
        raise ValueError(f"expected [S, L] ids and [S, L, A] log-probabilities, got {cipher.shape}, {pred.shape} "
                         f"and {logp.shape}")
    truths = _per_sequence(true_inverse_per_seq, cipher.shape[0])
    starts = window_starts(cipher.shape[1], window, stride)
    per_seq = [window_key_scores(c, p, lp, t, alphabet_ids, starts, window)
               for c, p, lp, t in zip(cipher, pred, logp, truths)]
    return starts, {d: mean_precision([s[d] for s in per_seq]) for d in DECODINGS}


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


def reference_logprobs(reference_frequencies: Mapping[int, float], alphabet_ids: Iterable[int]) -> np.ndarray:
    """float[A]: log reference frequency of each alphabet id (floored at 1e-12 so that a letter
    the reference never saw stays a finite, last choice)."""
    freqs = np.array([reference_frequencies.get(int(a), 0.0) for a in alphabet_ids], dtype=np.float64)
    return np.log(np.maximum(freqs, 1e-12))


def frequency_window_scores(cipher_ids_L: np.ndarray, reference_frequencies: Mapping[int, float],
                            true_inverse: Mapping[int, int], alphabet_ids: Iterable[int], starts: np.ndarray,
                            window: int) -> dict[str, list[KeyScore]]:
    """Frequency analysis of one sequence scored like `window_key_scores`.

    `vote` and `letters` are both `frequency_decipher` (rank matching already names only
    letters). `assignment` runs `assignment_key`, the probe's code path, on a "probe" that
    ignores its input and gives every position the reference's log-frequencies: its summed
    score for "c stands for a" is count(c) * log f(a), whose one-to-one maximum pairs counts
    and frequencies in the same order (rearrangement inequality), i.e. rank matching again,
    with ties between equal counts left to the solver instead of to the lowest id."""
    alphabet = _alphabet_array(alphabet_ids)
    logp_A = reference_logprobs(reference_frequencies, alphabet)
    ranked = [key_precision(frequency_decipher(cipher_ids_L[s:s + window], reference_frequencies, alphabet),
                            true_inverse) for s in starts]
    assigned = []
    for s in starts:
        part = np.asarray(cipher_ids_L[s:s + window]).reshape(-1)
        logp = np.broadcast_to(logp_A, (len(part), len(alphabet)))
        assigned.append(key_precision(assignment_key(part, logp, alphabet), true_inverse))
    return {"vote": ranked, "letters": list(ranked), "assignment": assigned}


def windowed_frequency_precisions(cipher_ids_SxL: np.ndarray, reference_frequencies: Mapping[int, float],
                                  true_inverse_per_seq: Sequence[Mapping[int, int]] | Mapping[int, int],
                                  alphabet_ids: Iterable[int], window: int = 100,
                                  stride: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The frequency baseline under every decoding, scored like `windowed_precisions`."""
    cipher = np.asarray(cipher_ids_SxL)
    if cipher.ndim != 2:
        raise ValueError(f"expected [S, L] cipher ids, got shape {cipher.shape}")
    truths = _per_sequence(true_inverse_per_seq, cipher.shape[0])
    starts = window_starts(cipher.shape[1], window, stride)
    per_seq = [frequency_window_scores(c, reference_frequencies, t, alphabet_ids, starts, window)
               for c, t in zip(cipher, truths)]
    return starts, {d: mean_precision([s[d] for s in per_seq]) for d in DECODINGS}


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
