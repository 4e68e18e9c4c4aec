"""Two real processes with input_pipeline=streaming (each reading its own files): both killed with
kill -9 (LEXI_FAULT_KILL) between checkpoints and started again, they finish with the losses and
validation losses of an uninterrupted two-process run."""
import numpy as np
import pytest

import test_multihost as mh
from test_streaming import random_docs, write_corpus


@pytest.mark.slow
def test_two_processes_killed_and_resumed_match_an_uninterrupted_run(tmp_path, cache_dir, monkeypatch):
    files = write_corpus(tmp_path / "corpus", random_docs(400), files=4)
    extra = ["--config.train.steps=9", "--config.data.corpus=text_files", f"--config.data.files={files}",
             "--config.data.val_fraction=0.1", "--config.data.input_pipeline=streaming",
             "--config.data.streaming_shuffle_documents=50", "--config.data.streaming_shuffle_rows=16",
             "--config.data.streaming_validation_documents=20"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    mh._ok(mh._launch(full, cache_dir, processes=2, extra=extra))

    env = mh._env
    monkeypatch.setattr(mh, "_env", lambda devices, cache: dict(env(devices, cache), LEXI_FAULT_KILL="8"))
    outs = mh._launch(killed, cache_dir, processes=2, extra=extra)
    assert any(rc == -9 for rc, _ in outs), outs[0][1][-2000:]
    assert max(mh._metrics(killed)) < 9  # it did not finish
    monkeypatch.setattr(mh, "_env", env)
    outs = mh._launch(killed, cache_dir, processes=2, extra=extra)
    mh._ok(outs)
    assert all("resumed from" in out for _, out in outs), outs[0][1][-2000:]

    m_full, m_killed = mh._metrics(full), mh._metrics(killed)
    assert sorted(m_killed) == sorted(m_full) == list(range(1, 10))
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(mh._curve(m_killed, key), mh._curve(m_full, key), rtol=1e-6)
    assert len(mh._curve(m_full, "val_loss")) == 3
