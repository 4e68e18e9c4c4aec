"""ZeTT vocabularies: every tokenizer kind in byte form, Hugging Face tokenizer.json files (read
as JSON and as the `hf` tokenizer kind), and target tokens decomposed into base pieces."""
import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexi import tokenizers
from lexi.errors import UserError
from lexi.tokenizers import ByteTokenizer, CharTokenizer, UnicodeTokenizer
from lexi.tokenizers import unicode as uni
from lexi.tokenizers.hf import HFTokenizer
from lexi.tokenizers.hf_pieces import BYTE_ALPHABET, read_tokenizer_json
from lexi.tokenizers.token_bytes import ByteVocab, make_vocab
from lexi.zett.vocab import decompose

SPACE = "\u2581"
EXTRA = ["naïve café — “quotes” 中文 Ωmega 😀 señor\n\tdef f(x): return x**2  # code\n"] * 3
TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "naïve café — 中文 😀 señor's Ωmega\n\tdef f(x): return x**2\n")


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def sp_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("zett_vocab_sp")


@pytest.fixture(scope="module")
def sp_base(kjv_docs, sp_cache):
    """A lexi-trained unigram model (dummy prefix on, "▁" for spaces, byte fallback)."""
    return tokenizers.train_sentencepiece(kjv_docs[:40] + EXTRA, 700, sp_cache)


def mid_text_oracle(tok):
    """t -> the pieces of t right after a piece boundary inside a text, found independently of
    lexi/zett/vocab.py: encode P + t with the unchanged model, where P is a letter the model lacks
    (so byte fallback must cut after it), and drop the pieces of P alone."""
    sp, p = tok._sp, "\ua000"
    head = sp.encode(p)
    assert sp.id_to_piece(head[-1]) == "<0x80>"  # P went to byte pieces: a forced boundary after it

    def encode(t: str) -> list[int]:
        ids = sp.encode(p + t)
        assert ids[: len(head)] == head
        return ids[len(head):]

    return encode


@pytest.fixture(scope="module")
def hf_lib():
    return pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def hf_docs(kjv_docs):
    return kjv_docs[:6] + EXTRA


@pytest.fixture(scope="module")
def hf_byte_level(hf_lib, hf_docs):
    """GPT-2 style: byte-level BPE, <|endoftext|> its only special."""
    t = hf_lib.Tokenizer(hf_lib.models.BPE())
    t.pre_tokenizer = hf_lib.pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = hf_lib.decoders.ByteLevel()
    t.train_from_iterator(hf_docs, hf_lib.trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=hf_lib.pre_tokenizers.ByteLevel.alphabet()))
    return t


@pytest.fixture(scope="module")
def hf_unigram(hf_lib, hf_docs):
    """Unigram with Metaspace "▁" and a template post-processor: <s> $A </s>."""
    t = hf_lib.Tokenizer(hf_lib.models.Unigram())
    t.pre_tokenizer = hf_lib.pre_tokenizers.Metaspace()
    t.decoder = hf_lib.decoders.Metaspace()
    t.train_from_iterator(hf_docs, hf_lib.trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "<unk>", "<s>", "</s>"], unk_token="<unk>"))
    t.post_processor = hf_lib.processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2),
                                                                                                ("</s>", 3)])
    return t


@pytest.fixture(scope="module")
def hf_byte_fallback(hf_lib, hf_unigram):
    """Llama-2 style: "<0xAB>" byte pieces, Prepend/Replace normalizer, Replace+ByteFallback decoder, no eos
    in the template (bos <s> only)."""
    vocab = [tuple(p) for p in json.loads(hf_unigram.to_str())["model"]["vocab"]]
    vocab = vocab[:4] + [(f"<0x{b:02X}>", 0.0) for b in range(256)] + vocab[4:]
    t = hf_lib.Tokenizer(hf_lib.models.Unigram(vocab, unk_id=1, byte_fallback=True))
    n, d = hf_lib.normalizers, hf_lib.decoders
    t.normalizer = n.Sequence([n.Prepend(SPACE), n.Replace(" ", SPACE)])
    t.decoder = d.Sequence([d.Replace(SPACE, " "), d.ByteFallback(), d.Fuse(), d.Strip(" ", 1, 0)])
    t.add_special_tokens(["<pad>", "<unk>", "<s>", "</s>"])
    t.post_processor = hf_lib.processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return t


