# %% [markdown]
# # 1. Lexinvariant language models: a quickstart
#
# A **lexinvariant** language model (Huang et al. 2023, *Lexinvariant Language Models*) has no
# fixed token embeddings. For every sequence it draws a fresh random Gaussian vector for each
# token id and reads out through the same vectors, so a token means nothing by itself: the model
# has to work out from the context which token plays which role. Its loss is therefore high at the
# start of a sequence and falls as the context grows.
#
# In this notebook you will
#
# 1. train a tiny lexinvariant model and a standard model of exactly the same shape on the King
#    James Bible (shipped with lexi, so nothing is downloaded),
# 2. read what each one writes,
# 3. evaluate both with lexi's suite and plot loss against position in the context,
# 4. put the two side by side.
#
# Everything runs on a CPU in a few minutes; on a GPU or TPU runtime the same cells train bigger
# models.

# %% [setup]

# %% [markdown]
# ## Parameters
#
# The models come from lexi's config files: `configs/lexinvariant.py` and `configs/standard.py`,
# variant `tiny` (2 layers, width 64, one token per ASCII character, context 128) on a CPU and
# `small` (4 layers, width 256, context 256) on an accelerator. The two files share their
# shapes (`lexi/presets.py`), so the pair differs only in the embedding.

# %%
SIZE = "tiny" if BACKEND == "cpu" else "small"  # or "demo": what `lexi demo` trains, about 5 more CPU minutes
STEPS = {"tiny": 300, "demo": 1200, "small": 1200}[SIZE]  # optimizer steps per model
SEQUENCES = {"tiny": 32, "demo": 64, "small": 100}[SIZE]  # validation sequences for the loss curves and the cipher test
PROBE_STEPS = {"tiny": 200, "demo": 300, "small": 1000}[SIZE]  # deciphering probe (notebook 2 explains it)
EXAMPLES = {"tiny": 100, "demo": 200, "small": 500}[SIZE]  # reasoning examples per task (notebook 3)
SAMPLE_CHARS = 200
if SMOKE:
    STEPS, SEQUENCES, PROBE_STEPS, EXAMPLES, SAMPLE_CHARS = 20, 8, 20, 8, 40
print(f"SIZE={SIZE} STEPS={STEPS} SEQUENCES={SEQUENCES} PROBE_STEPS={PROBE_STEPS} EXAMPLES={EXAMPLES}")

# %% [markdown]
# ## 1. The two configs
#
# `load_config("file.py:variant", overrides)` is what `lexi train --config file.py:variant
# --config.train.steps=...` does on the command line. The only difference between the two
# configs is the `embedding` section.

# %%
from lexi.config import load_config


def make_config(family):
    cfg = load_config(f"{CONFIGS}/{family}.py:{SIZE}", [f"--config.train.steps={STEPS}"])
    cfg.train.warmup_steps = min(cfg.train.warmup_steps, STEPS // 10)
    return cfg


configs = {family: make_config(family) for family in ("lexinvariant", "standard")}
for family, cfg in configs.items():
    print(f"{family:>12}: embedding {dict(cfg.embedding)}")
m, t = configs["standard"].model, configs["standard"].train
print(f"both: {m.num_layers} layers, d_model {m.d_model}, {m.num_heads} heads, context {configs['standard'].data.seq_len}, "
      f"batch {t.batch_size}, {t.steps} steps, tokenizer {configs['standard'].data.tokenizer.kind}")

# %% [markdown]
# ## 2. Train
#
# `lexi.train.loop.train(cfg, run_dir)` trains (or resumes) a run. The run directory gets
# `config.json`, the tokenizer, `metrics.jsonl` (one line per logged step) and checkpoints.
# Running the cell again resumes where it stopped instead of starting over.

# %%
from lexi.train.loop import train

RUNS = {family: WORKDIR / family for family in configs}
for family, cfg in configs.items():
    t0 = time.perf_counter()
    last = train(cfg, RUNS[family])
    print(f"{family}: {time.perf_counter() - t0:.0f} s, training loss {last['loss']:.3f}, "
          f"validation loss {last['val_loss']:.3f} nats/char")

# %% [markdown]
# The training curves, read back from each run's `metrics.jsonl`. A uniform guess over the 128
# ASCII ids costs ln 128 = 4.85 nats per character.

# %%
from lexi.rundir import read_metrics

fig, ax = plt.subplots(figsize=(6, 3.5))
for family, run_dir in RUNS.items():
    rows = [r for r in read_metrics(run_dir) if "loss" in r]
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=family)
ax.axhline(np.log(128), color="grey", linestyle=":", label="uniform guess")
ax.set(xlabel="step", ylabel="training loss (nats/char)", title="Training")
ax.legend()
show(fig)

