"""Ciphers and key recovery: perfect/random/frequency decipherers, invertibility, and the
moving average used for the paper's curves."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import CharTok

from lexi.eval import cipher as C
from lexi.eval.smoothing import moving_average


TOK = CharTok()
LETTERS = TOK.encode(C.ALPHABET)

ENGLISH = (
    "The old harbour town wakes up slowly in the winter. Before the sun has cleared the hills, "
    "the fishermen are already down at the water, checking their nets and arguing about the "
    "weather. Most of them have worked the same boats for thirty years, and they speak about "
    "the sea the way other people speak about a difficult neighbour: with respect, with some "
    "fear, and with a great deal of complaint. By eight o'clock the bakery on the main street "
    "has opened its doors, and the smell of bread drifts along the road to the school, where "
    "children stand in small groups and compare what they did over the weekend. The teacher, "
    "a tall woman who moved here from the city many years ago, still walks to work every "
    "morning, even when the wind is strong enough to push her off the path. She says that the "
    "walk gives her time to think about the lessons for the day, and that she would rather be "
    "cold than be late. In the afternoon the town grows quiet again. The shops close for an "
    "hour, the streets are empty, and only the gulls make any noise as they circle over the "
    "market looking for something to steal. Visitors who arrive at this time often believe "
    "that the place has been abandoned, and they are surprised when, a little after three, "
    "the doors open once more and the people return to their business as if nothing had "
    "happened. In the evening there is music in the small hall near the church. Nobody would "
    "call it good music, but everybody comes, because it is the only place where the whole "
    "town meets and where news can travel from one end of the harbour to the other in the "
    "time it takes to finish a cup of tea. When the last song is over, the families walk "
    "home together under the street lamps, and the lights in the windows go out one by one "
    "until the only light left is the lamp at the end of the pier, which burns all night so "
    "that the boats can find their way back through the dark water."
)

# Relative frequency of letters in English text (percent), a standard published table.
ENGLISH_FREQ = dict(zip(
    "etaoinshrdlcumwfgypbvkjxqz",
    [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
     1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07]))
REFERENCE = {ord(c): f for c, f in ENGLISH_FREQ.items()}


def _plain_SxL(num_seqs, length, seed=0):
    """Sequences cut from the English text at random offsets (lowercased, as the cipher is
    lowercase-only)."""
    text = ENGLISH.lower()
    rng = np.random.default_rng(seed)
    ids = np.array(TOK.encode(text))
    starts = rng.integers(0, len(ids) - length, num_seqs)
    return np.stack([ids[s:s + length] for s in starts])


def _encipher_each(plain_SxL, seed=1):
    """A fresh key per sequence, as in the paper's per-window evaluation."""
    rng = np.random.default_rng(seed)
    perms = [C.letter_permutation_ids(C.letter_key(rng), TOK.vocab_size, LETTERS) for _ in plain_SxL]
    cipher = np.stack([p[x] for p, x in zip(perms, plain_SxL)])
    truths = [C.cipher_to_plain(p, LETTERS) for p in perms]
    return cipher, truths


# --- making ciphers -------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(), st.permutations(range(26)))
def test_encipher_then_inverse_is_identity_on_text(text, key):
    key = np.array(key)
    assert C.encipher_text(C.encipher_text(text, key), C.invert_key(key)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)), st.permutations(range(26)))
def test_text_cipher_matches_token_cipher_and_leaves_non_lowercase(text, key):
    key = np.array(key)
    enc = C.encipher_text(text, key)
    perm = C.letter_permutation_ids(key, TOK.vocab_size, LETTERS)
    assert TOK.encode(enc) == perm[np.array(TOK.encode(text), dtype=int)].tolist()
    for a, b in zip(text, enc):
        if not ("a" <= a <= "z"):
            assert a == b  # uppercase, digits, punctuation untouched
        else:
            assert "a" <= b <= "z"


def test_encipher_text_changes_letters_only():
    key = np.roll(np.arange(26), -1)  # a->b, b->c, ..., z->a
    assert C.encipher_text("Hello, zebra A!", key) == "Hfmmp, afcsb A!"


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(26)), st.lists(st.integers(0, 127), max_size=50))
def test_letter_permutation_inverse_is_identity_on_ids(key, ids):
    perm = C.letter_permutation_ids(np.array(key), 128, LETTERS)
    ids = np.array(ids, dtype=int)
    np.testing.assert_array_equal(C.invert_key(perm)[perm[ids]], ids)
    non_letters = np.setdiff1d(np.arange(128), LETTERS)
    np.testing.assert_array_equal(perm[non_letters], non_letters)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 300), st.data(), st.integers(0, 2**32 - 1))
