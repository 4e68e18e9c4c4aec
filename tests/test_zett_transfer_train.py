"""Transfer-then-train (benchmarks/zett_transfer_train.py --smoke) on the tests' tiny ZeTT setup,
and what byte-like vocabularies and the byte validation target change in training."""
import json
import math
import os
import sys

import jax
import numpy as np
import pytest

from helpers import two_steps_counting_compiles

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, cache_dir):
    """The smoke run: tiny base and hypernetwork, both kinds of rows moved to `byte`, trained 4 then 10 steps."""
    import zett_transfer_train as tt

    out = tmp_path_factory.mktemp("transfer_train")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = tt.main(["--smoke", "--out", str(out)])
    return out, report, printed.getvalue()


@pytest.mark.slow
def test_smoke_table_shows_training_moving_bits_per_byte(smoke):
    import zett_transfer_train as tt

    out, report, printed = smoke
    print(printed)
    got = tt.parse_table(printed)
    assert set(got) == {"original", "hypernet", "fvt"} and list(got["hypernet"]) == list(tt.SMOKE_STEPS)
    assert len(set(got["original"].values())) == 1  # the base on its own tokenizer does not train
    for rows in ("hypernet", "fvt"):
        curve = got[rows]
        assert all(math.isfinite(v) for v in curve.values())
        assert all(abs(curve[n] - curve[0]) > 1e-3 for n in tt.SMOKE_STEPS if n), (rows, curve)
        assert curve[tt.SMOKE_STEPS[-1]] < curve[0]  # a few steps on the target's own text help
        full = report["bits_per_byte"][rows]
        assert [round(full[str(n)], 4) for n in tt.SMOKE_STEPS] == pytest.approx(list(curve.values()), abs=1e-4)
    assert json.loads((out / "transfer_train.json").read_text()) == json.loads(json.dumps(report))
    base_lr = json.loads((out / "setup" / "base" / "config.json").read_text())["train"]["lr"]
    assert report["continued"]["hypernet"]["lr"] == pytest.approx(base_lr)  # the default: the base's


def test_step_zero_is_what_lexi_zett_eval_reports(smoke):
    """The moved run scored before any training gives `lexi zett eval`'s hypernet and fvt rows:
    the same documents, rows and code."""
    from lexi.zett.evaluate import run_zett_eval

    out, report, _ = smoke
    zett_eval, _ = run_zett_eval(report["zett_workdir"], "byte", max_documents=4)
    for rows in ("original", "hypernet", "fvt"):
        assert report["bits_per_byte"][rows]["0"] == pytest.approx(zett_eval["bits_per_byte"][rows], rel=1e-5), rows
    assert report["bytes"] == zett_eval["bytes"] and report["tokens_per_byte"]["hypernet"] == pytest.approx(1.0,
                                                                                                           abs=0.01)


def test_zett_training_logs_a_byte_validation_curve(smoke):
    from lexi.rundir import read_metrics

    out, _, _ = smoke
    rows = [m for m in read_metrics(out / "setup" / "zett") if "val_loss" in m]
    assert [m["step"] for m in rows] == [10, 20]
    for m in rows:
        assert math.isfinite(m["val_bpb_byte"]) and m["val_bpb_byte"] != m["val_loss"]


def test_byte_like_and_ordinary_steps_compile_once(smoke, cache_dir):
    """A byte-like vocabulary (261 ids, bytes only, or a few hundred) and an ordinary one
    (512 ids) pad to the same arrays: the jitted step compiles for the first only."""
    from lexi.config import load_config
    from lexi.tasks import task_for

    out, _, _ = smoke
    cfg = load_config("configs/zett.py:tiny", [f"--config.base_workdir={out / 'setup' / 'base'}",
                                               "--config.zett.byte_like_share=0.5", "--config.train.progress_bar=false"])
    task = task_for(cfg)
    run = task.build_run(cfg, out / "compile_once")
    batches, val = task.data(cfg, run)
    kinds = [batches.vocabulary_at(s)[1] for s in range(8)]
    byte_step, plain_step = kinds.index(True), kinds.index(False)
    b0, b1 = batches.batch_at(byte_step), batches.batch_at(plain_step)
    assert b0["vocab"]["mask"].sum() < b1["vocab"]["mask"].sum() == cfg.zett.vocab_size
    step, evaluate = task.compile(run, val)
    state = task.init_state(run, 0)
    rng = jax.random.key(0)
    state, m, first, both = two_steps_counting_compiles(step, state, b0, b1, rng)
    assert first >= 1 and both == first, "the ordinary vocabulary recompiled the step"
    assert np.isfinite(float(m["loss"]))
    figures = evaluate(state, rng)
    assert set(figures) == {"val_loss", "val_bpb_byte"} and all(map(math.isfinite, figures.values()))


@pytest.mark.slow
def test_rows_alone_train_with_the_body_frozen(smoke):
    """`--trainable '^embedding/'` (config.train.trainable): after 4 steps the moved run's rows
    have moved and its backbone is bit-for-bit the base's. Breaks if the pattern is ignored or
    weight decay reaches frozen matrices."""
    import zett_transfer_train as tt
    from lexi.inference import load_for_inference
    from lexi.zett.transfer import load_trained, transfer

    out, report, _ = smoke
    frozen = out / "frozen"
    tt.main(["--zett-workdir", report["zett_workdir"], "--tokenizer", "byte", "--out", str(frozen), "--rows", "fvt",
             "--steps", "0,4", "--max-documents", "2", "--trainable", "^embedding/"])
    moved, base = load_for_inference(frozen / "fvt"), load_trained(report["zett_workdir"]).base
    assert moved.step == 4 and json.loads((frozen / "fvt" / "config.json").read_text())["train"]["trainable"] == \
        "^embedding/"
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(moved.params["body"]),
                           jax.device_get(base.params["body"]))
    start, _ = transfer(report["zett_workdir"], "byte", out / "fvt_step0", rows="fvt")  # step 0: did the rows move?
    assert not np.allclose(jax.device_get(moved.params["embedding"]["table"]),
                           jax.device_get(load_for_inference(start).params["embedding"]["table"]))
