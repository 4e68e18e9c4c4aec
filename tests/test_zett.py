"""ZeTT hypernetwork: exact start from the base, fixed shapes, training in the shared loop."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lexi import embeddings
from lexi.config import load_config
from lexi.errors import UserError
from lexi.model.lm import LanguageModel
from lexi.train.loop import train
from lexi.embeddings.predicted import PredictedEmbedding, from_base, tables
from lexi.embeddings.trainable import TrainableEmbedding
from lexi.zett.hypernet import Hypernet, HypernetConfig
from helpers import two_steps_counting_compiles
from xla_flags import xla_flags


def _random_base(v=50, d=32, seed=0):
    r = np.random.default_rng(seed)
    return jnp.asarray(r.normal(size=(v, d)), jnp.float32), jnp.asarray(r.normal(size=(v, d)), jnp.float32)


@pytest.mark.parametrize("tied", [True, False])
def test_untrained_residual_hypernet_returns_first_piece_rows(tied):
    base_in, base_out = _random_base()
    net = Hypernet(HypernetConfig(d_model=32, tied=tied, num_layers=2, num_heads=2, pieces=4))
    pieces = jnp.asarray([[3, -1, -1, -1], [7, 8, 9, -1], [0, -1, -1, -1], [12, 4, 4, 4]], jnp.int32)
    special = jnp.asarray([False, False, True, False])
    params = net.init(jax.random.key(0), pieces, special, base_in, None if tied else base_out)
    rows_in, rows_out = net.apply(params, pieces, special, base_in, None if tied else base_out)
    first = np.asarray(pieces[:, 0])
    np.testing.assert_array_equal(np.asarray(rows_in), np.asarray(base_in)[first])
    np.testing.assert_array_equal(np.asarray(rows_out), np.asarray(base_in if tied else base_out)[first])


def test_trained_hypernet_reads_every_piece_and_keeps_special_rows():
    base_in, _ = _random_base()
    net = Hypernet(HypernetConfig(d_model=32, tied=True, num_layers=1, num_heads=2, pieces=4))
    pieces = jnp.asarray([[7, 8, -1, -1], [7, 9, -1, -1], [1, 2, 3, -1]], jnp.int32)
    special = jnp.asarray([False, False, True])
    params = net.init(jax.random.key(0), pieces, special, base_in)
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # as if trained: heads no longer zero
    rows, _ = net.apply(params, pieces, special, base_in)
    assert not np.allclose(rows[0], rows[1])  # same first piece, different second piece
    np.testing.assert_array_equal(np.asarray(rows[2]), np.asarray(base_in[1]))  # special: its base row
    padded = pieces.at[0, 3].set(-1)  # already padding: results must not change with padding content
    np.testing.assert_allclose(net.apply(params, padded, special, base_in)[0], rows, atol=1e-6)


@pytest.mark.parametrize("chunk", [0, 2])
def test_predicted_embedding_masks_padded_ids(chunk):
    emb = PredictedEmbedding(vocab_size=4, d_model=8, readout_chunk=chunk)
    rows = jnp.ones((4, 8))
    mask = jnp.asarray([True, True, True, False])
    lp = emb.apply({}, jnp.ones((1, 2, 8)), jnp.asarray([[0, 1]]), tables(rows, rows, mask),
                   method=PredictedEmbedding.target_logprobs)
    np.testing.assert_allclose(np.asarray(lp), np.log(1 / 3), rtol=1e-6)  # three real ids, equal logits


@pytest.mark.parametrize("logit_scale, chunk", [(0.0, 0), (1.0, 0), (0.0, 3), (1.0, 3), (0.5, 4)])
def test_predicted_readout_is_the_trainable_readout(logit_scale, chunk):
    """Rows handed in give the trainable family's logits and log-probabilities for the same
    rows, whatever its logit scale (1.0 for Hugging Face imports) and readout chunks; the
    padded rows after the vocabulary change nothing."""
    v, d, pad = 10, 16, 6
    r = np.random.default_rng(0)
    table, head = (jnp.asarray(r.normal(size=(v, d)), jnp.float32) for _ in range(2))
    h = jnp.asarray(3 * r.normal(size=(2, 5, d)), jnp.float32)
    targets = jnp.asarray(r.integers(0, v, size=(2, 5)), jnp.int32)
    base_cfg = {"kind": "trainable", "tied": False, "logit_scale": logit_scale, "readout_chunk": chunk}
    base = TrainableEmbedding(vocab_size=v, d_model=d, tied=False, logit_scale=logit_scale, readout_chunk=chunk)
    want = {m: base.apply({"params": {"table": table, "head": head}}, h, *([targets] if m == "target_logprobs"
                                                                              else []), None, method=m)
            for m in ("logits", "target_logprobs")}
    emb = embeddings.build(from_base(base_cfg), v + pad, d)
    junk = jnp.asarray(50 * r.normal(size=(pad, d)), jnp.float32)  # padding rows a mask must silence
    ctx = tables(jnp.concatenate([table, junk]), jnp.concatenate([head, junk]), jnp.arange(v + pad) < v)
    got_logits = emb.apply({}, h, ctx, method="logits")
    got_lp = emb.apply({}, h, targets, ctx, method="target_logprobs")
    np.testing.assert_allclose(np.asarray(got_logits[..., :v]), np.asarray(want["logits"]), rtol=1e-5, atol=1e-5)
    assert float(got_logits[..., v:].max()) < -1e29
    np.testing.assert_allclose(np.asarray(got_lp), np.asarray(want["target_logprobs"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(emb.apply({}, targets, ctx, method="embed")), np.asarray(table[targets]))


def test_predicted_kind_is_not_a_language_model_run():
    emb = embeddings.build({"kind": "predicted"}, 10, 8)
    with pytest.raises(UserError, match="a language model cannot train one"):
        emb.context(jax.random.key(0), jnp.int32(0), jnp.arange(2))


# --- with a real (tiny) base model -------------------------------------------------------------

@pytest.fixture(scope="module")
def base_run(tmp_path_factory, cache_dir):
    """A tiny standard LM over a 400-piece SentencePiece model: the base to transfer."""
    work = tmp_path_factory.mktemp("zett") / "base"
    cfg = load_config("configs/standard.py:tiny", ["--config.data.tokenizer.kind=sentencepiece",
                                                    "--config.data.tokenizer.vocab_size=400",
                                                    "--config.model.d_model=32", "--config.model.head_dim=8",
                                                    "--config.train.steps=30", "--config.data.seq_len=64",
                                                    "--config.train.progress_bar=false"])
    cfg.data.cache_dir = str(cache_dir)
    train(cfg, work)
    return work


def test_untrained_hypernet_reproduces_the_base_model_on_its_own_tokenizer(base_run):
    from lexi.inference import load_for_inference
    from lexi.zett.task import frozen_arrays, load_base
    from lexi.zett.vocab import decompose

    base = load_base(base_run)
    dec = decompose(base.tokenizer.token_bytes(), base.tokenizer, 8)
    v = base.tokenizer.vocab_size
    special = np.zeros(v, bool)
    special[list(base.tokenizer.special_ids)] = True
    net = Hypernet(HypernetConfig(d_model=base.d_model, tied=base.tied, num_layers=1, num_heads=2))
    frozen = frozen_arrays(base)
    params = net.init(jax.random.key(1), jnp.asarray(dec.ids_VxL), jnp.asarray(special), frozen["base_in"])
    rows_in, rows_out = net.apply(params, jnp.asarray(dec.ids_VxL), jnp.asarray(special), frozen["base_in"])
    np.testing.assert_array_equal(np.asarray(rows_in), np.asarray(frozen["base_in"]))

    loaded = load_for_inference(base_run)
    text = "In the beginning God created the heaven and the earth. And the earth was without form."
    ids = jnp.asarray([[base.tokenizer.bos_id] + base.tokenizer.encode(text)], jnp.int32)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    want = loaded.model.apply(loaded.variables, inputs, targets, None)
    lm = LanguageModel(base.backbone, base.predicted(v))
    got = lm.apply({"params": {"body": frozen["body"]}}, inputs, targets,
                   tables(rows_in, rows_out, jnp.ones(v, bool)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def _zett_tiny(base_run, cache_dir, *extra):
    cfg = load_config("configs/zett.py:tiny", [f"--config.base_workdir={base_run}",
                                               "--config.train.progress_bar=false", *extra])
    cfg.data.cache_dir = str(cache_dir)
    return cfg


def own_tokenizer_report(base_workdir, tokenizer_spec, cache_dir, max_documents: int = 4) -> dict:
    """`lexi zett eval`'s report (`transfer_report`) for the base's own tokenizer, loaded as the
    user names it, with the residual hypernetwork as a ZeTT run starts: untrained."""
    from lexi import tokenizers
    from lexi.data.corpora import get_corpus
    from lexi.zett.evaluate import transfer_report
    from lexi.zett.task import assemble, initial_state
    from lexi.zett.transfer import Trained

    cfg = _zett_tiny(base_workdir, cache_dir)
    zr = assemble(cfg)
    docs = list(get_corpus(cfg.data).documents("validation"))[:max_documents]
    trained = Trained(zr, initial_state(zr, 0).params, 0)
    return transfer_report(trained, tokenizers.load(str(tokenizer_spec)), docs, seq_len=cfg.data.seq_len)


def assert_rows_keep_the_base(report: dict, rows=("hypernet", "fvt", "lexical"), rel: float = 0.005) -> None:
    """A tokenizer moved onto itself: every way of making its rows gives the base's bits per byte."""
    bpb = report["bits_per_byte"]
    print({k: round(v, 4) for k, v in bpb.items()})
    for name in rows:
        assert bpb[name] == pytest.approx(bpb["original"], rel=rel), (name, bpb)


