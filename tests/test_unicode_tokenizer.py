"""The unicode tokenizer: lossless round trips on any str, the id layout, n-gram learning
(deterministic, cached, shortening English), greedy longest match, save/load and config."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexi import tokenizers
from lexi.data.corpora import KJV
from lexi.errors import UserError
from lexi.tokenizers import ngram_match, unicode_ngrams
from lexi.tokenizers import unicode as uni
from lexi.tokenizers.unicode import BYTE_BASE, NGRAM_IDS, UnicodeTokenizer

SPECIAL = {uni.PAD_ID, uni.BOS_ID, uni.EOS_ID, uni.UNK_ID}
# Characters that stress the fallback and the n-grams: NUL, combining marks, astral
# characters (emoji, plane 2, plane 16), private-use characters, the reassigned edges.
AWKWARD = ["\x00", "\u0301", "\u0308", "\u20dd", "\U0001F600", "\U0001F44D\U0001F3FD", "\U00020000",
           "\U0010FFFF", "\ue000", "\ue100", "\uf8ff", "\uf900", "\ud7ff", "\uffff", "\ufeff", "\n", " "]
ANY_CHAR = st.one_of(
    st.characters(),  # any code point except surrogates
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.characters(min_codepoint=0x10000),  # astral
    st.sampled_from(AWKWARD),
    st.sampled_from(list("the and of ab")),  # so that n-grams match often
)
TEXT = st.one_of(st.text(max_size=200), st.lists(ANY_CHAR, max_size=200).map("".join))
SMALL_NGRAMS = ["th", "the", "he", "he ", " a", "and", "an", "nd ", "ab", "aba", "bab", "aa", "aaa", "e\u0301",
                "\x00\x00", "a\U0000ffff"[:2]]


def reference_encode(tok: UnicodeTokenizer, text: str) -> list[int]:
    """The definition, in plain Python: greedy longest n-gram, else code point, else UTF-8 bytes."""
    ids = {g: int(i) for g, i in zip(tok.ngrams, NGRAM_IDS)}
    out, i = [], 0
    while i < len(text):
        for k in range(tok.max_len, 1, -1):
            if text[i:i + k] in ids:
                out.append(ids[text[i:i + k]])
                i += k
                break
        else:
            cp = ord(text[i])
            if uni.is_direct(cp):
                out.append(cp)
            else:
                out.extend(BYTE_BASE + b for b in text[i].encode("utf-8", "surrogatepass"))
            i += 1
    return out


@pytest.fixture(scope="module")
def uni_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("unicode_cache")


@pytest.fixture(scope="module")
def kjv_tok(kjv_docs, uni_cache):
    """8000 n-grams (max_n 3) learned on the KJV train split, cached under uni_cache."""
    return unicode_ngrams.train_unicode(kjv_docs, 8000, uni_cache, max_n=3, key="kjv-train")


@pytest.fixture(scope="module")
def small_tok():
    return UnicodeTokenizer(SMALL_NGRAMS)


# ---------------------------------------------------------------- round trips


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_round_trips_any_string_without_ngrams(text):
    tok = tokenizers.load("unicode")
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == reference_encode(tok, text)
    assert tok.encode_np(text).dtype == np.int32


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_round_trips_any_string_with_ngrams(small_tok, kjv_tok, text):
    for tok in (small_tok, kjv_tok):
        ids = tok.encode(text)
        assert ids == reference_encode(tok, text)
        assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_ids_in_range_and_never_special(kjv_tok, text):
    for tok in (tokenizers.load("unicode"), kjv_tok):
        ids = tok.encode_np(text).astype(np.int64)
        assert ids.size == 0 or (ids.min() >= 0 and ids.max() < tok.vocab_size == 65536)
        assert not set(ids.tolist()) & set(tok.special_ids)


@settings(max_examples=50, deadline=None)
@given(st.lists(ANY_CHAR, min_size=0, max_size=3000).map("".join), st.lists(TEXT, max_size=8))
def test_vectorised_walk_and_batches_match_the_definition(small_tok, text, docs):
    """_SMALL = 0 sends even short texts through the blocked numpy walk; _WINDOWS = 7 looks
    n-grams up in many slices."""
    old = ngram_match._SMALL, uni._WINDOWS
    try:
        for small, windows in ((0, 7), (10**9, 1 << 20)):
            ngram_match._SMALL, uni._WINDOWS = small, windows
            assert small_tok.encode(text) == reference_encode(small_tok, text)
            batch = small_tok.encode_batch_np(docs)
            assert [b.tolist() for b in batch] == [reference_encode(small_tok, d) for d in docs]
    finally:
        ngram_match._SMALL, uni._WINDOWS = old


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.lists(st.integers(1, 8), min_size=1, max_size=2000))
def test_greedy_walk_blocked_equals_loop(max_len, raw):
    n = len(raw)
    lengths = np.minimum(np.minimum(np.asarray(raw), max_len), n - np.arange(n))
    loop = ngram_match.greedy_starts(lengths, max_len, small=10**9)
    blocked = ngram_match.greedy_starts(lengths, max_len, small=0)
    assert blocked.tolist() == loop.tolist()


def test_id_layout():
    tok = tokenizers.load("unicode")
    assert isinstance(tok, UnicodeTokenizer) and tok.vocab_size == 65536
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0xE000, 0xE001, 0xE002, 0xE003)
    assert set(tok.special_ids) == SPECIAL
    text = "In the beginning\tGod: Ωμέγα, Москва, 中文, \u00e9\u0301, \x00\x7f \ud7ff\uf900\uffff"
    assert tok.encode(text) == [ord(c) for c in text]  # id = code point for ordinary BMP text
    assert len(NGRAM_IDS) == uni.MAX_NGRAMS == 8188
    assert not set(NGRAM_IDS.tolist()) & (SPECIAL | set(range(BYTE_BASE, BYTE_BASE + 256)))
    assert all(0xD800 <= i < 0xF900 for i in NGRAM_IDS)
    # what has no id of its own goes through the bytes of its UTF-8 (surrogatepass) form
    assert tok.encode("\U0001F600") == [BYTE_BASE + b for b in b"\xf0\x9f\x98\x80"]
    assert tok.encode("\ud800") == [BYTE_BASE + b for b in b"\xed\xa0\x80"]
    assert tok.encode("\ue000") == [BYTE_BASE + b for b in b"\xee\x80\x80"]
    assert tok.token_info(0x41) == ("text", "A")
    assert tok.token_info(BYTE_BASE + 7) == ("byte", 7)
    assert tok.token_info(0xE001) == ("special", "bos")
    assert tok.token_info(0xD800) == ("unused", None)


def test_decode_skips_specials_and_never_raises():
    tok = tokenizers.load("unicode")
    assert tok.decode([tok.bos_id, 72, 105, tok.eos_id, tok.pad_id]) == "Hi"
    assert tok.decode([BYTE_BASE + 0xFF, 104]) == "\ufffdh"  # invalid UTF-8 from sampling
    assert tok.decode([BYTE_BASE + 0xF0, BYTE_BASE + 0x9F, 65]) == "\ufffdA"  # truncated sequence
    assert tok.decode([BYTE_BASE + 0xED, BYTE_BASE + 0xA0, BYTE_BASE + 0x80, BYTE_BASE + 0xFF]) == "\ud800\ufffd"
    assert tok.decode([tok.unk_id, 0xD800, -1, 70000, 66]) == "\ufffd\ufffdB"  # unk, unused slot, out of range
    rng = np.random.default_rng(0)
    assert isinstance(tok.decode(rng.integers(0, 65536, 5000)), str)
    assert isinstance(tok.decode(BYTE_BASE + rng.integers(0, 256, 5000)), str)


# ---------------------------------------------------------------- n-grams


def test_ngram_learning_is_deterministic_and_ranked(kjv_docs):
    a = unicode_ngrams.learn_ngrams(kjv_docs[:40], 500, 3)
    b = unicode_ngrams.learn_ngrams(list(kjv_docs[:40]), 500, 3)
    assert a == b and len(a) == 500 and len(set(a)) == 500
    assert all(2 <= len(g) <= 3 for g in a)
    assert {" th", "the", "and"} <= set(a[:20])
    # count x (length - 1): "ab" 4 x 1, "aba" and "bab" 2 x 2, "ba" 2 x 1; ties: longer, then code points
    assert unicode_ngrams.learn_ngrams(["abab", "abab", "xyz"], 10, 3) == ["aba", "bab", "ab", "ba"]
    assert unicode_ngrams.learn_ngrams(["ab", "ab"], 10, 4) == ["ab"]
    assert unicode_ngrams.learn_ngrams(["ab\n", "x"], 10, 3) == []  # n-grams seen once are not kept
    assert unicode_ngrams.learn_ngrams(["xa", "bxa", "b"], 10, 2) == ["xa"]  # "ab" only across documents
    with pytest.raises(UserError, match="max_n"):
        unicode_ngrams.learn_ngrams(["abc"], 10, 9)
    with pytest.raises(UserError, match="num_ngrams"):
        unicode_ngrams.learn_ngrams(["abc"], 9000, 3)


def test_kjv_compression(kjv_docs, kjv_tok):
    """8000 3-grams compress the KJV, held out and trained on, losslessly. (Encode speed is
    measured by benchmarks/unicode_tokenizer.py, not asserted here.)"""
    assert len(kjv_tok.ngrams) == 8000 and kjv_tok.max_len == 3
    val = "\n".join(KJV().documents("validation"))
    ids = kjv_tok.encode_np(val)
    assert len(val) / len(ids) > 2.5  # held-out chapters: at least 2.5 characters per token
    assert kjv_tok.decode(ids) == val
    text = "\n".join(kjv_docs)
    assert len(text) / len(kjv_tok.encode_np(text)) > 2.5
    assert len(tokenizers.load("unicode").encode_np(text)) == len(text)


def test_training_is_cached(kjv_docs, kjv_tok, uni_cache, monkeypatch):
    def never():
        raise AssertionError("texts read although the n-grams are cached")
        yield ""

    again = unicode_ngrams.train_unicode(never(), 8000, uni_cache, max_n=3, key="kjv-train")
    assert again.fingerprint() == kjv_tok.fingerprint()
    other = unicode_ngrams.train_unicode(kjv_docs[:5], 100, uni_cache, max_n=2)  # no key: keyed by the texts' hash
    assert len(other.ngrams) == 100 and other.max_len == 2
    assert unicode_ngrams.train_unicode(never(), 0, uni_cache).ngrams == ()
    monkeypatch.setattr(unicode_ngrams, "learn_ngrams", lambda *a, **k: pytest.fail("learned although cached"))
    assert unicode_ngrams.train_unicode(kjv_docs[:5], 100, uni_cache, max_n=2).fingerprint() == other.fingerprint()
    with pytest.raises(UserError, match="max_n"):
        unicode_ngrams.train_unicode(never(), 10, uni_cache, max_n=12)


def test_from_config(kjv_docs, tmp_path):
    import ml_collections

    calls = []

    def texts():
        calls.append(1)
        return iter(kjv_docs[:20])

    tok = tokenizers.from_config(ml_collections.ConfigDict({"kind": "unicode"}), texts, tmp_path)
    assert isinstance(tok, UnicodeTokenizer) and tok.ngrams == () and not calls
    cfg = ml_collections.ConfigDict({"kind": "unicode", "num_ngrams": 300, "max_n": 4})
    tok = tokenizers.from_config(cfg, texts, tmp_path, corpus_key="kjv20")
    assert calls == [1] and len(tok.ngrams) == 300 and tok.max_len == 4
    assert tokenizers.from_config(cfg, texts, tmp_path, corpus_key="kjv20").fingerprint() == tok.fingerprint()
    assert calls == [1]  # cached
    with pytest.raises(UserError, match="num_ngrams"):
        tokenizers.from_config({"kind": "unicode", "num_ngrams": 10**6}, texts, tmp_path)
    with pytest.raises(UserError, match="max_n"):
        tokenizers.from_config({"kind": "unicode", "num_ngrams": 10, "max_n": 1}, texts, tmp_path)


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("which", ["pure", "kjv"])
def test_save_and_load(which, kjv_tok, tmp_path):
    tok = tokenizers.load("unicode") if which == "pure" else kjv_tok
    path = tok.save(tmp_path / "run")
    saved = json.loads(path.read_text())
    assert saved["kind"] == "unicode" and saved["vocab_size"] == 65536 and saved["ngrams"] == list(tok.ngrams)
    for source in (tmp_path / "run", path):
        back = tokenizers.load(str(source))
        assert isinstance(back, UnicodeTokenizer) and back.fingerprint() == tok.fingerprint()
        text = "In the beginning \U0001F600\ud800\n"
        assert back.encode(text) == tok.encode(text) and back.decode(back.encode(text)) == text


def test_fingerprints_and_bad_files(kjv_tok, tmp_path):
    prints = {tokenizers.load(n).fingerprint() for n in ("char", "byte", "unicode")} | {kjv_tok.fingerprint()}
    assert len(prints) == 4
    assert UnicodeTokenizer(["ab"]).fingerprint() != UnicodeTokenizer(["ba"]).fingerprint()
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "unicode", "ngrams": ["a\ud800"]}))
    with pytest.raises(UserError, match="n-gram"):
        tokenizers.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "unicode", "format": 99}))
    with pytest.raises(UserError, match="format"):
        tokenizers.load(tmp_path)
    with pytest.raises(UserError, match="listed twice"):
        UnicodeTokenizer(["ab", "ab"])
