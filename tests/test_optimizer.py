"""Learning-rate schedules against their closed forms, and which parameters weight decay touches."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lexi.config import base_config
from lexi.train.optimizer import _decay_mask, make_optimizer, make_schedule
from helpers import init, tiny_model


def train_cfg(**kw):
    t = base_config().train
    t.update(**kw)
    return t


def expected_lr(t, step: int) -> float:
    """Linear warmup from 0 to lr over min(warmup_steps, steps - 1) steps, then cosine or linear
    decay to lr * end_lr_ratio at `steps` (held after it), or a constant lr."""
    warmup = min(t.warmup_steps, t.steps - 1)
    if step < warmup:
        return t.lr * step / warmup
    u = min(step - warmup, t.steps - warmup) / (t.steps - warmup)  # decay progress, 0 -> 1
    r = t.end_lr_ratio
    if t.schedule == "cosine":
        return t.lr * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * u)))
    if t.schedule == "linear":
        return t.lr * (1 - (1 - r) * u)
    return t.lr


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("steps, warmup", [(100, 10), (100, 0), (5, 50)])  # (5, 50): warmup capped at steps - 1
def test_schedule_matches_its_closed_form(schedule, steps, warmup):
    """Breaks if the warmup, the decay shape, its end value or where it ends changes."""
    t = train_cfg(schedule=schedule, steps=steps, warmup_steps=warmup, lr=3e-3, end_lr_ratio=0.1)
    lr = make_schedule(t)
    for step in sorted({0, 1, warmup // 2, warmup - 1, warmup, warmup + 1, (steps + warmup) // 2, steps - 1, steps,
                        steps + 10} - {-1}):
        assert float(lr(step)) == pytest.approx(expected_lr(t, step), rel=1e-5, abs=1e-10), (schedule, step)


def _named_leaves(tree) -> dict[str, object]:
    return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize("kind", ["trainable", "lexinvariant"])
@pytest.mark.parametrize("scan_layers", [False, True])
def test_weight_decay_reaches_matrices_only(kind, scan_layers):
    """Kernels and embedding tables decay; norm scales, biases and temperatures do not, also when
    the layers are scanned (their parameters stacked along a leading layer axis)."""
    params = nn.meta.unbox(init(tiny_model(kind, scan_layers=scan_layers))[0])
    decays = _named_leaves(_decay_mask(params))
    last = lambda path: path.rsplit("['", 1)[1].rstrip("']")
    assert {last(p) for p in decays} >= {"kernel", "scale"}
    for path, d in decays.items():
        assert d == (last(path) in ("kernel", "table", "rel_embedding")), path


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor"])
def test_optimizer_decays_the_masked_parameters(optimizer):
    """With zero gradients an update is the weight decay alone: the same negative multiple of every
    masked parameter, zero for the rest. Breaks if the optimizer ignores the mask."""
    t = train_cfg(optimizer=optimizer, lr=0.1, weight_decay=0.5, warmup_steps=0, grad_clip=0.0)
    params = nn.meta.unbox(init(tiny_model("lexinvariant", scan_layers=True))[0])
    tx = make_optimizer(t)
    updates, _ = tx.update(jax.tree_util.tree_map(jnp.zeros_like, params), tx.init(params), params)
    mask, p, u = _named_leaves(_decay_mask(params)), _named_leaves(params), _named_leaves(updates)
    factors = {float(np.sum(u[k] * p[k]) / np.sum(p[k] * p[k])) for k in p if mask[k]}
    factor = factors.pop()
    assert factor < 0  # adamw: -lr * wd; optax's adafactor: -wd, not scaled by the learning rate
    for k in p:
        np.testing.assert_allclose(u[k], factor * p[k] if mask[k] else 0.0, rtol=1e-5, atol=1e-8, err_msg=k)


def test_trainable_pattern_trains_only_what_it_matches():
    """`train.trainable` = only the embedding table trains. Its updates equal the same optimizer
    run on that table alone (so clipping's norm leaves the frozen gradients out), and every other
    parameter gets exactly zero, weight decay included. Breaks if frozen gradients reach the
    clip norm, if decay moves a frozen matrix, or if the optimizer state depends on the pattern."""
    t = train_cfg(lr=0.1, weight_decay=0.5, warmup_steps=0, grad_clip=0.01, eps=0.1)  # eps: the step feels the clip
    params = nn.meta.unbox(init(tiny_model("trainable"))[0])
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.3), params)
    frozen_tx = make_optimizer(train_cfg(**{**t.to_dict(), "trainable": "^embedding/table$"}))
    state = frozen_tx.init(params)
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(make_optimizer(t).init(params))
    updates, _ = frozen_tx.update(grads, state, params)
    alone_tx = make_optimizer(t)
    sub = {"table": params["embedding"]["table"]}
    alone, _ = alone_tx.update({"table": grads["embedding"]["table"]}, alone_tx.init(sub), sub)
    np.testing.assert_allclose(updates["embedding"]["table"], alone["table"], rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(alone["table"]).max()) > 0
    for path, u in _named_leaves(updates).items():
        if "table" not in path:
            assert float(jnp.abs(u).max()) == 0.0, path


@pytest.mark.parametrize("pattern, message", [("(", "not a regular expression"), ("^nothing$", "matches no parameter")])
def test_trainable_pattern_that_cannot_work_stops_with_one_message(pattern, message):
    from lexi.errors import UserError
    from lexi.train.optimizer import trainable_mask

    boxed = init(tiny_model("trainable"))[0]
    with pytest.raises(UserError, match=message):
        trainable_mask(pattern, nn.meta.unbox(boxed))
    plain = jax.tree_util.tree_leaves(trainable_mask("table$", nn.meta.unbox(boxed)))
    assert jax.tree_util.tree_leaves(trainable_mask("table$", boxed)) == plain and sum(plain) == 1  # paths as run-time sees them


def test_a_run_with_a_pattern_that_matches_nothing_stops_at_its_layout():
    """The check lives in the optimizer's init, which a run's layout traces (setup_run.state_layout,
    shared by the LM and ZeTT tasks), so the run stops before it writes a checkpoint. A matching
    pattern lays out: optax.tree_map_params calls init again on a leafless placeholder."""
    from lexi.errors import UserError
    from lexi.train.setup_run import assemble

    cfg = base_config()
    cfg.train.trainable = "^nothing$"
    with pytest.raises(UserError, match="matches no parameter; paths look like body/"):
        assemble(cfg, vocab_size=64)
    cfg.train.trainable = "^embedding/"  # and one that matches lays out as usual
    assert assemble(cfg, vocab_size=64).tx is not None
