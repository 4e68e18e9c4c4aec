"""Faults during training: kill -9, SIGTERM, damaged checkpoints, failed writes, a full
disk, an unwritable run directory, non-finite steps. Each test checks the message and
that what was saved before the fault survives."""
import glob
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from lexi.config import load_config
from lexi.errors import UserError
from lexi.train.checkpoint import Checkpointer
from lexi.train.loop import TrainingStopped, train
from lexi.train.setup_run import build_run
from lexi.rundir import read_metrics
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


def test_nonfinite_skip_counts_skipped_steps(tmp_path, cache_dir, monkeypatch):
    """One poisoned batch under train.nonfinite=skip: that step alone is skipped and counted,
    the parameters stay finite and training goes on learning. Breaks if a non-finite update
    reaches the parameters or the skipped steps are miscounted."""
    from lexi.data.packing import Batches

    poisoned = 6  # its NaN loss mask makes the loss and every gradient NaN
    batch_at = Batches.batch_at

    def poison(self, step):
        batch = batch_at(self, step)
        if step == poisoned:
            batch["loss_mask"] = np.full_like(batch["loss_mask"], np.nan)
        return batch

    monkeypatch.setattr(Batches, "batch_at", poison)
    cfg = tiny(steps=20, log_every=1, checkpoint_every=20, nonfinite="skip")
    last = train(cfg, tmp_path / "run")
    rows = {m["step"]: m for m in read_metrics(tmp_path / "run") if "loss" in m}
    assert rows[poisoned + 1]["loss"] == "nan"  # the poison reached the step it was meant for
    assert [rows[s]["skipped_steps"] for s in sorted(rows)] == [0] * poisoned + [1] * (20 - poisoned)
    assert last["skipped_steps"] == 1
    ckpt = Checkpointer(tmp_path / "run" / "checkpoints", async_save=False)
    state, _ = ckpt.restore(20, build_run(cfg, tmp_path / "run").abstract_state)
    ckpt.close()
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(state.params))
    after = [rows[s]["loss"] for s in range(poisoned + 2, 21)]
    assert all(math.isfinite(x) for x in after)
    assert np.mean(after[-4:]) < np.mean(after[:4]) - 0.1, after  # still learning after the skipped step


@pytest.mark.slow
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


# --- kill -9 and exact resume -------------------------------------------------------

KILL_ARGS = ["--config.train.steps=30", "--config.train.checkpoint_every=3", "--config.train.log_every=1",
             "--config.train.eval_every=10", "--config.train.batch_size=8", "--config.data.seq_len=64",
             "--config.model.dropout=0.1", "--config.train.progress_bar=false"]
KILL_CONFIG = "configs/lexinvariant.py:tiny"  # random embeddings and dropout both draw from the RNG


def _train_cmd(workdir):
    return [sys.executable, "-m", "lexi.cli", "train", "--config", KILL_CONFIG, "--workdir", str(workdir), *KILL_ARGS]


def _last_logged_step(workdir) -> int:
    try:
        steps = [m["step"] for m in read_metrics(workdir) if "loss" in m]
    except Exception:  # a line being written
        return -1
    return max(steps, default=-1)


def _final_params(workdir):
    cfg = load_config(KILL_CONFIG, [a for a in KILL_ARGS if "progress_bar" not in a])
    run = build_run(cfg, Path(workdir))
    ckpt = Checkpointer(Path(workdir) / "checkpoints", async_save=False)
    state, _ = ckpt.restore(ckpt.latest_step(), run.abstract_state)
    ckpt.close()
    return jax.tree_util.tree_leaves(jax.device_get(state.params))


def _comparable(workdir):
    return [{k: v for k, v in m.items() if k not in ("tokens_per_sec", "mfu")} for m in read_metrics(workdir)]