@pytest.fixture(scope="module")
def hf_wordpiece(hf_lib, hf_docs):
    """BERT style: lowercasing, "##" continuations, [CLS] $A [SEP]."""
    t = hf_lib.Tokenizer(hf_lib.models.WordPiece(unk_token="[UNK]"))
    t.normalizer = hf_lib.normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer = hf_lib.pre_tokenizers.BertPreTokenizer()
    t.decoder = hf_lib.decoders.WordPiece()
    t.train_from_iterator(hf_docs, hf_lib.trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    t.post_processor = hf_lib.processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return t


def raw(t) -> bytes:
    return t.to_str().encode("utf-8")


def row(d, i):
    return d.ids_VxL[i, : d.lengths_V[i]].tolist()


def joined(vocab: ByteVocab, ids) -> bytes:
    return b"".join(vocab.pieces[j] for j in ids if j >= 0)


# ---------------------------------------------------------------------------------------------
# byte vocabularies of lexi's kinds


def test_byte_vocab_char_byte_unicode():
    c = (CharTokenizer()).token_bytes()
    assert len(c) == 128 and c.roles == {0: "pad", 2: "bos", 3: "eos", 26: "unk"}
    assert c.pieces[65] == b"A" and c.pieces[10] == b"\n" and c.pieces[1] == b"\x01" and c.pieces[2] == b""
    assert c.special_mask().sum() == 4 and c.special_mask()[26]
    b = (ByteTokenizer()).token_bytes()
    assert len(b) == 259 and b.pieces[0xE2] == b"\xe2" and b.roles == {256: "pad", 257: "bos", 258: "eos"}
    u = (UnicodeTokenizer(["th", "the"])).token_bytes()
    assert len(u) == uni.VOCAB_SIZE and u.pieces[ord("é")] == "é".encode() and u.pieces[0xFFFD] == "\ufffd".encode()
    assert u.pieces[uni.NGRAM_IDS[1]] == b"the" and u.pieces[uni.BYTE_BASE + 0xAB] == b"\xab"
    assert u.roles[uni.PAD_ID] == "pad" and u.roles[uni.UNK_ID] == "unk" and u.roles[int(uni.NGRAM_IDS[2])] == "control"
    assert len(u.roles) == 4 + uni.MAX_NGRAMS - 2


def test_byte_vocab_sentencepiece(sp_base):
    v = sp_base.token_bytes()
    sp = sp_base._sp
    assert len(v) == sp_base.vocab_size and v.roles == {0: "pad", 1: "unk", 2: "bos", 3: "eos"}
    assert v.pieces[sp.piece_to_id(SPACE + "the")] == b" the" and v.pieces[sp.piece_to_id(SPACE)] == b" "
    assert v.pieces[sp.piece_to_id("<0xE2>")] == b"\xe2" and v.pieces[sp.piece_to_id("<0x41>")] == b"A"
    anchor = sp.piece_to_id("a")
    for i in range(4 + 256, len(v)):  # every normal piece: what it adds after another piece when decoded
        assert sp_base.decode([anchor, i]).encode()[1:] == v.pieces[i], sp.id_to_piece(i)


def test_byte_vocab_falls_back_to_decoding_each_id():
    class Upper(tokenizers.Tokenizer):
        name, vocab_size, pad_id, bos_id, eos_id, special_ids = "upper-test", 130, 128, 129, 129, (128, 129)
        encode = record = None

        def decode(self, ids):
            return "".join(chr(i).upper() for i in ids if i < 128)

    v = (Upper()).token_bytes()
    assert v.pieces[97] == b"A" and v.roles == {128: "pad", 129: "eos"}


def test_byte_vocab_rejects_bad_roles():
    with pytest.raises(UserError, match="roles"):
        ByteVocab((b"a",), {0: "start"})
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        ByteVocab((b"a",), {3: "pad"})


# ---------------------------------------------------------------------------------------------
# decomposition onto lexi's context-free kinds


def test_decompose_char_base_exact():
    target = ByteVocab((b"", b"a", b"ab", b" the", b"\n", b"\xe9", b"x" * 10, b"", b"\x02", b"caf\xc3\xa9", b""),
                       {0: "pad", 10: "eos"})
    base = CharTokenizer()
    d = decompose(target, base, length=4)
    assert d.ids_VxL.dtype == np.int32 and d.ids_VxL.shape == (11, 4)
    assert d.ids_VxL.tolist() == [
        [0, -1, -1, -1],  # pad -> pad
        [97, -1, -1, -1],
        [97, 98, -1, -1],
        [32, 116, 104, 101],
        [10, -1, -1, -1],
        [26, -1, -1, -1],  # not UTF-8, no byte ids: U+FFFD, which the char tokenizer SUBs
        [120, 120, 120, 120],  # cut
        [26, -1, -1, -1],  # an empty token: the base's unk
        [26, -1, -1, -1],  # STX in text is SUBbed, as the tokenizer does
        [99, 97, 102, 26],
        [3, -1, -1, -1],  # eos -> eos
    ]
    assert d.lengths_V.tolist() == [1, 1, 2, 4, 1, 1, 4, 1, 1, 4, 1]
    assert d.full_lengths_V.tolist() == [1, 1, 2, 4, 1, 1, 10, 1, 1, 4, 1]
    assert base.replaced_count == 0  # decomposing is not corpus encoding


def test_a_byte_without_a_text_twin_is_text(sp_base):
    """The byte tokenizer's b"a" and a bytes-only vocabulary's "<0x61>" are how those tokenizers
    write "a": onto a base with an "a" piece they get that piece, not the base's "<0x61>" (a
    fallback row the base never trains when every letter is a piece). A byte that is no text on
    its own stays a fallback; so does "<0x2C>" where "," is also a piece."""
    sp = sp_base._sp
    b = (ByteTokenizer()).token_bytes()
    assert b.byte_ids == frozenset(range(0x80, 0x100))
    for lexical in (True, False):
        d = decompose(b, sp_base, length=4, lexical=lexical)
        assert row(d, ord("a")) == [sp.piece_to_id("a")] and row(d, ord(",")) == [sp.piece_to_id(",")]
        assert row(d, 0xE2) == [sp.piece_to_id("<0xE2>")]
    v = make_vocab([bytes([i]) for i in range(256)] + [b"th"], {}, range(256))  # a bytes-only vocabulary
    assert v.byte_ids == frozenset(range(0x80, 0x100))
    twin = make_vocab([b",", b",", b"\xe2"], {}, [1, 2])
    assert twin.byte_ids == frozenset({1, 2})


def test_decompose_byte_and_unicode_bases():
    target = ByteVocab((b" the", b"\xe2", b" \xe2\x80", "😀".encode(), b"", b""), {4: "bos", 5: "unk"})
    d = decompose(target, ByteTokenizer(), length=6)
    assert [row(d, i) for i in range(6)] == [[32, 116, 104, 101], [0xE2], [32, 0xE2, 0x80], list("😀".encode()),
                                            [257], [256]]  # unk: the byte tokenizer has none, so pad
    u = UnicodeTokenizer(["th", "the"])
    d = decompose(target, u, length=6)
    fb = uni.BYTE_BASE
    assert [row(d, i) for i in range(6)] == [[32, int(uni.NGRAM_IDS[1])], [fb + 0xE2], [32, fb + 0xE2, fb + 0x80],
                                            [fb + b for b in "😀".encode()], [uni.BOS_ID], [uni.UNK_ID]]
    assert u.fallback_count == 0


def test_decompose_special_roles():
    target = ByteVocab((b"", b"", b"", b"", b""), {0: "pad", 1: "bos", 2: "eos", 3: "unk", 4: "control"})
    assert decompose(target, CharTokenizer(), 2).ids_VxL[:, 0].tolist() == [0, 2, 3, 26, 26]
    assert decompose(target, ByteTokenizer(), 2).ids_VxL[:, 0].tolist() == [256, 257, 258, 256, 256]
    with pytest.raises(UserError, match="length >= 1"):
        decompose(target, CharTokenizer(), 0)


# ---------------------------------------------------------------------------------------------
# decomposition onto SentencePiece


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_identity_rule(kjv_docs, sp_cache, model_type):
    """Target == base. With the shared-token rule (the default) every row is its own id. Without it
    (FVT's plain rule): a normal piece decomposes into the model's pieces of its text right
    after a piece boundary inside a text (the model with add_dummy_prefix off); a byte piece
    (also "<0x2C>", whose byte is text) into itself; a special into itself. Hence row i == [i]
    exactly for the pieces the model gives back for their own text mid-text."""
    base = tokenizers.train_sentencepiece(kjv_docs[:40] + EXTRA, 700, sp_cache, model_type=model_type)
    oracle = mid_text_oracle(base)
    v = base.token_bytes()
    ident = decompose(v, base, length=8)
    assert ident.ids_VxL[:, 0].tolist() == list(range(len(v))) and (ident.lengths_V == 1).all()
    d = decompose(v, base, length=8, lexical=False)
    same = 0
    for i, piece in enumerate(v.pieces):
        if i in v.roles or i in v.byte_ids:
            assert row(d, i) == [i]
            continue
        want = oracle(piece.decode("utf-8"))
        assert row(d, i) == want[:8] and d.full_lengths_V[i] == len(want), (base._sp.id_to_piece(i), want)
        same += want == [i]
    text = {p for i, p in enumerate(v.pieces) if i not in v.roles and i not in v.byte_ids}
    assert all(v.pieces[i][0] >= 0x80 or v.pieces[i] in text for i in v.byte_ids)
    assert len(v.byte_ids) >= 128 and v.pieces[base._sp.piece_to_id(",")] in text
    normal = len(v) - len(v.roles) - len(v.byte_ids)
    assert same >= 0.8 * normal  # most pieces are their own decomposition


def test_sentencepiece_word_initial_vs_internal(sp_base):
    sp = sp_base._sp
    target = ByteVocab((b" the", b"the", b" and", b"and", b"\n", b"  "), {})
    d = decompose(target, sp_base)
    oracle = mid_text_oracle(sp_base)
    assert row(d, 0) == [sp.piece_to_id(SPACE + "the")] and row(d, 2) == [sp.piece_to_id(SPACE + "and")]
    assert row(d, 1) == oracle("the") and row(d, 3) == oracle("and")
    assert sp.id_to_piece(row(d, 1)[0]) != SPACE + "the" and not sp.id_to_piece(row(d, 1)[0]).startswith(SPACE)
    assert sp.encode("the") == [sp.piece_to_id(SPACE + "the")]  # what encoding alone would have given
    assert row(d, 4) == oracle("\n") and row(d, 5) == oracle("  ")


def test_sentencepiece_bytes_that_are_not_utf8(sp_base):
    sp = sp_base._sp
    target = ByteVocab((b"\xe2", b" \xe2\x80", b"th\xff", b"\xed\xa0\x80"), {})
    d = decompose(target, sp_base)
    byte = lambda b: sp.piece_to_id(f"<0x{b:02X}>")  # noqa: E731
    assert row(d, 0) == [byte(0xE2)]
    assert row(d, 1) == [sp.piece_to_id(SPACE), byte(0xE2), byte(0x80)]
    assert row(d, 2) == mid_text_oracle(sp_base)("th") + [byte(0xFF)]
    assert row(d, 3) == [byte(0xED), byte(0xA0), byte(0x80)]  # a lone surrogate's bytes


SOURCE = TEXT.encode("utf-8")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SOURCE) - 1), st.integers(1, 16)), min_size=1, max_size=30))
def test_rows_concatenate_to_the_token(sp_base, spans):
    """Any target vocabulary of byte substrings (partial characters included): each row's base
    pieces (uncut) put back together are the token's bytes, for every base that can say them all."""
    pieces = tuple(SOURCE[a:a + n] for a, n in spans)
    target = ByteVocab(pieces + (b"",), {len(pieces): "eos"})
    for base in (sp_base, ByteTokenizer(), UnicodeTokenizer(["th", "the", "an", "ea"])):
        v = base.token_bytes()
        d = decompose(target, base, length=64)
        assert (d.full_lengths_V <= 64).all()
        for i, p in enumerate(pieces):
            assert joined(v, d.ids_VxL[i]) == p, (base.name, p)
    ascii_pieces = tuple(p for p in pieces if p.isascii() and not set(p) & {0, 2, 3})
    d = decompose(ByteVocab(ascii_pieces, {}), CharTokenizer(), length=64)
    assert [joined((CharTokenizer()).token_bytes(), r) for r in d.ids_VxL] == list(ascii_pieces)


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json: read as JSON