# %% [markdown]
# ## 3. Read what they write
#
# `load_for_inference(run_dir)` restores the newest checkpoint; `sample_text` continues a
# prompt. The lexinvariant model draws new random embeddings for the sample too, so all it
# knows about the prompt's letters is how they are arranged.

# %%
from lexi.inference import load_for_inference, sample_text

loaded = {family: load_for_inference(run_dir) for family, run_dir in RUNS.items()}
for family, run in loaded.items():
    text = sample_text(run, "And God said", max_new=SAMPLE_CHARS, temperature=0.8, top_k=0, seed=0)[0]
    print(f"--- {family} (step {run.step}):\n{text}\n")

# %% [markdown]
# ## 4. Evaluate
#
# `lexi.eval.suite.run_suite(run_dir, ...)` is `lexi eval`: loss at every position of validation
# sequences that start at a chapter boundary (so position 0 has no context), bits per byte, the
# substitution-cipher test (notebook 2) and the reasoning tasks (notebook 3). It writes
# `RUN/eval/results.json` and a `report.md` with plots.

# %%
from lexi.eval.suite import run_suite

results = {}
for family, run_dir in RUNS.items():
    results[family] = run_suite(run_dir, num_sequences=SEQUENCES, probe_steps=PROBE_STEPS, examples=EXAMPLES)
    print(f"{family}: {results[family]['_paths']['report']}")

# %% [markdown]
# ### Loss against position in the context
#
# The paper's figure 2: per-position loss averaged over the validation sequences (lexi smooths it
# with a trailing moving average, as the paper does; the thin lines are the raw averages). The
# standard model knows every letter from the start, so its curve is flat. The lexinvariant model
# starts near the uniform guess and gets better as the context tells it which characters are in
# use; with far more training (the paper: 8B tokens) the gap to the standard model keeps
# shrinking along the context.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for family, res in results.items():
    p = res["perplexity"]
    line, = ax.plot(p["loss_by_position"], label=f"{family} (moving average of {p['smoothing_window']})")
    ax.plot(p["loss_by_position_raw"], color=line.get_color(), alpha=0.25, linewidth=0.8)
ax.axhline(np.log(128), color="grey", linestyle=":", label="uniform guess")
ax.set(xlabel="position in the context", ylabel="loss (nats/char)", title="Loss vs context position")
ax.legend(fontsize=8)
show(fig)

# %% [markdown]
# ## 5. Side by side
#
# `lexi.eval.suite.compare(run_dirs, out_dir)` is `lexi compare`: one table of every number the
# suite measured, plus plots with both runs. The row to look at first is **cipher / plain**:
# the lexinvariant model's loss on ciphered text is the same as on plain text (ratio near 1),
# while the standard model's goes up.

# %%
from lexi.eval.suite import compare

comparison = compare(list(RUNS.values()), WORKDIR / "compare")
display(Markdown(comparison["table"]))
print("report:", comparison["paths"]["report"])

# %% [markdown]
# ## Summary
#
# The last cell keeps the headline numbers in `WORKDIR/summary.json` (the notebook tests read it).
# Next: notebook 2 deciphers with these models, notebook 3 asks them to reason in context.

# %%
def headline(res):
    raw = np.asarray(res["perplexity"]["loss_by_position_raw"])
    k = max(1, len(raw) // 8)
    return {"first_eighth": float(raw[:k].mean()), "last_eighth": float(raw[-k:].mean()),
            "mean_loss": res["perplexity"]["mean_loss"], "bits_per_byte": res["perplexity"]["bits_per_byte"],
            "cipher_plain_ratio": res["cipher"]["cipher_plain_ratio"]}


summary = {"python": sys.executable, "backend": BACKEND, "size": SIZE, "steps": STEPS,
           **{family: headline(res) for family, res in results.items()}}
(WORKDIR / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
