# %% [markdown]
# # 4. Frozen glyph embeddings: tokens as pictures
#
# Bochkov (2025) gives a language model input embeddings that are never trained: each token is
# drawn with the GNU Unifont bitmap font, the pictures of the whole vocabulary go through a
# full-rank PCA, and each token's row is its picture in those coordinates, scaled to unit length.
# Tokens that look alike get nearby rows, and the table works for any script without learning.
#
# lexi builds such tables for any of its tokenizers (`lexi/glyph/`: `fonts.py` picks the fonts,
# `render.py` draws the characters, `table.py` does the PCA and caching) and trains models on
# them (`kind="frozen"` in `lexi/embeddings/frozen.py`, configs in `configs/glyph.py`). Here we
# draw some glyphs, look up their nearest neighbours in the table of the 65,536-id `unicode`
# tokenizer, and train a tiny frozen-glyph model against its trainable control.

# %% [setup]

# %% [markdown]
# ## Parameters
#
# The `unicode` tokenizer has 65,536 ids; `tiny` and `small` read out only over the ids the
# training split uses (plus one "other" logit, `embedding.readout_ids=train_split`), so the
# readout no longer dominates the cost. On a CPU the `tiny` configs are cut further (shorter
# context, smaller batches, fewer steps) by overrides, so the notebook runs in minutes.

# %%
SIZE = "tiny" if BACKEND == "cpu" else "small"
OVERRIDES = {"tiny": ["--config.train.steps=60", "--config.train.batch_size=8", "--config.data.seq_len=64",
                      "--config.train.warmup_steps=6", "--config.train.eval_every=20"],
             "small": []}[SIZE]  # small: configs/glyph.py's own settings
CHARACTERS = "Aao01lλЖ→€字\n "  # drawn in section 1
QUERIES = "Aol1λ"  # nearest neighbours in section 2
if SMOKE:
    OVERRIDES = ["--config.train.steps=4", "--config.train.batch_size=4", "--config.data.seq_len=32",
                 "--config.train.warmup_steps=1", "--config.train.eval_every=2", "--config.train.eval_batches=1"]
print(f"SIZE={SIZE}, overrides {OVERRIDES}")

# %% [markdown]
# ## 1. Fonts and glyphs
#
# `lexi.glyph.fonts.resolve_fonts()` returns the chain of fonts a character is looked up in:
# GNU Unifont (`sudo apt-get install fonts-unifont`, or `LEXI_UNIFONT=/path/unifont.otf`), its
# upper planes, then a font matplotlib ships. Without Unifont the fallback draws Latin, Greek and
# Cyrillic but not CJK, and lexi warns when it builds a table. Characters no font has become
# **hex boxes** (their code point in a frame). Whitespace and control characters are drawn
# through visible control pictures in reverse video, so a space and a newline differ; the
# fallback font has no control pictures, so there they become hex boxes too (still distinct).

# %%
from lexi.glyph.fonts import resolve_fonts
from lexi.glyph.render import CharRenderer

fonts, notes = resolve_fonts()
for f in fonts:
    print(f"font {f.role}: {f.path}")
for note in notes:
    print("note:", note)
cells, drawn_by, blank = CharRenderer(fonts, cell_px=32).render([ord(c) for c in CHARACTERS])
fig, axes = plt.subplots(1, len(CHARACTERS), figsize=(1.1 * len(CHARACTERS), 1.6))
for ax, ch, cell, src in zip(axes, CHARACTERS, cells, drawn_by):
    ax.imshow(cell, cmap="gray_r")
    ax.set_title(f"U+{ord(ch):04X}\n{src}", fontsize=7)
    ax.axis("off")
show(fig)

# %% [markdown]
# ## 2. The glyph table and its nearest neighbours
#
# `glyph_table_with_stats(tokenizer, cell_px=32)` draws every token (n-gram tokens are their
# characters side by side, squeezed into one cell), makes every picture distinct (look-alikes
# such as Latin A and Greek Alpha get a small mark), runs the PCA and caches the result. Rows
# have unit length, so the dot product is the cosine similarity.

# %%
from lexi import tokenizers
from lexi.glyph import glyph_table_with_stats, token_labels
from lexi.glyph.table import build_bitmaps

