"""`lexi eval` (run_suite) on a run trained with input_pipeline=streaming: it reads bounded heads of
the splits in memory and writes no token stream, and its perplexity is that of the same validation
tokens evaluated directly."""
import numpy as np
import pytest

from lexi import tokenizers
from lexi.data.corpora import get_corpus
from lexi.data.streaming import head_tokens, validation_tokens
from lexi.eval.suite import run_suite
from lexi.train.loop import train
from test_streaming import CountingCorpus, random_docs, write_corpus
from test_train import tiny

TOK = tokenizers.load("char")


def test_head_tokens_stop_at_the_document_or_token_budget():
    docs = random_docs(1000)
    corpus = CountingCorpus(docs, val_fraction=0.1)
    train_docs = list(corpus.documents("train"))
    corpus.handed = 0
    tokens = head_tokens(corpus, TOK, "train", 10)
    assert TOK.decode(tokens) == "".join(train_docs[:10]) and corpus.handed < 100
    bounded = head_tokens(corpus, TOK, "train", 1000, max_tokens=500)  # whole encode groups of 64 documents
    assert 500 <= len(bounded) and int((bounded == TOK.bos_id).sum()) == 64


def test_eval_of_a_streaming_run_writes_no_token_stream(tmp_path, cache_dir):
    files = write_corpus(tmp_path / "corpus", random_docs(300, longest=400), files=3)
    cfg = tiny(steps=2, log_every=1, eval_every=2, checkpoint_every=2)
    cfg.data.update(corpus="text_files", files=files, val_fraction=0.2, seq_len=64, input_pipeline="streaming",
                    streaming_open_files=2, streaming_shuffle_documents=20, streaming_shuffle_rows=8,
                    streaming_validation_documents=30)
    work = tmp_path / "run"
    train(cfg, work)
    npy_before = set(cache_dir.rglob("*.npy"))
    res = run_suite(work, ["perplexity", "cipher", "reasoning"], examples=4, num_sequences=4, probe_steps=2,
                    probe_pool=8, lookup_pairs=(4, 8), task_params={"permutation": {"num_demos": 2}},
                    induction_length=8)
    assert set(cache_dir.rglob("*.npy")) == npy_before  # no train or validation stream cached
    assert np.isfinite(res["cipher"]["cipher_loss"]) and res["reasoning"]

    from lexi.data.pipeline import eval_windows
    from lexi.eval import perplexity
    from lexi.inference import load_for_inference

    loaded = load_for_inference(work)
    val = validation_tokens(get_corpus(cfg.data), loaded.tokenizer, 30, seq_len=64)
    windows = eval_windows(val, 64, 4, TOK.bos_id, start_at_document=True, pad_id=TOK.pad_id)
    want = perplexity.evaluate(loaded.model, loaded.variables, loaded.tokenizer, windows, seed=0)
    assert res["perplexity"]["mean_loss"] == pytest.approx(want["mean_loss"], rel=1e-6)
