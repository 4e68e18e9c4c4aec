"""Token streams, their cache, packed batches as a pure function of the step, evaluation
windows and the prefetcher."""
import threading
import time

import numpy as np
import pytest

from lexi import tokenizers
from lexi.data.corpora import KJV
from lexi.data.corpus import HashSplitCorpus
from lexi.data.pipeline import Batches, Prefetcher, build_token_stream, eval_windows, pack, stream_cache_path
from lexi.errors import UserError

BOS = 2


class ListCorpus(HashSplitCorpus):
    """Hand-made documents; counts how often it is read."""

    name = "list"

    def __init__(self, docs, **kw):
        super().__init__(**kw)
        self.docs, self.reads = list(docs), 0

    def _items(self):
        self.reads += 1
        for d in self.docs:
            yield d, d

    def _content_id(self):
        return self.docs


def stream(n=10_000, seed=0, bos_every=37):
    """A random char-level stream with a bos every `bos_every` tokens."""
    t = np.random.default_rng(seed).integers(32, 127, n).astype(np.int32)
    t[::bos_every] = BOS
    return t


# ---------------------------------------------------------------- token stream


def test_stream_layout_and_cache_hit(tmp_path):
    docs = ["abc", "hello world", "xyz!"]
    corpus, tok = ListCorpus(docs, val_fraction=0.0), tokenizers.load("char")
    s = build_token_stream(corpus, "train", tok, tmp_path)
    expected = np.concatenate([[BOS] + [ord(c) for c in d] for d in docs])
    assert s.dtype == np.int32 and s.ndim == 1 and s.tolist() == expected.tolist()
    assert corpus.reads == 1
    again = build_token_stream(corpus, "train", tok, tmp_path)
    assert corpus.reads == 1  # served from the cache without reading the corpus
    assert isinstance(again, np.memmap) and np.array_equal(again, s)
    files = sorted(p.name for p in (tmp_path / "streams").iterdir())
    assert files == [stream_cache_path(corpus, "train", tok, tmp_path).name]  # no temp files left behind
    byte = build_token_stream(corpus, "train", tokenizers.load("byte"), tmp_path)
    assert corpus.reads == 2 and byte[0] == 257 and len(byte) == len(s)


def test_stream_too_short_for_one_sequence(tmp_path):
    corpus = ListCorpus(["tiny"], val_fraction=0.0)
    tok = tokenizers.load("char")
    assert len(build_token_stream(corpus, "train", tok, tmp_path)) == 5
    with pytest.raises(UserError, match=r"has 5 tokens, fewer than one sequence of seq_len \+ 1 = 9"):
        build_token_stream(corpus, "train", tok, tmp_path, seq_len=8)
    with pytest.raises(UserError, match="fewer than one sequence"):
        Batches(np.arange(5), 8, 2, 0)


def test_kjv_char_stream(cache_dir):
    tok = tokenizers.load("char")
    corpus = KJV()
    train = build_token_stream(corpus, "train", tok, cache_dir)
    docs = list(corpus.documents("train"))
    assert len(train) == sum(len(d) + 1 for d in docs) > 4_000_000
    assert int((np.asarray(train) == BOS).sum()) == len(docs)
    assert tok.decode(train[1:17]) == "In the beginning"
    val = build_token_stream(corpus, "validation", tok, cache_dir)
    assert 50_000 < len(val) < 200_000


# ---------------------------------------------------------------- packing


