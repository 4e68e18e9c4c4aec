"""Everything a run needs before its first step: tokenizer, data, mesh, model, state.

Shared by `lexi train`, `lexi eval` and `lexi sample`, so all of them see the same model
built the same way from a run directory.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lexi import sharding
from lexi.config import base_config
from lexi.errors import UserError
from lexi.model import build_model
from lexi.model.lm import LanguageModel, model_variables
from lexi.train import optimizer as opt_lib
from lexi.train.checkpoint import abstract_with_shardings
from lexi.train.state import TrainState
from lexi.train.step import make_steps

# Sections whose change makes a checkpoint meaningless for this run.
_IDENTITY_SECTIONS = ("model", "embedding")


def cache_dir(cfg) -> Path:
    return Path(cfg.data.cache_dir or os.environ.get("LEXI_CACHE", Path.home() / ".cache" / "lexi"))


def load_tokenizer(cfg, workdir: Path):
    """The run's tokenizer: the one saved in the run directory, else built from config and saved."""
    from lexi import tokenizers

    return _saved_or_made(workdir / "tokenizer.json", lambda: tokenizers.load(str(workdir)),
                          lambda: tokenizer_from_config(cfg), lambda tok: tok.save(str(workdir)),
                          lambda tok: tok.fingerprint(), "tokenizer")


def _saved_or_made(path: Path, load, make, save, fingerprint, what: str):
    """A run directory's record decided at its first start: loaded when `path` exists (process
    0's view, so that every process takes the same branch), else made and saved by process 0,
    after every process has its copy (nobody reads a half-written file); checked to be the same
    on all processes."""
    saved = path.exists()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        saved = bool(multihost_utils.broadcast_one_to_all(np.int32(saved)))
    obj = load() if saved else make()
    check_same_on_all_processes(fingerprint(obj), what)
    if not saved and jax.process_index() == 0:
        save(obj)
    return obj


def load_used_ids(cfg, workdir: Path, tokenizer):
    """The ids a restricted readout scores (config.embedding.readout_ids = "train_split"), or None:
    the set saved in the run directory, else the training split's ids, counted and saved, so a
    resumed run, `lexi eval` and `lexi sample` score exactly the set the run started with."""
    from lexi import embeddings
    from lexi.embeddings.readout import FILE, UsedIds

    if not embeddings.restricts_readout(dict(cfg.embedding)):
        return None
    path = workdir / FILE
    return _saved_or_made(path, lambda: UsedIds.load(path), lambda: UsedIds.from_counts(token_counts(cfg, tokenizer)),
                          lambda used: used.save(path), lambda used: used.fingerprint, "readout id set")


def tokenizer_from_config(cfg):
    """The tokenizer `config.data.tokenizer` asks for, trained on the train split of
    `config.data`'s corpus when it must be (and cached, so the corpus is read once)."""
    from lexi import tokenizers
    from lexi.data.corpora import get_corpus

    corpus = get_corpus(cfg.data)
    return tokenizers.from_config(cfg.data.tokenizer, lambda: corpus.documents("train"), cache_dir(cfg),
                                  corpus_key=corpus.fingerprint())


def check_same_on_all_processes(text: str, what: str) -> None:
    """Every process builds its own copy of `what`; a difference would silently train a different
    model per host, so stop with a clear error instead."""
    if jax.process_count() == 1:
        return
    import hashlib

    from jax.experimental import multihost_utils

    mine = np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    if not (every == every[0]).all():
        raise UserError(f"the processes of this run built different {what}s (process {jax.process_index()} differs): "
                        "give every process the same config and data, or build it once and share the run directory")


