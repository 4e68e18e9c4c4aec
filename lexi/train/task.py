"""What the one training loop trains: a language model, or a hypernetwork for one (ZeTT).

A task builds the run (model, optimizer, shardings), its data (a source of per-step batches
that is a pure function of the step, and validation batches), the initial state and the
compiled step. Everything else (checkpoints, exact resume, logging, signals, throughput)
is the loop's (lexi/train/loop.py) and the same for every task. `config.task` names one in
the registry (lexi/tasks.py); a new task is a class with these methods plus one line there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from lexi import sharding
from lexi.model.lm import model_variables
from lexi.train import flops as flops_lib
from lexi.rundir import cache_dir, check_resume_compatible
from lexi.train.setup_run import Run, build_run, compile_steps, init_state

# step(state, this process's batch, rng) -> (state, metrics); evaluate(state, rng) -> validation loss,
# or a dict of validation figures holding "val_loss" (ZeTT adds one per fixed target tokenizer)
StepFn = Callable[[Any, dict, jax.Array], tuple[Any, dict]]
EvalFn = Callable[[Any, jax.Array], float | dict]


class Task(Protocol):
    """What the loop needs from whatever it trains."""

    def check_resume(self, cfg, workdir: Path) -> None:
        """Refuse to resume a run directory that holds a different model."""
        ...

    def build_run(self, cfg, workdir: Path) -> Run:
        ...

    def data(self, cfg, run: Run) -> tuple[Any, list[dict]]:
        """(batches with `batch_at(step)` -> this process's batch, validation batches)."""
        ...

    def init_state(self, run: Run, seed: int):
        ...

    def compile(self, run: Run, val: list[dict]) -> tuple[StepFn, EvalFn]:
        ...

    def flops_per_token(self, run: Run) -> float:
        """Training FLOPs per token of text, for MFU."""
        ...


class LanguageModelTask(Task):
    """Next-token prediction with any embedding family on a corpus' token stream."""

    def check_resume(self, cfg, workdir: Path) -> None:
        check_resume_compatible(cfg, workdir)

    def build_run(self, cfg, workdir: Path) -> Run:
        return build_run(cfg, workdir)

    def data(self, cfg, run: Run) -> tuple[Any, list[dict]]:
        from lexi.data.corpora import get_corpus
        from lexi.data.pipeline import Batches, build_token_stream, eval_windows

        corpus = get_corpus(cfg.data)
        seq_len, tok, t = cfg.data.seq_len, run.tokenizer, cfg.train
        if cfg.data.get("input_pipeline", "cached") == "streaming":
            from lexi.data.streaming import streaming_data

            batches, val_tokens = streaming_data(cfg, corpus, tok, jax.process_index(), jax.process_count())
        else:
            train_tokens = build_token_stream(corpus, "train", tok, cache_dir(cfg), seq_len=seq_len)
            val_tokens = build_token_stream(corpus, "validation", tok, cache_dir(cfg), seq_len=seq_len)
            batches = Batches(train_tokens, seq_len, t.batch_size, cfg.seed, shuffle=True,
                              process_index=jax.process_index(), process_count=jax.process_count(),
                              bos_id=tok.bos_id, pad_id=tok.pad_id, repeat_share=cfg.data.get("repeat_share", 0.0),
                              repeat_length=cfg.data.get("repeat_length", 64))
        b, n = t.batch_size, t.eval_batches
        win = eval_windows(val_tokens, seq_len, b * n, tok.bos_id, pad_id=tok.pad_id)
        per = b // jax.process_count()
        lo = jax.process_index() * per
        val = [{k: np.asarray(v[i * b + lo: i * b + lo + per]) for k, v in win.items()} for i in range(n)]
        return batches, val

    def init_state(self, run: Run, seed: int):
        return init_state(run, seed)

    def compile(self, run: Run, val: list[dict]) -> tuple[StepFn, EvalFn]:
        train_step, eval_step = compile_steps(run)
        mesh, b = run.mesh, run.cfg.train.batch_size

        def step(state, local: dict, rng):
            return train_step(state, sharding.global_batch(local, mesh), rng)

        def evaluate(state, rng) -> float:
            variables = model_variables(state.params, state.constants)
            nll, count = 0.0, 0.0
            for i, vb in enumerate(val):
                out = eval_step(variables, sharding.global_batch(vb, mesh), rng, jnp.int32(i * b))
                nll, count = nll + float(out["nll"]), count + float(out["count"])
            return nll / max(count, 1.0)

        return step, evaluate

    def flops_per_token(self, run: Run) -> float:
        return flops_lib.train_flops_per_token(run.model.backbone, run.model.embedding.readout_rows,
                                               run.cfg.data.seq_len)

