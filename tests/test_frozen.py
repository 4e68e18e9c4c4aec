"""Frozen input tables (glyph, binary codes): built right, never trained, checkpointed."""
import jax
import numpy as np
import pytest

from lexi.embeddings.frozen import binary_codes, fit_width
from lexi.errors import UserError
from lexi.inference import load_for_inference
from lexi.train.checkpoint import Checkpointer
from lexi.train.loop import train
from lexi.train.metrics_log import read_metrics
from lexi.train.setup_run import assemble, build_run, init_state
from test_train import tiny


def frozen_cfg(source="binary", **kw):
    c = tiny("frozen", **kw)
    c.embedding = {"kind": "frozen", "source": source, "code_bits": 24}
    return c


def test_binary_codes_are_distinct_signs():
    for bits in (7, 16, 100):
        codes = binary_codes(128, bits, seed=3)
        assert codes.shape == (128, bits) and set(np.unique(codes)) == {-1.0, 1.0}
        assert len(np.unique(codes, axis=0)) == 128
    np.testing.assert_array_equal(binary_codes(64, 16, 1), binary_codes(64, 16, 1))
    assert not np.array_equal(binary_codes(64, 16, 1), binary_codes(64, 16, 2))
    with pytest.raises(UserError, match="cannot tell 128 tokens apart; use at least 7 bits"):
        binary_codes(128, 6)


def test_fit_width_keeps_leading_components_or_tiles():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 16)) * 2.0 ** np.arange(16)  # column 15 has the most variance
    narrow = fit_width(t, 4, principal=True)
    assert narrow.shape == (50, 4)
    np.testing.assert_allclose(np.sqrt((narrow ** 2).mean(axis=1)), 1.0, rtol=1e-5)
    direction = t[:, [15, 14, 13, 12]] / np.linalg.norm(t[:, [15, 14, 13, 12]], axis=1, keepdims=True)
    np.testing.assert_allclose(narrow / 2.0, direction, rtol=1e-5, atol=1e-6)
    wide = fit_width(t, 40)
    assert wide.shape == (50, 40)
    np.testing.assert_allclose(wide[:, :16] / wide[:, 16:32], 1.0, rtol=1e-5)  # repeated columns


def test_frozen_table_never_changes_and_is_not_optimised(tmp_path, cache_dir):
    cfg = frozen_cfg(steps=20, checkpoint_every=10)
    run = build_run(cfg, tmp_path / "run")
    fresh = init_state(run, cfg.seed)
    table0 = np.asarray(jax.device_get(fresh.constants["embedding"]["table"]))
    assert "table" not in fresh.params["embedding"] and "head" in fresh.params["embedding"]
    # the optimizer's slots mirror params exactly: no moment or decay for the frozen table
    assert all(table0.shape != getattr(x, "shape", None) or x is fresh.params["embedding"]["head"]
               for x in jax.tree_util.tree_leaves(fresh.params))
    mu = fresh.opt_state[1][0].mu if hasattr(fresh.opt_state[1][0], "mu") else None
    if mu is not None:
        assert jax.tree_util.tree_structure(mu) == jax.tree_util.tree_structure(fresh.params)
    last = train(cfg, tmp_path / "run")
    losses = [m["loss"] for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert losses[-1] < losses[0] and np.isfinite(last["val_loss"])
    loaded = load_for_inference(tmp_path / "run")
    np.testing.assert_array_equal(np.asarray(loaded.constants["embedding"]["table"]), table0)  # bit for bit
    assert set(loaded.variables) == {"params", "constants"}


def test_frozen_run_resumes_exactly(tmp_path, cache_dir):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(frozen_cfg(), full)
    train(frozen_cfg(), cut, stop_at=10)
    train(frozen_cfg(), cut)
    strip = lambda w: [(m["step"], m.get("loss"), m.get("val_loss")) for m in read_metrics(w)]
    assert strip(cut) == strip(full)
    ck = Checkpointer(cut / "checkpoints", async_save=False)
    assert ck.all_steps()[-1] == 20
    ck.close()


def test_frozen_cannot_be_tied():
    cfg = frozen_cfg()
    cfg.embedding["tied"] = True
    with pytest.raises(UserError, match="cannot tie its readout"):
        assemble(cfg, 128, (0, 2, 3))


def test_glyph_source_trains_with_the_rendered_table(tmp_path, cache_dir):
    """kind=frozen, source=glyph: the constants are the glyph table fitted to d_model."""
    from lexi.glyph import glyph_table

    cfg = frozen_cfg("glyph", steps=4, checkpoint_every=4)
    cfg.embedding = {"kind": "frozen", "source": "glyph", "cell_px": 32}
    train(cfg, tmp_path / "run")
    loaded = load_for_inference(tmp_path / "run")
    expect = fit_width(glyph_table(loaded.tokenizer, 32, cache_dir), cfg.model.d_model, principal=True)
    np.testing.assert_array_equal(np.asarray(loaded.constants["embedding"]["table"]), expect)


def test_glyph_config_variants_differ_only_in_the_input_table():
    from lexi.config import load_config

    a, b, c = (load_config(f"configs/glyph.py:small{s}") for s in ("", "_trainable", "_binary"))
    assert (a.embedding.kind, b.embedding.kind, c.embedding.source) == ("frozen", "trainable", "binary")
    assert a.model == b.model == c.model and a.data.tokenizer.kind == "unicode" and a.data == b.data
