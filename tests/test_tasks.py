"""Synthetic in-context tasks: prompts parse back to their answers, sampling excludes
punctuation and specials and follows corpus counts, seeds reproduce, scoring is exact."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import CharTok

from lexi.errors import UserError
from lexi.eval import tasks as T


class WordTok:
    """Stand-in for a subword tokenizer that prepends BOS and has one id per punctuation."""

    name = "word"
    vocab_size = 40
    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3
    special_ids = (0, 1, 2, 3)
    _ids = {"->": 4, " ": 5}

    def encode(self, text):
        return [self.bos_id, self._ids[text]]

    def decode(self, ids):
        return " ".join(map(str, ids))


CHAR, WORD = CharTok(), WordTok()
TOKS = {"char": CHAR, "word": WORD}


# --- parsing prompts back ----------------------------------------------------------------


def split(ids, delim):
    """Split a list of ids on every occurrence of the sub-sequence `delim`."""
    delim, out, cur, i = list(delim), [], [], 0
    while i < len(ids):
        if ids[i:i + len(delim)] == delim:
            out.append(cur)
            cur, i = [], i + len(delim)
        else:
            cur.append(ids[i])
            i += 1
    out.append(cur)
    return out


def parse_lookup(prompt, fmt):
    """-> (list of (key, value) pairs, query key); each a tuple of ids."""
    chunks = split(prompt, fmt.sep)
    pairs = [split(c, fmt.arrow) for c in chunks]
    assert all(len(p) == 2 for p in pairs), pairs
    *kv, (query, rest) = pairs
    assert rest == []  # the prompt ends with the arrow
    return [(tuple(k), tuple(v)) for k, v in kv], tuple(query)


def parse_permutation(prompt, fmt):
    """-> (list of (input items, output items) demos, query items)."""
    blocks = split(prompt, fmt.demo_sep)
    rows = [split(b, fmt.arrow) for b in blocks]
    assert all(len(r) == 2 for r in rows), rows
    items = lambda part: [tuple(x) for x in split(part, fmt.sep)]  # noqa: E731
    *demos, (query, rest) = rows
    assert rest == []
    return [(items(a), items(b)) for a, b in demos], items(query)


def assert_symbols_clean(symbols, fmt, tok, symbol_len):
    banned = set(tok.special_ids) | fmt.structural_ids
    for s in symbols:
        assert len(s) == symbol_len
        assert not set(s) & banned, s
        assert all(0 <= i < tok.vocab_size for i in s)


def zipf_counts(tok, seed=0):
    """Corpus-like counts: Zipf's law over a random ranking of the ids, some ids unseen."""
    c = 1e6 / (1 + np.random.default_rng(seed).permutation(tok.vocab_size))
    c[::7] = 0
    return c


# --- task generators ---------------------------------------------------------------------

task_settings = settings(max_examples=60, deadline=None)


@task_settings
@given(st.integers(0, 2**31), st.sampled_from(["char", "word"]), st.integers(1, 3), st.integers(1, 8),
       st.sampled_from(["uniform", "frequency"]))
def test_lookup_answer_follows_from_pairs(seed, tok_name, symbol_len, num_pairs, sampler):
    tok = TOKS[tok_name]
    fmt = T.Format.from_tokenizer(tok)
    counts = zipf_counts(tok, seed % 1000) if sampler == "frequency" else None
    for ex in T.make_examples("lookup", 5, seed, tok, sampler, counts, symbol_len, num_pairs=num_pairs):
        pairs, query = parse_lookup(ex.prompt_ids, fmt)
        keys = [k for k, _ in pairs]
        assert len(pairs) == num_pairs
        assert len(set(keys)) == num_pairs  # keys distinct, so the answer is defined
        assert query in keys
        assert tuple(ex.answer_ids) == dict(pairs)[query]
        assert_symbols_clean(keys + [v for _, v in pairs], fmt, tok, symbol_len)
        if counts is not None:
            assert all(counts[i] > 0 for k in keys for i in k)


@task_settings
@given(st.integers(0, 2**31), st.sampled_from(["char", "word"]), st.integers(1, 3), st.integers(1, 6),
       st.integers(1, 4), st.sampled_from(["uniform", "frequency"]))
