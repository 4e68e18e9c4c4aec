"""The training loop with config.data.input_pipeline=streaming: stopping and resuming gives the
losses and validation losses of an uninterrupted run, through the per-process iterator states
saved beside the checkpoints; a checkpoint without them is refused with a clear message."""
import json
import shutil

import pytest

from lexi.errors import UserError
from lexi.train.loop import train
from lexi.rundir import read_metrics
from test_streaming import random_docs, write_corpus
from test_train import tiny


def streaming(files: str, **train_kw):
    c = tiny(steps=6, log_every=1, eval_every=3, checkpoint_every=3, keep_checkpoints=1, **train_kw)
    c.data.update(corpus="text_files", files=files, val_fraction=0.1, input_pipeline="streaming",
                  streaming_open_files=2, streaming_shuffle_documents=50, streaming_shuffle_rows=16,
                  streaming_validation_documents=20)
    return c


@pytest.mark.slow
def test_stop_and_resume_equals_uninterrupted(tmp_path, cache_dir):
    files = write_corpus(tmp_path / "corpus", random_docs(400), files=4)
    full, cut = tmp_path / "full", tmp_path / "cut"
    cached_before = set(cache_dir.rglob("*"))
    train(streaming(files), full)
    train(streaming(files), cut, stop_at=3)
    assert sorted(p.name for p in (cut / "data_state").iterdir()) == ["3"]
    train(streaming(files), cut)
    metrics = lambda w: [{k: m[k] for k in ("step", "loss", "val_loss") if k in m} for m in read_metrics(w)]
    assert metrics(cut) == metrics(full)
    assert [m["val_loss"] for m in read_metrics(full) if "val_loss" in m]
    assert sorted(p.name for p in (cut / "data_state").iterdir()) == ["6"]  # pruned with the checkpoints
    assert json.loads((cut / "data_state" / "6" / "process_0.json").read_text())["step"] == 6
    assert set(cache_dir.rglob("*")) == cached_before  # no token stream written


def test_a_checkpoint_without_its_data_state_is_refused(tmp_path, cache_dir):
    files = write_corpus(tmp_path / "corpus", random_docs(400), files=4)
    run = tmp_path / "run"
    train(streaming(files), run, stop_at=3)
    shutil.rmtree(run / "data_state")
    with pytest.raises(UserError, match=r"checkpoint of step 3 .* has no data-iterator state for process 0"):
        train(streaming(files), run)
