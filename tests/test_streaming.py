"""The streaming input pipeline (config.data.input_pipeline=streaming) without a model: the cached
pipeline's row layout, disjoint and complete sharding over processes, exact resume from a saved
iterator state, bounded validation reads, and one clear error for each kind of bad input."""
import gzip
import json

import ml_collections
import numpy as np
import pytest

from lexi import tokenizers
from lexi.data import stream_state
from lexi.data.corpora import get_corpus
from lexi.data.pipeline import Batches, build_token_stream
from lexi.data.shards import process_shards
from lexi.data.stream_source import ShardedDocuments
from lexi.data.streaming import StreamingBatches, StreamSettings, validation_tokens
from lexi.errors import UserError
from test_pipeline import ListCorpus

TOK = tokenizers.load("char")


def data_cfg(**kw):
    c = ml_collections.ConfigDict({"corpus": "text_files", "files": "", "text_field": "text", "val_fraction": 0.1,
                                   "max_documents": 0})
    c.update(kw)
    return c


def random_docs(n, seed=0, longest=300):
    rng = np.random.default_rng(seed)
    return [f"{i} " + "".join(chr(c) for c in rng.integers(97, 123, rng.integers(1, longest))) for i in range(n)]


def write_corpus(root, docs, files=5):
    """docs spread over .jsonl.gz, .jsonl and .txt files (one .txt per file); returns the glob."""
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        part = docs[f::files]
        if f == files - 1:  # .txt: one document per file
            for i, d in enumerate(part):
                (root / f"doc{i:03d}.txt").write_text(d)
            continue
        lines = "".join(json.dumps({"text": d}) + "\n" for d in part).encode()
        if f % 2:
            (root / f"part{f}.jsonl").write_bytes(lines)
        else:
            with gzip.open(root / f"part{f}.jsonl.gz", "wb") as g:
                g.write(lines)
    return f"{root}/*"