def test_own_tokenizer_rows_give_the_base_bits_per_byte(base_run, cache_dir):
    """A lexi-trained base (logits scaled by 1/sqrt(d)) moved onto its own tokenizer."""
    report = own_tokenizer_report(base_run, base_run, cache_dir)
    assert_rows_keep_the_base(report)
    assert report["bits_per_byte"]["random"] > 1.05 * report["bits_per_byte"]["original"]


def test_steps_with_different_sampled_tokenizers_compile_once(base_run, cache_dir):
    from lexi.tasks import task_for

    cfg = _zett_tiny(base_run, cache_dir)
    task = task_for(cfg)
    run = task.build_run(cfg, base_run.parent / "compile_once")
    batches, val = task.data(cfg, run)
    b0, b1 = batches.batch_at(0), batches.batch_at(1)
    assert not np.array_equal(b0["vocab"]["pieces"], b1["vocab"]["pieces"])  # two different tokenizers
    step, _ = task.compile(run, val)
    state = task.init_state(run, 0)
    _, m, first, both = two_steps_counting_compiles(step, state, b0, b1, jax.random.key(0))
    assert first >= 1 and both == first, "the second tokenizer recompiled the step"
    assert np.isfinite(float(m["loss"]))


@pytest.fixture(scope="module")
def zett_run(base_run, cache_dir):
    """The tiny hypernetwork, trained to step 10, stopped, then resumed to 20."""
    work = base_run.parent / "zett"
    train(_zett_tiny(base_run, cache_dir), work, stop_at=10)
    last = train(_zett_tiny(base_run, cache_dir), work)
    return work, last


