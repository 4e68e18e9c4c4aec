"""Pure training and evaluation steps: `train_step(state, batch, rng)`.

Nothing here knows the embedding family: the model's embedding supplies its own per-batch
context (`Embedding.context`), derived from the run key, the step and each sequence's global
row index, so a resumed run and an evaluation reproduce the draws exactly.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from lexi.embeddings.streams import DROPOUT_STREAM, EMBED_STREAM, EVAL_STREAM
from lexi.model.lm import LanguageModel, model_variables
from lexi.train.state import TrainState

Array = jax.Array
Batch = dict[str, Array]
BATCH_KEYS = ("inputs", "targets", "segment_ids", "positions", "loss_mask")



@dataclasses.dataclass(frozen=True)
class StepFns:
    train_step: Callable[[TrainState, Batch, Array], tuple[TrainState, dict]]
    eval_step: Callable[[Any, Batch, Array, Array], dict]


def sequence_nll(model: LanguageModel, variables, batch: Batch, ctx, *, dropout_rng=None) -> tuple[Array, Array]:
    """Summed negative log-likelihood over unmasked targets, and their count.
    `variables`: `model_variables(params, constants)`."""
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
    logp = model.apply(variables, batch["inputs"], batch["targets"], ctx, batch["segment_ids"],
                       batch["positions"], deterministic=dropout_rng is None, rngs=rngs)
    mask = batch["loss_mask"]
    return -jnp.sum(logp * mask), jnp.sum(mask)


def apply_gradients(state: TrainState, grads, loss: Array, tx: optax.GradientTransformation):
    """(new state, gradient norm, finite): one optimizer update, unless the loss or the
    gradient is not finite. Such a step never reaches the parameters: the old ones are kept
    (the loop then stops or, with train.nonfinite = "skip", counts it and goes on)."""
    grad_norm = optax.tree_utils.tree_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, new_opt = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = state.replace(step=state.step + 1, params=keep(new_params, state.params),
                              opt_state=keep(new_opt, state.opt_state))
    return new_state, grad_norm, finite


def make_steps(model: LanguageModel, tx: optax.GradientTransformation, *, grad_accum: int = 1,
               use_dropout: bool = False, schedule: Callable | None = None) -> StepFns:
    context = model.embedding.context

    def loss_and_grads(params, constants, micro: Batch, rng: Array, step: Array, row_offset: Array):
        b = micro["inputs"].shape[0]
        ctx = context(jax.random.fold_in(rng, EMBED_STREAM), step, row_offset + jnp.arange(b))
        drop = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(rng, DROPOUT_STREAM), step), row_offset) \
            if use_dropout else None

        def f(p):
            nll, count = sequence_nll(model, model_variables(p, constants), micro, ctx, dropout_rng=drop)
            return nll, count

        (nll, count), grads = jax.value_and_grad(f, has_aux=True)(params)
        return nll, count, grads

    def train_step(state: TrainState, batch: Batch, rng: Array) -> tuple[TrainState, dict]:
        """One optimizer update on a global batch; with grad_accum > 1 the batch is split into
        micro-batches whose summed gradients equal the full batch's exactly."""
        if grad_accum == 1:
            nll, count, grads = loss_and_grads(state.params, state.constants, batch, rng, state.step, jnp.int32(0))
        else:
            micro = jax.tree_util.tree_map(
                lambda x: x.reshape((grad_accum, x.shape[0] // grad_accum) + x.shape[1:]), batch)
            mb = batch["inputs"].shape[0] // grad_accum

            def body(carry, xs):
                i, mbatch = xs
                nll, count, grads = loss_and_grads(state.params, state.constants, mbatch, rng, state.step, i * mb)
                acc = jax.tree_util.tree_map(jnp.add, carry, (nll, count, grads))
                return acc, None

            zeros = (jnp.float32(0), jnp.float32(0), jax.tree_util.tree_map(jnp.zeros_like, state.params))
            (nll, count, grads), _ = jax.lax.scan(body, zeros, (jnp.arange(grad_accum), micro))
        count = jnp.maximum(count, 1.0)
        loss = nll / count
        grads = jax.tree_util.tree_map(lambda g: g / count, grads)
        new_state, grad_norm, finite = apply_gradients(state, grads, loss, tx)
        metrics = {"loss": loss, "grad_norm": grad_norm, "tokens": count, "finite": finite}
        if schedule is not None:
            metrics["lr"] = schedule(state.step)
        return new_state, metrics

    def eval_step(variables, batch: Batch, rng: Array, row_offset: Array) -> dict:
        """Summed NLL on a validation batch; the draws depend on the batch's rows only, so the
        same validation set is scored identically at every training step."""
        b = batch["inputs"].shape[0]
        ctx = context(jax.random.fold_in(rng, EVAL_STREAM), jnp.int32(0), row_offset + jnp.arange(b), train=False)
        nll, count = sequence_nll(model, variables, batch, ctx)
        return {"nll": nll, "count": count}

    return StepFns(train_step=train_step, eval_step=eval_step)