def small(**kw):
    """Settings with windows small enough that a few steps cross shuffle windows, files and epochs."""
    base = dict(seq_len=16, global_batch_size=8, seed=3, open_files=2, shuffle_documents=7, shuffle_rows=5)
    return StreamSettings(**{**base, **kw})


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("source", ["list", "files"])
def test_unshuffled_rows_equal_the_cached_pipelines(tmp_path, source):
    docs = random_docs(300)
    corpus = (ListCorpus(docs, val_fraction=0.1) if source == "list"
              else get_corpus(data_cfg(files=write_corpus(tmp_path / "c", docs, files=1))))
    tokens = build_token_stream(corpus, "train", TOK, tmp_path / "cache")
    cached = Batches(tokens, 32, 8, seed=0, shuffle=False, bos_id=TOK.bos_id, pad_id=TOK.pad_id)
    streamed = StreamingBatches(corpus, TOK, StreamSettings(32, 8, 0, shuffle=False))
    for step in range(cached.num_windows // 8):  # the whole first epoch
        want, got = cached.batch_at(step), streamed.batch_at(step)
        assert sorted(got) == sorted(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape == (8, 32)
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"step {step} {k}")


def test_shuffled_rows_are_windows_of_the_split(tmp_path):
    docs = random_docs(200)
    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", docs)))
    b = StreamingBatches(corpus, TOK, small(seq_len=32))
    stream = np.asarray(build_token_stream(corpus, "train", TOK, tmp_path / "cache"))
    text = TOK.decode(stream)
    first = b.batch_at(0)
    assert not np.array_equal(first["inputs"], b.batch_at(1)["inputs"])
    for row in first["inputs"]:  # every piece between document starts is text of a training document
        for piece in np.split(row, np.flatnonzero(row == TOK.bos_id)):
            assert TOK.decode(piece) in text
    again = StreamingBatches(corpus, TOK, small(seq_len=32)).batch_at(0)
    assert all(np.array_equal(first[k], again[k]) for k in first)  # deterministic
    other = StreamingBatches(corpus, TOK, small(seq_len=32, seed=4)).batch_at(0)
    assert not np.array_equal(first["inputs"], other["inputs"])


# ---------------------------------------------------------------- sharding


def epoch_documents(shards, settings):
    """Every document one epoch of the source yields, through the Grain iterator."""
    it = iter(ShardedDocuments(shards, seed=settings.seed, open_shards=settings.open_files))
    out = []
    while it.get_state()["epoch"] == 0:
        out.append(next(it))
    return out[:-1] if it.get_state()["epoch"] else out


@pytest.mark.parametrize("source", ["list", "files"])
def test_two_processes_read_disjoint_documents_whose_union_is_the_split(tmp_path, source):
    docs = random_docs(120)
    corpus = (ListCorpus(docs, val_fraction=0.1) if source == "list"
              else get_corpus(data_cfg(files=write_corpus(tmp_path / "c", docs))))
    split = sorted(corpus.documents("train"))
    parts = [epoch_documents(process_shards(corpus, "train", p, 2), small()) for p in range(2)]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == split
    assert not set(split) & set(corpus.documents("validation"))
    if source == "files":  # whole files per process
        names = [{s.path.name for s in process_shards(corpus, "train", p, 2)} for p in range(2)]
        assert names[0] and names[1] and not names[0] & names[1]


# ---------------------------------------------------------------- resume


def roundtrip(state):
    return json.loads(json.dumps(state))  # what a checkpoint stores


@pytest.mark.parametrize("processes", [1, 2])
def test_resume_from_a_saved_state_equals_an_uninterrupted_stream(tmp_path, processes):
    docs = random_docs(60, longest=120)  # small: 40 steps run through several epochs
    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", docs)))
    kw = dict(process_count=processes, repeat_share=0.5, repeat_length=4)
    for p in range(processes):
        whole = StreamingBatches(corpus, TOK, small(), process_index=p, **kw)
        want = [whole.batch_at(s) for s in range(40)]
        for cut in (1, 7, 23):
            saved = roundtrip(whole.state_at(cut))
            resumed = StreamingBatches(corpus, TOK, small(), process_index=p, **kw)
            resumed.restore(cut, saved)
            for s in range(cut, 40):
                got = resumed.batch_at(s)
                for k in got:
                    np.testing.assert_array_equal(got[k], want[s][k], err_msg=f"process {p} cut {cut} step {s} {k}")
    np.testing.assert_array_equal(whole.batch_at(2)["inputs"], want[2]["inputs"])  # back to a kept state
    with pytest.raises(ValueError, match="come in order"):
        whole.batch_at(50)  # ahead: never produced


def test_worker_processes_give_the_same_stream_and_states(tmp_path):
    """streaming_tokenizer_processes: chunks encoded by two spawned workers, several groups in
    flight, are the in-thread stream batch for batch; a state saved with workers restores without
    them and the other way round; jumping back to a kept state drops what was in flight."""
    docs = random_docs(300, longest=120)
    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", docs)))
    shape = dict(seq_len=32, global_batch_size=32)  # 1,024 tokens a step: a group of 64 documents every ~4 steps
    one = StreamingBatches(corpus, TOK, small(**shape))
    want = [one.batch_at(s) for s in range(30)]
    pooled = StreamingBatches(corpus, TOK, small(**shape, tokenizer_processes=2))
    try:
        for s in range(30):
            np.testing.assert_array_equal(pooled.batch_at(s)["inputs"], want[s]["inputs"], err_msg=f"step {s}")
        np.testing.assert_array_equal(pooled.batch_at(12)["targets"], want[12]["targets"])  # back to a kept state
        np.testing.assert_array_equal(pooled.batch_at(13)["inputs"], want[13]["inputs"])
        saved = roundtrip(pooled.state_at(20))
    finally:
        pooled.close()
    plain = StreamingBatches(corpus, TOK, small(**shape))
    plain.restore(20, saved)  # saved with workers, read without
    np.testing.assert_array_equal(plain.batch_at(20)["inputs"], want[20]["inputs"])
    again = StreamingBatches(corpus, TOK, small(**shape, tokenizer_processes=1))
    try:
        again.restore(5, roundtrip(one.state_at(5)))  # saved without, read with
        for s in range(5, 9):
            np.testing.assert_array_equal(again.batch_at(s)["inputs"], want[s]["inputs"])
    finally:
        again.close()


def test_restore_refuses_a_state_of_another_stream(tmp_path):
    corpus = ListCorpus(random_docs(50), val_fraction=0.0)
    saved = roundtrip(StreamingBatches(corpus, TOK, small()).state_at(0))
    with pytest.raises(UserError, match=r"different stream \(global_batch_size: 8 -> 16\)"):
        StreamingBatches(corpus, TOK, small(global_batch_size=16)).restore(0, saved)
    with pytest.raises(UserError, match="process_count: 1 -> 2"):
        StreamingBatches(corpus, TOK, small(), process_count=2).restore(0, saved)


def test_state_files_are_per_process_and_pruned_with_the_checkpoints(tmp_path):
    for step in (10, 20, 30):
        for p in range(2):
            stream_state.save(tmp_path, step, p, {"step": step, "p": p})
    assert stream_state.load(tmp_path, 20, 1) == {"step": 20, "p": 1} and stream_state.load(tmp_path, 40, 0) is None
    for p in range(2):
        stream_state.prune(tmp_path, [20, 30], p)
    assert sorted(d.name for d in (tmp_path / "data_state").iterdir()) == ["20", "30"]
    stream_state.path(tmp_path, 30, 0).write_text("{trunc")
    with pytest.raises(UserError, match="cannot be read"):
        stream_state.load(tmp_path, 30, 0)


# ---------------------------------------------------------------- validation


class CountingCorpus(ListCorpus):
    """Counts the documents handed out, train and validation alike."""

    def _items(self):
        for d in super()._items():
            self.handed += 1
            yield d

    handed = 0


def test_validation_reads_a_bounded_number_of_documents():
    docs = random_docs(2000)
    corpus = CountingCorpus(docs, val_fraction=0.1)
    val = list(corpus.documents("validation"))
    corpus.handed = 0
    tokens = validation_tokens(corpus, TOK, 5)
    assert int((tokens == TOK.bos_id).sum()) == 5
    assert TOK.decode(tokens) == "".join(val[:5])
    assert corpus.handed < 200  # about 5 / 0.1 documents read, not 2000
    everything = validation_tokens(corpus, TOK, 10_000)  # more than there are: the whole split, as cached
    want = np.concatenate([np.r_[TOK.bos_id, TOK.encode_np(d)] for d in val])
    np.testing.assert_array_equal(everything, want)
    with pytest.raises(UserError, match="fewer than one sequence"):
        validation_tokens(corpus, TOK, 1, seq_len=10_000)


# ---------------------------------------------------------------- errors


def test_a_glob_that_matches_nothing(tmp_path):
    with pytest.raises(UserError, match="matches no files"):
        get_corpus(data_cfg(files=f"{tmp_path}/none/*.jsonl.gz"))


def test_a_process_without_files(tmp_path):
    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", random_docs(10), files=3)))
    n = len(corpus.files)
    with pytest.raises(UserError, match=rf"matches {n} file\(s\) for {n + 1} processes, so process {n} has none"):
        StreamingBatches(corpus, TOK, small(global_batch_size=8 * (n + 1)), process_index=n, process_count=n + 1)


@pytest.mark.parametrize("damage", ["truncated", "not_gzip"])
def test_a_damaged_gzip_shard(tmp_path, damage):
    lines = "".join(json.dumps({"text": d}) + "\n" for d in random_docs(400)).encode()
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(lines)[:-2000] if damage == "truncated" else lines)
    b = StreamingBatches(get_corpus(data_cfg(files=str(path), val_fraction=0.0)), TOK, small(shuffle_documents=500))
    with pytest.raises(UserError, match=r"bad\.jsonl\.gz is damaged: reading it failed.*replace the file or remove it"):
        b.batch_at(0)


