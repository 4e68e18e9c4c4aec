"""Lexinvariance regularisation: permutation at rate p, specials untouched, consistency."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from helpers import tiny_model
from lexi import embeddings

V, SPECIALS = 64, (0, 2, 3)


def _emb(p=0.2, mode="permute"):
    return embeddings.build({"kind": "regularized", "p": p, "mode": mode}, V, 32, SPECIALS)


def test_replaces_at_rate_p_and_never_specials():
    emb = _emb(0.2)
    b, l = 64, 128
    tokens = jax.random.randint(jax.random.key(0), (b, l), 0, V)
    ctx = emb.context(jax.random.key(1), jnp.int32(3), jnp.arange(b))
    out = np.asarray(emb.corrupt(tokens, ctx, 0))
    tokens = np.asarray(tokens)
    special = np.isin(tokens, SPECIALS)
    assert np.all(out[special] == tokens[special])
    changed = (out != tokens)[~special].mean()
    # a replaced token can map to itself with probability 1/61; rate = 0.2 * 60/61
    assert abs(changed - 0.2 * 60 / 61) < 0.01
    assert not np.isin(out[~special], SPECIALS).any()


def test_one_permutation_per_sequence_and_fresh_per_sequence():
    emb = _emb(1.0)
    movable = [i for i in range(V) if i not in SPECIALS]
    tokens = jnp.tile(jnp.asarray(movable)[None], (2, 1))
    ctx = emb.context(jax.random.key(1), jnp.int32(0), jnp.arange(2))
    out = np.asarray(emb.corrupt(tokens, ctx, 0))
    assert sorted(out[0].tolist()) == movable == sorted(out[1].tolist())  # a bijection per row
    assert not np.array_equal(out[0], out[1])


def test_input_and_target_of_one_text_position_are_replaced_together():
    emb = _emb(0.5)
    window = jax.random.randint(jax.random.key(2), (4, 33), 4, V)
    ctx = emb.context(jax.random.key(1), jnp.int32(0), jnp.arange(4))
    inputs = emb.corrupt(window[:, :-1], ctx, 0)
    targets = emb.corrupt(window[:, 1:], ctx, 1)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])


def test_evaluation_context_is_clean():
    model = tiny_model("regularized", vocab=V, emb={"p": 0.2})
    assert model.embedding.context(jax.random.key(0), 0, jnp.arange(2), train=False) is None
    x = jax.random.randint(jax.random.key(0), (2, 12), 0, V)
    ctx = model.embedding.context(jax.random.key(0), 0, jnp.arange(2))
    params = nn.meta.unbox(model.init(jax.random.key(1), x, x, ctx)["params"])
    clean = model.apply({"params": params}, x, x, None)
    noisy = model.apply({"params": params}, x, x, ctx)
    assert clean.shape == noisy.shape and not np.allclose(clean, noisy)


def test_gaussian_mix_replaces_input_vectors_only():
    emb = _emb(0.5, "gaussian_mix")
    tokens = jax.random.randint(jax.random.key(0), (2, 16), 4, V)
    ctx = emb.context(jax.random.key(1), 0, jnp.arange(2))
    params = emb.init(jax.random.key(0), tokens, ctx, method=emb.embed)
    x_clean = emb.apply(params, tokens, None, method=emb.embed)
    x_mix = emb.apply(params, tokens, ctx, method=emb.embed)
    replaced = np.asarray(jnp.any(x_clean != x_mix, axis=-1))
    assert 0.2 < replaced.mean() < 0.8
    np.testing.assert_array_equal(emb.corrupt(tokens, ctx, 1), tokens)  # targets untouched


def test_a_regularized_model_trains(tmp_path, cache_dir):
    """Twenty steps through the real loop with a 20% replacement rate: finite losses that fall
    well below the uniform ln 128 (the name promised training; the test above only compares one
    forward pass with and without the noise)."""
    from lexi.train.loop import train
    from lexi.rundir import read_metrics
    from test_train import tiny

    cfg = tiny("regularized", steps=20)
    cfg.embedding.p = 0.2
    train(cfg, tmp_path / "run")
    losses = [m["loss"] for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[0] > losses[-1] + 0.3 and losses[-1] < np.log(128) - 0.5
