"""Tokenizers: round trips, specials, save/load for every kind, SentencePiece training and
its cache, and the errors a user can cause."""
import json

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from lexi import tokenizers
from lexi.errors import UserError
from lexi.tokenizers import ByteTokenizer, CharTokenizer, SentencePieceTokenizer, Tokenizer

ASCII_TEXT = st.text(st.characters(codec="ascii", exclude_characters="\x00\x02\x03"), max_size=300)
# Valid Unicode without U+2581, which SentencePiece uses for the space.
NO_SPACE_MARK = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\u2581"), max_size=200)


@pytest.fixture(scope="module")
def sp_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sp_cache")


@pytest.fixture(scope="module")
def sp_tok(kjv_docs, sp_cache):
    """A small unigram model on 60 chapters (about 0.2 MB): trains in well under a second."""
    return tokenizers.train_sentencepiece(kjv_docs[:60], 512, sp_cache, model_type="unigram")


# ---------------------------------------------------------------- char


@settings(max_examples=300, deadline=None)
@given(ASCII_TEXT)
def test_char_round_trips_ascii(text):
    tok = CharTokenizer()
    ids = tok.encode(text)
    assert ids == [ord(c) for c in text]
    assert tok.decode(ids) == text
    assert tok.encode_np(text).dtype == np.int32 and tok.encode_np(text).tolist() == ids
    assert tok.replaced_count == 0


def test_char_replaces_non_ascii_with_sub_and_counts():
    tok = CharTokenizer()
    assert tok.encode("a\u00e9b\U0001F600") == [97, 26, 98, 26]  # one SUB per character, astral included
    assert tok.replaced_count == 2
    tok.encode_np("\u4e2d\u6587")
    assert tok.replaced_count == 4


def test_char_specials_and_decode_skips_them():
    tok = CharTokenizer()
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id) == (128, 0, 2, 3)
    assert set(tok.special_ids) == {0, 2, 3}
    assert tok.decode([2, 72, 105, 3, 0, 0]) == "Hi"
    assert tok.decode(np.array([2, 10, 65])) == "\nA"


def test_char_encodes_the_kjv(kjv_docs):
    """The whole KJV, through the ASCII path and the non-ASCII one. (Their speed is measured by
    benchmarks/unicode_tokenizer.py, not asserted here.)"""
    text = "\n".join(kjv_docs)
    assert len(text) > 3_500_000
    tok = CharTokenizer()
    ids = tok.encode_np(text)
    assert len(ids) == len(text) and ids[:2].tolist() == [ord("I"), ord("n")]
    more = tok.encode_np(text + "\u00e9")
    assert np.array_equal(more[:-1], ids) and tok.replaced_count == 1


# ---------------------------------------------------------------- byte


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_byte_round_trips_any_text(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)), max_size=50))
def test_byte_round_trips_lone_surrogates(chars):
    text = "".join(chars)
    tok = ByteTokenizer()
    assert tok.decode(tok.encode(text)) == text


def test_byte_specials_and_invalid_bytes():
    tok = ByteTokenizer()
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id) == (259, 256, 257, 258)
    assert tok.decode([257, 104, 105, 258, 256]) == "hi"
    assert tok.decode([0xFF, 104]) == "\ufffdh"  # what a model may generate: replaced, never raises


# ---------------------------------------------------------------- sentencepiece


def test_sentencepiece_trained_specials_and_compression(sp_tok, kjv_docs):
    assert sp_tok.vocab_size == 512
    assert (sp_tok.pad_id, sp_tok.unk_id, sp_tok.bos_id, sp_tok.eos_id) == (0, 1, 2, 3)
    assert set(sp_tok.special_ids) == {0, 2, 3}
    text = kjv_docs[100]
    ids = sp_tok.encode(text)
    assert len(ids) < len(text) / 2  # subwords, not characters
    assert not set(ids) & set(sp_tok.special_ids)
    assert sp_tok.decode(ids) == text
    assert sp_tok.decode([2] + ids + [3, 0]) == text


@settings(max_examples=150, deadline=None)
@given(NO_SPACE_MARK)
def test_sentencepiece_byte_fallback_round_trips_arbitrary_text(sp_tok, text):
    assert sp_tok.decode(sp_tok.encode(text)) == text


def test_sentencepiece_lone_surrogates_become_replacement_chars(sp_tok):
    assert sp_tok.decode(sp_tok.encode("a\ud800b")) == "a\ufffdb"
    assert sp_tok.decode(sp_tok.encode_batch_np(["x\udfff", "y"])[0]) == "x\ufffd"


def test_sentencepiece_batch_encode_matches_single(sp_tok, kjv_docs):
    docs = kjv_docs[200:210]
    batch = sp_tok.encode_batch_np(docs)
    assert [b.tolist() for b in batch] == [sp_tok.encode(d) for d in docs]