def test_an_empty_file_and_a_bad_line_name_the_file(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b""))
    b = StreamingBatches(get_corpus(data_cfg(files=f"{tmp_path}/a.jsonl.gz")), TOK, small())
    with pytest.raises(UserError, match=r"a\.jsonl\.gz is empty"):
        b.batch_at(0)
    (tmp_path / "b.jsonl").write_text('{"text": "fine"}\n{oops\n')
    b = StreamingBatches(get_corpus(data_cfg(files=f"{tmp_path}/b.jsonl")), TOK, small())
    with pytest.raises(UserError, match=r"b\.jsonl:2: not valid JSON"):
        b.batch_at(0)


def test_a_share_without_training_documents(tmp_path):
    (tmp_path / "only.jsonl").write_text("\n".join(json.dumps({"text": "x"}) for _ in range(5)))
    corpus = get_corpus(data_cfg(files=f"{tmp_path}/only.jsonl", val_fraction=0.9999))  # "x" hashes to validation
    assert not list(process_shards(corpus, "train", 0, 1)[0].read())
    with pytest.raises(UserError, match="process 0 of 1 holds no documents"):
        StreamingBatches(corpus, TOK, small()).batch_at(0)


def test_max_documents_is_refused_for_streamed_files(tmp_path):
    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", random_docs(10)), max_documents=3))
    with pytest.raises(UserError, match="max_documents does not apply to input_pipeline=streaming"):
        StreamingBatches(corpus, TOK, small())


def test_config_checks():
    from lexi.config import base_config, validate

    c = base_config()
    c.data.input_pipeline = "stream"
    with pytest.raises(UserError, match="input_pipeline must be 'cached' or 'streaming', got 'stream'"):
        validate(c)
    c.data.input_pipeline, c.data.streaming_open_files = "streaming", 0
    with pytest.raises(UserError, match="streaming_open_files must be >= 1"):
        validate(c)


def test_window_shuffle_permutes_each_window_and_restores_at_any_position():
    import grain

    from lexi.data.stream_shuffle import WindowShuffle

    ds = WindowShuffle(grain.MapDataset.range(23).to_iter_dataset(), window_size=7, seed=1)
    it = iter(ds)
    states, out = [], []
    for _ in range(23):
        states.append(roundtrip(it.get_state()))
        out.append(int(next(it)))
    with pytest.raises(StopIteration):
        next(it)
    assert [sorted(out[i:i + 7]) for i in range(0, 23, 7)] == [list(range(i, min(i + 7, 23))) for i in range(0, 23, 7)]
    assert out[:7] != sorted(out[:7])
    for k, state in enumerate(states):
        again = iter(ds)
        again.set_state(state)
        assert [int(x) for x in again] == out[k:], k


def test_token_counts_without_a_cached_stream(tmp_path):
    from lexi.data.streaming import count_tokens

    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", random_docs(50))))
    stream = np.asarray(build_token_stream(corpus, "train", TOK, tmp_path / "cache"))
    np.testing.assert_array_equal(count_tokens(corpus, TOK), np.bincount(stream, minlength=TOK.vocab_size))
