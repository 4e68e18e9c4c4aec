"""Backbone: position schemes, scan/remat equivalence, masking, KV-cached generation."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lexi.generate import generate
from lexi.model.config import BackboneConfig
from lexi.model.lm import LanguageModel
from lexi.model.positions import t5_buckets
from lexi.errors import UserError
from helpers import init, tiny_model


@pytest.mark.parametrize("position", ["t5_bias", "rope", "learned", "none"])
@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_forward_shapes_and_causality(position, activation):
    model = tiny_model(position=position, activation=activation)
    params, x, ctx = init(model)
    params = nn.meta.unbox(params)
    logits = model.apply({"params": params}, x, ctx, method=LanguageModel.logits)
    assert logits.shape == (2, 12, 64) and bool(jnp.all(jnp.isfinite(logits)))
    # Changing a later token must not change earlier outputs (causal), but must change its own.
    x2 = x.at[:, 7].set((x[:, 7] + 1) % 64)
    logits2 = model.apply({"params": params}, x2, ctx, method=LanguageModel.logits)
    np.testing.assert_allclose(logits[:, :7], logits2[:, :7], atol=1e-5)
    assert not np.allclose(logits[:, 7:], logits2[:, 7:], atol=1e-5)


def test_each_position_scheme_has_its_parameters():
    for position in ["t5_bias", "rope", "learned"]:
        model = tiny_model(position=position)
        params, x, ctx = init(model)
        params = nn.meta.unbox(params)
        flat = {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(params)}
        has = {"t5_bias": "rel_embedding", "rope": None, "learned": "pos_embedding"}[position]
        if has:
            assert any(has in f for f in flat)
        else:
            assert not any("rel_embedding" in f or "pos_embedding" in f for f in flat)


def test_t5_buckets_monotone_and_bounded():
    rel = -jnp.arange(0, 1000)
    b = np.asarray(t5_buckets(rel, 32, 128))
    assert b[0] == 0 and b[15] == 15 and b.max() == 31
    assert np.all(np.diff(b) >= 0)
    assert np.asarray(t5_buckets(jnp.arange(1, 5), 32, 128)).tolist() == [0, 0, 0, 0]


def test_segments_do_not_attend_across_documents():
    model = tiny_model()
    params, x, ctx = init(model)
    params = nn.meta.unbox(params)
    seg = jnp.array([[1] * 5 + [2] * 7, [1] * 12])
    pos = jnp.array([list(range(5)) + list(range(7)), list(range(12))])
    base = model.apply({"params": params}, x, ctx, seg, pos, method=LanguageModel.logits)
    x2 = x.at[0, :5].set((x[0, :5] + 3) % 64)  # change the first document only
    out = model.apply({"params": params}, x2, ctx, seg, pos, method=LanguageModel.logits)
    np.testing.assert_allclose(base[0, 5:], out[0, 5:], atol=1e-5)
    assert not np.allclose(base[0, :5], out[0, :5], atol=1e-5)


@pytest.mark.parametrize("remat", ["none", "full", "dots"])
def test_scan_and_remat_match_unrolled(remat):
    """Same parameters laid out per layer or stacked give the same loss and gradients."""
    plain = tiny_model()
    params, x, ctx = init(plain)
    params = nn.meta.unbox(params)
    scanned = tiny_model(scan_layers=True, remat=remat)
    layers = [params["body"][f"layer_{i}"] for i in range(2)]
    stacked = dict(params)
    stacked["body"] = {k: v for k, v in params["body"].items() if not k.startswith("layer_")}
    stacked["body"]["layers"] = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *layers)

    loss = lambda m, p: -m.apply({"params": p}, x, x, ctx).mean()
    l1, g1 = jax.value_and_grad(lambda p: loss(plain, p))(params)
    l2, g2 = jax.value_and_grad(lambda p: loss(scanned, p))(stacked)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    g2_layers = [jax.tree_util.tree_map(lambda a: a[i], g2["body"]["layers"]) for i in range(2)]
    for i in range(2):
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                               g1["body"][f"layer_{i}"], g2_layers[i])


def test_bfloat16_compute_keeps_float32_params_and_close_loss():
    m32, m16 = tiny_model(), tiny_model(dtype="bfloat16")
    params, x, ctx = init(m32)
    params = nn.meta.unbox(params)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    l32 = m32.apply({"params": params}, x, x, ctx).mean()
    l16 = m16.apply({"params": params}, x, x, ctx).mean()
    assert abs(float(l32 - l16)) < 0.05 * abs(float(l32))


@pytest.mark.parametrize("kind", ["trainable", "lexinvariant"])
@pytest.mark.parametrize("position", ["t5_bias", "rope", "learned"])
@pytest.mark.slow
def test_kv_cached_generation_matches_full_forward(kind, position):
    model = tiny_model(kind, position=position, num_kv_heads=2)
    params, x, ctx = init(model)
    params = nn.meta.unbox(params)
    prompt = x[:, :5]
    out = generate(model, {"params": params}, prompt, ctx, jax.random.key(0), max_new=6)
    assert out.shape == (2, 6)
    seq = prompt
    for i in range(6):  # greedy decoding without a cache, one full forward per token
        logits = model.apply({"params": params}, seq, ctx, method=LanguageModel.logits)
        nxt = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)
        np.testing.assert_array_equal(nxt, out[:, i])
        seq = jnp.concatenate([seq, nxt[:, None]], axis=1)


def test_sampling_respects_top_k():
    model = tiny_model()
    params, x, ctx = init(model)
    params = nn.meta.unbox(params)
    prompt = x[:, :3]
    logits = model.apply({"params": params}, prompt, ctx, method=LanguageModel.logits)[:, -1]
    firsts = {int(generate(model, {"params": params}, prompt, ctx, jax.random.key(s), max_new=1, temperature=5.0,
                           top_k=2)[0, 0]) for s in range(20)}
    allowed = set(np.asarray(jax.lax.top_k(logits[0], 2)[1]).tolist())
    assert firsts <= allowed and len(firsts) == 2  # hot temperature: both survivors get drawn


def test_config_errors_are_user_errors():
    with pytest.raises(UserError, match="must divide d_model"):
        BackboneConfig.from_dict(dict(d_model=30, num_heads=4))
    with pytest.raises(UserError, match="unknown field"):
        BackboneConfig.from_dict(dict(widht=3))
    with pytest.raises(UserError, match="position"):
        BackboneConfig.from_dict(dict(position="alibi", head_dim=8))


@pytest.mark.parametrize("blocks,kv_heads", [(1, 4), (2, 4), (4, 2)])
@pytest.mark.slow
def test_einsum_attention_matches_the_reference_with_gradients(blocks, kv_heads):
    """lexi's einsum attention (causal query blocks, GQA, T5 bias, segment mask) equals
    jax.nn.dot_product_attention, values and gradients."""
    from lexi.ops.attention import attention

    b, l, n, h = 2, 256, 4, 8
    ks = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(ks[0], (b, l, n, h))
    k = jax.random.normal(ks[1], (b, l, kv_heads, h))
    v = jax.random.normal(ks[2], (b, l, kv_heads, h))
    bias = jax.random.normal(ks[3], (1, n, l, l))
    seg = jnp.asarray([[1] * 50 + [2] * 206, [1] * 256])
    mask = (seg[:, :, None] == seg[:, None, :])[:, None]

    def ours(q, k, v):
        return attention(q, k, v, bias_1xNxLxS=bias, mask_Bx1xLxS=mask, is_causal=True, blocks=blocks)

    def ref(q, k, v):
        return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, is_causal=True, implementation="xla")

    np.testing.assert_allclose(ours(q, k, v), ref(q, k, v), atol=1e-5)
    loss = lambda f: jax.grad(lambda *a: (f(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    for g_ours, g_ref in zip(loss(ours), loss(ref)):
        np.testing.assert_allclose(g_ours, g_ref, atol=1e-4)
    # bidirectional (the ZeTT encoder) ignores blocks
    np.testing.assert_allclose(attention(q, k, v, mask_Bx1xLxS=mask, blocks=blocks),
                               jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla"), atol=1e-5)


def test_model_attention_implementations_agree():
    out = {}
    for impl in ("einsum", "xla"):
        model = tiny_model(attention_impl=impl, attention_blocks=2)
        params, x, ctx = init(model, l=128)  # two causal blocks of 64
        out[impl] = model.apply({"params": params}, x, x, ctx)
    for a, b in zip(jax.tree_util.tree_leaves(out["einsum"]), jax.tree_util.tree_leaves(out["xla"])):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_residual_streams_end_in_the_hidden_state_and_follow_the_layers(scan):
    """Index 0 is the embedding output, the last is what the readout sees, and cutting the
    model after layer 1 gives stream 1 (the probe reads exactly the residual stream)."""
    model = tiny_model(scan_layers=scan, num_layers=3)
    params, x, ctx = init(model)
    params = nn.meta.unbox(params)
    streams = model.apply({"params": params}, x, ctx, method=LanguageModel.residual_streams)
    assert streams.shape == (4, 2, 12, 32)
    h = model.apply({"params": params}, x, ctx, method=LanguageModel.hidden)
    np.testing.assert_allclose(streams[-1], h, atol=1e-6)
    emb = model.apply({"params": params}, x, ctx, method=lambda m, t, c: m.embedding.embed(t, c))
    np.testing.assert_allclose(streams[0], emb, atol=1e-6)
    if not scan:  # one layer's model: its final norm over stream 1 is that model's hidden state
        one = tiny_model(num_layers=1)
        p1 = {"embedding": params["embedding"], "body": {"layer_0": params["body"]["layer_0"],
                                                          "relpos": params["body"]["relpos"],
                                                          "final_norm": params["body"]["final_norm"]}}
        h1 = one.apply({"params": p1}, x, ctx, method=LanguageModel.hidden)
        s1 = streams[1] / np.sqrt(np.mean(np.square(streams[1]), -1, keepdims=True) + 1e-6)
        np.testing.assert_allclose(s1 * np.asarray(params["body"]["final_norm"]["scale"]), h1, atol=1e-4)
    else:
        assert not np.allclose(streams[1], streams[2])


def test_per_layer_relative_bias_gives_each_layer_its_table():
    shared, per_layer = tiny_model(), tiny_model(relpos_per_layer=True)
    p_shared = nn.meta.unbox(init(shared)[0])
    p_layer, x, ctx = init(per_layer)
    p_layer = nn.meta.unbox(p_layer)
    assert "relpos" in p_shared["body"] and "relpos" not in p_layer["body"]
    for i in range(2):
        assert p_layer["body"][f"layer_{i}"]["relpos"]["rel_embedding"].shape == (32, 4)
    # with every layer given the shared table, the two models compute the same thing
    table = p_shared["body"]["relpos"]
    same = jax.tree_util.tree_map(lambda a: a, p_layer)
    for i in range(2):
        same["body"][f"layer_{i}"] = dict(p_shared["body"][f"layer_{i}"], relpos=table)
    same["embedding"], same["body"]["final_norm"] = p_shared["embedding"], p_shared["body"]["final_norm"]
    np.testing.assert_allclose(shared.apply({"params": p_shared}, x, x, ctx),
                               per_layer.apply({"params": same}, x, x, ctx), atol=1e-5)
    # and it decodes with a cache like the full forward
    out = generate(per_layer, {"params": p_layer}, x[:, :5], ctx, jax.random.key(0), max_new=3)
    logits = per_layer.apply({"params": p_layer}, x[:, :5], ctx, method=LanguageModel.logits)
    np.testing.assert_array_equal(jnp.argmax(logits[:, -1], -1), out[:, 0])