def test_sentencepiece_cache_hit_does_not_retrain(kjv_docs, sp_cache, sp_tok, monkeypatch):
    def boom(**kw):
        raise AssertionError("retrained although the model is cached")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", boom)
    again = tokenizers.train_sentencepiece(kjv_docs[:60], 512, sp_cache, model_type="unigram")
    assert again.fingerprint() == sp_tok.fingerprint()
    with pytest.raises(AssertionError, match="retrained"):  # other texts are a different model
        tokenizers.train_sentencepiece(kjv_docs[:59], 512, sp_cache, model_type="unigram")


def test_sentencepiece_training_is_deterministic_and_keyed(kjv_docs, tmp_path):
    a = tokenizers.train_sentencepiece(kjv_docs[:30], 400, tmp_path / "a", model_type="bpe", key="corpus-x")
    b = tokenizers.train_sentencepiece(kjv_docs[:30], 400, tmp_path / "b", model_type="bpe")
    assert a.files() == b.files()  # same bytes from separate caches

    def never():
        raise AssertionError("texts read although the key was cached")
        yield ""

    c = tokenizers.train_sentencepiece(never(), 400, tmp_path / "a", model_type="bpe", key="corpus-x")
    assert c.fingerprint() == a.fingerprint()


def test_sentencepiece_vocab_too_small_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="at least 261"):
        tokenizers.train_sentencepiece(["some text"], 100, tmp_path)
    with pytest.raises(UserError, match="model_type"):
        tokenizers.train_sentencepiece(["some text"], 300, tmp_path, model_type="wordpiece")


def test_sentencepiece_without_bos_uses_eos_as_separator(kjv_docs, tmp_path):
    """The T5 layout: pad 0, eos 1, unk 2, no bos."""
    prefix = tmp_path / "t5like"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(kjv_docs[:20]), model_prefix=str(prefix), vocab_size=300,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    tok = tokenizers.load(str(prefix) + ".model")
    assert isinstance(tok, SentencePieceTokenizer)
    assert (tok.pad_id, tok.eos_id, tok.unk_id, tok.bos_id) == (0, 1, 2, 1)
    assert set(tok.special_ids) == {0, 1}
    assert tok.decode([1] + tok.encode("And God said") + [1, 0]) == "And God said"


# ---------------------------------------------------------------- load / save / registry


@pytest.mark.parametrize("name,cls", [("char", CharTokenizer), ("ascii", CharTokenizer), ("byte", ByteTokenizer)])
def test_load_by_name(name, cls):
    assert isinstance(tokenizers.load(name), cls)


@pytest.mark.parametrize("kind", ["char", "byte", "sentencepiece"])
def test_save_and_load_from_dir_and_json(kind, sp_tok, tmp_path):
    tok = sp_tok if kind == "sentencepiece" else tokenizers.load(kind)
    json_path = tok.save(tmp_path / "run")
    assert json_path == tmp_path / "run" / "tokenizer.json"
    saved = json.loads(json_path.read_text())
    assert saved["kind"] == kind and saved["vocab_size"] == tok.vocab_size and saved["bos_id"] == tok.bos_id
    (tmp_path / "run").rename(tmp_path / "moved")  # model files are referenced relatively
    for source in (tmp_path / "moved", tmp_path / "moved" / "tokenizer.json"):
        back = tokenizers.load(str(source))
        assert type(back) is type(tok) and back.fingerprint() == tok.fingerprint()
        assert back.encode("In the beginning\n") == tok.encode("In the beginning\n")
        assert back.special_ids == tok.special_ids


def test_load_sentencepiece_model_file_and_from_config(sp_tok, tmp_path):
    sp_tok.save(tmp_path)
    model = tmp_path / "sentencepiece.model"
    assert tokenizers.load(str(model)).fingerprint() == sp_tok.fingerprint()
    renamed = tmp_path / "spiece.bin"  # a model under another suffix is still recognised
    renamed.write_bytes(model.read_bytes())
    assert tokenizers.load(renamed).fingerprint() == sp_tok.fingerprint()
    cfg = {"kind": "sentencepiece", "vocab_size": 999, "model_type": "unigram", "model_file": str(model)}
    tok = tokenizers.from_config(cfg, lambda: pytest.fail("texts read although model_file is set"), tmp_path)
    assert tok.fingerprint() == sp_tok.fingerprint()


def test_fingerprints_differ_between_tokenizers(sp_tok):
    prints = {tokenizers.load("char").fingerprint(), tokenizers.load("byte").fingerprint(), sp_tok.fingerprint()}
    assert len(prints) == 3


def test_from_config_builds_each_kind(kjv_docs, tmp_path):
    import ml_collections

    calls = []

    def texts():
        calls.append(1)
        return iter(kjv_docs[:20])

    for kind, cls in (("char", CharTokenizer), ("byte", ByteTokenizer)):
        assert isinstance(tokenizers.from_config(ml_collections.ConfigDict({"kind": kind}), texts, tmp_path), cls)
    assert not calls
    cfg = ml_collections.ConfigDict({"kind": "sentencepiece", "vocab_size": 400, "model_type": "bpe", "model_file": ""})
    tok = tokenizers.from_config(cfg, texts, tmp_path)
    assert calls == [1] and tok.vocab_size == 400 and tok.bos_id == 2
    with pytest.raises(UserError, match="kind 'wordlevel' is unknown"):
        tokenizers.from_config({"kind": "wordlevel"}, texts, tmp_path)