def test_pack_segments_and_positions_on_a_hand_made_window():
    w = np.array([[5, 6, BOS, 7, 8, BOS, BOS, 9, 0],
                  [BOS, 1, 1, 1, BOS, 1, 1, 0, 0]])
    b = pack(w, BOS, pad_id=0)
    assert b["inputs"].tolist() == w[:, :-1].tolist() and b["targets"].tolist() == w[:, 1:].tolist()
    assert b["segment_ids"].tolist() == [[1, 1, 2, 2, 2, 3, 4, 4], [1, 1, 1, 1, 2, 2, 2, 2]]
    assert b["positions"].tolist() == [[0, 1, 0, 1, 2, 0, 0, 1], [0, 1, 2, 3, 0, 1, 2, 3]]
    assert b["loss_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0, 0]]
    assert {k: v.dtype.name for k, v in b.items()} == {"inputs": "int32", "targets": "int32", "segment_ids": "int32",
                                                       "positions": "int32", "loss_mask": "float32"}
    assert pack(w, BOS)["loss_mask"].min() == 1.0  # no pad id: nothing masked


def test_batches_hold_the_right_windows():
    t = stream()
    L, B = 16, 8
    b = Batches(t, L, B, seed=3, bos_id=BOS)
    assert b.num_windows == (len(t) - 1) // L and b.tokens_per_step == B * L
    for step in (0, 5, 77):
        batch, wins = b.batch_at(step), b.window_ids(step)
        for r, w in enumerate(wins):
            assert batch["inputs"][r].tolist() == t[w * L: w * L + L].tolist()
            assert batch["targets"][r].tolist() == t[w * L + 1: w * L + L + 1].tolist()
        assert np.array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
        for r in range(B):  # segments restart exactly at bos inputs
            seg, pos, inp = batch["segment_ids"][r], batch["positions"][r], batch["inputs"][r]
            new = np.flatnonzero(np.diff(seg)) + 1
            assert new.tolist() == [i for i in range(1, L) if inp[i] == BOS]
            assert all(pos[i] == 0 for i in new) and pos[0] == 0


def test_batches_are_a_pure_function_of_the_step():
    t = stream()
    a, b = Batches(t, 16, 8, seed=1, bos_id=BOS), Batches(t, 16, 8, seed=1, bos_id=BOS)
    for step in (9, 0, 3, 9):  # any order, any instance
        x, y = a.batch_at(step), b.batch_at(step)
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert not np.array_equal(a.batch_at(0)["inputs"], a.batch_at(1)["inputs"])
    other_seed = Batches(t, 16, 8, seed=2, bos_id=BOS)
    assert not np.array_equal(a.batch_at(0)["inputs"], other_seed.batch_at(0)["inputs"])


def test_epochs_cover_every_window_once_and_wrap():
    t = np.arange(20 * 4 + 1, dtype=np.int32)  # exactly 20 windows of 4
    b = Batches(t, 4, 6, seed=0)
    assert b.num_windows == 20
    rows = np.concatenate([b.window_ids(s) for s in range(10)])  # 60 rows = 3 epochs
    for e in range(3):
        epoch = rows[20 * e: 20 * e + 20]
        assert sorted(epoch.tolist()) == list(range(20))
        assert epoch.tolist() == np.random.default_rng([0, e]).permutation(20).tolist()
    assert rows[:20].tolist() != rows[20:40].tolist()  # a new order each epoch
    assert b.window_ids(3).tolist() == rows[18:24].tolist()  # step 3 straddles epochs 0 and 1
    assert [b.epoch_of(s) for s in (0, 3, 4, 9)] == [0, 0, 1, 2]
    plain = Batches(t, 4, 6, seed=0, shuffle=False)
    assert plain.window_ids(0).tolist() == [0, 1, 2, 3, 4, 5] and plain.window_ids(3).tolist() == [18, 19, 0, 1, 2, 3]


def test_batch_larger_than_the_corpus_wraps_through_epochs():
    b = Batches(np.arange(13, dtype=np.int32), 4, 7, seed=5, shuffle=False)  # 3 windows
    assert b.window_ids(0).tolist() == [0, 1, 2, 0, 1, 2, 0] and b.window_ids(1).tolist() == [1, 2, 0, 1, 2, 0, 1]


def test_process_slices_concatenate_to_the_global_batch():
    t = stream(seed=4)
    whole = Batches(t, 16, 8, seed=7, bos_id=BOS, pad_id=0)
    parts = [Batches(t, 16, 8, seed=7, bos_id=BOS, pad_id=0, process_index=i, process_count=4) for i in range(4)]
    for step in (0, 13):
        g = whole.batch_at(step)
        for k in g:
            assert np.array_equal(np.concatenate([p.batch_at(step)[k] for p in parts]), g[k])
        assert parts[0].batch_at(step)["inputs"].shape == (2, 16)
    with pytest.raises(UserError, match=r"batch_size \(8\) must be divisible by the number of processes \(3\)"):
        Batches(t, 16, 8, seed=7, process_count=3)


# ---------------------------------------------------------------- eval windows


def test_eval_windows_spread_evenly_and_deterministically():
    t = stream(10_001)
    w = eval_windows(t, 100, 10, BOS)
    assert w["inputs"].shape == (10, 100)
    firsts = [int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(t, 100) == row).all(1))[0])
              for row in w["inputs"]]
    assert firsts == [i * 1000 for i in range(10)]  # aligned and evenly spaced
    again = eval_windows(t, 100, 10, BOS)
    assert all(np.array_equal(w[k], again[k]) for k in w)
    many = eval_windows(t, 100, 150, BOS)  # more than the 100 windows there are: overlapping, still valid
    assert many["inputs"].shape == (150, 100) and np.array_equal(many["inputs"][:, 1:], many["targets"][:, :-1])


