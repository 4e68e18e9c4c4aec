"""Byte-like training vocabularies (lexi/zett/byte_like.py) and the fixed validation targets
(lexi/zett/validation.py), on the sampler alone (no model: see test_zett_transfer_train.py)."""
import numpy as np
import pytest

from lexi.errors import UserError
from lexi.zett import sampler as zs
from lexi.zett import unigram
from lexi.zett.byte_like import ByteLike
from lexi.zett.validation import SAMPLED, validation_batches, validation_metrics
from test_zett_sampler import DOCS, assert_same, char_decompose, flat

LIKE = ByteLike(share=0.4, min_pieces=8, max_pieces=64, bytes_only_share=0.5)


def batches(byte_like=LIKE, **kw):
    args = dict(seq_len=24, batch_size=4, vocab_size=700, window=3, seed=7, pieces_per_token=4,
                decompose_fn=char_decompose, byte_like=byte_like)
    args.update(kw)
    return zs.ZettBatches(DOCS, None, **args)


def test_the_share_and_size_range_are_honoured_over_many_draws():
    like = ByteLike(share=0.3, min_pieces=10, max_pieces=50, bytes_only_share=0.4)
    draws = [like.draw(seed=3, step=s) for s in range(4000)]
    kinds = [d for d in draws if d is not None]
    assert abs(len(kinds) / 4000 - 0.3) < 0.03  # binomial sd 0.007
    assert abs(kinds.count(0) / len(kinds) - 0.4) < 0.05
    sizes = [d for d in kinds if d]
    assert min(sizes) == 10 and max(sizes) == 50  # uniform over the inclusive range
    assert draws == [like.draw(seed=3, step=s) for s in range(4000)]  # a pure function of (seed, step)
    assert draws != [like.draw(seed=4, step=s) for s in range(4000)]
    assert {ByteLike().draw(3, s) for s in range(100)} == {None}  # share 0: never


def test_byte_like_vocabularies_hold_every_byte_and_no_single_character():
    zb = batches()
    kinds = {}
    for step in range(12):
        pieces, byte_like = zb.vocabulary_at(step)
        tok = zb.tokenizer_at(step)
        if not byte_like:
            continue
        kinds[len(pieces) == 0] = True
        ids = np.arange(4, unigram.NUM_FIXED)
        assert [tok._sp.id_to_piece(int(i)) for i in ids] == list(unigram.BYTE_PIECES)
        assert all(tok._sp.is_byte(int(i)) for i in ids)
        assert all(len(p) > 1 for p, _ in pieces) and len(pieces) <= LIKE.max_pieces
        assert tok.vocab_size == unigram.NUM_FIXED + max(len(pieces), 1)  # bytes only: one unused placeholder
        assert list(tok.encode_np("q")) == [4 + ord("q")]  # a character is its byte piece
        assert list(tok.encode_np(" ")) == [4 + 0x20]  # a space too, as in a byte-level tokenizer
        v = zb.batch_at(step)["vocab"]
        assert set(np.flatnonzero(v["special"])) == {0, 1, 2, 3} | ({unigram.NUM_FIXED} if not pieces else set())
    assert kinds == {True: True, False: True}  # both kinds were drawn


def test_byte_like_batches_encode_the_text_losslessly():
    """Each segment's ids spell its UTF-8 bytes exactly (the last one in the batch cut short),
    and decode gives a complete segment back."""

    zb = batches(byte_like=ByteLike(share=1.0, min_pieces=0, max_pieces=64, bytes_only_share=0.3), batch_size=8)
    sizes, complete = set(), 0
    for step in range(6):
        tok = zb.tokenizer_at(step)
        sizes.add(tok.vocab_size)
        spelled = tok.token_bytes().pieces
        stream = zb.batch_at(step)["text"]
        rows = np.concatenate([stream["inputs"][:, :1], stream["targets"]], axis=1).reshape(-1)
        segments, _ = zb._text(step)
        bos = np.append(np.flatnonzero(rows == tok.bos_id), len(rows))
        parts = [rows[a + 1:b] for a, b in zip(bos[:-1], bos[1:])]
        assert bos[0] == 0 and len(parts) <= len(segments)
        for i, (ids, text) in enumerate(zip(parts, segments)):
            got, want = b"".join(spelled[j] for j in ids), text.encode("utf-8")
            if i < len(parts) - 1:
                assert got == want and tok.decode(ids) == text
                complete += 1
            else:
                assert want.startswith(got) and len(got) > 0
    assert unigram.NUM_FIXED + 1 in sizes and len(sizes) > 1 and complete >= 3  # bytes only, and with pieces


def test_a_seed_fixes_every_batch_and_shapes_never_change():
    a, b = batches(), batches()
    seq = [a.batch_at(s) for s in range(8)]
    for s in (7, 2, 5):
        assert_same(b.batch_at(s), seq[s])
    assert {a.vocabulary_at(s)[1] for s in range(8)} == {True, False}
    shapes = [{k: (v.shape, v.dtype) for k, v in flat(x).items()} for x in seq]
    assert all(s == shapes[0] for s in shapes)  # byte-like or not: the step compiles once
    kinds = lambda seed: [batches(seed=seed).vocabulary_at(s)[1] for s in range(8)]  # noqa: E731
    assert kinds(7) != kinds(8)


def test_ordinary_steps_sample_what_they_did_before_byte_like_vocabularies():
    """The byte-like draw has its own random stream: every step it leaves ordinary samples
    exactly the vocabulary a run without byte-like vocabularies samples."""
    with_like, without = batches(), batches(byte_like=None)
    ordinary = [s for s in range(8) if not with_like.vocabulary_at(s)[1]]
    assert ordinary and len(ordinary) < 8
    for s in ordinary:
        assert with_like.pieces_at(s) == without.pieces_at(s)


def test_sizes_beyond_the_vocabulary_are_refused():
    with pytest.raises(UserError, match="byte_like_max_pieces"):
        batches(byte_like=ByteLike(share=0.1, min_pieces=0, max_pieces=700 - unigram.NUM_FIXED + 1))
    with pytest.raises(UserError, match="must lie in"):
        batches(byte_like=ByteLike(share=1.5))
    batches(byte_like=ByteLike(share=0.1, min_pieces=0, max_pieces=700 - unigram.NUM_FIXED))


def test_validation_adds_the_byte_target_with_the_sampled_shapes():
    zb = batches(byte_like=None)
    val = validation_batches(zb, 2)
    assert [v["target"] for v in val] == [SAMPLED, SAMPLED, "byte", "byte"]
    assert_same(val[0], zb.batch_at(0))
    shapes = [{k: (v.shape, v.dtype) for k, v in flat(x).items()} for x in val]
    assert all(s == shapes[0] for s in shapes)
    for i, vb in enumerate(val[2:]):
        t, v = vb["text"], vb["vocab"]
        assert v["mask"].sum() == 259 and set(np.flatnonzero(v["special"])) == {256, 257, 258}
        kept = (t["loss_mask"] > 0) & (t["targets"] < 256)
        np.testing.assert_array_equal(t["num_bytes"], kept.sum(axis=1))  # one byte per byte id
        text = "".join(zb._text(i)[0]).encode("utf-8")
        first = t["targets"][0][t["targets"][0] < 256].astype(np.uint8).tobytes()
        assert first in text  # the same validation text, byte for byte
    metrics = validation_metrics({SAMPLED: (np.log(2) * 30.0, 10.0), "byte": (np.log(2) * 16.0, 2.0)})
    assert metrics == pytest.approx({"val_loss": 3.0, "val_bpb_byte": 8.0})
