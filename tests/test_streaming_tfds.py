"""input_pipeline=streaming on a `tfds:` corpus: records read by index from the ArrayRecord data
source (lexi/data/tfds_source.py). Processes read disjoint records that together are the split,
each touches only its own records, epochs reshuffle, and resume from a saved state is exact."""
import json
import re
import warnings

import numpy as np
import pytest

from lexi import tokenizers
from lexi.data.corpora import get_corpus
from lexi.data.streaming import StreamingBatches, StreamSettings
from lexi.data.tfds_source import tfds_document_groups

tfds = pytest.importorskip("tensorflow_datasets")
TOK = tokenizers.load("char")
N_TRAIN = 301  # odd: two processes get 151 and 150 records of an epoch


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A real ArrayRecord TFDS dataset, prepared locally (no download)."""

    class LexiStreamText(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, N_TRAIN), "validation": self._generate_examples(5000, 5012)}

        def _generate_examples(self, lo, hi):
            rng = np.random.default_rng(lo)
            for i in range(lo, hi):
                yield i, {"text": f"doc {i} " + "".join(chr(c) for c in rng.integers(97, 123, rng.integers(5, 90)))}

    d = tmp_path_factory.mktemp("tfds_stream")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LexiStreamText(data_dir=str(d), file_format="array_record").download_and_prepare()
    return d


def corpus(tfds_dir, **kw):
    return get_corpus({"corpus": "tfds:lexi_stream_text", "tfds_data_dir": str(tfds_dir), "text_field": "text", **kw})


def index(doc: str) -> int:
    return int(re.match(r"doc (\d+) ", doc).group(1))


class CountingRecords:
    """A data source that records which indices were read."""

    def __init__(self, records):
        self.records, self.read = records, set()

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        self.read.add(int(i))
        return self.records[i]


def tfds_documents(c, split, **kw):
    """Single documents of `tfds_document_groups` (groups of 8)."""
    ds, name = tfds_document_groups(c, split, group=8, **kw)
    return ds, name


def take(ds, n):
    it, out = iter(ds), []
    while len(out) < n:
        out += next(it)
    return out[:n]


def test_two_processes_read_disjoint_records_whose_union_is_the_split(tfds_dir):
    c = corpus(tfds_dir)
    split = sorted(c.documents("train"))
    parts = [take(tfds_documents(c, "train", seed=7, shuffle=True, process_index=p, process_count=2)[0],
                  (N_TRAIN + 1 - p) // 2) for p in range(2)]
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == split
    assert [index(d) for d in parts[0]] != sorted(index(d) for d in parts[0])  # a global shuffle, not a stride
    two_epochs = take(tfds_documents(c, "train", seed=7, shuffle=True)[0], 2 * N_TRAIN)
    assert sorted(two_epochs[N_TRAIN:]) == split and two_epochs[N_TRAIN:] != two_epochs[:N_TRAIN]  # reshuffled


def test_a_process_reads_only_its_own_records(tfds_dir, monkeypatch):
    c = corpus(tfds_dir)
    records, total = c.records("train")
    counting = CountingRecords(records)
    monkeypatch.setattr(c, "records", lambda split: (counting, total))
    docs = take(tfds_documents(c, "train", seed=0, shuffle=False, process_index=1, process_count=2)[0], 20)
    assert docs == [c.text(records[i]) for i in range(1, 40, 2)]  # records 1, 3, 5, ... (not document order)
    assert counting.read and all(i % 2 == 1 for i in counting.read)  # read-ahead included
    assert len(counting.read) < N_TRAIN // 2  # not the whole split


def test_max_documents_caps_the_records(tfds_dir):
    c = corpus(tfds_dir, max_documents=10)
    docs = take(tfds_documents(c, "train", seed=1, shuffle=True)[0], 30)
    records, _ = c.records("train")
    assert set(docs) == {c.text(records[i]) for i in range(10)} and len(docs) == 30


def small(**kw):
    return StreamSettings(**{**dict(seq_len=16, global_batch_size=8, seed=3, shuffle_rows=5), **kw})


@pytest.mark.parametrize("processes", [1, 2])
def test_resume_from_a_saved_state_equals_an_uninterrupted_stream(tfds_dir, processes):
    c = corpus(tfds_dir)
    for p in range(processes):
        whole = StreamingBatches(c, TOK, small(), process_index=p, process_count=processes)
        want = [whole.batch_at(s) for s in range(60)]  # several epochs of this process's records
        for cut in (1, 17, 45):
            saved = json.loads(json.dumps(whole.state_at(cut)))
            resumed = StreamingBatches(c, TOK, small(), process_index=p, process_count=processes)
            resumed.restore(cut, saved)
            for s in range(cut, 60):
                got = resumed.batch_at(s)
                for k in got:
                    np.testing.assert_array_equal(got[k], want[s][k], err_msg=f"process {p} cut {cut} step {s} {k}")
            resumed.close()
        whole.close()


def test_unshuffled_rows_equal_the_cached_pipelines(tfds_dir, tmp_path):
    from lexi.data.pipeline import Batches, build_token_stream

    c = corpus(tfds_dir)
    tokens = build_token_stream(c, "train", TOK, tmp_path / "cache")
    cached = Batches(tokens, 32, 8, seed=0, shuffle=False, bos_id=TOK.bos_id, pad_id=TOK.pad_id)
    streamed = StreamingBatches(c, TOK, StreamSettings(32, 8, 0, shuffle=False))
    for step in range(cached.num_windows // 8):
        want, got = cached.batch_at(step), streamed.batch_at(step)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"step {step} {k}")
    streamed.close()