@pytest.fixture(scope="module")
def zett_uninterrupted(base_run, cache_dir):
    """The same tiny hypernetwork trained to step 20 in one call: the reference for resume."""
    work = base_run.parent / "zett_uninterrupted"
    train(_zett_tiny(base_run, cache_dir), work)
    return work


@pytest.mark.slow
def test_zett_resume_equals_uninterrupted(zett_run, zett_uninterrupted):
    """Stopped at 10 and resumed (the sampler cold-starts its window at step 10) gives the
    uninterrupted run's logged figures and final hypernetwork bit for bit."""
    from lexi.rundir import read_metrics
    from lexi.zett.transfer import load_trained

    timing = {"tokens_per_sec", "mfu"}  # wall-clock figures differ between any two runs
    rows = lambda w: [{k: v for k, v in m.items() if k not in timing} for m in read_metrics(w)]
    cut, full = rows(zett_run[0]), rows(zett_uninterrupted)
    assert [m["step"] for m in full] == [5, 10, 15, 20] and any("val_loss" in m for m in full)
    assert cut == full
    a, b = load_trained(zett_run[0]), load_trained(zett_uninterrupted)
    assert a.step == b.step == 20
    leaves = lambda t: jax.tree_util.tree_leaves_with_path(jax.device_get(t.params))
    for (path, x), (_, y) in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def test_zett_trains_in_the_shared_loop_and_resumes(zett_run, base_run, cache_dir, tmp_path):
    from lexi.rundir import read_metrics

    work, last = zett_run
    rows = read_metrics(work)
    assert rows[-1]["step"] == 20 and np.isfinite(last["val_loss"]) and "aux_mse" in last
    assert json.loads((work / "zett_base.json").read_text())["step"] == 30
    saved = json.loads((work / "config.json").read_text())
    assert saved["model"]["d_model"] == 32  # the base's backbone is recorded, and its readout
    assert saved["embedding"] == {"kind": "predicted", "logit_scale": 0.0, "readout_chunk": 0}
    with pytest.raises(UserError, match="base_workdir is empty"):
        train(_zett_tiny("", cache_dir), tmp_path / "nobase")
    from lexi.inference import load_for_inference
    with pytest.raises(UserError, match="holds a ZeTT hypernetwork, not a language model"):
        load_for_inference(work)
    with pytest.raises(UserError, match=r"hypernet.num_layers: 1 -> 2"):  # another hypernetwork
        train(_zett_tiny(base_run, cache_dir, "--config.hypernet.num_layers=2", "--config.train.steps=30"), work)
    record = work / "zett_base.json"
    kept = record.read_text()
    record.write_text(json.dumps({**json.loads(kept), "step": 7}))  # trained for another base checkpoint
    try:
        with pytest.raises(UserError, match=r"at step 7, but config.base_workdir is .* at step 30"):
            train(_zett_tiny(base_run, cache_dir, "--config.train.steps=30"), work)
    finally:
        record.write_text(kept)


