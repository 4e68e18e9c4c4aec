"""Jitted per-token scoring shared by the evaluation suite: NLL per position and final-layer
activations, for any embedding family (each sequence gets its evaluation context from its
row index, so a score is reproducible for a given seed). `variables` is what
`LanguageModel.apply` takes: `lexi.model.lm.model_variables(params, constants)`."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lexi.embeddings.streams import EVAL_STREAM  # one tag, so suite and training validation draw alike
from lexi.model.lm import LanguageModel


def eval_context(model: LanguageModel, seed: int, rows: np.ndarray):
    key = jax.random.fold_in(jax.random.key(seed), EVAL_STREAM)
    return model.embedding.context(key, jnp.int32(0), jnp.asarray(rows), train=False)


@functools.partial(jax.jit, static_argnames=("model",))
def _token_nll(model, variables, batch, ctx):
    logp = model.apply(variables, batch["inputs"], batch["targets"], ctx, batch.get("segment_ids"),
                       batch.get("positions"))
    return -logp


@functools.partial(jax.jit, static_argnames=("model",))
def _hidden(model, variables, inputs, ctx):
    return model.apply(variables, inputs, ctx, method=LanguageModel.hidden)


def token_nll(model, variables, windows: dict, *, seed: int = 0, batch_size: int = 16,
              rows: np.ndarray | None = None, ctx=None) -> np.ndarray:
    """NLL (nats) of every target, float32[N, L]; windows: dict of [N, L] arrays.

    `rows[i]` is the row index window i draws its evaluation context with (default i);
    windows that share a row see the same random embeddings (e.g. the choices of one
    multiple-choice question). A given `ctx` (e.g. predicted tables) serves every window."""
    n = len(windows["inputs"])
    rows = np.arange(n) if rows is None else np.asarray(rows)
    out = []
    for lo in range(0, n, batch_size):
        batch = {k: jnp.asarray(v[lo:lo + batch_size]) for k, v in windows.items() if k != "loss_mask"}
        c = ctx if ctx is not None else eval_context(model, seed, rows[lo:lo + len(batch["inputs"])])
        out.append(np.asarray(_token_nll(model, variables, batch, c)))
    return np.concatenate(out, axis=0)


def hidden_states(model, variables, inputs_NxL: np.ndarray, ctx) -> jax.Array:
    return _hidden(model, variables, jnp.asarray(inputs_NxL), ctx)
