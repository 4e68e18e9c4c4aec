"""A readout restricted to the training split's ids (config.embedding.readout_ids = "train_split"):
a proper distribution over the whole vocabulary, the full readout when every id is used, and a
run that trains, resumes exactly and samples real ids with it."""
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_backbone
from lexi import embeddings
from lexi.embeddings import readout
from lexi.embeddings.readout import UsedIds
from lexi.errors import UserError
from lexi.model.lm import LanguageModel
from test_train import tiny

V = 16


def _model(emb: dict, used=None) -> LanguageModel:
    return LanguageModel(tiny_backbone(), embeddings.build(emb, V, 32, used_ids=used))


def _variables(model, x):
    """Parameters, and for a frozen table a random one in place of the zeros placeholder."""
    v = nn.meta.unbox(model.init(jax.random.key(1), x, x, None))
    if "constants" in v:
        v = {**v, "constants": {"embedding": {"table": jax.random.normal(jax.random.key(2), (V, 32))}}}
    return v


READOUTS = [{"kind": "trainable", "tied": True}, {"kind": "trainable", "tied": False},
            {"kind": "frozen", "source": "binary", "code_bits": 8}]


@pytest.mark.parametrize("chunk", [0, 4])
@pytest.mark.parametrize("emb", READOUTS, ids=["tied", "untied", "frozen"])
def test_every_id_used_is_exactly_the_full_readout(emb, chunk):
    """K = V: no "other" row, the same parameters, bit-for-bit the same log-probs."""
    emb = {**emb, "readout_chunk": chunk}
    full = _model(emb)
    restricted = _model({**emb, "readout_ids": "train_split"}, UsedIds(np.arange(V), V))
    x = jax.random.randint(jax.random.key(0), (2, 12), 0, V)
    v = _variables(full, x)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(_variables(restricted, x))
    np.testing.assert_array_equal(restricted.apply(v, x, x, None), full.apply(v, x, x, None))
    np.testing.assert_array_equal(restricted.apply(v, x, None, method=LanguageModel.logits),
                                  full.apply(v, x, None, method=LanguageModel.logits))


@pytest.mark.parametrize("chunk", [0, 2])
def test_unused_ids_share_the_other_logit_by_hand(chunk):
    """3 of 10 ids used: rows give logits z = (1, 0, 2) for ids 1, 4, 7 and z_other = -1."""
    used = UsedIds(np.array([1, 4, 7]), 10)
    h = jnp.asarray([[[1.0, 0.0]]])
    rows = jnp.asarray([[1.0, 0.0], [0.0, 5.0], [2.0, 3.0], [-1.0, 0.0]])  # ids 1, 4, 7, then "other"
    z = np.array([1.0, 0.0, 2.0, -1.0])
    lse = np.log(np.exp(z).sum())
    expect = np.full(10, z[3] - lse - math.log(10 - 3))  # log p(other) - log(V - K)
    expect[[1, 4, 7]] = z[:3] - lse
    got = np.array([readout.target_logprobs(h, rows, jnp.asarray([[t]]), used, 1.0, chunk)[0, 0]
                    for t in range(10)])
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert np.exp(got).sum() == pytest.approx(1.0, abs=1e-6)
    full = readout.full_logits(jnp.asarray(z)[None, None], used)[0, 0]
    np.testing.assert_allclose(jax.nn.log_softmax(full), expect, rtol=1e-6)


@pytest.mark.parametrize("emb", READOUTS, ids=["tied", "untied", "frozen"])
def test_restricted_model_scores_every_id_as_its_full_logits_say(emb):
    """The loss path (chunked) and the logits every evaluation and sampling read agree for all
    V targets, sum to 1, and the readout holds K + 1 rows (a tied one: just the "other" row)."""
    used = UsedIds(np.array([0, 3, 5, 6, 11]), V)
    model = _model({**emb, "readout_chunk": 3, "readout_ids": "train_split"}, used)
    x = jax.random.randint(jax.random.key(0), (2, 12), 0, V)
    v = _variables(model, x)
    shapes = jax.tree_util.tree_map(lambda a: a.shape, v["params"]["embedding"])
    assert shapes["other"] == (1, 32) and shapes.get("head", (5, 32)) == (5, 32)
    logp_V = jax.nn.log_softmax(model.apply(v, x, None, method=LanguageModel.logits))
    np.testing.assert_allclose(np.exp(logp_V).sum(-1), 1.0, rtol=1e-5)
    score = jax.jit(lambda t: model.apply(v, x, jnp.full_like(x, t), None))
    per_target = np.stack([score(t) for t in range(V)], -1)
    np.testing.assert_allclose(per_target, logp_V, atol=1e-5)
    unused = np.setdiff1d(np.arange(V), used.ids)
    share = per_target[..., unused]
    np.testing.assert_allclose(share, np.broadcast_to(share[..., :1], share.shape), rtol=1e-6)  # an even share


def test_sampling_emits_real_ids_and_unused_ones_only_through_other():
    from lexi.generate import _sample

    used = UsedIds(np.array([2, 9, 13]), V)
    favour = lambda slot: readout.full_logits(jnp.zeros((4, 1, 4)).at[:, :, slot].set(30.0), used)[:, 0]  # noqa: E731
    assert set(np.asarray(_sample(favour(1), jax.random.key(0), 1.0, 0)).tolist()) == {9}  # slot 1 is id 9
    draws = np.concatenate([np.asarray(_sample(favour(3), jax.random.key(k), 1.0, 0)) for k in range(200)])
    assert not np.isin(draws, used.ids).any()  # "other" won: only unused ids come out
    assert len(np.unique(draws)) == V - 3  # ... and each of them does