@pytest.mark.slow
def test_kill9_at_four_points_then_resume_is_bitwise_identical(tmp_path, cache_dir):
    """kill -9 at fixed points (LEXI_FAULT_KILL: after a step between checkpoints, while a
    checkpoint write is in flight, right before a checkpoint) and once at a moment the test
    does not choose; the resumed run equals an uninterrupted one bit for bit."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(full), check=True, capture_output=True, timeout=300)
    kills = []
    for point in ("4", "12:save", "21"):
        proc = subprocess.run(_train_cmd(killed), env=dict(os.environ, LEXI_FAULT_KILL=point), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        kills.append(_last_logged_step(killed))
    assert kills == [4, 12, 21], kills
    proc = subprocess.Popen(_train_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240  # the random kill: as soon as a step past 23 is logged
    while _last_logged_step(killed) < 24 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 24 <= _last_logged_step(killed) < 30
    done = subprocess.run(_train_cmd(killed), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stderr
    assert _comparable(killed) == _comparable(full)  # every logged loss, grad norm, lr and val loss
    for a, b in zip(_final_params(killed), _final_params(full)):
        np.testing.assert_array_equal(a, b)
    assert not glob.glob(str(killed / "checkpoints" / "*tmp*"))  # half-written saves were cleaned up


# --- damaged checkpoints --------------------------------------------------------------

def _damage(step_dir: Path) -> None:
    for f in (step_dir / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            with open(f, "r+b") as fh:
                fh.truncate(f.stat().st_size // 2)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_the_newest_good_one(tmp_path, cache_dir, caplog):
    cfg = lambda: tiny(steps=8, checkpoint_every=2, keep_checkpoints=5)
    full, run = tmp_path / "full", tmp_path / "run"
    train(cfg(), full)
    train(cfg(), run, stop_at=6)
    _damage(run / "checkpoints" / "6")
    with caplog.at_level("WARNING"):
        train(cfg(), run)
    assert any("checkpoint 6" in r.getMessage() and "cannot be read" in r.getMessage() and "resumed from step 4"
               in r.getMessage() for r in caplog.records), caplog.text
    assert [p.name.split("-")[0] for p in (run / "checkpoints_corrupt").iterdir()] == ["6"]  # kept, not deleted
    assert sorted(Checkpointer(run / "checkpoints", async_save=False).all_steps()) == [2, 4, 6, 8]
    losses = lambda w: [(m["step"], m["loss"]) for m in read_metrics(w) if "loss" in m]
    assert losses(run) == losses(full)  # steps 5-6 were redone exactly


def test_no_readable_checkpoint_is_an_error_that_moves_nothing(tmp_path, cache_dir):
    run = tmp_path / "run"
    train(tiny(steps=4, checkpoint_every=2), run)
    for d in ("2", "4"):
        _damage(run / "checkpoints" / d)
    with pytest.raises(UserError, match=r"no checkpoint in .* can be read \(step 4: .*; step 2: .*Nothing was changed"):
        train(tiny(steps=6, checkpoint_every=2), run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
    assert not (run / "checkpoints_corrupt").exists()


def test_half_written_checkpoint_directory_is_ignored(tmp_path, cache_dir):
    run = tmp_path / "run"
    train(tiny(steps=8, checkpoint_every=2), run, stop_at=4)
    partial = run / "checkpoints" / "6.orbax-checkpoint-tmp-1234"  # what a kill during a save leaves
    shutil.copytree(run / "checkpoints" / "4", partial)
    _damage(partial)
    train(tiny(steps=8, checkpoint_every=2), run)
    assert not partial.exists()
    assert Checkpointer(run / "checkpoints", async_save=False).latest_step() == 8


# --- failed writes, full disk, unwritable directory -------------------------------------

def _with_file_size_limit(cmd, kib):
    """`cmd` run so that writing past `kib` KiB in one file fails (EFBIG), as on a full disk."""
    return ["bash", "-c", f'trap "" XFSZ; ulimit -f {kib}; exec "$@"', "bash", *cmd]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash's ulimit")
@pytest.mark.slow
def test_failed_checkpoint_write_stops_cleanly_and_keeps_older_checkpoints(tmp_path, cache_dir):
    w = tmp_path / "run"
    cmd = [sys.executable, "-m", "lexi.cli", "train", "--config", "configs/standard.py:tiny", "--workdir", str(w),
           "--config.train.checkpoint_every=2", "--config.train.keep_checkpoints=2",
           "--config.train.progress_bar=false"]
    first = subprocess.run(cmd + ["--config.train.steps=6"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    before = sorted(p.name for p in (w / "checkpoints").iterdir())
    assert before == ["4", "6"]
    full = subprocess.run(_with_file_size_limit(cmd + ["--config.train.steps=12"], 256),  # checkpoint files: ~0.5 MB
                          capture_output=True, text=True, timeout=300)
    assert full.returncode == 1, full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    assert "writing a checkpoint to" in full.stderr and "failed (File too large)" in full.stderr
    assert "the newest complete checkpoint, step 6, is intact" in full.stderr
    assert sorted(p.name for p in (w / "checkpoints").iterdir() if p.name.isdigit()) == ["4", "6"]
    again = subprocess.run(cmd + ["--config.train.steps=12"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resumed from" in again.stderr, again.stderr[-2000:]
    assert Checkpointer(w / "checkpoints", async_save=False).latest_step() == 12


def test_not_enough_disk_space_is_refused_before_training(tmp_path, cache_dir, monkeypatch):
    import lexi.train.loop as loop

    monkeypatch.setattr(loop.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000))
    with pytest.raises(UserError, match=r"not enough disk space for checkpoints in .*0.0 MiB free"):
        train(tiny(steps=4), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unwritable_run_directory_is_refused(tmp_path, cache_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match=r"cannot write to run directory .*a_file/run"):
        train(tiny(steps=4), blocker / "run")
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(UserError, match=r"cannot write to run directory"):
            train(tiny(steps=4), ro / "run")


def test_fault_kill_spec_is_checked(monkeypatch):
    from lexi.train import loop

    for spec, point in (("", None), ("7", (7, "step")), ("12:save", (12, "save"))):
        monkeypatch.setenv(loop.FAULT_KILL_ENV, spec)
        assert loop._fault_kill_point() == point
    monkeypatch.setenv(loop.FAULT_KILL_ENV, "7:later")
    with pytest.raises(UserError, match="expected STEP or STEP:save"):
        loop._fault_kill_point()
