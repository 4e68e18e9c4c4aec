"""Timing helpers shared by the benchmark scripts: a config's real train step on synthetic
tokens, timed after compilation, with the compiled step's memory analysis."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from lexi.model import build_model
from lexi.train import flops as flops_lib
from lexi.train import optimizer as opt_lib
from lexi.train import peak as peak_lib
from lexi.model.init import init_params
from lexi.train.state import TrainState
from lexi.train.step import make_steps


def synthetic_batch(b: int, l: int, vocab: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, vocab, size=(b, l + 1), dtype=np.int32)
    return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "segment_ids": np.ones((b, l), np.int32),
            "positions": np.broadcast_to(np.arange(l, dtype=np.int32), (b, l)).copy(),
            "loss_mask": np.ones((b, l), np.float32)}


def vocab_of(cfg) -> int:
    """The config tokenizer's vocabulary size, without reading a corpus."""
    from lexi import tokenizers
    from lexi.rundir import cache_dir

    return tokenizers.size_from_config(cfg.data.tokenizer, cache_dir(cfg))[0]


def frozen_constants(cfg, model) -> dict:
    """The embedding's frozen arrays (a glyph table), built as a run builds them; {} for the
    families without any. A unicode tokenizer's learned n-grams are left out: they only
    relabel reserved ids, the table's shape and the step's cost stay the same."""
    from lexi import tokenizers
    from lexi.rundir import cache_dir

    if cfg.embedding.get("kind") != "frozen":
        return {}
    tok_cfg = dict(cfg.data.tokenizer)
    if tok_cfg.get("kind") == "unicode":
        tok_cfg["num_ngrams"] = 0
    tok = tokenizers.from_config(tok_cfg, lambda: [], cache_dir(cfg))
    host = model.embedding.host_constants(tok, cache_dir(cfg))
    return {"embedding": {k: jnp.asarray(v) for k, v in host.items()}} if host else {}


def bench_train_step(cfg, vocab: int, *, steps: int = 5, repeats: int = 3) -> dict:
    """Median step time of the jitted train step (on one device) and its memory analysis."""
    import flax.linen as nn

    model = build_model(cfg, vocab)
    tx = opt_lib.make_optimizer(cfg.train)
    params = nn.meta.unbox(init_params(model, jax.random.key(0), cfg))
    state = TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                       constants=frozen_constants(cfg, model))
    fns = make_steps(model, tx, grad_accum=cfg.train.grad_accum)
    step = jax.jit(fns.train_step, donate_argnums=(0,))
    batch = {k: jnp.asarray(v) for k, v in synthetic_batch(cfg.train.batch_size, cfg.data.seq_len, vocab).items()}
    rng = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch, rng).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    state, m = compiled(state, batch, rng)
    jax.block_until_ready(m)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            state, m = compiled(state, batch, rng)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t) / steps)
    step_s = float(np.median(times))
    tokens = cfg.train.batch_size * cfg.data.seq_len
    fpt = flops_lib.train_flops_per_token(model.backbone, vocab, cfg.data.seq_len)
    out = {"step_s": step_s, "tokens_per_sec": tokens / step_s, "model_tflops_per_sec": tokens * fpt / step_s / 1e12,
           "compile_s": compile_s, "params": flops_lib.param_count(params), "loss": float(m["loss"])}
    if mem is not None:
        out["temp_bytes"] = int(mem.temp_size_in_bytes)
        out["argument_bytes"] = int(mem.argument_size_in_bytes)
        out["peak_bytes"] = int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
                                - mem.alias_size_in_bytes)
    return out


def peak(dtype: str = "float32") -> tuple[float, str]:
    return peak_lib.peak_flops_per_device(dtype)
