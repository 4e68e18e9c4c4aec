"""Hugging Face import and export: lexi's logits equal transformers' on tiny random models.

Each test model is built by transformers itself (Llama with GQA, RoPE and SwiGLU; its llama3
and YaRN RoPE scalings; Qwen2's q/k/v biases with a tied head; Mistral; GPT-2), with weights
drawn far from their initialisation so that a transposed or misplaced tensor cannot hide,
saved with `save_pretrained` and read back by `lexi import-hf`.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lexi.cli import main  # noqa: E402
from lexi.inference import load_for_inference  # noqa: E402

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."
STRINGS = ["", "hello world", "  two  spaces\nand a newline\t tab", "Ünïcödé — “quotes” 日本語 🙂",
           "And God said, Let there be light: and there was light.", "x=1+2; print(x)  # code"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, kjv_docs):
    """A byte-level BPE tokenizer.json (GPT-2 style) trained here on KJV chapters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(kjv_docs[:40], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    out = tmp_path_factory.mktemp("hf_tok")
    fast.save_pretrained(out)
    return out, len(fast)


def _randomise(model, seed):
    """Weights of unit-ish scale (norm gains around 1), so every tensor moves the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.2 * noise if ("norm" in name or "ln_" in name) and name.endswith("weight")
                    else 0.15 * noise)
    return model.eval()


def _llama_like(cls_name, vocab, **kw):
    cfg_cls = getattr(transformers, cls_name + "Config")
    base = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5)
    base.update(kw)
    return getattr(transformers, cls_name + "ForCausalLM")(cfg_cls(**base))


MODELS = {
    "llama_gqa_untied": lambda v: _llama_like("Llama", v, tie_word_embeddings=False),
    "llama3_rope_tied": lambda v: _llama_like("Llama", v, tie_word_embeddings=True, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}),
    "llama_yarn_bias": lambda v: _llama_like("Llama", v, attention_bias=True, mlp_bias=True, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
    "qwen2_tied": lambda v: _llama_like("Qwen2", v, tie_word_embeddings=True, num_key_value_heads=1),
    "mistral_linear_rope": lambda v: _llama_like("Mistral", v, sliding_window=None, head_dim=24,
                                                 rope_scaling={"rope_type": "linear", "factor": 2.0}),
    "gpt2": lambda v: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=v, n_embd=64, n_layer=2, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=1)),
}


def _save(model, tokenizer_dir, out, **kw):
    import shutil

    model.save_pretrained(out, **kw)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return out


def _ids(tok_dir, n=48):
    fast = transformers.AutoTokenizer.from_pretrained(tok_dir)
    ids = fast.encode(TEXT * 3, add_special_tokens=True)[:n]
    return np.asarray([ids, ids[::-1]], np.int64)  # two rows, so batching is covered too


def _hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float().numpy()


def _lexi_logits(run_dir, ids):
    loaded = load_for_inference(run_dir)
    ctx = loaded.model.embedding.context(jax.random.key(0), jnp.int32(0), jnp.arange(ids.shape[0]))
    return np.asarray(loaded.model.apply(loaded.variables, jnp.asarray(ids, jnp.int32), ctx,
                                         method=type(loaded.model).logits))


def _import(name, tokenizer_dir, root):
    tok_dir, vocab = tokenizer_dir
    model = _randomise(MODELS[name](vocab), seed=1)
    # the Llama models are saved in several shards with an index, the others in one file
    kw = {"max_shard_size": "60KB"} if name.startswith("llama") else {}
    folder = _save(model, tok_dir, root / "hf", **kw)
    assert main(["import-hf", str(folder), "--workdir", str(root / "run")]) == 0
    return name, model, folder, root


@pytest.fixture(scope="module", params=sorted(MODELS))
def imported(request, tokenizer_dir, tmp_path_factory):
    return _import(request.param, tokenizer_dir, tmp_path_factory.mktemp(request.param))


def test_imported_logits_equal_hugging_face(imported, tokenizer_dir):
    name, model, folder, root = imported
    if name.startswith("llama"):
        assert (folder / "model.safetensors.index.json").exists()
    ids = _ids(tokenizer_dir[0])
    want = _hf_logits(model, ids)
    got = _lexi_logits(root / "run", ids)
    assert got.shape == want.shape
    assert np.abs(want).max() > 1.0  # logits far from zero: a wrong tensor would show
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_export_round_trip_reproduces_the_logits(imported, tokenizer_dir):
    name, model, folder, root = imported
    out = root / "exported"
    assert main(["export-hf", str(root / "run"), "--out", str(out)]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(back).__name__ == type(model).__name__
    ids = _ids(tokenizer_dir[0])
    np.testing.assert_allclose(_hf_logits(back, ids), _hf_logits(model, ids), rtol=1e-5, atol=1e-5)
    fast = transformers.AutoTokenizer.from_pretrained(out)
    assert fast.encode(TEXT, add_special_tokens=False) == \
        transformers.AutoTokenizer.from_pretrained(folder).encode(TEXT, add_special_tokens=False)


def test_imported_tokenizer_encodes_and_decodes_like_hugging_face(tokenizer_dir, tmp_path):
    from lexi import tokenizers

    tok_dir, _ = tokenizer_dir
    fast = transformers.AutoTokenizer.from_pretrained(tok_dir)
    model = _randomise(MODELS["llama_gqa_untied"](len(fast)), seed=2)
    folder = _save(model, tok_dir, tmp_path / "hf")
    assert main(["import-hf", str(folder), "--workdir", str(tmp_path / "run")]) == 0
    tok = tokenizers.load(str(tmp_path / "run"))
    assert tok.vocab_size == len(fast) and tok.bos_id == fast.bos_token_id and tok.eos_id == fast.eos_token_id
    for s in STRINGS:
        ids = fast.encode(s, add_special_tokens=False)
        assert tok.encode(s) == ids, s
        assert tok.decode(ids) == fast.decode(ids, skip_special_tokens=True) == s, s


@pytest.mark.slow
def test_imported_run_continues_training_and_serves_as_zett_base(tokenizer_dir, tmp_path, cache_dir):
    from lexi.config import load_config
    from lexi.train.loop import train

    _, _, _, root = _import("llama_gqa_untied", tokenizer_dir, tmp_path)
    run = root / "run"
    assert main(["train", "--config", str(run / "config.json"), "--workdir", str(run), "--config.train.steps=2",
                 "--config.train.batch_size=2", "--config.data.seq_len=32", "--config.train.eval_batches=1",
                 "--config.train.progress_bar=false", f"--config.data.cache_dir={cache_dir}"]) == 0
    assert load_for_inference(run).step == 2
    assert main(["sample", "--workdir", str(run), "--prompt", "And God", "--max-new", "4"]) == 0
    assert main(["eval", "--workdir", str(run), "--suite", "perplexity", "--sequences", "2"]) == 0
    assert json.loads((run / "eval" / "results.json").read_text())["perplexity"]["bits_per_byte"] > 0
    cfg = load_config("configs/zett.py:tiny", [f"--config.base_workdir={run}", "--config.train.steps=2",
                                               "--config.train.progress_bar=false"])
    cfg.data.cache_dir = str(cache_dir)
    last = train(cfg, root / "zett")
    assert np.isfinite(last["loss"])
    _zett_keeps_the_imported_readout(root, root / "hf")

    # ... whose hypernetwork moves it to another tokenizer.json, and the moved model exports
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    other = Tokenizer(models.BPE())
    other.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    other.decoder = decoders.ByteLevel()
    other.train_from_iterator([TEXT.lower()] * 30, trainers.BpeTrainer(
        vocab_size=290, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    other.save(str(root / "other.json"))
    assert main(["zett", "transfer", "--workdir", str(root / "zett"), "--tokenizer", str(root / "other.json"),
                 "--out-workdir", str(root / "moved")]) == 0
    assert json.loads((root / "moved" / "config.json").read_text())["embedding"]["logit_scale"] == 1.0
    assert main(["export-hf", str(root / "moved"), "--out", str(root / "moved_hf")]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(root / "moved_hf").eval()
    fast = transformers.AutoTokenizer.from_pretrained(root / "moved_hf")
    assert fast.encode(TEXT, add_special_tokens=False) == other.encode(TEXT).ids
    ids = np.asarray([other.encode(TEXT).ids[:30]])
    want = _lexi_logits(root / "moved", ids)
    assert want.shape[-1] == other.get_vocab_size()
    np.testing.assert_allclose(_hf_logits(back, ids), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _zett_keeps_the_imported_readout(root, hf_folder):
    """The user's report: `lexi zett eval --tokenizer` the base's own tokenizer.json gave FVT 4.166
    bits/byte against the base's 4.616, every row read out 1/sqrt(d) times too cold. The ZeTT run
    records the base's scale; one trained before it did (no record) takes the base's."""
    from lexi.errors import UserError
    from lexi.zett.transfer import load_trained

    zett = root / "zett"
    assert main(["zett", "eval", "--workdir", str(zett), "--tokenizer", str(hf_folder / "tokenizer.json"),
                 "--max-documents", "2"]) == 0
    bpb = json.loads((zett / "eval" / "zett_tokenizer.json.json").read_text())["bits_per_byte"]
    assert all(bpb[k] == pytest.approx(bpb["original"], rel=0.005) for k in ("fvt", "lexical")), bpb
    cfg_path = zett / "config.json"
    saved = json.loads(cfg_path.read_text())
    assert saved["embedding"] == {"kind": "predicted", "logit_scale": 1.0, "readout_chunk": 0}
    try:
        cfg_path.write_text(json.dumps({**saved, "embedding": {"kind": "trainable", "tied": True,
                                                               "readout_chunk": 0}}))  # as written before
        assert load_trained(zett).zett.run.model.embedding.logit_scale == 1.0
        cfg_path.write_text(json.dumps({**saved, "embedding": {**saved["embedding"], "logit_scale": 0.0}}))
        with pytest.raises(UserError, match="trained for logits scaled by 0.125, but its base .* reads out with 1"):
            load_trained(zett)
    finally:
        cfg_path.write_text(json.dumps(saved))


@pytest.mark.parametrize("name", ["llama_gqa_untied", "qwen2_tied"])
def test_zett_on_an_imported_base_keeps_the_base_on_its_own_tokenizer(name, tokenizer_dir, tmp_path, cache_dir):
    """An imported base reads out h . E^T (logit_scale 1): moved onto its own tokenizer.json, FVT and
    lexical rows and the untrained residual hypernetwork give its bits per byte (tied and untied)."""
    from test_zett import assert_rows_keep_the_base, own_tokenizer_report

    _, _, folder, root = _import(name, tokenizer_dir, tmp_path)
    report = own_tokenizer_report(root / "run", folder / "tokenizer.json", cache_dir)
    assert_rows_keep_the_base(report)


@pytest.mark.slow
def test_import_loads_into_a_sharded_mesh(tmp_path):
    """Four devices (fsdp 2 x tensor 2): every parameter lands sharded, logits unchanged."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, sys, json
        sys.path.insert(0, "tests")
        from xla_flags import xla_flags
        os.environ["XLA_FLAGS"] = xla_flags(4)
        import numpy as np, torch, transformers, jax, jax.numpy as jnp
        from test_hf_import import MODELS, _randomise, _save, _hf_logits, _lexi_logits
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
        from lexi.cli import main
        from lexi.inference import load_for_inference
        from pathlib import Path
        out = Path(sys.argv[1])
        tok = Tokenizer(models.BPE()); tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(["the cat sat on the mat"] * 20, trainers.BpeTrainer(
            vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
        (out / "tok").mkdir(); fast.save_pretrained(out / "tok")
        model = _randomise(MODELS["llama_gqa_untied"](len(fast)), seed=3)
        folder = _save(model, out / "tok", out / "hf")
        assert main(["import-hf", str(folder), "--workdir", str(out / "run"),
                     "--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=2", "--config.mesh.shape.tensor=2"]) == 0
        loaded = load_for_inference(out / "run")
        shards = {"/".join(str(k.key) for k in p): len({str(s.index) for s in a.addressable_shards})
                  for p, a in jax.tree_util.tree_flatten_with_path(loaded.params)[0]}
        ids = np.asarray([fast.encode("the cat sat on the mat the cat")] * 2)
        err = float(np.abs(_lexi_logits(out / "run", ids) - _hf_logits(model, ids)).max())
        print(json.dumps({"shards": shards, "err": err}))
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["err"] < 1e-3
    assert res["shards"]["embedding/table"] > 1  # split over the devices, not replicated
    assert res["shards"]["body/layer_0/mlp/up/kernel"] == 4  # fsdp x tensor


def test_lexi_trained_model_exports_with_its_readout_scale(tokenizer_dir, tmp_path, cache_dir):
    """A model lexi trained itself (tied table, logits scaled by 1/sqrt(d)) exports as an
    untied Llama whose head carries the scale, and transformers computes lexi's logits."""
    from lexi.config import load_config
    from lexi.train.loop import train

    tok_dir, _ = tokenizer_dir
    cfg = load_config("configs/standard.py:tiny", [
        "--config.model.activation=swiglu", "--config.model.position=rope", "--config.model.num_kv_heads=2",
        "--config.data.tokenizer.kind=hf", f"--config.data.tokenizer.model_file={tok_dir / 'tokenizer.json'}",
        "--config.train.steps=3", "--config.data.seq_len=32", "--config.train.progress_bar=false"])
    cfg.data.cache_dir = str(cache_dir)
    train(cfg, tmp_path / "run")
    assert main(["export-hf", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    hf_cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert hf_cfg["model_type"] == "llama" and hf_cfg["tie_word_embeddings"] is False
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = _ids(tok_dir, 24)
    want = _lexi_logits(tmp_path / "run", ids)
    np.testing.assert_allclose(_hf_logits(back, ids), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_safetensors_shards_round_trip_with_bfloat16(tmp_path):
    import ml_dtypes

    from lexi.hf.safetensors import Checkpoint, write

    r = np.random.default_rng(0)
    tensors = {"a": r.normal(size=(3, 5)).astype(np.float32), "b": r.normal(size=(7,)).astype(ml_dtypes.bfloat16),
               "c": np.arange(12, dtype=np.int64).reshape(3, 4).T}  # not C-contiguous
    files = write(tensors, tmp_path, max_shard_bytes=64)
    assert len(files) == 3 and (tmp_path / "model.safetensors.index.json").exists()
    back = Checkpoint(tmp_path)
    assert sorted(back.names()) == ["a", "b", "c"]
    for k, v in tensors.items():
        assert back.view(k).dtype == v.dtype
        np.testing.assert_array_equal(back.view(k), v)
    write({"a": tensors["a"], "c": tensors["c"]}, tmp_path / "one")  # one file: no index
    assert not (tmp_path / "one" / "model.safetensors.index.json").exists()
    np.testing.assert_array_equal(np.asarray(Checkpoint(tmp_path / "one").view("c")), tensors["c"])


@pytest.mark.parametrize("name", ["same", "t", "heads_in", "heads_out", "part", "part_bias"])
def test_lazy_views_read_only_the_block_they_are_asked_for(name):
    """Every layout change import applies, on a Lazy tensor: each block equals the numpy view's,
    and the file is asked for the block alone, or (a head axis cut inside a head) whole heads."""
    from lexi.hf import architectures as arch
    from lexi.hf.lazy import Lazy

    n, h, d = 3, 4, 5
    views = {"same": (arch._same, (7, d)), "t": (arch._t, (6, d)), "heads_in": (arch._heads_in(n, h), (n * h, d)),
             "heads_out": (arch._heads_out(n, h), (d, n * h)), "part": (arch._part(1, n, h), (d, 3 * n * h)),
             "part_bias": (arch._part(1, n, h, bias=True), (3 * n * h,))}
    view, shape = views[name]
    src = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    read_sizes = []

    def read(box):
        read_sizes.append(int(np.prod([b.stop - b.start for b in box])))
        return src[box]

    lazy, want = view(Lazy(src.shape, src.dtype, read)), view(src)
    assert lazy.shape == want.shape
    r = np.random.default_rng(1)
    for _ in range(20):
        box = []
        for size in want.shape:
            lo = int(r.integers(0, size))
            box.append(slice(lo, int(r.integers(lo + 1, size + 1))))
        read_sizes.clear()
        got = np.asarray(lazy[tuple(box)], np.float32)
        np.testing.assert_array_equal(got, want[tuple(box)])
        exact = name in ("same", "t")  # no axis is split into heads
        assert sum(read_sizes) <= got.size * (1 if exact else h), (box, read_sizes)
    np.testing.assert_array_equal(np.asarray(lazy), want)


def _write_config(folder, **cfg):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize("cfg, message", [
    ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "model_type 't5'"),
    ({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
      "intermediate_size": 96, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type 'dynamic'"),
    ({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
      "intermediate_size": 96, "hidden_act": "gelu"}, "hidden_act 'gelu'"),
    ({"model_type": "gpt2", "n_embd": 64, "n_layer": 1, "n_head": 4, "scale_attn_by_inverse_layer_idx": True},
     "scale_attn_by_inverse_layer_idx"),
])
def test_unsupported_architectures_and_options_are_named(tmp_path, capsys, cfg, message):
    folder = _write_config(tmp_path / "hf", **cfg)
    assert main(["import-hf", str(folder), "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_files_are_reported(tmp_path, capsys, tokenizer_dir):
    assert main(["import-hf", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "run")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    model = _randomise(MODELS["gpt2"](tokenizer_dir[1]), seed=4)
    model.save_pretrained(tmp_path / "hf")  # weights but no tokenizer.json
    assert main(["import-hf", str(tmp_path / "hf"), "--workdir", str(tmp_path / "run")]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    (tmp_path / "hf" / "model.safetensors").unlink()
    _save(model, tokenizer_dir[0], tmp_path / "hf2")
    (tmp_path / "hf2" / "model.safetensors").rename(tmp_path / "hf2" / "pytorch_model.bin")
    assert main(["import-hf", str(tmp_path / "hf2"), "--workdir", str(tmp_path / "run")]) == 2
    assert "no safetensors weights" in capsys.readouterr().err


def test_export_refuses_models_without_a_hugging_face_form(tmp_path, capsys, cache_dir):
    from lexi.config import load_config
    from lexi.train.loop import train

    cfg = load_config("configs/lexinvariant.py:tiny", ["--config.train.steps=1", "--config.train.progress_bar=false",
                                                        "--config.model.d_model=32", "--config.model.head_dim=8"])
    cfg.data.cache_dir = str(cache_dir)
    train(cfg, tmp_path / "lx")
    assert main(["export-hf", str(tmp_path / "lx"), "--out", str(tmp_path / "out")]) == 2
    assert "embedding kind 'lexinvariant'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_import_refusals_keep_what_is_there(tokenizer_dir, tmp_path, capsys):
    tok_dir, vocab = tokenizer_dir
    qwen = _save(_randomise(MODELS["qwen2_tied"](vocab), seed=5), tok_dir, tmp_path / "qwen")
    cfg = json.loads((qwen / "config.json").read_text())
    (qwen / "config.json").write_text(json.dumps({**cfg, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    assert main(["import-hf", str(qwen), "--workdir", str(tmp_path / "r1")]) == 2  # q/k/v biases a Llama lacks
    assert "have no place in lexi's llama model" in capsys.readouterr().err

    llama = _save(_randomise(MODELS["llama_gqa_untied"](vocab), seed=6), tok_dir, tmp_path / "llama")
    cfg = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 80}))
    assert main(["import-hf", str(llama), "--workdir", str(tmp_path / "r2")]) == 2
    assert "does not fit lexi's" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
    (llama / "config.json").write_text(json.dumps(cfg))

    assert main(["import-hf", str(llama), "--workdir", str(tmp_path / "r3")]) == 0
    before = sorted((p.relative_to(tmp_path), p.stat().st_size) for p in (tmp_path / "r3").rglob("*"))
    assert main(["import-hf", str(llama), "--workdir", str(tmp_path / "r3")]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted((p.relative_to(tmp_path), p.stat().st_size) for p in (tmp_path / "r3").rglob("*")) == before

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["export-hf", str(tmp_path / "r3"), "--out", str(tmp_path / "full")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_mistral_sliding_window_caps_the_context(tokenizer_dir, tmp_path, capsys):
    tok_dir, vocab = tokenizer_dir
    folder = _save(_randomise(_llama_like("Mistral", vocab, sliding_window=40), seed=8), tok_dir, tmp_path / "hf")
    assert main(["import-hf", str(folder), "--workdir", str(tmp_path / "r1"), "--seq-len", "64"]) == 2
    assert "sliding_window (40)" in capsys.readouterr().err
    assert main(["import-hf", str(folder), "--workdir", str(tmp_path / "r2")]) == 0
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["data"]["seq_len"] == 40


def test_padded_embedding_rows_are_cut_to_the_tokenizer(tokenizer_dir, tmp_path, caplog):
    tok_dir, vocab = tokenizer_dir
    model = _randomise(MODELS["llama_gqa_untied"](vocab + 64), seed=7)
    folder = _save(model, tok_dir, tmp_path / "hf")
    assert main(["import-hf", str(folder), "--workdir", str(tmp_path / "run")]) == 0
    assert f"keeping the first {vocab} rows" in caplog.text
    ids = _ids(tok_dir, 20)
    want = _hf_logits(model, ids)[..., :vocab]  # the rows no token reaches are gone; the others are equal
    np.testing.assert_allclose(_lexi_logits(tmp_path / "run", ids), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("overrides, message", [
    ([], "does not map onto a Hugging Face architecture"),  # the standard tiny model: T5 bias, GELU
    (["--config.model.activation=swiglu", "--config.model.position=rope"], "lexi's 'char' kind"),
])
def test_export_refuses_backbones_and_tokenizers_without_a_hugging_face_form(tmp_path, capsys, cache_dir,
                                                                             overrides, message):
    from lexi.config import load_config
    from lexi.train.loop import train

    cfg = load_config("configs/standard.py:tiny", ["--config.train.steps=1", "--config.train.progress_bar=false",
                                                    "--config.data.seq_len=32", *overrides])
    cfg.data.cache_dir = str(cache_dir)
    train(cfg, tmp_path / "run")
    assert main(["export-hf", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