def test_bad_readout_options_stop_with_one_clear_message():
    from lexi.config import validate
    from lexi.embeddings.predicted import from_base
    from lexi.hf.architectures import export_family

    c = tiny()
    c.embedding.readout_ids = "used"
    with pytest.raises(UserError, match=r"readout_ids must be one of \('all', 'train_split'\), got 'used'"):
        validate(c)
    for kind, why in [("lexinvariant", "random input matrix"), ("regularized", "permutes tokens")]:
        c = tiny(kind)
        c.embedding.readout_ids = "train_split"
        with pytest.raises(UserError, match=f"does not apply to kind '{kind}': it.*{why}"):
            validate(c)
    with pytest.raises(UserError, match="this command has no training split"):
        _model({"kind": "trainable", "readout_ids": "train_split"})
    with pytest.raises(UserError, match="ZeTT predicts readout rows for a whole vocabulary"):
        from_base({"kind": "trainable", "readout_ids": "train_split"})
    with pytest.raises(UserError, match="lm_head scores the whole vocabulary"):
        export_family({}, {"kind": "trainable", "readout_ids": "train_split"})
    assert _model({"kind": "lexinvariant", "readout_ids": "all"}).embedding.readout_rows == V


@pytest.mark.slow
def test_glyph_tiny_trains_resumes_and_samples_with_the_train_split_readout(tmp_path, cache_dir):
    """configs/glyph.py:tiny, shortened: the readout holds KJV's ids + "other", not 65,536 rows;
    the loss falls; a resumed run (which reads readout_ids.json back) matches an uninterrupted
    one; eval and sample use the same set and map back to real ids."""
    from lexi.config import load_config
    from lexi.data.pipeline import eval_windows
    from lexi.eval import perplexity, report
    from lexi.inference import load_for_inference, sample_text
    from lexi.train import flops as flops_lib
    from lexi.train.loop import train
    from lexi.rundir import read_metrics
    from lexi.rundir import token_counts
    from lexi.train.setup_run import build_run
    from lexi.train.task import LanguageModelTask

    cfg = lambda: load_config("configs/glyph.py:tiny", [  # noqa: E731
        "--config.train.steps=20", "--config.train.batch_size=8", "--config.data.seq_len=32",
        "--config.train.warmup_steps=2", "--config.train.lr=1e-2", "--config.train.log_every=5",
        "--config.train.eval_every=10", "--config.train.checkpoint_every=10", "--config.train.eval_batches=1",
        "--config.train.progress_bar=false"])
    assert cfg().embedding.readout_ids == "train_split"
    assert load_config("configs/glyph.py:paper").embedding.readout_ids == "all"  # the paper's full readout
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(cfg(), full)
    train(cfg(), cut, stop_at=10)
    train(cfg(), cut)
    rows = lambda w: [(m["step"], m.get("loss"), m.get("val_loss")) for m in read_metrics(w)]  # noqa: E731
    assert rows(cut) == rows(full)
    losses = [loss for _, loss, _ in rows(full) if loss is not None]
    assert losses[-1] < losses[0] - 1.0

    loaded = load_for_inference(full)
    used = loaded.model.embedding.used_ids
    saved = json.loads((full / readout.FILE).read_text())
    assert saved["ids"] == used.ids.tolist() and saved["vocab_size"] == 65536
    assert np.array_equal(used.ids, np.flatnonzero(token_counts(loaded.cfg, loaded.tokenizer)))
    assert 40 < used.count < 200  # KJV's characters and bos, not the BMP
    assert loaded.params["embedding"]["head"].shape == (used.count, 64)
    assert loaded.params["embedding"]["other"].shape == (1, 64)
    bb, seq = loaded.model.backbone, loaded.cfg.data.seq_len
    assert LanguageModelTask().flops_per_token(build_run(loaded.cfg, full)) == flops_lib.train_flops_per_token(bb, used.count + 1, seq)

    text = sample_text(loaded, "And God said", max_new=24, temperature=0.0)[0]
    assert text and set(loaded.tokenizer.encode(text)) <= set(used.ids.tolist())
    tok = loaded.tokenizer
    ids = np.asarray([tok.bos_id] + tok.encode("In the beginning God created the heaven and the earth. ¿Qué? " * 2))
    assert not np.isin(ids, used.ids).all()  # '¿' and 'é' never occur in KJV's training split
    win = {k: np.asarray(v) for k, v in eval_windows(ids.astype(np.int32), 32, 2, tok.bos_id,
                                                     pad_id=tok.pad_id).items()}
    res = perplexity.evaluate(loaded.model, loaded.variables, tok, win, batch_size=2)
    assert res["readout"] == readout.describe(used, 65536) and res["readout"]["scored_ids"] == used.count
    assert report.summary_rows({"perplexity": res})["readout: ids scored"] == f"{used.count} of 65536 + other"
    assert np.isfinite(res["mean_loss"])  # the unused ids are scored through "other", never -inf