def test_permutation_answer_follows_from_demos(seed, tok_name, symbol_len, num_items, num_demos, sampler):
    tok = TOKS[tok_name]
    fmt = T.Format.from_tokenizer(tok)
    counts = zipf_counts(tok, seed % 1000) if sampler == "frequency" else None
    examples = T.make_examples("permutation", 4, seed, tok, sampler, counts, symbol_len,
                               num_items=num_items, num_demos=num_demos)
    for ex in examples:
        demos, query = parse_permutation(ex.prompt_ids, fmt)
        assert len(demos) == num_demos and len(query) == num_items
        x, y = demos[0]
        assert len(set(x)) == num_items  # distinct items: the order is identifiable
        order = [x.index(item) for item in y]
        assert sorted(order) == list(range(num_items))
        if num_items > 1:
            assert order != list(range(num_items))  # never the plain-copy identity
        for a, b in demos:
            assert b == [a[i] for i in order]  # one reordering for all demonstrations
            assert_symbols_clean(a + b, fmt, tok, symbol_len)
        assert_symbols_clean(query, fmt, tok, symbol_len)
        assert ex.answer_ids == fmt.join([query[i] for i in order])


def test_layout_reads_as_documented():
    ex = T.make_examples("lookup", 1, 0, CHAR, num_pairs=3)[0]
    text = CHAR.decode(ex.prompt_ids)
    assert text.count("->") == 4 and text.endswith("->") and text.count(" ") == 3
    ex = T.make_examples("permutation", 1, 0, CHAR, num_items=3, num_demos=2)[0]
    text = CHAR.decode(ex.prompt_ids)
    assert text.count("->") == 3 and text.count("  ") == 2 and text.endswith("->")
    assert len(CHAR.decode(ex.answer_ids).split(" ")) == 3


def test_format_takes_the_first_arrow_the_vocabulary_has():
    """A corpus_chars vocabulary without ">" (KJV's) binds keys with ":", never with a lone "-"."""
    from lexi.tokenizers import CorpusCharTokenizer

    kjv_like = CorpusCharTokenizer(" -:abc")
    fmt = T.Format.from_tokenizer(kjv_like)
    assert fmt.arrow == tuple(kjv_like.encode(":")) and fmt.sep == tuple(kjv_like.encode(" "))
    full = CorpusCharTokenizer(" ->=ab")
    assert T.Format.from_tokenizer(full).arrow == tuple(full.encode("->"))
    with pytest.raises(UserError, match="cannot represent any of the prompt arrows"):
        T.Format.from_tokenizer(CorpusCharTokenizer(" ab"))


def test_format_drops_specials_and_rejects_unusable_punctuation():
    assert T.Format.from_tokenizer(WORD) == T.Format(arrow=(4,), sep=(5,))
    with pytest.raises(UserError):
        T.Format(arrow=(), sep=(5,))
    with pytest.raises(UserError):
        T.Format(arrow=(4, 5), sep=(5,))


# --- seeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["lookup", "permutation"])
def test_reproducible_for_a_seed_and_different_across_seeds(task):
    a = T.make_examples(task, 20, 7, CHAR, symbol_len=2)
    assert a == T.make_examples(task, 20, 7, CHAR, symbol_len=2)
    assert a[:5] == T.make_examples(task, 5, 7, CHAR, symbol_len=2)  # longer list extends shorter
    b = T.make_examples(task, 20, 8, CHAR, symbol_len=2)
    assert sum(x != y for x, y in zip(a, b)) >= 19
    assert len({tuple(e.prompt_ids) for e in a}) == 20  # examples within a list differ too


# --- symbol sampling -----------------------------------------------------------------------


def test_frequency_sampler_follows_counts():
    fmt = T.Format.from_tokenizer(CHAR)
    counts = np.zeros(CHAR.vocab_size)
    support = np.array([97, 98, 99, 100, 101])
    counts[support] = [1, 2, 3, 4, 10]
    counts[[ord("-"), ord(" "), CHAR.bos_id]] = 1000  # heavy but excluded ids
    sampler = T.SymbolSampler.for_tokenizer(CHAR, fmt, kind="frequency", counts=counts)
    draws = np.array([s[0] for s in sampler.draw(np.random.default_rng(0), 20000)])
    assert set(draws.tolist()) <= set(support.tolist())
    observed = np.array([np.count_nonzero(draws == i) for i in support])
    expected = counts[support] / counts[support].sum() * len(draws)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < 25, (observed, expected)  # 4 dof: p ~ 1e-4 at 25; uniform draws give > 3000
    uniform = T.SymbolSampler.for_tokenizer(CHAR, fmt)
    u = np.array([s[0] for s in uniform.draw(np.random.default_rng(0), 20000)])
    assert len(np.unique(u)) == len(uniform.allowed) == 128 - 4 - 3  # specials, '-', '>', ' '