class _FakeBase:
    """What the baselines read of a base: its tokenizer and embedding table."""

    def __init__(self, tokenizer, table):
        self.tokenizer, self.tied = tokenizer, True
        self.params = {"body": {}, "embedding": {"table": table}}


def test_baselines_on_a_tiny_case():
    from lexi.tokenizers import CharTokenizer
    from lexi.zett.unigram import unigram_tokenizer
    from lexi.zett.transfer import baseline_rows

    char = CharTokenizer()
    table = np.random.default_rng(0).normal(size=(char.vocab_size, 8)).astype(np.float32)
    base = _FakeBase(char, table)
    target = unigram_tokenizer([("ab", -1.0), ("a", -2.0), ("b", -2.0), ("xyz", -3.0)])
    ids = {p: target._sp.piece_to_id(p) for p in ("ab", "a", "xyz")}
    fvt, _ = baseline_rows(base, target, "fvt")
    np.testing.assert_allclose(fvt[ids["ab"]], (table[ord("a")] + table[ord("b")]) / 2, rtol=1e-6)
    np.testing.assert_allclose(fvt[ids["xyz"]], table[[ord(c) for c in "xyz"]].mean(0), rtol=1e-6)
    lexical, _ = baseline_rows(base, target, "lexical")
    np.testing.assert_array_equal(lexical[ids["a"]], table[ord("a")])  # shared token: copied
    np.testing.assert_array_equal(lexical[ids["ab"]], fvt[ids["ab"]])  # not shared: FVT
    rand, _ = baseline_rows(base, target, "random", seed=1)
    np.testing.assert_array_equal(rand[target.bos_id], table[char.bos_id])  # specials keep base rows
    normal = [i for i in range(target.vocab_size) if i not in target.special_ids]
    assert abs(rand[normal].std() - table.std()) < 0.15 and not np.allclose(rand[ids["a"]], table[ord("a")])


def test_transfer_writes_a_run_that_evaluates_and_trains_on(zett_run, capsys):
    from lexi import cli
    from lexi.zett.evaluate import run_zett_eval

    work, _ = zett_run
    report, path = run_zett_eval(work, "byte", max_documents=3)
    assert set(report["bits_per_byte"]) == {"original", "hypernet", "fvt", "lexical", "random", "tokenadapt"}
    assert "--donor" in report["skipped"]["omp"]  # omp needs a donor; the report says so
    assert all(np.isfinite(v) for v in report["bits_per_byte"].values()) and path.exists()
    assert report["tokens_per_byte"]["target"] == pytest.approx(1.0, abs=0.01)  # bytes: one token per byte
    assert report["bits_per_byte"]["random"] > report["bits_per_byte"]["lexical"]

    moved = work.parent / "moved"
    assert cli.main(["zett", "transfer", "--workdir", str(work), "--tokenizer", "byte",
                     "--out-workdir", str(moved)]) == 0
    assert cli.main(["eval", "--workdir", str(moved), "--suite", "perplexity", "--sequences", "4"]) == 0
    res = json.loads((moved / "eval" / "results.json").read_text())
    assert np.isfinite(res["perplexity"]["bits_per_byte"])
    assert cli.main(["train", "--config", str(moved / "config.json"), "--workdir", str(moved),
                     "--config.train.steps=3", "--config.train.progress_bar=false"]) == 0
    assert "val_loss=" in capsys.readouterr().out


