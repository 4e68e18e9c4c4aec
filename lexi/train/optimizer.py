"""optax optimizers and learning-rate schedules from `config.train`."""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax

from lexi.errors import UserError

SCHEDULES = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw", "adafactor")


def make_schedule(t) -> optax.Schedule:
    """Linear warmup from 0 to `lr`, then decay to `lr * end_lr_ratio` at `steps`."""
    if t.schedule not in SCHEDULES:
        raise UserError(f"config.train.schedule must be one of {SCHEDULES}, got {t.schedule!r}")
    warmup = min(int(t.warmup_steps), max(int(t.steps) - 1, 0))
    decay_steps = max(int(t.steps) - warmup, 1)
    end = t.lr * t.end_lr_ratio
    if t.schedule == "cosine":
        decay = optax.cosine_decay_schedule(t.lr, decay_steps, alpha=t.end_lr_ratio)
    elif t.schedule == "linear":
        decay = optax.linear_schedule(t.lr, end, decay_steps)
    else:
        decay = optax.constant_schedule(t.lr)
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, t.lr, warmup), decay], [warmup])


def _decay_mask(params):
    """Weight decay on matrices only, not on norms, biases, scales or temperatures. Scanned layers
    (model.scan_layers) stack their parameters under `layers` along a leading layer axis, which
    does not make a norm's scale a matrix."""
    def decays(path, p):
        stacked = any(getattr(k, "key", None) == "layers" for k in path)
        return p.ndim - stacked >= 2

    return jax.tree_util.tree_map_with_path(decays, params)


def param_path(path) -> str:
    """'body/layers_0/attn/q/kernel': the '/'-joined dict keys and list indices that
    `train.trainable` matches; attributes (a boxed parameter's `.value`) are left out, so boxed
    and plain trees give the same paths."""
    named = [k for k in path if hasattr(k, "key") or hasattr(k, "idx")]
    return "/".join(str(k.key) if hasattr(k, "key") else str(k.idx) for k in named)


def trainable_mask(pattern: str, params):
    """True for every parameter whose path `re.search`es `pattern` ("" = all of them). A pattern
    that is not a regex, or matches no parameter, stops with one message naming the paths."""
    if not pattern:
        return jax.tree_util.tree_map(lambda _: True, params)
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise UserError(f"config.train.trainable {pattern!r} is not a regular expression: {e}") from None
    mask = jax.tree_util.tree_map_with_path(lambda path, _: bool(rx.search(param_path(path))), params)
    if not any(jax.tree_util.tree_leaves(mask)):
        paths = [param_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
        raise UserError(f"config.train.trainable {pattern!r} matches no parameter; paths look like "
                        f"{', '.join(paths[:4])}")
    return mask


def freeze_others(inner: optax.GradientTransformation, pattern: str) -> optax.GradientTransformation:
    """`inner` applied to the parameters `pattern` matches; the rest get zero gradients (so
    clipping sees only the trained ones) and zero updates (so weight decay leaves them as they
    are). The state is `inner`'s own, slots for frozen parameters included, so a checkpoint's
    layout does not depend on what trains and a run can change `trainable` when it resumes.
    `init` checks the pattern against the parameters, so a run stops at its layout (which
    traces `init`), before anything is written."""
    def init(params):
        if jax.tree_util.tree_leaves(params):  # optax.tree_map_params also calls init on a leafless placeholder
            trainable_mask(pattern, params)
        return inner.init(params)

    def update(grads, state, params=None):
        mask = trainable_mask(pattern, grads)
        keep = lambda tree: jax.tree_util.tree_map(lambda x, m: x if m else jnp.zeros_like(x), tree, mask)
        updates, state = inner.update(keep(grads), state, params)
        return keep(updates), state

    return optax.GradientTransformation(init, update)


def make_optimizer(t) -> optax.GradientTransformation:
    if t.optimizer not in OPTIMIZERS:
        raise UserError(f"config.train.optimizer must be one of {OPTIMIZERS}, got {t.optimizer!r}")
    schedule = make_schedule(t)
    parts = []
    if t.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(t.grad_clip))
    if t.optimizer == "adamw":
        parts.append(optax.adamw(schedule, b1=t.b1, b2=t.b2, eps=t.eps, weight_decay=t.weight_decay,
                                 mask=_decay_mask))
    else:
        # Paper setting (T5X default): factored second moments, no momentum, relative step off.
        parts.append(optax.adafactor(schedule, multiply_by_parameter_scale=False, clipping_threshold=None,
                                     weight_decay_rate=t.weight_decay or None, weight_decay_mask=_decay_mask))
    tx = optax.chain(*parts)
    trainable = t.get("trainable", "")
    return freeze_others(tx, trainable) if trainable else tx
