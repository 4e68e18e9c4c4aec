"""ZeTT's host side: substring counts, sampled vocabularies, in-memory Unigram models, batches."""
import collections
import re

import numpy as np
import pytest

from lexi.errors import UserError
from lexi.zett import sampler as zs
from lexi.zett import substrings, unigram

PRETOKEN = re.compile(r" ?\S+|[^\S ]+| +(?!\S)")  # the docstring's rule, written independently

ENGLISH = ("In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void; "
           "and darkness was upon the face of the deep.\n\n\nAnd God said, Let there be light: and there was light.")
CODE = ("def frobnicate(x, y=None):\n    \"\"\"Twice x.\"\"\"\n    if y is None:\n        return 2 * x\n\n"
        "\treturn {'x': x, 'y': [y, y]}  # tabs, braces\n\n\n\nclass A:\n    pass\n")
UNICODE = ("naïve café — 日本語のテキスト 😀🚀 emoji, señor Ωmega\r\n"
           "\u00a0non-breaking\u3000ideographic")
DOCS = [ENGLISH, CODE, UNICODE, ENGLISH.upper(), CODE.replace("x", "value"), UNICODE[::-1]]


def reference_counts(texts, max_chars=substrings.MAX_CHARS):
    counts = collections.Counter()
    for text in texts:
        tokens = PRETOKEN.findall(text)
        assert "".join(tokens) == text
        for tok in tokens:
            for i in range(len(tok)):
                for n in range(1, min(max_chars, len(tok) - i) + 1):
                    counts[tok[i:i + n]] += 1
    return dict(counts)


def window_counts(chunks, window=32, max_chars=substrings.MAX_CHARS):
    sc = substrings.SubstringCounts(window, max_chars)
    for chunk in chunks:
        sc.add(chunk)
    return sc


# -- SubstringCounts


def test_counts_are_exact_and_respect_the_leading_space_rule():
    texts = ["the cat the  the\nthe", "x  \ty"]  # pre-tokens: the| cat| the| | the|\n|the and x|  |\t|y
    d = window_counts([texts]).as_dict()
    assert d["the"] == 4 and d[" the"] == 2  # "the" also counts inside " the"
    assert d["  "] == 1 and d[" "] == 6  # the run before the tab; every space
    assert " the " not in d and "the\n" not in d and "\nthe" not in d and "  the" not in d
    assert " x" not in d and "x" in d  # no candidate spans two texts of a chunk
    assert d == reference_counts(texts)
    assert len(window_counts([texts])) == len(d)


def test_counts_match_a_brute_force_reference_on_mixed_text():
    texts = [ENGLISH, CODE, UNICODE, "", "   ", "<s>x</s><0x41>"]
    want = reference_counts(texts)
    for name in ["<s>", "</s>", "<0x41>"]:  # the fixed pieces' names are never candidates
        want.pop(name)
    assert window_counts([texts]).as_dict() == want
    assert window_counts([texts], max_chars=3).as_dict() == {k: v for k, v in want.items() if len(k) <= 3}


def test_eviction_subtracts_exactly():
    a, b, c = [ENGLISH, CODE], [UNICODE], [ENGLISH[:50], CODE[::-1]]
    sc = window_counts([a, b], window=2)
    sc.add(c)  # evicts a
    assert sc.as_dict() == window_counts([b, c]).as_dict() == reference_counts(b + c)
    sc.add(a)  # evicts b
    sc.add(b)  # evicts c
    assert sc.as_dict() == window_counts([a, b]).as_dict()
    one = window_counts([a], window=1)
    before = one.as_dict()
    one.add(b)
    one.add(a)
    assert one.as_dict() == before


def test_window_state_does_not_depend_on_history():
    chunks = [[DOCS[i % len(DOCS)][i:]] for i in range(12)]
    long_run = window_counts(chunks, window=3)
    cold = window_counts(chunks[-3:], window=3)
    for x, y in zip(long_run.candidates()[1:], cold.candidates()[1:]):
        np.testing.assert_array_equal(x, y)
    assert long_run.strings(long_run.candidates()[0]) == cold.strings(cold.candidates()[0])


# -- sample_vocabulary and unigram_tokenizer