def test_distinct_draws_and_impossible_requests():
    fmt = T.Format.from_tokenizer(CHAR)
    counts = np.zeros(CHAR.vocab_size)
    counts[[97, 98]] = 1
    two = T.SymbolSampler.for_tokenizer(CHAR, fmt, kind="frequency", counts=counts)
    rng = np.random.default_rng(0)
    assert sorted(two.draw(rng, 2, distinct=True)) == [(97,), (98,)]
    with pytest.raises(UserError):
        two.draw(rng, 3, distinct=True)
    with pytest.raises(UserError):
        T.make_examples("lookup", 1, 0, CHAR, "frequency", counts, num_pairs=3)
    pairs = T.SymbolSampler.for_tokenizer(CHAR, fmt, symbol_len=2, kind="frequency", counts=counts)
    assert len(set(pairs.draw(rng, 4, distinct=True))) == 4  # 2 ids, length 2: 4 symbols
    with pytest.raises(UserError):
        T.SymbolSampler.for_tokenizer(CHAR, fmt, kind="frequency", counts=None)
    with pytest.raises(UserError):
        T.SymbolSampler.for_tokenizer(CHAR, fmt, kind="zipf")


# --- scoring with rule-based "models" ----------------------------------------------------


def copy_model(prompt, fmt):
    """Find the last earlier occurrence of the query key (followed by the arrow, at the start
    of a pair) and copy the value after it up to the next separator."""
    body = prompt[:-len(fmt.arrow)]
    q_start = max(i + len(fmt.sep) for i in range(len(body)) if body[i:i + len(fmt.sep)] == list(fmt.sep))
    key = body[q_start:]
    pattern = key + list(fmt.arrow)
    for i in range(q_start - len(pattern), -1, -1):
        at_pair_start = i == 0 or prompt[i - len(fmt.sep):i] == list(fmt.sep)
        if at_pair_start and prompt[i:i + len(pattern)] == pattern:
            j = i + len(pattern)
            return split(prompt[j:], fmt.sep)[0]
    return []


def random_value_guess(prompt, fmt, rng):
    """Chance level: one of the prompt's values, ignoring the query."""
    pairs, _ = parse_lookup(prompt, fmt)
    return list(pairs[rng.integers(len(pairs))][1])


@pytest.mark.parametrize("tok,symbol_len", [(CHAR, 1), (CHAR, 3), (WORD, 2)])
def test_copy_model_solves_lookup_and_guessing_is_at_chance(tok, symbol_len):
    fmt = T.Format.from_tokenizer(tok)
    examples = T.make_examples("lookup", 1500, 0, tok, symbol_len=symbol_len, num_pairs=4)
    copied = [copy_model(e.prompt_ids, fmt) + [tok.eos_id] for e in examples]  # trailing ids ignored
    assert T.score_exact_match(copied, examples) == 1.0
    rng = np.random.default_rng(1)
    guesses = [random_value_guess(e.prompt_ids, fmt, rng) for e in examples]
    # Chance is 1/4 plus a little for repeated values; std error ~0.011 with 1500 examples.
    assert abs(T.score_exact_match(guesses, examples) - 0.25) < 0.05


def test_score_exact_match_prefix_semantics():
    ex = [T.Example([1], [5, 6]), T.Example([1], [7])]
    assert T.score_exact_match([[5, 6, 9], [7]], ex) == 1.0
    assert T.score_exact_match([[5], [7, 7]], ex) == 0.5  # too short is wrong
    assert T.score_exact_match([np.array([5, 6]), [8]], ex) == 0.5
    with pytest.raises(ValueError):
        T.score_exact_match([[5, 6]], ex)


# --- registry -------------------------------------------------------------------------------


def test_registry_adds_tasks_and_rejects_unknown_or_duplicate():
    assert {"lookup", "permutation"} <= set(T.TASKS)
    assert T.get_task("lookup") is T.lookup
    with pytest.raises(UserError, match="lookup"):
        T.get_task("no-such-task")
    with pytest.raises(ValueError):
        T.register_task("lookup")(lambda rng, symbols, fmt: None)

    @T.register_task("_test_copy")
    def copy_task(rng, symbols, fmt, length=2):
        s = symbols.draw(rng, length)
        return T.Example(fmt.join(s) + list(fmt.arrow), fmt.join(s))

    try:
        ex = T.make_examples("_test_copy", 3, 0, CHAR, length=3)
        assert all(e.prompt_ids[:len(e.answer_ids)] == e.answer_ids for e in ex)
    finally:
        del T.TASKS["_test_copy"]
