"""The one training loop, shared by every model family and by the ZeTT hypernetwork.

`train(cfg, workdir, task)`: builds (or resumes) the run in `workdir` through its task
(lexi/train/task.py: what is trained, on which batches), then runs jit-compiled steps
with explicit shardings and a donated state. Resuming is exact: the data order is
a pure function of the step (cached input) or continues from the iterator state saved with
each checkpoint (streaming input), the random embeddings and dropout are functions of
(seed, step, row), and parameters, optimizer and counters come back from the newest checkpoint.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import jax
import numpy as np

from lexi import config as config_lib
from lexi import distributed, sharding
from lexi import tasks as task_registry
from lexi.data import stream_state
from lexi.errors import UserError
from lexi.train import peak as peak_lib
from lexi.train.checkpoint import Checkpointer, state_bytes
from lexi.train.metrics_log import MetricsWriter
from lexi.train.task import Task

log = logging.getLogger("lexi")


class TrainingStopped(Exception):
    """Raised for a clean early stop (preemption signal, non-finite loss); the message says why,
    `exit_code` what the process should return (0: stopped as asked, resumable)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _check_workdir(workdir: Path) -> None:
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write_test.{jax.process_index()}"  # processes may share the directory
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to run directory {workdir}: {e.strerror or e}") from e


def _check_disk_space(ckpt_dir: Path, abstract_state, keep: int) -> None:
    """Refuse to start a run whose checkpoints cannot fit: better now than at step 40,000."""
    size = state_bytes(abstract_state) // jax.process_count()
    existing = sum(f.stat().st_size for f in ckpt_dir.rglob("*") if f.is_file()) if ckpt_dir.exists() else 0
    need = (keep + 1) * size - existing  # `keep` finished ones plus the one being written
    free = shutil.disk_usage(ckpt_dir if ckpt_dir.exists() else ckpt_dir.parent).free
    if need > free:
        raise UserError(f"not enough disk space for checkpoints in {ckpt_dir}: keeping {keep} checkpoints of "
                        f"{_mib(size)} each needs {_mib(need)} more, {_mib(free)} free. Free some space, lower "
                        "--config.train.keep_checkpoints, or use another --workdir.")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


_OS_ERRORS = re.compile(r"No space left on device|File too large|Disk quota exceeded|Read-only file system|"
                        r"Permission denied|No such file or directory|Input/output error")


def _write_failed(ckpt: Checkpointer, err: Exception) -> TrainingStopped:
    """The message for a checkpoint write that failed (disk full, directory removed, ...)."""
    found = _OS_ERRORS.search(str(err))
    reason = found.group(0) if found else f"{type(err).__name__}: {str(err).strip()[:200]}"
    try:
        ckpt.reload()
        good = ckpt.latest_step()
    except Exception:
        good = None
    kept = (f"the newest complete checkpoint, step {good}, is intact" if good is not None
            else "no complete checkpoint exists yet")
    return TrainingStopped(f"writing a checkpoint to {ckpt.directory} failed ({reason}); {kept}. Free disk space "
                           "(or fix the directory) and run the same command again to resume.")


FAULT_KILL_ENV = "LEXI_FAULT_KILL"


def _fault_kill_point() -> Optional[tuple[int, str]]:
    """Fault injection for the kill -9 tests: LEXI_FAULT_KILL=STEP kills this process with
    SIGKILL once step STEP is logged, before its checkpoint is saved; STEP:save right after
    that checkpoint's asynchronous write is issued, while it is still in flight."""
    spec = os.environ.get(FAULT_KILL_ENV, "")
    if not spec:
        return None
    step, _, phase = spec.partition(":")
    if not step.isdigit() or phase not in ("", "save"):
        raise UserError(f"{FAULT_KILL_ENV}={spec!r}: expected STEP or STEP:save")
    return int(step), phase or "step"


def _maybe_kill(point: Optional[tuple[int, str]], done: int, phase: str) -> None:
    if point == (done, phase):
        os.kill(os.getpid(), signal.SIGKILL)