@pytest.fixture(scope="module")
def counts():
    return window_counts([[d] for d in DOCS])


def sample(counts, seed, size=400, **kw):
    return zs.sample_vocabulary(counts, np.random.default_rng(seed), size, **kw)


def test_sampling_is_deterministic_and_varies_with_the_seed(counts):
    a, b = sample(counts, 1), sample(counts, 2)
    assert a == sample(counts, 1)
    assert {p for p, _ in a} != {p for p, _ in b}
    assert len(a) == 400 - unigram.NUM_FIXED and len({p for p, _ in a}) == len(a)
    scores = [s for _, s in a]
    assert scores == sorted(scores, reverse=True) and np.isclose(np.logaddexp.reduce(scores), 0.0)
    chars = {ch for d in DOCS for ch in d}
    assert len(chars) > (400 - unigram.NUM_FIXED) * zs.CHAR_SHARE
    assert sum(len(p) == 1 for p, _ in a) == int((400 - unigram.NUM_FIXED) * zs.CHAR_SHARE)  # capped
    assert chars <= {p for p, _ in sample(counts, 1, size=1000)}  # every character of the window
    assert len(sample(counts, 1, size=unigram.NUM_FIXED + 5)) == 5


def test_noise_scale_is_drawn_per_vocabulary(counts):
    plain = {p for p, _ in sample(counts, 0, noise_mu=-30.0, noise_sigma=0.0)}  # scale ~ 0: pure count x length

    def overlaps(**kw):
        return np.array([len(plain & {p for p, _ in sample(counts, s, **kw)}) / len(plain) for s in range(12)])

    fixed, drawn = overlaps(noise_mu=0.0, noise_sigma=0.0), overlaps(noise_mu=0.0, noise_sigma=2.0)
    assert fixed.max() - fixed.min() < 0.25  # one scale: similar distance from the plain vocabulary
    assert drawn.max() - drawn.min() > 0.4  # a scale per call: some near it, some far
    assert {p for p, _ in sample(counts, 5, noise_mu=-30.0, noise_sigma=0.0)} == plain


def test_unigram_tokenizer_round_trips_and_covers_bytes(counts):
    pieces = sample(counts, 3, size=600)
    tok = unigram.unigram_tokenizer(pieces)
    assert tok.vocab_size == unigram.NUM_FIXED + len(pieces)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    texts = DOCS + ["\n\n\n\n", "  two leading spaces", "trailing  ", "€ ∮ 🎉 unseen", "a\x00b", "", " "]
    for text in texts:
        ids = tok.encode_np(text)
        assert tok.decode(ids) == text
        assert ((ids >= 0) & (ids < tok.vocab_size)).all()
        assert not np.isin(ids, [0, 1, 2, 3]).any()
    unseen = tok.encode_np("🎉")  # not in the window: UTF-8 bytes through the byte pieces
    assert len(unseen) == 4 and ((unseen >= 4) & (unseen < unigram.NUM_FIXED)).all()
    assert list(tok.encode_np(" the")) != list(tok.encode_np("the"))  # no dummy prefix
    assert unigram.piece_bytes(pieces).shape == (tok.vocab_size,)


def test_vectorised_model_writer_matches_protobuf(counts):
    from sentencepiece import sentencepiece_model_pb2 as pb

    for pieces in (sample(counts, 4, size=700), [("x" * 130, -3.0), (" é", -1.5)]):  # fast path, fallback
        m = pb.ModelProto()
        entry = pb.ModelProto.SentencePiece
        m.pieces.extend([entry(piece=p, score=0.0, type=k) for p, k in unigram.SPECIALS])
        m.pieces.extend([entry(piece=p, score=0.0, type=entry.BYTE) for p in unigram.BYTE_PIECES])
        m.pieces.extend([entry(piece=p.replace(" ", "\u2581"), score=s) for p, s in pieces])
        m.normalizer_spec.add_dummy_prefix = False
        tok = unigram.unigram_tokenizer(pieces)
        built = pb.ModelProto.FromString(tok.files()["sentencepiece.model"])
        assert list(built.pieces) == list(m.pieces)
        assert built.normalizer_spec.name == "identity" and not built.normalizer_spec.add_dummy_prefix
        assert built.trainer_spec.byte_fallback and built.trainer_spec.vocab_size == tok.vocab_size