def test_token_permutation_is_a_bijection_fixing_specials(vocab, data, seed):
    specials = data.draw(st.sets(st.integers(0, vocab - 1), max_size=min(vocab, 8)))
    perm = C.token_permutation(vocab, specials, np.random.default_rng(seed))
    np.testing.assert_array_equal(np.sort(perm), np.arange(vocab))
    for s in specials:
        assert perm[s] == s
    ids = np.arange(vocab)
    np.testing.assert_array_equal(C.invert_key(perm)[perm[ids]], ids)


def test_token_permutation_actually_shuffles():
    perm = C.token_permutation(1000, [0, 1, 2, 3], np.random.default_rng(0))
    assert np.count_nonzero(perm != np.arange(1000)) > 900


def test_letter_key_is_random_permutation():
    a, b = C.letter_key(np.random.default_rng(0)), C.letter_key(np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(a), np.arange(26))
    assert (a != b).any()


def test_letter_permutation_rejects_bad_letter_ids():
    with pytest.raises(ValueError):
        C.letter_permutation_ids(np.arange(26), 128, LETTERS[:25])


# --- voting and precision ----------------------------------------------------------------


def test_vote_key_majority_ties_and_alphabet():
    a, b, c = 97, 98, 99
    cipher = np.array([a, a, a, b, b, 32, 32])
    pred = np.array([c, c, b, c, b, a, a])  # a: c wins 2-1; b: tie b/c -> lowest (b)
    assert C.vote_key(cipher, pred, LETTERS) == {a: c, b: b}  # space (32) gets no vote


def test_key_precision_counts_and_empty():
    assert C.key_precision({}, {97: 98}) == C.KeyScore(0.0, 0, 0)
    score = C.key_precision({97: 98, 98: 97, 99: 99}, {97: 98, 98: 99, 99: 99})
    assert score == C.KeyScore(2 / 3, 2, 3)


def test_window_starts():
    np.testing.assert_array_equal(C.window_starts(350, 100), [0, 100, 200])
    np.testing.assert_array_equal(C.window_starts(350, 100, 50), [0, 50, 100, 150, 200, 250])
    np.testing.assert_array_equal(C.window_starts(40, 100), [0])


def test_perfect_decipherer_scores_one_in_every_window():
    plain = _plain_SxL(32, 500)
    cipher, truths = _encipher_each(plain)
    starts, prec = C.windowed_key_precision(cipher, plain, truths, LETTERS, window=100, stride=50)
    np.testing.assert_array_equal(starts, np.arange(0, 401, 50))
    np.testing.assert_array_equal(prec, 1.0)
    # Scoring against the wrong sequences' keys must not also give 1.0.
    _, wrong = C.windowed_key_precision(cipher, plain, truths[1:] + truths[:1], LETTERS)
    assert wrong.max() < 0.3


def test_random_decipherer_scores_about_one_in_26():
    plain = _plain_SxL(200, 400, seed=3)
    cipher, truths = _encipher_each(plain, seed=4)
    guesses = np.random.default_rng(5).choice(LETTERS, size=plain.shape)
    _, prec = C.windowed_key_precision(cipher, guesses, truths, LETTERS)
    # ~200 sequences x ~20 voted letters per window: standard error ~0.003 per window.
    assert len(prec) == 4
    assert np.all(np.abs(prec - 1 / 26) < 0.02), prec


def test_frequency_baseline_beats_random():
    plain = _plain_SxL(100, 400, seed=6)
    cipher, truths = _encipher_each(plain, seed=7)
    _, freq = C.windowed_frequency_precision(cipher, REFERENCE, truths, LETTERS, window=100)
    _, rand = C.windowed_key_precision(
        cipher, np.random.default_rng(8).choice(LETTERS, size=plain.shape), truths, LETTERS)
    assert freq.mean() > 0.1 and freq.mean() > rand.mean() + 0.05, (freq, rand)
    # More text, better statistics: the whole 400-token window beats 100-token windows.
    _, freq_long = C.windowed_frequency_precision(cipher, REFERENCE, truths, LETTERS, window=400)
    assert freq_long.mean() > freq.mean()