def test_byte_alphabet_matches_tokenizers(hf_lib):
    assert set(BYTE_ALPHABET) == set(hf_lib.pre_tokenizers.ByteLevel.alphabet())
    assert sorted(BYTE_ALPHABET.values()) == list(range(256)) and BYTE_ALPHABET["\u0120"] == 0x20  # "Ġ" is a space


def test_read_byte_level_bpe(hf_byte_level):
    v = read_tokenizer_json(raw(hf_byte_level))
    assert len(v) == hf_byte_level.get_vocab_size() and v.roles == {0: "eos"}
    partial = 0
    for i in range(1, len(v)):
        text = hf_byte_level.decode([i])
        if "\ufffd" in text:  # not UTF-8 alone: the bytes must at least not be text
            partial += 1
            with pytest.raises(UnicodeDecodeError):
                v.pieces[i].decode("utf-8")
        else:
            assert v.pieces[i] == text.encode("utf-8"), hf_byte_level.id_to_token(i)
    assert partial > 100  # the single bytes 0x80-0xFF and partial characters


def _mid_text(t, anchor: int, i: int) -> str:
    """What id i adds after another token when decoded (no start-of-text space stripping)."""
    return t.decode([anchor, i])[len(t.decode([anchor])):]


def test_read_unigram_metaspace(hf_unigram):
    v = read_tokenizer_json(raw(hf_unigram))
    assert v.roles == {0: "pad", 1: "unk", 2: "bos", 3: "eos"}
    anchor = hf_unigram.token_to_id("a")
    assert v.pieces[hf_unigram.token_to_id(SPACE + "the")] == b" the"
    for i in range(4, len(v)):
        assert v.pieces[i] == _mid_text(hf_unigram, anchor, i).encode(), hf_unigram.id_to_token(i)


