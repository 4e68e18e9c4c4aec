"""Load a run directory's newest parameters for sampling and evaluation: the model and its
parameter shardings only, nothing of training (no optimizer, no train/ import but the
checkpoint reader, through lexi/rundir.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lexi import sharding
from lexi.embeddings.streams import EMBED_STREAM, SAMPLE_STREAM
from lexi.model import build_model
from lexi.model.init import init_variables
from lexi.model.lm import LanguageModel, model_variables
from lexi.rundir import load_tokenizer, load_used_ids, newest_checkpoint, read_config


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A run's model, tokenizer and newest weights, laid out on `mesh`."""

    cfg: ml_collections.ConfigDict
    model: LanguageModel
    tokenizer: Any
    mesh: Any
    params: Any
    step: int
    workdir: Path
    constants: Any = dataclasses.field(default_factory=dict)

    @property
    def variables(self) -> dict:
        """What `model.apply` (and lexi.eval, lexi.generate) take."""
        return model_variables(self.params, self.constants)


def load_for_inference(workdir: Path) -> Loaded:
    """The model of a language-model run directory and its newest parameters (and frozen
    constants), sharded by the run's mesh rules; no optimizer is built and its slots stay on
    disk."""
    workdir = Path(workdir)
    cfg = read_config(workdir, task="lm")
    ckpt, step = newest_checkpoint(workdir, keep=cfg.train.keep_checkpoints)
    tokenizer = load_tokenizer(cfg, workdir)
    model = build_model(cfg, tokenizer.vocab_size, tuple(tokenizer.special_ids),
                        load_used_ids(cfg, workdir, tokenizer))
    mesh = sharding.make_mesh(dict(cfg.mesh.shape))
    rules = sharding.rules_from_config(cfg.mesh)
    boxed = jax.eval_shape(lambda k: init_variables(model, k, cfg), jax.random.key(0))
    abstract = {k: _abstract(boxed.get(k, {}), mesh, rules) for k in ("params", "constants")}
    params, constants = ckpt.restore_weights(step, abstract)
    ckpt.close()
    return Loaded(cfg, model, tokenizer, mesh, params, step, workdir, constants)


def _abstract(boxed, mesh, rules):
    """ShapeDtypeStructs of a boxed variable tree, carrying the shardings its logical axes get."""
    shardings = sharding.tree_shardings(boxed, mesh, rules)
    return jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                  nn.meta.unbox(boxed), shardings)


def sample_text(loaded: Loaded, prompt: str, *, max_new: int = 200, temperature: float = 0.8, top_k: int = 0,
                seed: int = 0, num_samples: int = 1) -> list[str]:
    from lexi.generate import generate

    tok = loaded.tokenizer
    ids = [tok.bos_id] + tok.encode(prompt)
    prompt_BxP = jnp.asarray(np.tile(np.asarray(ids, np.int32), (num_samples, 1)))
    rng = jax.random.key(seed)
    ctx = loaded.model.embedding.context(jax.random.fold_in(rng, EMBED_STREAM), jnp.int32(0), jnp.arange(num_samples))
    out = generate(loaded.model, loaded.variables, prompt_BxP, ctx, jax.random.fold_in(rng, SAMPLE_STREAM),
                   max_new=max_new, temperature=temperature, top_k=top_k)
    return [tok.decode(until_end_of_text(row, tok)) for row in np.asarray(out)]


def until_end_of_text(ids, tok) -> list[int]:
    """`ids` up to (without) the first end of text: eos, or bos, which separates documents in
    lexi's packed training streams, so a model ends a document by starting the next one."""
    ids = [int(i) for i in ids]
    ends = [k for k, i in enumerate(ids) if i in (tok.eos_id, tok.bos_id)]
    return ids[: ends[0]] if ends else ids
