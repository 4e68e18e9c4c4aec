"""Lexinvariant embedding: exact invariance, draws, chunked == direct, the regeneration generator."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lexi.errors import UserError
from lexi.model.lm import LanguageModel
from lexi.ops import gaussian, xent
from helpers import init, tiny_model

V = 64


def _relabel_check(kind):
    """Relabel every token by pi and give token pi(x) the vector x had: a lexinvariant model's
    log-probabilities of the relabelled targets are identical; returns the max difference."""
    model = tiny_model(kind, vocab=V)
    params, x, _ = init(model, vocab=V)
    params = nn.meta.unbox(params)
    b, l = x.shape
    perm = jax.random.permutation(jax.random.key(7), V)
    if kind == "lexinvariant":
        seeds = gaussian.sequence_seeds(jax.random.key(3), 0, jnp.arange(b))
        e = gaussian.gaussian_rows(seeds, jnp.broadcast_to(jnp.arange(V), (b, V)), 32)
        inv = jnp.argsort(perm)
        ctx, ctx_perm = {"matrix": e}, {"matrix": e[:, inv]}  # E'[pi(v)] = E[v]
    else:
        ctx = ctx_perm = None
    targets = jnp.roll(x, -1, axis=1)
    lp = model.apply({"params": params}, x, targets, ctx)
    lp_perm = model.apply({"params": params}, perm[x], perm[targets], ctx_perm)
    return float(jnp.max(jnp.abs(lp - lp_perm)))


def test_exact_invariance_to_relabelling():
    assert _relabel_check("lexinvariant") < 1e-5


def test_standard_lm_fails_the_same_test():
    assert _relabel_check("trainable") > 1e-2


def test_draws_differ_across_sequences_and_steps_and_repeat_for_same_inputs():
    key = jax.random.key(0)
    s0 = gaussian.sequence_seeds(key, 5, jnp.arange(4))
    again = gaussian.sequence_seeds(key, 5, jnp.arange(4))
    next_step = gaussian.sequence_seeds(key, 6, jnp.arange(4))
    np.testing.assert_array_equal(s0, again)
    assert len({tuple(r) for r in np.asarray(s0).tolist()}) == 4
    assert not np.any(np.all(np.asarray(s0) == np.asarray(next_step), axis=1))
    ids = jnp.broadcast_to(jnp.arange(V), (4, V))
    e = np.asarray(gaussian.gaussian_rows(s0, ids, 32))
    assert not np.allclose(e[0], e[1])
    # Same token, same vector, within one sequence.
    rows = np.asarray(gaussian.gaussian_rows(s0, jnp.array([[3, 9, 3, 3]] * 4), 32))
    np.testing.assert_array_equal(rows[:, 0], rows[:, 2])
    np.testing.assert_array_equal(rows[0, 0], e[0, 3])


@pytest.mark.parametrize("generator", ["hash", "threefry"])
def test_generators_are_standard_normal_and_uncorrelated(generator):
    seeds = gaussian.sequence_seeds(jax.random.key(1), 0, jnp.arange(8))
    e = np.asarray(gaussian.gaussian_rows(seeds, jnp.broadcast_to(jnp.arange(512), (8, 512)), 64, generator))
    flat = e.ravel()
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1.0) < 0.01
    kurt = np.mean((flat - flat.mean()) ** 4) / flat.var() ** 2
    assert abs(kurt - 3.0) < 0.1
    c = np.corrcoef(e.reshape(-1, 64))  # rows of all sequences
    off = c[~np.eye(len(c), dtype=bool)]
    assert np.abs(off).mean() < 0.12 and abs(off.mean()) < 0.005
    assert len(np.unique(e.reshape(-1, 64), axis=0)) == 8 * 512


def test_hash_generator_is_finite_at_the_extreme_bits():
    """The largest and smallest 24-bit draws must map to finite values (about +-5.3 sigma)."""
    z = np.asarray(gaussian.bits_to_normal(jnp.array([0, 255, 0xFFFFFF00, 0xFFFFFFFF], jnp.uint32)))
    assert np.all(np.isfinite(z)) and 5.0 < z[-1] < 6.0 and z[0] == -z[-1]


@pytest.mark.parametrize("chunk", [16, 24])  # 24 leaves a ragged last chunk
def test_online_chunked_readout_equals_direct_values_and_gradients(chunk):
    direct, chunked = (tiny_model("lexinvariant", vocab=V, emb={"readout_chunk": c}) for c in (0, chunk))
    params, x, ctx = init(direct, vocab=V)
    params = nn.meta.unbox(params)
    y = jnp.roll(x, -1, axis=1)
    w = jax.random.normal(jax.random.key(9), x.shape)

    def loss(model, p):
        return jnp.sum(model.apply({"params": p}, x, y, ctx) * w)

    l1, g1 = jax.value_and_grad(lambda p: loss(direct, p))(params)
    l2, g2 = jax.value_and_grad(lambda p: loss(chunked, p))(params)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), g1, g2)
    assert float(jnp.abs(g1["embedding"]["log_temperature"])) > 0


def test_generic_chunked_logprobs_match_log_softmax():
    b, l, d, v = 2, 5, 8, 37
    h = jax.random.normal(jax.random.key(0), (b, l, d))
    table = jax.random.normal(jax.random.key(1), (v, d))
    tg = jax.random.randint(jax.random.key(2), (b, l), 0, v)

    def direct(h, s):
        return jnp.take_along_axis(jax.nn.log_softmax(s * h @ table.T), tg[..., None], -1)[..., 0]

    def chunked(h, s):
        return xent.chunked_target_logprobs(h, lambda ids: table[ids][None], tg, table[tg], v, 8, s)

    s = jnp.float32(0.4)
    np.testing.assert_allclose(direct(h, s), chunked(h, s), atol=1e-5)
    gd = jax.grad(lambda h, s: direct(h, s).sum(), argnums=(0, 1))(h, s)
    gc = jax.grad(lambda h, s: chunked(h, s).sum(), argnums=(0, 1))(h, s)
    for a, c in zip(gd, gc):
        np.testing.assert_allclose(a, c, atol=1e-4)


def test_untrained_logits_start_near_uniform():
    """The 1/sqrt(d) readout temperature keeps the first loss near log V (methods.md)."""
    model = tiny_model("lexinvariant", vocab=V)
    params, x, ctx = init(model, vocab=V)
    params = nn.meta.unbox(params)
    y = jnp.roll(x, -1, 1)
    loss = float(-model.apply({"params": params}, x, y, ctx).mean())
    untempered = dict(params, embedding=dict(params["embedding"], log_temperature=jnp.float32(0.0)))
    loss_raw = float(-model.apply({"params": untempered}, x, y, ctx).mean())
    assert abs(loss - np.log(V)) < 1.5
    assert loss_raw > np.log(V) + 5


@pytest.mark.parametrize("init_scale,echoes", [("ones", True), ("signs", False), ("constant", False)])
def test_initial_scale_decides_whether_an_untrained_model_echoes_its_input(init_scale, echoes):
    """With the paper's scale of ones the tied readout finds the input row in the residual
    stream and predicts "next token = current token" (p ~ 0.5 here, 0.61 at 4 x 128);
    random signs or a small constant start near the uniform 1/V."""
    model = tiny_model("lexinvariant", vocab=128, emb={"init_scale": init_scale, "init_scale_value": 0.1},
                       d_model=64, head_dim=16, mlp_dim=256)
    params, x, ctx = init(model, b=8, l=64, vocab=128)
    params = nn.meta.unbox(params)
    logp = jax.nn.log_softmax(model.apply({"params": params}, x, ctx, method=LanguageModel.logits), -1)
    p_echo = float(jnp.exp(jnp.take_along_axis(logp, x[..., None], -1)).mean())
    scale = np.asarray(params["embedding"]["scale"])
    assert (p_echo > 0.3) if echoes else (p_echo < 0.03)
    if init_scale == "signs":
        assert set(np.unique(scale)) == {-1.0, 1.0}


def test_unknown_initial_scale_is_a_user_error():
    with pytest.raises(UserError, match="init_scale"):
        tiny_model("lexinvariant", emb={"init_scale": "twos"})
