"""A training run's layout before its first step: model, optimizer, the sharding of every
state array, the initial state and the jit-compiled steps.

The run directory's records (tokenizer, readout ids, resume checks) are lexi/rundir.py's;
loading weights for eval and sampling (lexi/inference.py) needs neither this file nor an
optimizer.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lexi import sharding
from lexi.model import build_model
from lexi.model.init import init_params, init_variables
from lexi.model.lm import LanguageModel, model_variables
from lexi.rundir import cache_dir, load_tokenizer, load_used_ids, token_counts
from lexi.train import optimizer as opt_lib
from lexi.train.checkpoint import abstract_with_shardings
from lexi.train.state import TrainState
from lexi.train.step import make_steps


@dataclasses.dataclass
class Run:
    cfg: ml_collections.ConfigDict
    mesh: Any
    model: LanguageModel
    tx: Any
    schedule: Any
    state_shardings: Any
    abstract_state: Any  # ShapeDtypeStructs carrying the shardings
    tokenizer: Any = None
    workdir: Optional[Path] = None

    @property
    def rules(self):
        return sharding.rules_from_config(self.cfg.mesh)


def assemble(cfg, vocab_size: int, special_ids: tuple = (), mesh=None, used_ids=None, *, tokenizer=None,
             workdir: Optional[Path] = None) -> Run:
    """Model, optimizer and the sharding of every state array, without touching data (a
    restricted readout's `used_ids` come from `load_used_ids`). `build_run` adds the run
    directory's tokenizer; `lexi compile` and the tests build shapes without one."""
    mesh = mesh if mesh is not None else sharding.make_mesh(dict(cfg.mesh.shape))
    rules = sharding.rules_from_config(cfg.mesh)
    model = build_model(cfg, vocab_size, tuple(special_ids), used_ids)
    tx = opt_lib.make_optimizer(cfg.train)
    schedule = opt_lib.make_schedule(cfg.train)
    boxed_vars = jax.eval_shape(lambda k: init_variables(model, k, cfg), jax.random.key(0))
    state_sh, abstract = state_layout(boxed_vars["params"], boxed_vars.get("constants", {}), tx, mesh, rules)
    return Run(cfg, mesh, model, tx, schedule, state_sh, abstract, tokenizer, workdir)


def state_layout(boxed_params, boxed_constants, tx, mesh, rules) -> tuple[TrainState, TrainState]:
    """(shardings, ShapeDtypeStructs carrying them) of a TrainState, from the boxed (logically
    annotated) abstract parameters and constants; optimizer slots follow their parameters."""
    param_sh = sharding.tree_shardings(boxed_params, mesh, rules)
    const_sh = sharding.tree_shardings(boxed_constants, mesh, rules)
    shape_of = lambda tree: jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nn.meta.unbox(tree))
    params_abs = shape_of(boxed_params)
    opt_abs = jax.eval_shape(tx.init, params_abs)
    opt_sh = optax.tree_map_params(tx, lambda slot, s: _slot_sharding(slot, s, mesh), opt_abs, param_sh,
                                   transform_non_params=lambda _: sharding.replicated(mesh))
    state_sh = TrainState(step=sharding.replicated(mesh), params=param_sh, opt_state=opt_sh, constants=const_sh)
    abstract = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=params_abs, opt_state=opt_abs,
                          constants=shape_of(boxed_constants))
    return state_sh, abstract_with_shardings(abstract, state_sh)


def _slot_sharding(slot, param_sharding, mesh):
    """An optimizer slot is laid out like its parameter; a slot of another shape (Adafactor's
    factored row/column statistics) is small and replicated."""
    shape = tuple(slot.shape)
    if len(param_sharding.spec) <= len(shape):
        try:
            param_sharding.shard_shape(shape)  # raises when the mesh axes do not divide the slot
            return param_sharding
        except (ValueError, TypeError):
            pass
    return sharding.replicated(mesh)


def build_run(cfg, workdir: Path) -> Run:
    tokenizer = load_tokenizer(cfg, workdir)
    used_ids = load_used_ids(cfg, workdir, tokenizer)
    return assemble(cfg, tokenizer.vocab_size, tuple(tokenizer.special_ids), used_ids=used_ids, tokenizer=tokenizer,
                    workdir=workdir)


def jit_steps(run: Run):
    """(train_step, eval_step) under jax.jit with explicit in/out shardings and a donated
    state, not yet traced: `lexi compile` lowers them for a pod it does not have."""
    cfg = run.cfg
    fns = make_steps(run.model, run.tx, grad_accum=cfg.train.grad_accum, use_dropout=cfg.model.dropout > 0,
                     schedule=run.schedule)
    batch_sh, repl = sharding.batch_sharding(run.mesh), sharding.replicated(run.mesh)
    train_step = jax.jit(fns.train_step, in_shardings=(run.state_shardings, batch_sh, repl),
                         out_shardings=(run.state_shardings, repl), donate_argnums=(0,))
    var_sh = model_variables(run.state_shardings.params, run.state_shardings.constants)
    eval_step = jax.jit(fns.eval_step, in_shardings=(var_sh, batch_sh, repl, repl),
                        out_shardings=repl)
    return train_step, eval_step


def compile_steps(run: Run):
    """The run's (train_step, eval_step), traced under its mesh and logical-axis rules."""
    train_step, eval_step = jit_steps(run)

    def traced(fn):  # activation sharding hints resolve against this run's mesh and rules
        def call(*args):
            with sharding.activation_context(run.mesh, run.rules):
                return fn(*args)
        return call

    return traced(train_step), traced(eval_step)


def train_token_counts(run: Run) -> np.ndarray:
    """int64[V]: how often each id occurs in the training split's token stream (the cached
    stream the run trains on, so every process counts the same)."""
    return token_counts(run.cfg, run.tokenizer)


def make_constants(run: Run) -> Any:
    """The frozen arrays of the embedding, built on the host (deterministically, so every
    process builds the same) and laid out with the run's shardings."""
    host = run.model.embedding.host_constants(run.tokenizer, cache_dir(run.cfg), lambda: train_token_counts(run))
    if not host:
        return {}
    tree = {"embedding": host}
    return jax.tree_util.tree_map(
        lambda a, s: jax.make_array_from_callback(a.shape, s, lambda idx: a[idx]), tree, run.state_shardings.constants)


def init_state(run: Run, seed: int) -> TrainState:
    cfg, model, tx = run.cfg, run.model, run.tx

    def make(key):
        params = nn.meta.unbox(init_params(model, key, cfg))
        return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params))

    sh = run.state_shardings.replace(constants={})
    state = jax.jit(make, out_shardings=sh)(jax.random.key(seed))
    return state.replace(constants=make_constants(run))