def test_read_byte_fallback(hf_byte_fallback, tmp_path):
    path = tmp_path / "llama.json"
    path.write_bytes(raw(hf_byte_fallback))
    v = read_tokenizer_json(path)
    assert v.roles == {0: "pad", 1: "unk", 2: "bos", 3: "eos"}
    assert v.pieces[4 + 0xAB] == b"\xab" and v.pieces[4 + 0x41] == b"A"
    anchor = hf_byte_fallback.token_to_id("a")
    for i in range(4 + 128, len(v)):
        text = _mid_text(hf_byte_fallback, anchor, i)
        assert v.pieces[i] == text.encode() or (i < 4 + 256 and text == "\ufffd"), hf_byte_fallback.id_to_token(i)


def test_read_wordpiece(hf_wordpiece):
    """Continuations lose "##"; word-initial pieces carry no space (the documented limitation)."""
    v = read_tokenizer_json(raw(hf_wordpiece).decode("utf-8").encode())
    assert v.roles == {0: "pad", 1: "unk", 2: "bos", 3: "eos", 4: "control"}
    anchor = hf_wordpiece.token_to_id("a")
    for i in range(5, len(v)):
        text = _mid_text(hf_wordpiece, anchor, i)
        assert v.pieces[i] == text.removeprefix(" ").encode(), hf_wordpiece.id_to_token(i)
    assert any(hf_wordpiece.id_to_token(i).startswith("##") for i in range(len(v)))


