"""The training loop end to end on tiny configs: learning, exact resume, run directory."""
import json

import jax
import pytest

from lexi.config import apply_overrides, base_config, load_config
from lexi.errors import UserError
from lexi.train.loop import train
from lexi.rundir import read_metrics
from test_optimizer import expected_lr


def tiny(kind="trainable", **train_kw):
    c = base_config()
    c.model.update(num_layers=2, d_model=32, num_heads=4, head_dim=8, mlp_dim=64)
    c.embedding = {"kind": kind}
    c.data.update(corpus="kjv", seq_len=32)
    c.train.update(steps=20, batch_size=8, lr=1e-2, warmup_steps=2, log_every=5, eval_every=10,
                   checkpoint_every=10, eval_batches=1, progress_bar=False)
    c.train.update(**train_kw)
    return c


def _losses(workdir):
    return [(m["step"], m["loss"]) for m in read_metrics(workdir) if "loss" in m]


@pytest.mark.parametrize("kind", ["trainable", "lexinvariant"])
@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path, cache_dir, kind):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(tiny(kind), full)
    train(tiny(kind), cut, stop_at=10)
    assert max(s for s, _ in _losses(cut)) == 10
    train(tiny(kind), cut)  # the same call again resumes at step 10
    assert _losses(cut) == _losses(full)
    val = lambda w: [m["val_loss"] for m in read_metrics(w) if "val_loss" in m]
    assert val(cut) == val(full)


def test_run_directory_contents_and_learning(tmp_path, cache_dir):
    w = tmp_path / "run"
    last = train(tiny(steps=40), w)
    assert (w / "config.json").exists() and (w / "tokenizer.json").exists()
    assert sorted(p.name for p in (w / "checkpoints").iterdir() if p.name.isdigit()) == ["20", "30", "40"]
    assert any(p.name.startswith("events") for p in (w / "tb").iterdir())
    rows = read_metrics(w)
    assert all({"step", "loss", "tokens_per_sec"} <= set(r) for r in rows if "loss" in r)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    assert json.loads((w / "config.json").read_text())["train"]["steps"] == 40
    assert last["val_loss"] < 4.0
    # a row logs the learning rate of the update that ended at its step: schedule(step - 1)
    logged = {r["step"]: r["lr"] for r in rows if "lr" in r}
    assert sorted(logged) == list(range(5, 41, 5))
    assert logged == pytest.approx({s: expected_lr(tiny(steps=40).train, s - 1) for s in logged}, rel=1e-5)


def test_overfits_one_batch():
    from lexi.train.setup_run import assemble, compile_steps, init_state
    from lexi import sharding
    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from harness import synthetic_batch

    c = tiny(steps=100, lr=1e-2, warmup_steps=5)
    run = assemble(c, 64)
    state = init_state(run, 0)
    step, _ = compile_steps(run)
    batch = sharding.global_batch(synthetic_batch(8, 32, 64), run.mesh)
    first = None
    for _ in range(100):
        state, m = step(state, batch, jax.random.key(0))
        first = float(m["loss"]) if first is None else first
    assert float(m["loss"]) < first / 4  # memorised: from ~log 64 to well under 1 nat


def test_resume_refuses_a_different_model(tmp_path, cache_dir):
    w = tmp_path / "run"
    train(tiny(steps=10), w)
    other = tiny(steps=20)
    other.model.d_model = 64
    with pytest.raises(UserError, match="model.d_model: 32 -> 64"):
        train(other, w)


def test_resume_accepts_a_run_saved_before_a_config_field_existed(tmp_path):
    """A key lexi added since the run was saved counts as its default, not as a change."""
    from lexi.rundir import check_resume_compatible
    cfg = base_config()
    saved = cfg.to_dict()
    del saved["data"]["tokenizer"]["num_ngrams"], saved["model"]["num_layers"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_resume_compatible(cfg, tmp_path)  # both missing keys hold their defaults
    cfg.data.tokenizer.num_ngrams = 100
    with pytest.raises(UserError, match=r"data.tokenizer.num_ngrams: 0 -> 100"):
        check_resume_compatible(cfg, tmp_path)


def test_config_files_variants_and_overrides():
    c = load_config("configs/standard.py:tiny", ["--config.train.steps=7", "--config.model.position=rope",
                                                 "--config.train.lr=1", "--config.train.progress_bar=false"])
    assert c.train.steps == 7 and c.model.position == "rope" and c.train.lr == 1.0 and c.train.progress_bar is False
    for bad, msg in [("--config.train.stepz=3", "unknown field"), ("--config.nope.x=1", "no config section"),
                     ("--config.train.steps=abc", "cannot parse"), ("--config.train.steps", "needs a value")]:
        with pytest.raises(UserError, match=msg):
            apply_overrides(base_config(), [bad])
    with pytest.raises(UserError, match="does not exist"):
        load_config("configs/nope.py:tiny")
    for spec in ["configs/standard.py:small", "configs/standard.py:paper", "configs/lexinvariant.py:small_32k",
                 "configs/lexinvariant.py:paper_32k", "configs/regularized.py:gaussian_mix_tiny"]:
        load_config(spec)


def test_inference_restores_weights_without_the_optimizer_state(tmp_path, cache_dir):
    """Sampling and evaluation read only parameters and constants: they load a run whose
    optimizer settings have changed since (another optimizer's slots cannot be restored)."""
    import ml_collections
    import numpy as np

    from lexi.inference import load_for_inference
    from lexi.train.checkpoint import Checkpointer
    from lexi.train.setup_run import build_run

    w = tmp_path / "run"
    train(tiny(steps=10), w)
    cfg = json.loads((w / "config.json").read_text())
    run = build_run(ml_collections.ConfigDict(cfg), w)
    full, _ = Checkpointer(w / "checkpoints", async_save=False).restore(10, run.abstract_state)
    cfg["train"]["optimizer"] = "adafactor"
    (w / "config.json").write_text(json.dumps(cfg))
    loaded = load_for_inference(w)
    assert loaded.step == 10
    for a, b in zip(jax.tree_util.tree_leaves(loaded.params), jax.tree_util.tree_leaves(full.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_config_files_are_found_from_any_directory(tmp_path, monkeypatch):
    """lexi's own configs ship with the package (lexi.configs): `configs/standard.py:tiny`
    works outside the repository; an unknown name lists the files there are."""
    here = load_config("configs/standard.py:tiny")
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/standard.py:tiny").to_dict() == here.to_dict()
    assert load_config("zett:tiny").task == "zett"
    with pytest.raises(UserError, match=r"nor is it one of lexi's own: glyph.py, lexinvariant.py"):
        load_config("configs/nope.py")
