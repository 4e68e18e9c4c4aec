"""Faults the loop already handles: non-finite steps (stop or skip) and SIGTERM (save, exit 0)."""
import math
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lexi.train.checkpoint import Checkpointer
from lexi.train.loop import TrainingStopped, train
from lexi.train.metrics_log import read_metrics
from test_train import tiny


def _blow_up(**kw):
    # An absurd learning rate overflows the parameters within a few steps.
    return tiny(steps=20, lr=1e30, grad_clip=0.0, warmup_steps=0, checkpoint_every=2, log_every=2, **kw)


def test_nonfinite_stops_and_keeps_only_finite_checkpoints(tmp_path, cache_dir):
    with pytest.raises(TrainingStopped, match=r"non-finite (loss|grad_norm) at step \d+"):
        train(_blow_up(), tmp_path / "run")
    ckpt = Checkpointer(tmp_path / "run" / "checkpoints", async_save=False)
    from lexi.train.setup_run import build_run

    run = build_run(_blow_up(), tmp_path / "run")
    for step in ckpt.all_steps():
        state, _ = ckpt.restore(step, run.abstract_state)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(state.params))
    ckpt.close()


def test_nonfinite_skip_counts_skipped_steps(tmp_path, cache_dir):
    cfg = _blow_up()
    cfg.train.nonfinite = "skip"
    last = train(cfg, tmp_path / "run")
    assert last["skipped_steps"] > 0
    assert all(math.isfinite(m["loss"]) for m in read_metrics(tmp_path / "run") if isinstance(m.get("loss"), float))


def test_sigterm_saves_and_exits_cleanly(tmp_path, cache_dir):
    w = tmp_path / "run"
    cmd = [sys.executable, "-m", "lexi.cli", "train", "--config", "configs/standard.py:tiny", "--workdir", str(w),
           "--config.train.steps=100000", "--config.train.checkpoint_every=100000", "--config.train.progress_bar=false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.time() + 240
    while time.time() < deadline and not (w / "metrics.jsonl").exists():
        time.sleep(0.5)
    assert (w / "metrics.jsonl").exists(), proc.stderr.read() if proc.poll() is not None else "no metrics"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Run the same command again to resume" in err
    steps = [int(p.name) for p in (w / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps and max(steps) >= 10