def _restore_data_position(batches, workdir: Path, step: int) -> None:
    """The cached pipeline's batches are a pure function of the step; a streaming one continues from
    the iterator state saved with the checkpoint (lexi/data/stream_state.py)."""
    if step == 0 or not hasattr(batches, "restore"):
        return
    saved = stream_state.load(workdir, step, jax.process_index())
    if saved is None:
        raise UserError(f"the checkpoint of step {step} in {workdir / 'checkpoints'} has no data-iterator state for "
                        f"process {jax.process_index()} ({stream_state.path(workdir, step, jax.process_index())}): it "
                        "was written with data.input_pipeline=cached or with another number of processes. Resume "
                        "with the settings it was written with, or start a new --workdir")
    batches.restore(step, saved)


def train(cfg, workdir: str | Path, task: Optional[Task] = None, *, stop_at: Optional[int] = None) -> dict:
    """Train (or resume) `task` and return the last logged metrics; without one, the task
    `config.task` names in the registry (lexi/tasks.py).

    `stop_at` ends this call after that step (with a checkpoint), as if the job had been
    preempted there: the schedule still runs to `train.steps` when resumed.
    """
    workdir = Path(workdir)
    config_lib.validate(cfg)
    distributed.initialize(cfg.get("distributed"))  # before any device is touched
    _check_workdir(workdir)
    ckpt_dir = workdir / "checkpoints"
    task = task or task_registry.task_for(cfg)
    resuming = ckpt_dir.exists() and any(ckpt_dir.iterdir())
    if resuming:
        task.check_resume(cfg, workdir)
    run = task.build_run(cfg, workdir)
    t = cfg.train
    divisor = sharding.batch_divisor(run.mesh) * t.grad_accum
    if t.batch_size % divisor:
        raise UserError(f"config.train.batch_size ({t.batch_size}) must be a multiple of the data-parallel "
                        f"devices x grad_accum ({divisor}) for mesh {dict(run.mesh.shape)}")
    batches, val = task.data(cfg, run)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(config_lib.to_json(run.cfg))  # a task may complete it (ZeTT: the base)

    _check_disk_space(ckpt_dir, run.abstract_state, t.keep_checkpoints)
    ckpt = Checkpointer(ckpt_dir, keep=t.keep_checkpoints)
    meta: dict = {}
    restored = ckpt.restore_latest(run.abstract_state)
    latest = None
    if restored is not None:
        state, meta, latest = restored
        log.info("resumed from %s at step %d", ckpt_dir, latest)
    else:
        state = task.init_state(run, cfg.seed)
    start = int(state.step)
    _restore_data_position(batches, workdir, start)

    train_step, evaluate_fn = task.compile(run, val)
    rng = jax.random.key(cfg.seed)

    def evaluate(state) -> dict:
        """{"val_loss": ...} and any further validation figures the task reports (ZeTT: one per
        fixed target tokenizer, lexi/zett/validation.py)."""
        out = evaluate_fn(state, rng)
        return dict(out) if isinstance(out, dict) else {"val_loss": out}

    backbone = run.model.backbone
    flops_tok = task.flops_per_token(run)
    if t.peak_flops > 0:
        peak = t.peak_flops
    else:
        per_dev, _ = peak_lib.peak_flops_per_device(backbone.dtype)
        peak = per_dev if jax.devices()[0].platform == "cpu" else per_dev * jax.device_count()

    writer = MetricsWriter(workdir, resume_step=start if latest is not None else None)
    skipped = int(meta.get("skipped_steps", 0))
    stop_signal: list[int] = []
    try:  # preemption: finish the step in flight, save, exit cleanly
        prev_handler = signal.signal(signal.SIGTERM, lambda signum, frame: stop_signal.append(signum))
    except ValueError:  # not in the main thread (e.g. some notebooks): no preemption handling
        prev_handler = None

    from lexi.data.pipeline import Prefetcher
    prefetch = Prefetcher(batches.batch_at, start, depth=max(1, t.prefetch))
    pbar = _progress(t, start)
    last: dict = {}
    pending: list[dict] = []
    tokens_per_step = t.batch_size * cfg.data.seq_len
    t_interval, steps_interval = time.perf_counter(), 0
    step = start

    def save(s: int) -> None:
        try:
            if hasattr(batches, "state_at"):  # streaming input: iterator state first, so a complete checkpoint has it
                stream_state.save(workdir, s, jax.process_index(), batches.state_at(s))
            ckpt.save(s, state, {"step": s, "skipped_steps": skipped})
            if hasattr(batches, "state_at"):
                stream_state.prune(workdir, ckpt.all_steps() + [s], jax.process_index())
        except Exception as e:  # disk full, directory gone, ...: the earlier checkpoints stay intact
            raise _write_failed(ckpt, e) from e

    end = t.steps if stop_at is None else min(stop_at, t.steps)
    kill_point = _fault_kill_point()
    in_flight: Optional[BaseException] = None
    try:
        for step in range(start, end):
            local = prefetch.next()
            state, metrics = train_step(state, local, rng)
            pending.append(metrics)
            steps_interval += 1
            done = step + 1
            if step == start:  # exclude compilation from throughput
                jax.block_until_ready(metrics)
                t_interval, steps_interval = time.perf_counter(), 0
            is_log = done % t.log_every == 0 or done == t.steps
            is_ckpt = done % t.checkpoint_every == 0 or done in (t.steps, end)
            is_eval = (t.eval_every and done % t.eval_every == 0) or done == t.steps
            if is_log or is_ckpt or stop_signal:
                fetched = jax.device_get(pending)
                pending = []
                bad = [m for m in fetched if not bool(m["finite"])]
                if bad:
                    if t.nonfinite == "stop":
                        first = done - len(fetched) + next(i for i, m in enumerate(fetched) if not bool(m["finite"]))
                        which = "loss" if not math.isfinite(float(bad[0]["loss"])) else "grad_norm"
                        raise TrainingStopped(
                            f"non-finite {which} at step {first}: training stopped. The update was not applied; "
                            f"the newest checkpoint in {ckpt_dir} is intact. Lower train.lr, raise warmup, or set "
                            "--config.train.nonfinite=skip to skip such steps.")
                    skipped += len(bad)
                if is_log:
                    now = time.perf_counter()
                    elapsed = now - t_interval
                    rate = tokens_per_step * steps_interval / elapsed if steps_interval and elapsed > 0 else 0.0
                    good = [m for m in fetched if bool(m["finite"])] or fetched
                    last = {"loss": float(np.mean([m["loss"] for m in good])),
                            "grad_norm": float(np.mean([m["grad_norm"] for m in good])),
                            "lr": float(fetched[-1]["lr"]),
                            "tokens_per_sec": rate,
                            "mfu": rate * flops_tok / peak if peak else 0.0,
                            "skipped_steps": skipped}
                    for k in fetched[0]:  # a task's own scalars (e.g. ZeTT's lm_loss and aux_mse)
                        if k not in last and k not in ("tokens", "finite"):
                            last[k] = float(np.mean([m[k] for m in good]))
                    if is_eval:
                        last.update(evaluate(state))
                    writer.write(done, last)
                    _update_progress(pbar, done, last)
                    t_interval, steps_interval = time.perf_counter(), 0
            elif is_eval:
                writer.write(done, evaluate(state))
            _maybe_kill(kill_point, done, "step")
            if is_ckpt:
                save(done)
                _maybe_kill(kill_point, done, "save")
            if stop_signal:
                if not is_ckpt:
                    save(done)
                ckpt.wait()
                raise TrainingStopped(
                    f"received signal {stop_signal[0]}: saved a checkpoint at step {done} in {ckpt_dir}. "
                    "Run the same command again to resume.", exit_code=0)
    except BaseException as e:
        in_flight = e
        raise
    finally:
        prefetch.close()
        if hasattr(batches, "close"):  # a streaming pipeline's open files
            batches.close()
        if pbar is not None:
            pbar.close()
        writer.close()
        try:
            ckpt.close()  # waits for the last asynchronous save, which may fail only now
        except Exception as e:
            failed = _write_failed(ckpt, e)
            if in_flight is None:
                raise failed from e
            log.error("%s", failed)
        if prev_handler is not None:
            signal.signal(signal.SIGTERM, prev_handler)
    return last


def _progress(t, start: int):
    if not t.progress_bar or jax.process_index() != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=t.steps, initial=start, desc="train", dynamic_ncols=True, file=sys.stderr)


def _update_progress(pbar, step: int, m: dict) -> None:
    if pbar is None:
        return
    pbar.n = step
    post = {"loss": f"{m['loss']:.3f}", "tok/s": f"{m['tokens_per_sec']:.0f}", "mfu": f"{100 * m['mfu']:.1f}%"}
    if "val_loss" in m:
        post["val"] = f"{m['val_loss']:.3f}"
    pbar.set_postfix(post, refresh=False)
    pbar.refresh()
