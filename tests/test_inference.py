"""Loading a run for eval and sampling: the model and its weights, nothing of training, and no
third-party noise a user cannot act on."""
import logging

import jax
import jax.numpy as jnp
import numpy as np

from lexi.inference import load_for_inference
from lexi.model.lm import LanguageModel
from lexi.rundir import read_config


def test_loading_weights_builds_no_optimizer_and_prints_nothing(trained_run, caplog, capfd):
    with caplog.at_level(logging.WARNING):
        loaded = load_for_inference(trained_run)
    noise = [r.getMessage() for r in caplog.records] + capfd.readouterr().err.splitlines()
    assert not [m for m in noise if "could not be restored" in m or "Item" in m], noise
    assert loaded.step == 4 and loaded.cfg.to_dict() == read_config(trained_run).to_dict()
    assert not hasattr(loaded, "opt_state") and set(loaded.params) == {"embedding", "body"}
    ctx = loaded.model.embedding.context(jax.random.key(0), jnp.int32(0), jnp.arange(1), train=False)
    logits = loaded.model.apply(loaded.variables, jnp.zeros((1, 8), jnp.int32), ctx, method=LanguageModel.logits)
    assert logits.shape == (1, 8, loaded.tokenizer.vocab_size) and np.isfinite(np.asarray(logits)).all()