def test_frequency_decipher_rank_matches_with_deterministic_ties():
    a, b, c, d = 97, 98, 99, 100
    window = np.array([c] * 5 + [a] * 3 + [d] * 3 + [32] * 9)  # b absent; a/d tie
    ref = {b: 0.5, a: 0.3, c: 0.1, d: 0.1}  # ranking b, a, c, d (c/d tie -> c first)
    assert C.frequency_decipher(window, ref, [a, b, c, d]) == {c: b, a: a, d: c}
    freqs = C.letter_frequencies(window, [a, b, c, d])
    assert freqs == {a: 3 / 11, b: 0.0, c: 5 / 11, d: 3 / 11}


def test_windows_of_padding_are_left_out_of_the_mean():
    plain = _plain_SxL(4, 200)
    cipher, truths = _encipher_each(plain)
    pred = plain.copy()
    pred[0] = 32  # sequence 0 is deciphered wrongly everywhere
    cipher[1:, 100:] = TOK.pad_id  # the others are padding in the second window
    _, prec = C.windowed_key_precision(cipher, pred, truths, LETTERS)
    assert prec[0] == pytest.approx(3 / 4)  # three right, one wrong
    assert prec[1] == 0.0  # only sequence 0 has letters there, and it is wrong


def test_full_key_shared_by_all_sequences():
    plain = _plain_SxL(60, 300, seed=9)
    rng = np.random.default_rng(10)
    perm = C.letter_permutation_ids(C.letter_key(rng), TOK.vocab_size, LETTERS)
    cipher = perm[plain]
    truth = C.cipher_to_plain(perm, LETTERS)
    noisy = np.where(rng.random(plain.shape) < 0.3, rng.choice(LETTERS, size=plain.shape), plain)
    full = C.vote_full_key(cipher, noisy, truth, LETTERS, window=100)
    letters, counts = np.unique(plain[:, -100:], return_counts=True)
    present = {int(x) for x in letters if x in LETTERS}
    common = {int(x) for x, n in zip(letters, counts) if x in LETTERS and n >= 10}
    assert full.voted == len(present)
    assert full.precision == full.recovered / full.voted > 0.9
    assert all(full.key[int(perm[p])] == p for p in common)  # frequent letters outvote noise
    # Padded sequences: the last window ends at each sequence's length, not the array's.
    padded = np.concatenate([cipher, np.zeros((60, 50), dtype=cipher.dtype)], axis=1)
    noisy_p = np.concatenate([noisy, np.full((60, 50), 32)], axis=1)
    full_p = C.vote_full_key(padded, noisy_p, truth, LETTERS, window=100, lengths_S=np.full(60, 300))
    assert full_p == full
    # A probe that is always wrong recovers nothing.
    wrong = C.vote_full_key(cipher, np.full_like(plain, 32), truth, LETTERS)
    assert wrong.recovered == 0 and wrong.precision == 0.0


# --- smoothing ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60), st.integers(1, 80))
def test_moving_average_is_trailing_mean(xs, window):
    x = np.array(xs)
    expected = [np.mean(x[max(0, i - window + 1):i + 1]) for i in range(len(x))]
    np.testing.assert_allclose(moving_average(x, window), expected, rtol=1e-9, atol=1e-6)


def test_moving_average_axis_and_window_one():
    x = np.random.default_rng(0).normal(size=(3, 250))
    np.testing.assert_allclose(moving_average(x, 1), x)
    by_row = np.stack([moving_average(r) for r in x])
    np.testing.assert_allclose(moving_average(x), by_row)
    np.testing.assert_allclose(moving_average(x.T, axis=0), by_row.T)
    assert moving_average(x).shape == x.shape
    with pytest.raises(ValueError):
        moving_average(x, 0)


# --- decodings from log-probabilities ----------------------------------------------------


