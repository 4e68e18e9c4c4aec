"""A language model's variables before there are any: the boxed (logically annotated) tree that
sharding rules lay out, from one dummy batch. Shared by training (lexi/train/setup_run.py) and
loading for inference (lexi/inference.py), so both see the same layout."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lexi.model.lm import LanguageModel


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