def test_unigram_tokenizer_refuses_broken_pieces():
    for bad in ([], [("a", -1.0), ("a", -2.0)], [("<s>", -1.0)], [("", -1.0)], [("a", float("nan"))],
                [("x", -1.0), ("\u2581x", -1.0), (" x", -1.0)]):
        with pytest.raises(UserError):
            unigram.unigram_tokenizer(bad)
    with pytest.raises(UserError):
        sample(window_counts([["x"]]), 0, size=unigram.NUM_FIXED)


# -- ZettBatches

L_PIECES = 4


def char_decompose(tok):
    """A stand-in base (ids = character codes mod 128): each id's text, cut to L_PIECES."""
    ids = np.full((tok.vocab_size, L_PIECES), -1, np.int32)
    lengths = np.ones(tok.vocab_size, np.int32)
    for i in range(tok.vocab_size):
        codes = [ord(c) % 128 for c in tok.decode([i])][:L_PIECES] or [i % 128]
        ids[i, :len(codes)], lengths[i] = codes, len(codes)
    return ids, lengths


def batches(**kw):
    args = dict(seq_len=24, batch_size=4, vocab_size=700, window=3, seed=7, pieces_per_token=L_PIECES,
                decompose_fn=char_decompose)
    args.update(kw)
    return zs.ZettBatches(DOCS, None, **args)


def flat(batch):
    return {f"{group}/{k}": v for group in ("text", "vocab") for k, v in batch[group].items()}


def assert_same(a, b):
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def test_batches_are_a_pure_function_of_the_step():
    warm = batches()
    seq = [warm.batch_at(s) for s in range(6)]  # past the window of 3: eviction on the way
    assert_same(seq[5], batches().batch_at(5))  # cold start
    assert_same(seq[1], batches().batch_at(1))
    assert_same(warm.batch_at(2), seq[2])  # going back rebuilds the window
    assert_same(warm.batch_at(2), seq[2])
    assert not np.array_equal(seq[3]["vocab"]["pieces"], seq[4]["vocab"]["pieces"])
    shapes = [{k: (v.shape, v.dtype) for k, v in flat(b).items()} for b in seq]
    assert all(s == shapes[0] for s in shapes)  # a jitted consumer never recompiles
    assert shapes[0]["vocab/pieces"][0] == (768, L_PIECES) and shapes[0]["text/inputs"][0] == (4, 24)
    assert shapes[0]["text/num_bytes"][1] == np.int64


def test_process_rows_partition_the_global_batch():
    whole = batches().batch_at(4)
    parts = [batches(process_index=i, process_count=2).batch_at(4) for i in range(2)]
    for k, v in whole["text"].items():
        np.testing.assert_array_equal(np.concatenate([p["text"][k] for p in parts]), v, err_msg=k)
    for p in parts:
        for k, v in whole["vocab"].items():
            np.testing.assert_array_equal(p["vocab"][k], v, err_msg=k)
    with pytest.raises(UserError):
        batches(process_count=3)


def test_vocab_arrays_and_byte_counts_are_consistent():
    zb = batches()
    for step in (0, 2):
        b = zb.batch_at(step)
        v, t = b["vocab"], b["text"]
        tok = unigram.unigram_tokenizer(zb.pieces_at(step))
        n = tok.vocab_size
        assert v["mask"].sum() == n and v["mask"][:n].all() and zb.padded_vocab_size == 768
        assert not (v["special"] & ~v["mask"]).any()
        assert set(np.flatnonzero(v["special"])) == {0, 1, 2, 3}
        assert (v["pieces"][n:, 0] == 0).all() and (v["pieces"][n:, 1:] == -1).all() and (v["lengths"][n:] == 0).all()
        assert (t["inputs"] < n).all() and (t["targets"] < n).all()
        assert (t["inputs"][:, 1:] == t["targets"][:, :-1]).all()
        for row in range(zb.local_batch_size):
            kept = t["targets"][row][t["loss_mask"][row] > 0]
            assert t["num_bytes"][row] == len(tok.decode(kept).encode("utf-8"))