def test_letters_and_assignment_on_a_hand_made_window():
    """Cipher a appears twice and b, c once. The probe favours plain 'a' at a and at b, so the
    letters vote gives both 'a'; the one-to-one assignment keeps 'a' for the stronger
    evidence (two positions at -0.1 against one at -0.5) and gives b its second choice."""
    a, b, c = 97, 98, 99
    cipher = np.array([a, 32, a, b, c])
    logp = np.log(np.array([[0.90, 0.05, 0.05],
                            [0.10, 0.10, 0.10],  # a space: not in the alphabet, never counted
                            [0.90, 0.05, 0.05],
                            [0.60, 0.35, 0.05],
                            [0.10, 0.10, 0.80]]))
    pred = np.array([32, 32, 32, 32, 32])
    assert C.letters_key(cipher, logp, [a, b, c]) == {a: a, b: a, c: c}
    assert C.assignment_key(cipher, logp, [a, b, c]) == {a: a, b: b, c: c}
    assert C.decode_key("vote", cipher, pred, logp, [a, b, c]) == {a: 32, b: 32, c: 32}
    present, score = C.summed_logprobs(cipher, logp, [a, b, c])
    np.testing.assert_array_equal(present, [a, b, c])
    np.testing.assert_allclose(score[0], 2 * np.log([0.90, 0.05, 0.05]))
    with pytest.raises(ValueError, match="unknown decoding"):
        C.decode_key("majority", cipher, pred, logp, [a, b, c])
    with pytest.raises(ValueError, match="positions x alphabet"):
        C.letters_key(cipher, logp[:, :2], [a, b, c])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(6, 9))
def test_assignment_is_one_to_one_and_optimal(seed, num_cipher, num_plain):
    """Against brute force over every injective key, including many more plain ids than
    cipher ids present (where the solve is restricted to each row's top columns)."""
    import itertools

    rng = np.random.default_rng(seed)
    alphabet = rng.permutation(np.arange(200, 200 + num_plain))  # any order: column j is alphabet[j]
    cipher_ids = rng.choice(alphabet, num_cipher, replace=False)
    cipher = rng.choice(cipher_ids, 3 * num_cipher)
    cipher[:num_cipher] = cipher_ids
    logp = np.log(rng.dirichlet(np.ones(num_plain), size=len(cipher)))
    key = C.assignment_key(cipher, logp, alphabet)
    assert sorted(key) == sorted(cipher_ids.tolist()) and len(set(key.values())) == num_cipher
    present, score = C.summed_logprobs(cipher, logp, alphabet)
    col = {int(p): j for j, p in enumerate(alphabet)}
    best = max(sum(score[i, j] for i, j in enumerate(cols))
               for cols in itertools.permutations(range(num_plain), len(present)))
    assert sum(score[i, col[key[int(c)]]] for i, c in enumerate(present)) == pytest.approx(best)


def test_decoded_keys_name_plain_letters_of_cipher_letters_not_the_reverse():
    """Log-probabilities that point at the true plain letter (columns in a shuffled alphabet
    order) recover cipher -> plain exactly under every decoding; the key used the other way
    round (plain -> cipher) scores far lower, so swapping the two anywhere fails this."""
    plain = _plain_SxL(8, 300, seed=11)
    cipher, truths = _encipher_each(plain, seed=12)
    order = np.random.default_rng(13).permutation(LETTERS)
    column = {int(p): j for j, p in enumerate(order)}
    logp = np.full(plain.shape + (26,), np.log(0.01 / 25))
    for (i, t), p in np.ndenumerate(plain):
        if p in column:
            logp[i, t, column[p]] = np.log(0.99)
    _, prec = C.windowed_precisions(cipher, plain, logp, truths, order, window=100)
    for d in C.DECODINGS:
        np.testing.assert_array_equal(prec[d], 1.0)
    reversed_truths = [{p: c for c, p in t.items()} for t in truths]  # plain -> cipher
    _, wrong = C.windowed_precisions(cipher, plain, logp, reversed_truths, order, window=100)
    assert all(wrong[d].max() < 0.3 for d in C.DECODINGS), wrong
    # Columns read in sorted order while the probe wrote them in `order`: wrong as well.
    _, misread = C.windowed_precisions(cipher, plain, logp, truths, LETTERS, window=100)
    assert misread["letters"].max() < 0.3 and misread["assignment"].max() < 0.3