def test_register_new_kind(tmp_path):
    class Upper(Tokenizer):
        name, vocab_size, pad_id, bos_id, eos_id, special_ids = "upper", 130, 128, 129, 129, (128, 129)

        def encode(self, text):
            return [ord(c) for c in text.upper()]

        def decode(self, ids):
            return "".join(chr(i) for i in ids if i < 128)

        def record(self):
            return {"kind": "upper"}

    tokenizers.register("upper", lambda desc, base: Upper(), "upper")
    assert tokenizers.load("upper").encode("ab") == [65, 66]
    Upper().save(tmp_path)
    assert isinstance(tokenizers.load(tmp_path), Upper)
    assert isinstance(tokenizers.from_config({"kind": "upper"}, lambda: [], tmp_path), Upper)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match=r"unknown tokenizer 'chars'.*'ascii', 'byte', 'char'"):
        tokenizers.load("chars")
    with pytest.raises(UserError, match="does not exist"):
        tokenizers.load(str(tmp_path / "missing.model"))
    with pytest.raises(UserError, match="holds no tokenizer.json"):
        tokenizers.load(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("just some text")
    with pytest.raises(UserError, match="is not a tokenizer"):
        tokenizers.load(notes)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "nope"}))
    with pytest.raises(UserError, match="not a lexi tokenizer file"):
        tokenizers.load(tmp_path)
    bad_model = tmp_path / "broken.model"
    bad_model.write_bytes(b"\x00\x01garbage")
    with pytest.raises(UserError, match="is not a SentencePiece model"):
        tokenizers.load(bad_model)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "sentencepiece"}))
    with pytest.raises(UserError, match="needs a model file"):
        tokenizers.load(tmp_path)
    with pytest.raises(UserError, match="needs a model file"):
        tokenizers.load("sentencepiece")


# ---------------------------------------------------------------- every tokenizer

@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_every_tokenizer_gives_ids_in_range_for_any_text(sp_tok, text):
    for tok in (CharTokenizer(), ByteTokenizer(), sp_tok):
        ids = np.asarray(tok.encode(text), dtype=np.int64)
        assert ids.size == 0 or (ids.min() >= 0 and ids.max() < tok.vocab_size)
        assert not set(ids.tolist()) & set(tok.special_ids)  # text never produces a special token
        assert isinstance(tok.decode(ids.tolist()), str)


def test_size_from_config_matches_the_built_tokenizer_without_a_corpus(sp_tok, tmp_path):
    """`lexi compile` and the benchmarks size a model from the config alone."""
    sp_tok.save(tmp_path / "sp")
    model_file = next(p for p in (tmp_path / "sp").iterdir() if p.suffix == ".model")
    for cfg in ({"kind": "char"}, {"kind": "byte"}, {"kind": "unicode", "num_ngrams": 500},
                {"kind": "sentencepiece", "model_file": str(model_file)}):
        built = tokenizers.load(str(model_file)) if cfg["kind"] == "sentencepiece" else \
            tokenizers.from_config({**cfg, "num_ngrams": 0}, lambda: [], tmp_path)
        assert tokenizers.size_from_config(cfg, tmp_path) == (built.vocab_size, tuple(built.special_ids)), cfg
    # one still to be trained: its configured size, with the specials lexi trains (as sp_tok has)
    assert tokenizers.size_from_config({"kind": "sentencepiece", "vocab_size": 512}, tmp_path) == \
        (512, tuple(sp_tok.special_ids))


def test_corpus_chars_holds_exactly_the_train_characters(kjv_docs, tmp_path):
    """KJV's characters and four specials; a round trip of the corpus; text with other
    characters is refused, naming them; saved and loaded like any run tokenizer."""
    from lexi.tokenizers import CorpusCharTokenizer

    tok = tokenizers.from_config({"kind": "corpus_chars"}, lambda: iter(kjv_docs), tmp_path)
    assert isinstance(tok, CorpusCharTokenizer)
    used = set("".join(kjv_docs))
    assert tok.vocab_size == len(used) + 4 and set(tok.chars) == used and tok.vocab_size < 80
    ids = tok.encode(kjv_docs[0])
    assert tok.decode(ids) == kjv_docs[0] and min(ids) >= 4
    assert sorted(ids) == sorted(tok.encode(kjv_docs[0][::-1]))  # one id per character
    assert tok.replaced_count == 0
    assert tok.missing("aé\x00é>a") == "é\x00>"
    with pytest.raises(UserError, match=r"3 character\(s\) outside the corpus_chars vocabulary .*'é' \(U\+00E9\)"):
        tok.encode("aé\x00é>a")
    assert tok.replaced_count == 0
    tok.save(tmp_path)
    again = tokenizers.load(tmp_path)
    assert again.encode(kjv_docs[1]) == tok.encode(kjv_docs[1]) and again.fingerprint() == tok.fingerprint()
    with pytest.raises(UserError, match="built from a corpus"):
        tokenizers.load("corpus_chars")