def test_read_tokenizer_json_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_tokenizer_json(tmp_path / "missing.json")
    with pytest.raises(UserError, match="not JSON"):
        read_tokenizer_json(b"\x00garbage")
    with pytest.raises(UserError, match="no \"model\""):
        read_tokenizer_json(b'{"kind": "char"}')
    with pytest.raises(UserError, match="model type 'CharBPE' is not supported"):
        read_tokenizer_json(b'{"model": {"type": "CharBPE"}}')


def test_read_tokenizer_json_without_the_package(hf_byte_level, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers -> ImportError
    assert len(read_tokenizer_json(raw(hf_byte_level))) == 600
    with pytest.raises(UserError, match=r'^Hugging Face tokenizer files need .*: pip install "lexi\[hf\]"$'):
        HFTokenizer(raw(hf_byte_level))


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json: the hf tokenizer kind


def test_hf_tokenizer_ids(hf_byte_level, hf_unigram, hf_byte_fallback, hf_wordpiece):
    gpt2 = HFTokenizer(raw(hf_byte_level))  # no bos, pad or unk: all fall back to <|endoftext|>
    assert (gpt2.bos_id, gpt2.eos_id, gpt2.pad_id, gpt2.unk_id, gpt2.special_ids) == (0, 0, 0, None, (0,))
    uni_ = HFTokenizer(raw(hf_unigram))
    assert (uni_.pad_id, uni_.unk_id, uni_.bos_id, uni_.eos_id, uni_.special_ids) == (0, 1, 2, 3, (0, 1, 2, 3))
    llama = HFTokenizer(raw(hf_byte_fallback))  # eos found by name, bos by the template
    assert (llama.bos_id, llama.eos_id, llama.vocab_size) == (2, 3, hf_byte_fallback.get_vocab_size())
    bert = HFTokenizer(raw(hf_wordpiece))
    assert (bert.bos_id, bert.eos_id, bert.pad_id, bert.unk_id, bert.special_ids) == (2, 3, 0, 1, (0, 1, 2, 3, 4))
    for tok in (gpt2, uni_, llama, bert):  # byte_vocab agrees with the tokenizer on what is special
        assert set(tok.token_bytes().roles) == set(tok.special_ids) | {tok.unk_id} - {None}


def test_hf_tokenizer_round_trips(hf_byte_level, hf_byte_fallback, tmp_path):
    gpt2 = HFTokenizer(raw(hf_byte_level))
    ids = gpt2.encode(TEXT)
    assert gpt2.decode(ids) == TEXT and gpt2.decode([0, *ids, 0]) == TEXT and 0 not in ids
    assert [a.tolist() for a in gpt2.encode_batch_np([TEXT, "", "a b"])] == [ids, [], gpt2.encode("a b")]
    assert gpt2.encode_np("lone \ud800 surrogate").dtype == np.int32  # replaced, not raised
    llama = HFTokenizer(raw(hf_byte_fallback))
    english = "In the beginning God created the heaven and the earth."
    assert llama.decode(llama.encode(english)) == english and llama.bos_id not in llama.encode(english)


def test_hf_tokenizer_save_and_load(hf_byte_level, tmp_path):
    tok = HFTokenizer(raw(hf_byte_level))
    hf_file = tmp_path / "downloaded" / "tokenizer.json"  # as in a Hugging Face model directory
    hf_file.parent.mkdir()
    hf_file.write_bytes(raw(hf_byte_level))
    for source in (hf_file, hf_file.parent):
        again = tokenizers.load(source)
        assert isinstance(again, HFTokenizer) and again.fingerprint() == tok.fingerprint()
    run = tmp_path / "run"
    tok.save(run)
    saved = json.loads((run / "tokenizer.json").read_text())
    assert saved["kind"] == "hf" and saved["model_file"] == "hf_tokenizer.json" and saved["eos_id"] == 0
    assert (run / "hf_tokenizer.json").read_bytes() == raw(hf_byte_level)
    again = tokenizers.load(run)
    assert again.record() == tok.record() and again.encode(TEXT) == tok.encode(TEXT)
    assert again.record()["model_sha256"] == tok.record()["model_sha256"] != HFTokenizer(
        raw(hf_byte_level).replace(b'"version"', b' "version"')).record()["model_sha256"]


def test_hf_tokenizer_errors(tmp_path, hf_lib):
    broken = tmp_path / "tokenizer.json"
    broken.write_text(json.dumps({"model": {"type": "BPE", "vocab": 3}}))
    with pytest.raises(UserError, match="is not a valid Hugging Face tokenizer"):
        tokenizers.load(broken)
    no_docs = hf_lib.Tokenizer(hf_lib.models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    with pytest.raises(UserError, match="neither a bos nor an eos"):
        HFTokenizer(raw(no_docs))
    with pytest.raises(UserError, match="does not exist"):
        HFTokenizer(tmp_path / "nope.json")
    with pytest.raises(UserError, match="needs a model file"):
        tokenizers.load("hf")
    (tmp_path / "tokenizer.json").write_text(json.dumps({"hello": 1}))  # neither lexi's nor Hugging Face's
    with pytest.raises(UserError, match="not a lexi tokenizer file"):
        tokenizers.load(tmp_path)


# ---------------------------------------------------------------------------------------------
# decomposition onto Hugging Face bases


def test_decompose_onto_byte_level_bpe(hf_byte_level, sp_base):
    base = HFTokenizer(raw(hf_byte_level))
    bv = base.token_bytes()
    d = decompose(bv, base)
    single = (d.lengths_V == 1) & (d.ids_VxL[:, 0] == np.arange(len(bv)))
    assert single[0] and single.mean() > 0.95  # itself: nearly every token is its own decomposition
    target = sp_base.token_bytes()
    d = decompose(target, base, length=64)
    for i, p in enumerate(target.pieces):  # lossless, "▁" pieces and byte pieces included
        assert joined(bv, d.ids_VxL[i]) == p or i in target.roles
    assert [row(d, i) for i in range(4)] == [[0], [0], [0], [0]]  # pad, unk, bos, eos: all <|endoftext|>
    d = decompose(ByteVocab((b" the", b"the"), {}), base)
    assert row(d, 0) == base.encode(" the") == [hf_byte_level.token_to_id("\u0120the")]
    assert joined(bv, row(d, 1)) == b"the"


def test_decompose_onto_metaspace_bases(hf_unigram, hf_byte_fallback):
    """The start-of-text "▁" (Metaspace prepend_scheme, Llama's Prepend normalizer) is off: "the"
    gets the pieces it has after a boundary inside a word, " the" those after a space."""
    for t in (hf_unigram, hf_byte_fallback):
        base = HFTokenizer(raw(t))
        head = t.encode("\ua000", add_special_tokens=False).ids  # P: a letter the model lacks (unk)
        d = decompose(ByteVocab((b" the", b"the", b"eth", b"\xe2"), {}), base)
        assert row(d, 0) == [t.token_to_id(SPACE + "the")] == base.encode("the")  # "the" at a text's start
        for i, text in ((1, "the"), (2, "eth")):
            assert row(d, i) == t.encode("\ua000" + text, add_special_tokens=False).ids[len(head):]
            assert not t.id_to_token(row(d, i)[0]).startswith(SPACE)
    assert row(d, 3) == [t.token_to_id("<0xE2>")]  # the byte-fallback base has byte pieces


def test_decompose_onto_hand_written_legacy_file(hf_lib):
    """An older file: Metaspace with add_prefix_space and no prepend_scheme, only </s>, no unk."""
    vocab = [["</s>", 0.0], [SPACE + "the", -1.0], ["th", -2.5], ["t", -2.0], ["h", -2.0], ["e", -2.0], [SPACE, -2.0]]
    eos = {"id": 0, "content": "</s>", "special": True, "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": False}
    data = {"version": "1.0", "added_tokens": [eos],
            "pre_tokenizer": {"type": "Metaspace", "replacement": SPACE, "add_prefix_space": True},
            "decoder": {"type": "Metaspace", "replacement": SPACE, "add_prefix_space": True},
            "model": {"type": "Unigram", "unk_id": None, "vocab": vocab}}
    v = read_tokenizer_json(json.dumps(data).encode())
    assert v.pieces == (b"", b" the", b"th", b"t", b"h", b"e", b" ") and v.roles == {0: "eos"}
    base = HFTokenizer(json.dumps(data).encode())
    assert (base.bos_id, base.eos_id, base.pad_id, base.unk_id) == (0, 0, 0, None) and base.encode("the") == [1]
    d = decompose(ByteVocab((b"the", b" the", b""), {2: "unk"}), base)
    assert [row(d, i) for i in range(3)] == [[2, 5], [1], [0]]  # unk: none, so pad (= eos here)


def test_decompose_onto_wordpiece(hf_wordpiece):
    """WordPiece has no mid-word form for a token alone: every token is encoded as a word start
    (the documented limitation)."""
    base = HFTokenizer(raw(hf_wordpiece))
    d = decompose(ByteVocab((b"the", b" the", b"\xe2", b"beg"), {}), base)
    assert row(d, 0) == row(d, 1) == base.encode("the") == [hf_wordpiece.token_to_id("the")]
    assert row(d, 2) == [base.unk_id]  # no byte pieces: U+FFFD, which BERT's normalizer drops: nothing, so unk
    assert row(d, 3) == base.encode("beg")
