"""optax optimizers and learning-rate schedules from `config.train`."""
from __future__ import annotations

import jax
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
    return optax.chain(*parts)
