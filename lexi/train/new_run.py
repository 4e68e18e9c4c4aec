"""A run directory that starts from given parameters instead of an initialisation.

`lexi zett transfer` (a base model with predicted embedding rows) and `lexi import-hf` (a
Hugging Face checkpoint) both write one: config.json, the tokenizer, a record of where the
weights came from, and a step-0 checkpoint with a fresh optimizer state, which `lexi eval`,
`lexi sample` and `lexi train` (continued training) read like any run they made themselves.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp

from lexi.errors import UserError
from lexi.train.checkpoint import Checkpointer
from lexi.train.state import TrainState


def write_initial_run(cfg, tok, out: str | Path, make_params: Callable[[Any], Any], records: dict[str, dict]) -> Path:
    """`make_params(run)` returns the parameters laid out with `run.state_shardings.params`;
    `records` are JSON files written beside config.json (e.g. {"transfer.json": {...}})."""
    from lexi.config import to_json
    from lexi.train.setup_run import build_run

    out = Path(out)
    if (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):
        raise UserError(f"{out} already holds a run; choose a new directory (nothing was changed)")
    if jax.process_index() == 0:  # one writer; the run directory is shared by every process
        out.mkdir(parents=True, exist_ok=True)
        tok.save(out)
        (out / "config.json").write_text(to_json(cfg))
        for name, record in records.items():
            (out / name).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("lexi_initial_run_files")
    run = build_run(cfg, out)  # reads the tokenizer just saved
    params = make_params(run)
    opt_state = jax.jit(run.tx.init, out_shardings=run.state_shardings.opt_state)(params)
    step = jax.device_put(jnp.int32(0), run.state_shardings.step)
    ckpt = Checkpointer(out / "checkpoints", async_save=False)
    meta = {"step": 0, "skipped_steps": 0}  # what a fresh run's first checkpoint records
    ckpt.save(0, TrainState(step=step, params=params, opt_state=opt_state), meta)
    ckpt.close()
    return out