def test_vote_decoding_is_the_papers_vote():
    plain = _plain_SxL(20, 300, seed=14)
    cipher, truths = _encipher_each(plain, seed=15)
    rng = np.random.default_rng(16)
    pred = np.where(rng.random(plain.shape) < 0.5, plain, 32)
    logp = np.log(rng.dirichlet(np.ones(26), size=plain.shape))
    starts, prec = C.windowed_precisions(cipher, pred, logp, truths, LETTERS, window=100, stride=50)
    starts_old, old = C.windowed_key_precision(cipher, pred, truths, LETTERS, window=100, stride=50)
    np.testing.assert_array_equal(starts, starts_old)
    np.testing.assert_array_equal(prec["vote"], old)
    _, freq = C.windowed_frequency_precisions(cipher, REFERENCE, truths, LETTERS, window=100, stride=50)
    _, freq_old = C.windowed_frequency_precision(cipher, REFERENCE, truths, LETTERS, window=100, stride=50)
    np.testing.assert_array_equal(freq["vote"], freq_old)
    np.testing.assert_array_equal(freq["letters"], freq_old)


def test_always_space_predictor():
    """A probe that always says space, with unigram log-probabilities log f(a) over the
    letters: the vote is exactly 0 (every vote is for a non-letter); letters names the most
    frequent letter everywhere, right only for the cipher letter of 'e'; the assignment is
    frequency analysis, computed by the baseline through the same code."""
    plain = _plain_SxL(60, 300, seed=17)
    cipher, truths = _encipher_each(plain, seed=18)
    ref = C.letter_frequencies(plain, LETTERS)
    logp = np.broadcast_to(C.reference_logprobs(ref, LETTERS), plain.shape + (26,))
    starts, prec = C.windowed_precisions(cipher, np.full_like(plain, 32), logp, truths, LETTERS, window=100)
    np.testing.assert_array_equal(prec["vote"], 0.0)
    e = ord("e")
    expected = [np.mean([int(np.any(p[s:s + 100] == e)) / len(np.intersect1d(p[s:s + 100], LETTERS))
                         for p in plain]) for s in starts]
    np.testing.assert_allclose(prec["letters"], expected)
    _, base = C.windowed_frequency_precisions(cipher, ref, truths, LETTERS, window=100)
    np.testing.assert_allclose(prec["assignment"], base["assignment"])
    # The assignment baseline is rank matching up to ties between equal counts.
    assert abs(base["assignment"].mean() - base["vote"].mean()) < 0.03, base


def test_frequency_assignment_attains_the_rank_matching_optimum():
    """Rank matching maximises sum count(c) log f(a) (rearrangement inequality): the solver's
    key scores exactly as well, whatever it does with ties."""
    plain = _plain_SxL(30, 100, seed=19)
    cipher, _ = _encipher_each(plain, seed=20)
    logf = C.reference_logprobs(REFERENCE, LETTERS)
    col = {int(a): j for j, a in enumerate(LETTERS)}
    for w in cipher:
        counts = {int(c): int(np.sum(w == c)) for c in np.intersect1d(w, LETTERS)}
        total = lambda key: sum(counts[c] * logf[col[p]] for c, p in key.items())
        assigned = C.assignment_key(w, np.broadcast_to(logf, (len(w), 26)), LETTERS)
        assert total(assigned) == pytest.approx(total(C.frequency_decipher(w, REFERENCE, LETTERS)))


# --- the probe, on given features --------------------------------------------------------


def _english_stream():
    return np.asarray([TOK.bos_id] + TOK.encode(ENGLISH.lower()), np.int32)


def _given_features(num, seq_len, seed, table_VxD):
    """Windows of the English text, a fresh key each, read by a featurizer with three layers:
    zeros, fresh Gaussian noise, and a vector per plain token (an oracle that sees the plain
    text through the key)."""
    from lexi.data.packing import eval_windows
    from lexi.eval import decipher

    windows = eval_windows(_english_stream(), seq_len, num, TOK.bos_id, pad_id=TOK.pad_id)
    rng = np.random.default_rng(seed)
    perms = np.stack([C.letter_permutation_ids(C.letter_key(rng), TOK.vocab_size, LETTERS) for _ in range(num)])
    inverse = np.stack([C.invert_key(p) for p in perms])
    noise = np.random.default_rng(seed + 1)

    def featurize(batch, rows):
        plain = np.take_along_axis(inverse[rows], batch["inputs"], axis=1)
        d = table_VxD.shape[1]
        return np.stack([np.zeros(plain.shape + (d,)), noise.normal(size=plain.shape + (d,)), table_VxD[plain]])

    return decipher.CipherSet(windows, perms, featurize)


