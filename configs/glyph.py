"""Frozen Unicode-glyph input embeddings (Bochkov 2025) and their controls.

Every variant uses the lossless `unicode` tokenizer (65,536 ids: BMP code points, byte
fallback) and an untied trainable readout. tiny and small score only the ids their training
split uses plus one "other" logit for the rest (`readout_ids="train_split"`: still a
distribution over all 65,536 ids, so losses compare with full-readout runs; KJV as
characters uses 66 ids, lexi/embeddings/readout.py); paper scores all of them, as the paper does, in
vocabulary chunks (`readout_chunk`), never as a B x L x 65,536 array. The input table is one of
  glyph      rendered GNU Unifont glyphs -> full-rank PCA -> unit rows, frozen
             (`lexi glyphs` builds the same table; cached under the lexi cache)
  trainable  a learned table of the same shape: the usual LM (suffix _trainable)
  binary     frozen random 64-bit binary ID codes widened to d_model (suffix _binary)
so e.g. `small`, `small_trainable` and `small_binary` differ only in the input table.
Shapes: tiny and small are lexi's (configs/standard.py); the table's 1024 columns are cut
to the leading d_model principal components, or, with
`--config.embedding.projection=random_orthogonal`, `=pca_used` or `=pca_used_whitened`,
projected by a fixed random orthogonal matrix or by components fitted (and optionally
whitened) on the ids the training split uses (lexi/embeddings/frozen.py; their geometry:
`python benchmarks/glyph_geometry.py`, benchmarks/RESULTS.md). At small with the train-split
readout, validation nats/token, whitened glyphs / trainable / binary: KJV 5.541 / 5.680 /
5.770, python_code 6.132 / 6.316 / 6.408 (README, "Frozen glyph inputs vs their controls"). Add
`--config.data.corpus=python_code` for the Python-code corpus.

  tiny    lexi train --config configs/glyph.py:tiny --workdir runs/glyph_tiny
          2 layers, width 64, KJV, context 128, batch 16, 300 steps, a readout of 67 rows.
          One core of the 2-core CPU (taskset; a training run on the other core), glyph
          table already cached: 73 s wall, 17.5k tokens/s at the end; validation 2.236.
          On a LOADED machine (load average 4-7, nice 5): 2 min 3 s wall,
          of which 39 s are start-up, compilation, one evaluation and a checkpoint (a 1-step
          run), then 9-13k tokens/s; training loss 2.21 nats/char, validation 2.236 (the
          standard ASCII tiny: 2.25). Controls, one after the other on the same loaded
          machine: tiny_trainable 1 min 54 s, validation 2.219; tiny_binary 1 min 44 s,
          2.212. The three input tables are within 0.025 nats of each other; the small runs
          are where they should part. Before the
          restriction (--config.embedding.readout_ids=all: the 65,536-way readout is 97% of the
          FLOPs at this width): 9 min 13 s (1,171 tokens/s), validation 2.450; controls
          (each pinned to one core, both at once) 14 min each, 2.451 and 2.435.
  small   lexi train --config configs/glyph.py:small --workdir runs/glyph_small
          lexi's small backbone cut to what a 2-core CPU trains six times in a session:
          4 layers, width 128, context 128, batch 16, 200 steps (410k tokens), with 8,000
          n-grams learned on the corpus (3.0 characters per token on KJV). One run per core,
          two at a time: 3.6-8 min each (tests sharing the machine). Validation loss
          (nats/token), glyph (leading PCA) / glyph (--config.embedding.projection=
          pca_used_whitened) / trainable / binary: KJV 6.042 / 5.541 / 5.680 / 5.770,
          python_code 6.436 / 6.132 / 6.316 / 6.408. With --config.train.steps=800 (1.64M
          tokens, 24-42 min each), whitened glyphs / trainable / binary: KJV 4.169 / 4.253 /
          4.319, python_code 4.872 / 5.212 / 5.371 (README, "Frozen glyph inputs vs their
          controls").
  paper   the paper's model: d_model 1024 (= the 32 px table, used as it is), 16 layers,
          32 heads, RoPE, GELU MLP 4x, context 1024, untied trainable head over every id
          (readout_ids=all). Not run here.
"""
from lexi.config import base_config
from lexi.presets import apply_small_shape, apply_tiny_shape

# the variants after the colon (docs/configs.md is generated from them)
VARIANTS = tuple(f"{shape}{control}" for shape in ("tiny", "small", "paper")
                 for control in ("", "_trainable", "_binary"))

READOUT_CHUNK = 8192  # 65,536 ids in 8 chunks
# tiny and small read out only the ids their training split uses (+ "other", lexi/embeddings/readout.py):
# KJV's ~80 characters instead of 65,536 rows. The paper's model reads out over every id.
READOUT_IDS = {"tiny": "train_split", "small": "train_split", "paper": "all"}


def get_config(variant: str = "tiny"):
    shape, _, control = variant.partition("_")
    c = base_config()
    if control in ("", "glyph"):
        c.embedding = {"kind": "frozen", "source": "glyph", "cell_px": 32, "readout_chunk": READOUT_CHUNK,
                       "projection": "pca", "projection_seed": 0}
    elif control == "binary":
        c.embedding = {"kind": "frozen", "source": "binary", "code_bits": 64, "readout_chunk": READOUT_CHUNK,
                       "projection": "pca", "projection_seed": 0}
    elif control == "trainable":
        c.embedding = {"kind": "trainable", "tied": False, "readout_chunk": READOUT_CHUNK}
    else:
        raise ValueError(f"unknown control {control!r} in {variant!r}: glyph (none), trainable, binary")
    if shape == "tiny":
        apply_tiny_shape(c)
    elif shape == "small":  # lexi's small, cut to what a 2-core CPU trains six times in a session
        apply_small_shape(c)
        c.model.update(d_model=128, head_dim=32, mlp_dim=512)
        c.data.seq_len = 128
        c.train.update(steps=200, batch_size=16, lr=3e-3, warmup_steps=20, eval_every=100)
        c.data.tokenizer.update(num_ngrams=8000, max_n=3)  # learned on the corpus: 3 chars/token on KJV
    elif shape == "paper":
        c.model.update(num_layers=16, d_model=1024, num_heads=32, head_dim=32, mlp_dim=4096,
                       activation="gelu", norm="rmsnorm", position="rope", dtype="bfloat16")
        c.data.update(corpus="kjv", seq_len=1024)
        c.train.update(steps=100_000, batch_size=64, lr=3e-4, warmup_steps=2000, log_every=100,
                       eval_every=2000, checkpoint_every=2000)
    else:
        raise ValueError(f"unknown shape {shape!r} in {variant!r}: tiny, small, paper")
    c.data.tokenizer.kind = "unicode"
    c.embedding.readout_ids = READOUT_IDS[shape]
    return c