tok = tokenizers.load("unicode")
table, stats = glyph_table_with_stats(tok, cell_px=32)
print(f"table {table.shape}, duplicate rows {stats['duplicates']}, built in {stats['build_seconds']:.1f} s"
      f" ({'cache hit' if stats['cache_hit'] else 'new'})")
print("where the pictures came from:", stats["coverage"])
pictures, _ = build_bitmaps(tok, 32, fonts)  # the drawings behind the rows (before look-alike marks)
labels = token_labels(tok)

# %%
neighbours = {}
fig, axes = plt.subplots(len(QUERIES), 6, figsize=(6.5, 1.25 * len(QUERIES)))
for row, ch in zip(axes, QUERIES):
    query = tok.encode(ch)[0]
    similarity = table @ table[query]
    nearest = [int(i) for i in np.argsort(-similarity)[:6] if i != query][:5]
    neighbours[ch] = [labels[i] for i in nearest]
    for ax, i in zip(row, [query] + nearest):
        ax.imshow(pictures[i], cmap="gray_r")
        ax.set_title(f"U+{i:04X}" + ("" if i == query else f" {similarity[i]:.2f}"), fontsize=7)
        ax.axis("off")
fig.suptitle("query (left) and its 5 nearest rows: id and cosine similarity", fontsize=9)
show(fig)
for ch, found in neighbours.items():
    print(f"{ch!r}: {found}")

# %% [markdown]
# ## 3. Train a frozen-glyph model and its trainable control
#
# `configs/glyph.py:tiny` and `tiny_trainable` differ only in the input table: the frozen glyph
# rows (cut to the leading `d_model` principal components, lexi/embeddings/frozen.py) or a
# learned table of the same shape. Both read out through an untied trainable head over the ids
# the training split uses (the distribution still covers all 65,536: the unused ids share one
# "other" logit, so losses compare with a full readout). The frozen table lives in the run's
# `constants`: no gradient, no optimizer state, bit-for-bit the same after training. At CPU
# scale the projection matters most: `--config.embedding.projection=pca_used_whitened` (components
# fitted on the ids the corpus uses, whitened) beat the trainable table by 2-6.5% in the README's
# runs, while the default leading components of all 65,536 glyphs came last.

# %%
from lexi.config import load_config
from lexi.train.loop import train

RUNS = {"glyph": WORKDIR / "glyph", "trainable": WORKDIR / "trainable"}
last = {}
for name, variant in (("glyph", SIZE), ("trainable", f"{SIZE}_trainable")):
    cfg = load_config(f"{CONFIGS}/glyph.py:{variant}", OVERRIDES)
    t0 = time.perf_counter()
    last[name] = train(cfg, RUNS[name])
    print(f"{name}: embedding {dict(cfg.embedding)}\n  validation loss {last[name]['val_loss']:.3f} nats/token "
          f"after {cfg.train.steps} steps, {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# `lexi.eval.suite.compare` also works on runs that were only trained: it reads their
# `metrics.jsonl` and plots the validation curves. At the paper's scale (16 layers, billions of
# tokens) the frozen glyph inputs match the trainable ones; in a few CPU minutes the trainable
# table usually learns a little faster (README, "Frozen glyph inputs vs their controls").

# %%
from lexi.eval.suite import compare
from lexi.rundir import read_metrics

comparison = compare(list(RUNS.values()), WORKDIR / "compare")
display(Markdown(comparison["table"]))
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, run_dir in RUNS.items():
    val = [(r["step"], r["val_loss"]) for r in read_metrics(run_dir) if "val_loss" in r]
    ax.plot(*zip(*val), marker="o", label=name)
ax.set(xlabel="step", ylabel="validation loss (nats/token)", title="Frozen glyphs vs trainable table")
ax.legend()
show(fig)

# %% [markdown]
# ## Summary

# %%
summary = {"python": sys.executable, "backend": BACKEND, "size": SIZE, "table_shape": list(table.shape),
           "duplicates": int(stats["duplicates"]), "fonts": [f.role for f in fonts], "neighbours": neighbours,
           "val_loss": {name: float(m["val_loss"]) for name, m in last.items()}}
(WORKDIR / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
print(json.dumps(summary, indent=2, ensure_ascii=False))