@pytest.fixture(scope="module")
def given_features_run():
    from lexi.eval import decipher

    table = np.random.default_rng(0).normal(size=(TOK.vocab_size, 16))
    pool, val = _given_features(64, 128, 1, table), _given_features(16, 200, 2, table)
    reference = C.letter_frequencies(_english_stream(), LETTERS)
    res, fit = decipher.key_recovery(pool, val, vocab_size=TOK.vocab_size, special_ids=TOK.special_ids,
                                     alphabet=LETTERS, reference=reference, steps=400, window=100, stride=50,
                                     batch_tokens=256)
    return res, fit


def test_oracle_features_recover_the_key_under_every_decoding(given_features_run):
    """Features that encode the plain token, through the training and decoding `lexi eval`
    runs: every decoding recovers the key, and the layer is chosen by held-out loss."""
    res, fit = given_features_run
    assert res["probe_layer"] == 2 and fit.heldout_loss_K.argmin() == 2
    assert res["by_layer"][2]["heldout_accuracy"] > 0.99 and res["probe_accuracy"] > 0.99
    for d in C.DECODINGS:
        assert min(res["key_precision"][d]["by_window"]) >= 0.99, (d, res["key_precision"][d])
    assert res["key_precision_by_window"] == res["key_precision"]["vote"]["by_window"]
    assert res["key_precision_last_window"] == res["key_precision"]["vote"]["last_window"]
    assert res["frequency_baseline_precision"] == res["frequency_baseline"]["vote"]["last_window"]
    assert res["window_starts"] == [0, 50, 100] and res["probe_pool"] == 64
    assert [layer["name"] for layer in res["by_layer"]] == ["embedding", "block 1", "final norm"]


def test_features_without_information_do_no_better_than_frequency_analysis(given_features_run):
    """Zeros and noise leave the probe the unigram distribution: its argmax is a space (vote
    0), its best letter is 'e' everywhere (letters: one right letter per window), and the
    one-to-one assignment is frequency analysis with the pool's frequencies."""
    res, _ = given_features_run
    base = res["frequency_baseline"]
    for layer in res["by_layer"][:2]:
        prec = {d: np.asarray(layer["key_precision"][d]["by_window"]) for d in C.DECODINGS}
        assert prec["vote"].max() <= 0.05, layer["name"]
        assert np.all(prec["letters"] <= np.asarray(base["letters"]["by_window"]) + 0.02), layer["name"]
        assert np.all(prec["letters"] < 0.1)
        assert np.all(prec["assignment"] <= np.asarray(base["assignment"]["by_window"]) + 0.05), layer["name"]
        assert layer["heldout_loss"] > res["by_layer"][2]["heldout_loss"] + 1.0


def test_model_features_restart_at_every_document():
    """The probe reads the frozen model with the segment ids and positions packing gives
    training batches: a document packed after another has the features it has alone."""
    import flax.linen as nn

    from helpers import init, tiny_model
    from lexi.data.packing import pack
    from lexi.eval import decipher
    from lexi.model.lm import model_variables

    model = tiny_model("trainable", vocab=TOK.vocab_size, position="learned", num_layers=2)
    params, _, _ = init(model, vocab=TOK.vocab_size)
    featurize = decipher.model_featurizer(model, model_variables(nn.meta.unbox(params)), seed=0)
    first, second = TOK.encode("in the beginning"), TOK.encode("and the earth was without form")
    packed = pack(np.array([[TOK.bos_id] + first + [TOK.bos_id] + second]), TOK.bos_id)
    alone = pack(np.array([[TOK.bos_id] + second + [32] * (len(first) + 1)]), TOK.bos_id)
    rows = np.arange(1)
    f_packed, f_alone = np.asarray(featurize(packed, rows)), np.asarray(featurize(alone, rows))
    assert f_packed.shape == (3, 1, len(first) + len(second) + 1, 32)
    start = len(first) + 1
    np.testing.assert_allclose(f_packed[:, 0, start:], f_alone[:, 0, :len(second)], atol=1e-5)
    unsegmented = dict(packed, segment_ids=np.ones_like(packed["segment_ids"]),
                       positions=np.arange(packed["inputs"].shape[1])[None])
    assert not np.allclose(np.asarray(featurize(unsegmented, rows))[:, 0, start:], f_alone[:, 0, :len(second)],
                           atol=1e-3)