def test_eval_windows_start_at_documents():
    docs = [np.full(n, 60 + i, np.int32) for i, n in enumerate([50, 5, 80, 30, 120, 10, 70])]
    t = np.concatenate([np.concatenate([[BOS], d]) for d in docs] + [np.full(40, 99, np.int32)])
    starts = np.flatnonzero(t == BOS)
    w = eval_windows(t, 32, 4, BOS, start_at_document=True)
    assert (w["inputs"][:, 0] == BOS).all()
    assert not (w["inputs"][:, 1:] == BOS).any() and not (w["targets"] == BOS).any()  # inside one document
    assert (w["positions"] == np.arange(32)).all() and (w["segment_ids"] == 1).all()
    # only 4 documents are long enough (50, 80, 120, 70); asking for 6 adds the longest short ones
    w6 = eval_windows(t, 32, 6, BOS, start_at_document=True)
    assert (w6["inputs"][:, 0] == BOS).all()
    doc_of_row = [int(np.flatnonzero(starts == s)[0]) for s in
                  [int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(t, 32) == row).all(1))[0])
                   for row in w6["inputs"]]]
    assert sorted(doc_of_row) == [0, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------- prefetcher


def test_prefetcher_hands_out_results_in_order():
    calls = []

    def fn(step):
        calls.append(step)
        return step * step

    p = Prefetcher(fn, 5, depth=2)
    assert [p.next() for _ in range(6)] == [25, 36, 49, 64, 81, 100]
    time.sleep(0.05)
    assert max(calls) <= 10 + 3  # never far ahead of the consumer
    p.close()
    assert not p._thread.is_alive()
    with pytest.raises(RuntimeError, match="after close"):
        p.next()


def test_prefetcher_propagates_exceptions_at_their_step():
    def fn(step):
        if step == 3:
            raise KeyError("bad step")
        return step

    with Prefetcher(fn, 0, depth=4) as p:
        assert [p.next(), p.next(), p.next()] == [0, 1, 2]
        with pytest.raises(KeyError, match="bad step"):
            p.next()
        with pytest.raises(KeyError):
            p.next()


def test_prefetcher_close_unblocks_a_full_queue():
    started = threading.Event()

    def fn(step):
        started.set()
        return np.zeros(10)

    p = Prefetcher(fn, 0, depth=1)
    started.wait(1)
    time.sleep(0.05)  # the worker is now blocked on the full queue
    t0 = time.perf_counter()
    p.close()
    assert time.perf_counter() - t0 < 1 and not p._thread.is_alive()
