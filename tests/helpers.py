"""Small builders used by several test modules."""
import jax
import jax.numpy as jnp

from lexi import embeddings
from lexi.model.config import BackboneConfig
from lexi.model.lm import LanguageModel


def tiny_backbone(**kw) -> BackboneConfig:
    base = dict(num_layers=2, d_model=32, num_heads=4, head_dim=8, mlp_dim=64)
    base.update(kw)
    return BackboneConfig.from_dict(base)


def tiny_model(kind="trainable", vocab=64, emb=None, **kw):
    bb = tiny_backbone(**kw)
    e = embeddings.build({"kind": kind, **(emb or {})}, vocab, bb.d_model)
    return LanguageModel(bb, e)


def init(model, b=2, l=12, seed=0, vocab=64):
    x = jax.random.randint(jax.random.key(seed), (b, l), 0, vocab)
    ctx = model.embedding.context(jax.random.key(seed + 1), jnp.int32(0), jnp.arange(b))
    params = model.init(jax.random.key(seed + 2), x, x, ctx)["params"]
    return params, x, ctx


class CharTok:
    """Stand-in for the ASCII tokenizer (id == ord(c), vocab 128) with an extra special
    id 1, so task and cipher tests also cover tokenizers with more specials."""

    name = "char"
    vocab_size = 128
    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3
    special_ids = (0, 1, 2, 3)

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def two_steps_counting_compiles(step, state, batch_a, batch_b, rng):
    """(state, metrics of the second step, backend compiles at the first step, at both): what
    "the step compiles once" tests read. The listener is removed afterwards and that is checked,
    since one left behind would collect every later test's compiles."""
    compiles = []
    event = "/jax/core/compile/backend_compile_duration"

    def listener(name, secs, **kw):
        if name == event:
            compiles.append(name)

    cache = jax.config.jax_enable_compilation_cache  # a persistent-cache hit is no backend compile: count real ones
    jax.config.update("jax_enable_compilation_cache", False)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        state, _ = step(state, batch_a, rng)
        first = len(compiles)
        state, metrics = step(state, batch_b, rng)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        jax.config.update("jax_enable_compilation_cache", cache)
    both = len(compiles)
    jax.monitoring.record_event_duration_secs(event, 0.0)
    assert len(compiles) == both, "the compile listener outlived the test"
    return state, metrics, first, both