def test_omp_and_tokenadapt_rows_with_a_donor_run(zett_run, capsys):
    """`--rows omp --donor RUN` and `lexi zett eval --donor RUN`: the donor is a lexi run with the
    target tokenizer (here the base moved onto the char tokenizer with lexical rows, as
    `write_run` saves any transfer); a donor with another tokenizer is refused."""
    from lexi import cli, tokenizers
    from lexi.zett.evaluate import format_report, run_zett_eval
    from lexi.zett.transfer import baseline_rows, load_trained, write_run

    work, _ = zett_run
    base = load_trained(work).base
    char = tokenizers.load("char")
    rows = baseline_rows(base, char, "lexical")
    donor = write_run(base, char, *rows, work.parent / "char_donor", {"rows": "lexical"})
    moved = work.parent / "moved_omp"
    assert cli.main(["zett", "transfer", "--workdir", str(work), "--tokenizer", "char", "--out-workdir", str(moved),
                     "--rows", "omp", "--donor", str(donor), "--omp-k", "16"]) == 0
    record = json.loads((moved / "transfer.json").read_text())
    assert record["rows"] == "omp" and record["omp_k"] == 16 and record["donor_workdir"] == str(donor.resolve())
    assert cli.main(["eval", "--workdir", str(moved), "--suite", "perplexity", "--sequences", "2"]) == 0

    report, _ = run_zett_eval(work, "char", max_documents=2, donor=donor)
    bpb = report["bits_per_byte"]
    assert {"omp", "tokenadapt", "hypernet"} <= set(bpb) and "skipped" not in report
    assert all(np.isfinite(v) for v in bpb.values()) and report["seconds_to_make_rows"]["omp"] >= 0
    with capsys.disabled():
        print(format_report(report))
    capsys.readouterr()
    assert cli.main(["zett", "transfer", "--workdir", str(work), "--tokenizer", "byte", "--out-workdir",
                     str(work.parent / "refused"), "--rows", "omp", "--donor", str(donor)]) == 2
    assert "is not the target tokenizer" in capsys.readouterr().err
    assert not (work.parent / "refused").exists()


def test_tokenizer_command_trains_and_saves_a_target(tmp_path, cache_dir, capsys):
    from lexi import cli, tokenizers

    out = tmp_path / "bpe"
    assert cli.main(["tokenizer", "--corpus", "kjv", "--vocab-size", "400", "--model-type", "bpe",
                     "--out", str(out), f"--config.data.cache_dir={cache_dir}"]) == 0
    tok = tokenizers.load(out)
    assert tok.vocab_size == 400 and tok.decode(tok.encode("And God said")) == "And God said"


@pytest.mark.slow
def test_zett_on_a_four_device_mesh_matches_one_device(base_run, cache_dir, tmp_path):
    """The hypernetwork's parameters follow the mesh rules and the sampled vocabulary's rows
    split over the data-parallel devices: data 2 x tensor 2 gives the one-device losses."""
    import json
    import os
    import subprocess
    import sys

    worker = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
    args = [f"--config.base_workdir={base_run}", "--config.train.steps=4", "--config.train.log_every=1",
            "--config.train.eval_every=4", "--config.train.progress_bar=false"]
    losses = {}
    for name, devices, mesh in (("one", 1, []), ("four", 4, ["--config.mesh.shape.data=2",
                                                            "--config.mesh.shape.tensor=2"])):
        env = dict(os.environ, XLA_FLAGS=xla_flags(devices),
                   JAX_PLATFORMS="cpu", LEXI_CACHE=str(cache_dir), LEXI_WORKER_CONFIG="configs/zett.py:tiny")
        p = subprocess.run([sys.executable, worker, str(tmp_path / name), "0", *args, *mesh], env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [r["loss"] for r in rows if "loss" in r] + [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(losses["one"]) == 5
    np.testing.assert_allclose(losses["four"], losses["one"], rtol=2e-5)