def check_resume_compatible(cfg, workdir: Path, identity: tuple = _IDENTITY_SECTIONS) -> None:
    """Refuse to resume a checkpoint with a different model (the `identity` config sections,
    and the tokenizer)."""
    saved = workdir / "config.json"
    if not saved.exists():
        return
    old = json.loads(saved.read_text())
    new = cfg.to_dict()
    defaults = base_config().to_dict()
    defaults["tokenizer"] = defaults["data"]["tokenizer"]
    sections = {sec: (old[sec], new[sec]) for sec in identity if sec in old}
    if "tokenizer" in old.get("data", {}):
        sections["tokenizer"] = (old["data"]["tokenizer"], new["data"]["tokenizer"])
    diffs = []
    for sec, (was, now) in sections.items():
        # a key the saved config lacks was added to lexi since: it had its default value
        was = {**{k: v for k, v in defaults.get(sec, {}).items() if k in now}, **was}
        name = "data.tokenizer" if sec == "tokenizer" else sec
        diffs += [f"{name}.{k}: {was.get(k)!r} -> {now.get(k)!r}"
                  for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
    if diffs:
        raise UserError(f"{workdir} holds a checkpoint of a different model; changed: " + "; ".join(diffs)
                        + ". Use a new --workdir, or restore the old settings to resume.")


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


def assemble(cfg, vocab_size: int, special_ids: tuple = (), mesh=None, used_ids=None) -> Run:
    """Model, optimizer and the sharding of every state array, without touching data (a
    restricted readout's `used_ids` come from `load_used_ids`)."""
    mesh = mesh if mesh is not None else sharding.make_mesh(dict(cfg.mesh.shape))
    rules = sharding.rules_from_config(cfg.mesh)
    model = build_model(cfg, vocab_size, tuple(special_ids), used_ids)
    tx = opt_lib.make_optimizer(cfg.train)
    schedule = opt_lib.make_schedule(cfg.train)
    boxed_vars = jax.eval_shape(lambda k: init_variables(model, k, cfg), jax.random.key(0))
    state_sh, abstract = state_layout(boxed_vars["params"], boxed_vars.get("constants", {}), tx, mesh, rules)
    return Run(cfg, mesh, model, tx, schedule, state_sh, abstract)


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
    run = assemble(cfg, tokenizer.vocab_size, tuple(tokenizer.special_ids), used_ids=used_ids)
    run.tokenizer, run.workdir = tokenizer, workdir
    return run


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


def dummy_batch(cfg, b: int = 1) -> dict:
    l = cfg.data.seq_len
    z = jnp.zeros((b, l), jnp.int32)
    return {"inputs": z, "targets": z, "segment_ids": z + 1, "positions": z, "loss_mask": z.astype(jnp.float32)}


def init_variables(model: LanguageModel, key, cfg) -> dict:
    """Boxed (logically annotated) variables: "params", and "constants" for frozen tables
    (placeholders here: their values come from `make_constants`)."""
    d = dummy_batch(cfg)
    ctx = model.embedding.context(jax.random.key(0), jnp.int32(0), jnp.arange(1))  # train-time ctx: every parameter used
    return dict(model.init(key, d["inputs"], d["targets"], ctx, d["segment_ids"], d["positions"]))


def init_params(model: LanguageModel, key, cfg):
    """Boxed (logically annotated) parameters."""
    return init_variables(model, key, cfg)["params"]


def train_token_counts(run: Run) -> np.ndarray:
    """int64[V]: how often each id occurs in the training split's token stream (the cached
    stream the run trains on, so every process counts the same)."""
    return token_counts(run.cfg, run.tokenizer)


def token_counts(cfg, tokenizer) -> np.ndarray:
    """`train_token_counts` before there is a Run. With the streaming input pipeline the split is
    read once and counted without writing a token stream (still a full pass: a restricted readout
    or a frozen table's used ids need every id the run can meet)."""
    from lexi.data.corpora import get_corpus
    from lexi.data.pipeline import build_token_stream

    if cfg.data.get("input_pipeline", "cached") == "streaming":
        from lexi.data.streaming import count_tokens

        return count_tokens(get_corpus(cfg.data), tokenizer)
    stream = build_token_stream(get_corpus(cfg.data), "train", tokenizer, cache_dir(cfg), seq_len=cfg.data.seq_len)
    counts = np.zeros(tokenizer.vocab_size, np.int64)
    for start in range(0, len(stream), 1 << 24):  # bounded memory on a memory-mapped stream
        counts += np.bincount(np.asarray(stream[start:start + (1 << 24)]), minlength=tokenizer.vocab_size)
    return counts


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
