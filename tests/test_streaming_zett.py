"""ZeTT text with input_pipeline=streaming: the train split as a rolling buffer of document blocks
(lexi/data/stream_blocks.py) around the ZeTT sampler. Blocks are bounded and move through the corpus,
and resuming from a saved state gives the batches of an uninterrupted stream, at the data level
(the full ZeTT loop needs a trained base run: tests/test_zett.py covers its cached resume)."""
import json

import numpy as np
import pytest

from lexi.data.corpora import get_corpus
from lexi.data.shards import process_shards
from lexi.data.stream_blocks import DocumentBlocks
from lexi.errors import UserError
from lexi.zett.sampler import ZettBatches
from test_streaming import data_cfg, random_docs, write_corpus

SEQ, BATCH = 16, 4


def cheap_decompose(tok):
    """Every token one base piece: the sampler's shapes without the base tokenizer's work."""
    return np.zeros((tok.vocab_size, 2), np.int32), np.ones(tok.vocab_size, np.int32)


def blocks(corpus, held: list, seed=0, **kw):
    def make(docs):
        held.append(list(docs))
        return ZettBatches(docs, None, seq_len=SEQ, batch_size=BATCH, vocab_size=300, pieces_per_token=2, window=2,
                           seed=seed, decompose_fn=cheap_decompose)

    settings = dict(block_documents=12, chars_per_step=BATCH * (SEQ + 1) * 4.0, min_steps=2, seed=seed, open_shards=2)
    return DocumentBlocks(process_shards(corpus, "train", 0, 1), make, **{**settings, **kw})


def same(a, b, where):
    for part in ("text", "vocab"):
        for k in a[part]:
            np.testing.assert_array_equal(a[part][k], b[part][k], err_msg=f"{where} {part}/{k}")


def test_blocks_are_bounded_and_resume_exactly(tmp_path):
    corpus = get_corpus(data_cfg(files=write_corpus(tmp_path / "c", random_docs(60, longest=200), files=4)))
    train_docs = set(corpus.documents("train"))
    held: list = []
    whole = blocks(corpus, held)
    want = [whole.batch_at(s) for s in range(14)]
    assert len(held) >= 3 and all(len(docs) <= 12 for docs in held)  # several blocks, each bounded
    assert all(set(docs) <= train_docs for docs in held) and held[0] != held[1]
    for cut in (1, 5, 9, 13):
        saved = json.loads(json.dumps(whole.state_at(cut)))  # what a checkpoint stores
        resumed = blocks(corpus, [])
        resumed.restore(cut, saved)
        for s in range(cut, 14):
            same(resumed.batch_at(s), want[s], f"cut {cut} step {s}")
    same(whole.batch_at(3), want[3], "an earlier kept step")
    with pytest.raises(UserError, match=r"different stream \(seed: 0 -> 1"):
        blocks(corpus, [], seed=1).restore(5, json.loads(json.dumps(whole.state_at(5))))
