"""Frozen input tables (glyph, binary codes): built right, never trained, checkpointed."""
import jax
import numpy as np
import pytest

from lexi.embeddings.frozen import binary_codes, fit_width, random_orthogonal
from lexi.errors import UserError
from lexi.inference import load_for_inference
from lexi.train.checkpoint import Checkpointer
from lexi.train.loop import train
from lexi.rundir import read_metrics
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


def test_random_orthogonal_projection_keeps_distances():
    """Orthonormal columns, the same matrix for the same seed; relative distances between rows
    survive 1024 -> 128 (Johnson-Lindenstrauss) far better than keeping 128 columns does."""
    p = random_orthogonal(1024, 128, seed=0)
    np.testing.assert_allclose(p.T @ p, np.eye(128), atol=1e-5)
    np.testing.assert_array_equal(p, random_orthogonal(1024, 128, seed=0))
    assert not np.allclose(p, random_orthogonal(1024, 128, seed=1))
    rng = np.random.default_rng(0)
    t = np.zeros((64, 1024), np.float32)
    t[:, 512:] = rng.normal(size=(64, 512))  # all the information past the first 128 columns
    d = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(64, 1)]  # noqa: E731
    ratio = d(t @ p) / d(t)
    assert ratio.std() / ratio.mean() < 0.1  # distances shrink by one common factor, not scrambled
    proj = fit_width(t, 128, projection="random_orthogonal")
    cut = fit_width(t, 128, principal=False)  # the first 128 columns: nothing but zeros
    assert np.isfinite(proj).all() and np.abs(cut).max() == 0
    np.testing.assert_allclose(np.sqrt((proj ** 2).mean(axis=1)), 1.0, rtol=1e-5)


def test_pca_used_fits_on_the_used_rows_only():
    """Components come from the used ids: rows the corpus never produces do not move them, and
    the used rows' variance lands in the kept columns even when the unused rows dominate."""
    rng = np.random.default_rng(1)
    t = rng.normal(size=(300, 32)) * 0.01
    t[:200, 0] += rng.normal(size=200) * 100.0  # the unused rows' big direction
    t[200:, 5] += rng.normal(size=100) * 10.0  # the used rows' own direction
    used = np.arange(200, 300)
    a = fit_width(t, 2, principal=True, projection="pca_used", used_ids=used)
    t2 = t.copy()
    t2[:200] = rng.normal(size=(200, 32))  # other unused rows
    b = fit_width(t2, 2, principal=True, projection="pca_used", used_ids=used)
    np.testing.assert_allclose(a[used], b[used], rtol=1e-5, atol=1e-5)
    centred = t[used] - t[used].mean(axis=0)
    agree = lambda x: abs(np.mean(np.sign(x[used, 0]) * np.sign(centred[:, 5])))  # noqa: E731
    assert agree(a) > 0.95  # the first kept column is the used rows' direction
    assert agree(fit_width(t, 2, principal=False)) < 0.5  # the first two columns are not
    w = fit_width(t, 2, principal=True, projection="pca_used_whitened", used_ids=used)
    centred_w = (t[used] - t[used].mean(axis=0)) @ np.linalg.svd(t[used] - t[used].mean(axis=0))[2][:2].T
    assert abs(np.corrcoef(np.abs(w[used, 0]), np.abs(centred_w[:, 0] / centred_w[:, 0].std()))[0, 1]) > 0.5
    assert 0.3 < np.abs(w[used]).mean(axis=0)[1] / np.abs(w[used]).mean(axis=0)[0] < 3  # both directions used
    assert np.abs(a[used]).mean(axis=0)[1] < 0.05 * np.abs(a[used]).mean(axis=0)[0]  # unwhitened: one dominates
    with pytest.raises(UserError, match="needs the ids the training split uses"):
        fit_width(t, 2, projection="pca_used", used_ids=np.arange(0))


@pytest.mark.parametrize("projection", ["random_orthogonal", "pca_used", "pca_used_whitened"])
def test_projected_tables_train_frozen_and_are_the_same_in_every_run(tmp_path, cache_dir, projection):
    """Each option in a real run: the trained run's table is bit for bit what fit_width gives
    here, in another process's worth of fresh computation (pca_used: on the ids the cached train
    stream holds), so every run and every host builds the same one."""
    from lexi.train.setup_run import train_token_counts

    cfg = frozen_cfg(steps=4, checkpoint_every=4)
    cfg.embedding.update(projection=projection, code_bits=100)  # 100 bits > d_model: a projection
    train(cfg, tmp_path / "a")
    tables = [np.asarray(load_for_inference(tmp_path / "a").constants["embedding"]["table"])]
    run = build_run(cfg, tmp_path / "c")
    used = np.flatnonzero(train_token_counts(run)) if projection.startswith("pca_used") else None
    expect = fit_width(binary_codes(128, 100, 0), cfg.model.d_model, projection=projection, used_ids=used)
    np.testing.assert_array_equal(tables[0], expect)
    assert used is None or 40 < len(used) < 128  # KJV's characters, not all of ASCII


@pytest.mark.slow
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


@pytest.mark.slow
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
    table = np.asarray(loaded.constants["embedding"]["table"])
    expect = fit_width(glyph_table(loaded.tokenizer, 32, cache_dir), cfg.model.d_model, principal=True)
    np.testing.assert_array_equal(table, expect)
    # Independent of that code: the rows are pictures. In Unifont, O looks most like Q, l like i, 1
    # or I, and . like , (random codes, a transposed table or a wrong font fail this).
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    tok = loaded.tokenizer
    printable = [chr(c) for c in range(33, 127)]

    def nearest(c):
        i = tok.encode(c)[0]
        return max((d for d in printable if d != c), key=lambda d: float(unit[i] @ unit[tok.encode(d)[0]]))

    assert nearest("O") == "Q" and nearest("l") in "i1I" and nearest(".") == ","


def test_glyph_config_variants_differ_only_in_the_input_table():
    from lexi.config import load_config

    a, b, c = (load_config(f"configs/glyph.py:small{s}") for s in ("", "_trainable", "_binary"))
    assert (a.embedding.kind, b.embedding.kind, c.embedding.source) == ("frozen", "trainable", "binary")
    assert a.model == b.model == c.model and a.data.tokenizer.kind == "unicode" and a.data == b.data
